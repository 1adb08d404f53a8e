"""Pixel classifier widget: the preview of a Z stack is the plane on screen, placed at that
plane; a loaded model's feature set and trees are restored and kept by training again; the
scribbles layer is there as soon as there is an image; training shows its stage and can be
cancelled; the scribbles files and the channels are reported in the status line."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei

WAIT_MS = 180_000
Z_SCALE, YX_SCALE = 2.0, 0.5


@pytest.fixture(scope="module")
def stack():
    """A Z stack of 4 planes, each plane different (the nuclei mirrored or shifted), and
    scribbles on planes 0 and 2 from its truth."""
    pixels, truth = synthetic_nuclei((80, 96), channels=1, seed=5)
    image = np.stack([pixels[0], pixels[0, ::-1], np.roll(pixels[0], 30, 1), pixels[0, :, ::-1]])
    truths = np.stack([truth, truth[::-1], np.roll(truth, 30, 1), truth[:, ::-1]])
    scribbles = np.zeros(truths.shape, np.uint8)
    for z in (0, 2):
        scribbles[z, ::5, ::5] = (truths[z, ::5, ::5] > 0) + 1
    return image.astype(np.float32), scribbles


def wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert not widget.status.text().startswith("error"), widget.status.text()


def trained_on_stack(viewer, qtbot, stack):
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    image, scribbles = stack
    layer = viewer.add_image(image, name="stack", scale=(Z_SCALE, YX_SCALE, YX_SCALE))
    widget = PixelClassifierWidget(viewer)
    widget.scribbles().data = scribbles
    widget.features.setCurrentText("gaussian_smoothing:1,2.5; hessian_of_gaussian_eigenvalues:1")
    widget.trees.setValue(8)
    widget.train()
    wait_idle(qtbot, widget)
    assert widget.model.spec.spatial_dims == 3
    return widget, layer


def segmented(image: np.ndarray, model, folder) -> np.ndarray:
    """What ``sm.segment`` writes for the whole stack: ``Z×Y×X``."""
    pixels = sm.Image(image[None, None, None], pixel_sizes={"Z": Z_SCALE, "Y": 0.5, "X": 0.5})
    return sm.segment(pixels, model, folder / "seg.ome.zarr", tile_size=64).labels.read()[0, 0, 0]


def test_z_stack_preview_is_the_plane_on_screen_at_its_plane(viewer, qtbot, stack, tmp_path):
    from scopeml.napari.pixel_widget import PREVIEW

    widget, _ = trained_on_stack(viewer, qtbot, stack)
    written = segmented(stack[0], widget.model, tmp_path)
    assert not np.array_equal(written[3], written[2])  # the planes differ: placement matters

    viewer.dims.set_current_step(0, 3)
    widget.update_preview()
    wait_idle(qtbot, widget)
    preview = viewer.layers[PREVIEW]
    assert widget.last_region["Z"] == (3, 4)  # one plane predicted, not the whole stack
    assert preview.data.shape == (1, 80, 96)
    np.testing.assert_array_equal(np.asarray(preview.data)[0], written[3])
    assert tuple(preview.translate) == pytest.approx((3 * Z_SCALE, 0, 0))
    assert tuple(preview.scale) == pytest.approx((Z_SCALE, YX_SCALE, YX_SCALE))
    assert widget.status.text() == "preview of Z 3, Y 0–79, X 0–95"

    widget.live.setChecked(True)  # live: moving the Z slider previews the new plane
    viewer.dims.set_current_step(0, 1)
    qtbot.waitUntil(lambda: widget.status.text().startswith("preview of Z 1"), timeout=WAIT_MS)
    np.testing.assert_array_equal(np.asarray(preview.data)[0], written[1])
    assert tuple(preview.translate) == pytest.approx((1 * Z_SCALE, 0, 0))

    widget.live.setChecked(False)
    viewer.dims.ndisplay = 3  # a volume on screen: the plane the Z slider is at, said so
    widget.update_preview()
    wait_idle(qtbot, widget)
    assert widget.last_region["Z"] == (1, 2)
    assert "3-D display" in widget.status.text()
    np.testing.assert_array_equal(np.asarray(viewer.layers[PREVIEW].data)[0], written[1])


def test_a_stroke_retrains_on_the_features_kept_from_the_last_training(viewer, qtbot, stack):
    widget, _ = trained_on_stack(viewer, qtbot, stack)
    cache = widget._feature_cache
    computed, first = cache.misses, widget.model
    assert computed > 0 and cache.hits == 0
    scribbles = widget.scribbles()
    z, y, x = np.argwhere(np.asarray(scribbles.data) == 1)[0]
    scribbles.data[z, y, min(x + 1, scribbles.data.shape[2] - 1)] = 1  # one more stroke
    viewer.add_image(np.zeros((2, 4, 4)), name="another")  # layers added: the cache stays
    viewer.layers.selection.active = viewer.layers["stack"]
    widget.image_choice.setCurrentText("stack")
    widget.train()
    wait_idle(qtbot, widget)
    assert widget.model is not first and cache.hits == computed  # every block's features kept
    assert widget._feature_cache is cache
    widget.features.setCurrentText("gaussian_smoothing:1")  # another feature set: not theirs
    widget.train()
    wait_idle(qtbot, widget)
    assert widget._feature_cache is not cache and widget._feature_cache.hits == 0


def test_a_failing_preview_is_one_status_line(viewer, qtbot, stack):
    widget, _ = trained_on_stack(viewer, qtbot, stack)
    widget.update_preview({"Z": (9, 10), "Y": (0, 10), "X": (0, 10)})  # beyond the stack
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    text = widget.status.text()
    assert text.startswith("error: ") and "outside the image" in text and "\n" not in text
    assert widget.progress.isHidden() and not widget.cancel_button.isEnabled()


@pytest.mark.parametrize(
    "features",
    ["vgg19-random-64+basic25", "gaussian_smoothing:0.7,3; laplacian_of_gaussian:1.6"],
)
def test_a_loaded_model_keeps_its_features_and_trees(viewer, qtbot, tmp_path, features):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    pixels, truth = synthetic_nuclei((96, 112), channels=1, seed=2)
    labels = np.zeros(truth.shape, np.uint8)
    labels[::6, ::6] = (truth[::6, ::6] > 0) + 1
    model = sm.train_pixel_classifier(
        pixels, labels, classes=["bg", "nucleus"], features=features, n_estimators=7
    )
    saved = model.save(tmp_path / "model.czseg")
    viewer.add_image(pixels[0], name="cells")
    widget = PixelClassifierWidget(viewer)
    assert widget.features.currentText() == "basic25" and widget.trees.value() == 100
    widget.load_model(saved)
    assert widget.features.currentText() == features
    assert widget.trees.value() == 7
    assert f"{len(model.feature_names)} features {features}" in widget.status.text()

    viewer.layers[SCRIBBLES].data = labels
    widget.train()  # training again keeps the model's features, not the combo's first entry
    wait_idle(qtbot, widget)
    assert widget.model is not None and widget.model.feature_names == model.feature_names
    assert widget.model.forest.n_trees == 7
    assert widget.status.text().startswith(f"trained {len(model.feature_names)} features")


def test_feature_choices_and_a_typed_spec(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    viewer.add_image(np.zeros((40, 50), np.float32), name="flat")
    widget = PixelClassifierWidget(viewer)
    offered = [widget.features.itemText(i) for i in range(widget.features.count())]
    for name in ("basic25", "basic33", "vgg19-256", "vgg19-random-256", "vgg19-random-256+basic25"):
        assert name in offered
    assert widget.features.isEditable()
    viewer.layers[SCRIBBLES].data[5, 5:9] = 1
    viewer.layers[SCRIBBLES].data[20, 5:9] = 2
    widget.features.setCurrentText("gauss:zz")  # typed, and wrong: said in the status line
    widget.train()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text().startswith("error: ") and "gauss" in widget.status.text()
    widget.features.setCurrentText("gaussian_smoothing:1")  # typed, and right
    widget.train()
    wait_idle(qtbot, widget)
    assert widget.model.features.filters == (("gaussian_smoothing", 1.0),)


def test_the_scribbles_layer_is_there_once_there_is_an_image(viewer, qtbot, stack):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    widget = PixelClassifierWidget(viewer)
    assert SCRIBBLES not in viewer.layers  # nothing to paint on yet
    viewer.add_image(stack[0], name="stack", scale=(Z_SCALE, YX_SCALE, YX_SCALE))
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    scribbles = viewer.layers[SCRIBBLES]
    assert scribbles.data.shape == stack[0].shape
    assert tuple(scribbles.scale) == pytest.approx((Z_SCALE, YX_SCALE, YX_SCALE))
    assert scribbles.mode == "paint" and viewer.layers.selection.active is scribbles
    # another image chosen while the scribbles are empty: they are made for it
    viewer.add_image(np.zeros((30, 40), np.float32), name="small")
    widget.image_choice.setCurrentText("small")
    qtbot.waitUntil(lambda: viewer.layers[SCRIBBLES].data.shape == (30, 40), timeout=10_000)
    # painted scribbles are never dropped for another image
    viewer.layers[SCRIBBLES].data[3, 3] = 1
    widget.image_choice.setCurrentText("stack")
    qtbot.waitUntil(lambda: "are for another image" in widget.status.text(), timeout=10_000)
    assert viewer.layers[SCRIBBLES].data[3, 3] == 1


def test_the_bar_counts_the_labelled_blocks_then_the_trees(viewer, qtbot, stack):
    widget, _ = trained_on_stack(viewer, qtbot, stack)
    seen: list[tuple[int, int]] = []
    widget.counted.connect(lambda done, total: seen.append((done, total)))
    widget.progress.valueChanged.connect(lambda value: seen.append((value, -1)))
    widget.trees.setValue(6)
    widget.train()
    wait_idle(qtbot, widget)
    counts = [pair for pair in seen if pair[1] > 0]
    blocks = counts[0][1]
    assert counts[: blocks + 1] == [(k, blocks) for k in range(blocks + 1)]
    assert counts[blocks + 1 :][-1] == (6, 6) and (6, -1) in seen  # the bar went to 6 of 6
    assert widget.progress.maximum() == 6


def test_training_shows_its_stage_and_cancel_keeps_the_model(viewer, qtbot, stack):
    widget, _ = trained_on_stack(viewer, qtbot, stack)
    kept = widget.model
    widget.trees.setValue(30)
    widget.train()
    assert widget.busy and not widget.progress.isHidden() and widget.cancel_button.isEnabled()
    assert widget.status.text().startswith("training")
    widget.cancel()
    assert widget.status.text().startswith("cancelling")
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.model is kept  # the result of a cancelled training is discarded
    said = widget.status.text()
    assert "cancelled" in said and "the model in use is kept" in said
    assert widget.progress.isHidden() and not widget.cancel_button.isEnabled()
    widget.train()  # Train pressed while a cancelled step still ends: it runs after it
    widget.cancel()
    widget.train()
    assert widget.busy and widget._pending
    qtbot.waitUntil(lambda: widget.status.text().startswith("trained"), timeout=WAIT_MS)
    assert widget.model is not kept and not widget._pending
    retrained = widget.model
    widget.update_preview()  # and while a cancelled preview ends
    widget.cancel()
    widget.train()
    qtbot.waitUntil(lambda: widget.model is not retrained, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text().startswith("trained") and not widget._pending


def test_scribbles_files_and_channel_names_in_the_status(viewer, qtbot, tmp_path):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    pixels, truth = synthetic_nuclei((64, 64), channels=1, seed=7)
    viewer.add_image(pixels[0], name="mitosis")
    widget = PixelClassifierWidget(viewer)
    assert widget.channels.text() == "trains on channel mitosis"
    scribbles = viewer.layers[SCRIBBLES]
    scribbles.data[::4, ::4] = (truth[::4, ::4] > 0) + 1
    n = int((np.asarray(scribbles.data) > 0).sum())
    path = widget.export_scribbles(tmp_path / "s.tif")
    assert widget.status.text() == f"exported {n} labelled pixels in classes 1, 2 to {path}"
    scribbles.data = np.zeros_like(scribbles.data)
    widget.import_scribbles(path)
    assert widget.status.text() == f"imported {n} labelled pixels in classes 1, 2 from s.tif"
    widget.features.setCurrentText("gaussian_smoothing:1,3")
    widget.trees.setValue(5)
    widget.train()
    wait_idle(qtbot, widget)
    listed = widget.importances.toPlainText()
    assert "[mitosis]" in listed and "[C0]" not in listed
