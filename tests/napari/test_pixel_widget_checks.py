"""Pixel classifier widget: scribbles painted on one image are not trained on another of the
same shape; scribbles training would refuse are said in the widget's words; a model saved
without a suffix opens in napari; scribbles export into a missing folder."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm

WAIT_MS = 180_000


def two_images(viewer):
    """An RGB ``skin`` and a one-channel ``hela`` of one shape, and the widget (on ``skin``)."""
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    rng = np.random.default_rng(0)
    viewer.add_image(rng.integers(0, 255, (48, 56, 3), np.uint8), rgb=True, name="skin")
    viewer.add_image(rng.random((48, 56), np.float32), name="hela")
    viewer.layers.selection.active = viewer.layers["skin"]  # the widget starts on it
    widget = PixelClassifierWidget(viewer)
    widget.image_choice.setCurrentText("skin")
    widget.features.setCurrentText("gaussian_smoothing:1")
    widget.trees.setValue(3)
    return widget


def paint_two_classes(layer) -> None:
    layer.data[2:6, 2:20] = 1
    layer.data[30:34, 10:40] = 2
    layer.refresh()


def trained(qtbot, widget) -> str:
    widget.train()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    return widget.status.text()


def test_scribbles_painted_on_another_image_of_that_shape_are_not_trained_on(
    viewer, qtbot, tmp_path
):
    from scopeml.napari.pixel_widget import SCRIBBLES

    widget = two_images(viewer)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    paint_two_classes(viewer.layers[SCRIBBLES])
    widget.image_choice.setCurrentText("hela")
    warning = "the scribbles were painted on skin, not hela: choose skin again"
    qtbot.waitUntil(lambda: widget.status.text().startswith(warning), timeout=10_000)
    assert trained(qtbot, widget).startswith(f"error: {warning}")
    assert widget.model is None
    assert int((viewer.layers[SCRIBBLES].data > 0).sum()) == 4 * 18 + 4 * 30  # kept

    widget.image_choice.setCurrentText("skin")  # their image again: the warning goes
    qtbot.waitUntil(lambda: widget.status.text() == "paint scribbles, then Train", timeout=10_000)
    assert trained(qtbot, widget).startswith("trained"), widget.status.text()
    assert widget.model.info["channels"] == ["R", "G", "B"]

    path = widget.export_scribbles(tmp_path / "skin.tif")  # kept for hela on purpose
    widget.image_choice.setCurrentText("hela")
    qtbot.waitUntil(lambda: widget.status.text().startswith(warning), timeout=10_000)
    widget.import_scribbles(path)
    assert trained(qtbot, widget).startswith("trained"), widget.status.text()
    assert widget.model.info["channels"] == ["hela"]


def test_another_image_chosen_while_training_is_still_said_when_it_ends(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES

    widget = two_images(viewer)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    paint_two_classes(viewer.layers[SCRIBBLES])
    widget.train()
    widget.image_choice.setCurrentText("hela")  # while the worker trains on skin's
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    said = widget.status.text()
    assert said.startswith("trained 3 features") and said.endswith(
        "of channels R, G, B; the scribbles were painted on skin, not hela: choose skin again; "
        "or export them, then delete the layer to paint anew, or import them to train hela on them"
    ), said


def test_empty_scribbles_and_one_files_channels_go_with_the_image_chosen(viewer, qtbot, tmp_path):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    widget = two_images(viewer)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    widget.image_choice.setCurrentText("hela")  # nothing painted yet: hela's now
    made = viewer.layers[SCRIBBLES].metadata["scopeml"]
    qtbot.waitUntil(lambda: made["image_name"] == "hela", timeout=10_000)
    paint_two_classes(viewer.layers[SCRIBBLES])
    assert trained(qtbot, widget).startswith("trained"), widget.status.text()

    file = tmp_path / "two.ome.tif"
    rng = np.random.default_rng(1)
    tifffile.imwrite(file, rng.random((2, 40, 40), np.float32), metadata={"axes": "CYX"})
    first, second = viewer.open(str(file), plugin="scopeml")  # one layer per channel
    viewer.layers.remove(SCRIBBLES)
    widget = PixelClassifierWidget(viewer)
    widget.features.setCurrentText("gaussian_smoothing:1")
    widget.trees.setValue(3)
    widget.image_choice.setCurrentText(first.name)
    qtbot.waitUntil(lambda: viewer.layers[SCRIBBLES].data.shape == (40, 40), timeout=10_000)
    paint_two_classes(viewer.layers[SCRIBBLES])
    widget.image_choice.setCurrentText(second.name)  # the same file: the same image
    assert trained(qtbot, widget).startswith("trained"), widget.status.text()
    assert widget.model.spec.in_channels == 2


@pytest.mark.parametrize(
    ("strokes", "message"),
    [
        (
            {2: 1},
            "error: paint at least two classes: only 'foreground' has strokes (also paint "
            "'background')",
        ),
        (
            {1: 1, 2: 1, 3: 1},
            "error: strokes of label 3, but the widget has 2 classes (background, foreground): "
            "add a class, or repaint them with label 1 or 2",
        ),
        (
            {},
            "error: paint at least two classes: no strokes yet (paint 'background' and "
            "'foreground')",
        ),
    ],
)
def test_scribbles_training_refuses_are_said_in_the_widgets_words(viewer, qtbot, strokes, message):
    from scopeml.napari.pixel_widget import SCRIBBLES

    widget = two_images(viewer)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    for row, value in enumerate(strokes):
        viewer.layers[SCRIBBLES].data[5 * row, 3:30] = value
    assert trained(qtbot, widget) == message


def test_every_class_needs_strokes_in_the_widgets_words(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES

    widget = two_images(viewer)
    widget.add_class("mitosis")
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    paint_two_classes(viewer.layers[SCRIBBLES])
    assert trained(qtbot, widget) == (
        "error: every class needs strokes: 'mitosis' has none (paint it, or remove the class)"
    )


def test_a_model_saved_without_a_suffix_is_a_czseg_napari_opens(viewer, qtbot, tmp_path):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    widget = two_images(viewer)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    paint_two_classes(viewer.layers[SCRIBBLES])
    assert trained(qtbot, widget).startswith("trained")
    saved = widget.save_model(tmp_path / "mymodel")
    assert saved == tmp_path / "mymodel.czseg" and saved.is_file()
    assert not (tmp_path / "mymodel").exists()
    assert widget.status.text() == f"saved {saved}"
    assert widget.save_model(tmp_path / "kept.czseg") == tmp_path / "kept.czseg"
    assert widget.save_model(tmp_path / "v1.2") == tmp_path / "v1.2.czseg"
    assert widget.save_model(tmp_path / "cnn.czann") == tmp_path / "cnn.czseg"  # not a CNN
    assert viewer.open(str(saved), plugin="scopeml") == []  # opens in a pixel widget
    found = [w for w in viewer.window.dock_widgets.values() if isinstance(w, PixelClassifierWidget)]
    assert found and found[0].model.spec.classes == ("background", "foreground")


def test_scribbles_export_makes_a_missing_folder_and_says_what_it_cannot_write(
    viewer, qtbot, tmp_path
):
    from scopeml.napari.pixel_widget import SCRIBBLES

    widget = two_images(viewer)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    paint_two_classes(viewer.layers[SCRIBBLES])
    path = tmp_path / "nodir" / "deeper" / "s.tif"
    assert widget.export_scribbles(path) == path  # as a model is saved: the folder is made
    np.testing.assert_array_equal(tifffile.imread(path), viewer.layers[SCRIBBLES].data)
    assert [p.name for p in path.parent.iterdir()] == ["s.tif"]  # no temporary left

    (tmp_path / "a file").write_text("not a folder")
    blocked = tmp_path / "a file" / "s.tif"
    widget._guard(widget.export_scribbles, blocked)
    assert widget.status.text() == (
        f"error: cannot write {blocked}: {tmp_path / 'a file'} is a file where a folder is needed"
    )
    bare = widget.export_scribbles(tmp_path / "strokes")  # no suffix: .tif added, readable
    assert bare == tmp_path / "strokes.tif" and widget.status.text().endswith(str(bare))
    with sm.open_image(bare) as image:
        np.testing.assert_array_equal(image.read()[0, 0, 0, 0], viewer.layers[SCRIBBLES].data)


def test_open_an_image_first_goes_once_an_image_is_open(viewer, qtbot):
    """The error stayed after an image was opened, until the next action."""
    from scopeml.napari.pixel_widget import STATUS, PixelClassifierWidget

    widget = PixelClassifierWidget(viewer)
    widget.train()
    assert "open an image first" in widget.status.text()
    viewer.add_image(np.zeros((16, 16), np.float32), name="later")
    qtbot.waitUntil(lambda: widget.status.text() == STATUS, timeout=10_000)
