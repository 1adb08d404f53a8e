"""Apply widget on in-memory layers of more than Y×X / Z×Y×X (a user's array, no file): each
time point is applied as ``sm.segment`` applies it to that time point alone, the axes named by
the layer's ``axis_labels`` or, without them, by its number of dimensions (4-D: T×Z×Y×X), and
said in the status line; a layer whose axes cannot be named is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.io._view import AxesView
from tests.napari.test_apply_widget import wait_idle


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Four 64² single-channel frames (the sample's DAPI, shifted and dimmed) and a small
    pixel classifier trained on the first."""
    import zarr

    from scopeml.demo import write_sample_image

    folder = tmp_path_factory.mktemp("layer4d")
    image, truth = write_sample_image(folder / "s.ome.zarr", size=160, block=160, seed=3)
    with sm.open_image(image) as opened:
        dapi = np.asarray(opened.data[0, 0, 0, 0])
    truth = np.asarray(zarr.open_array(str(truth), mode="r")[:])
    labels = np.zeros(truth.shape, np.uint8)
    labels[::5, ::5] = (truth[::5, ::5] > 0) + 1
    model = sm.train_pixel_classifier(
        dapi, labels, classes=["background", "nucleus"], n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    crops = [dapi[0:64, 0:64], dapi[40:104, 30:94], dapi[90:154, 80:144], dapi[50:114, 90:154]]
    stack = np.stack([crops[0], crops[1] // 2, crops[2], crops[3] // 3])
    return stack.astype(np.uint16), model.save(folder / "dapi.czseg")


def _apply(viewer, qtbot, layer, model, out):
    from scopeml.napari.apply_widget import ApplyWidget

    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText(layer.name)
    widget.model_path.setText(str(model))
    widget.output.setText(str(out))
    widget.run()
    wait_idle(qtbot, widget)
    return widget


def _labels(viewer, name):
    layer = viewer.layers[name]
    return np.asarray(layer.data[0] if layer.multiscale else layer.data)


def test_a_4d_layer_is_applied_time_point_by_time_point(viewer, qtbot, frames, tmp_path):
    """A 4-D layer without axis labels is T×Z×Y×X: the labels layer has its T and Z, and each
    time point is what ``sm.segment`` writes for that Z×Y×X stack alone."""
    stack, model = frames
    data = stack.reshape(2, 2, 64, 64)  # T, Z, Y, X
    layer = viewer.add_image(data, name="tzyx")
    widget = _apply(viewer, qtbot, layer, model, tmp_path / "tzyx.ome.zarr")
    assert widget.status.text().startswith("wrote"), widget.status.text()
    assert "T×Z×Y×X" in widget.status.text() and "4 dimensions" in widget.status.text()
    result = _labels(viewer, "tzyx labels")
    assert result.shape == data.shape
    for t in range(2):
        alone = sm.Image(AxesView(data[t], "ZYX"))
        expected = sm.segment(alone, model, tmp_path / f"t{t}.ome.zarr").labels.read()
        np.testing.assert_array_equal(result[t], np.asarray(expected).reshape(2, 64, 64))
    assert len(np.unique(result)) > 1  # nuclei and background in every run


def test_axis_labels_name_a_time_series(viewer, qtbot, frames, tmp_path):
    """A 3-D layer labelled ``("t", "y", "x")`` is four frames, not a Z stack: each frame's
    labels are those of the frame segmented alone (as a Y×X array)."""
    stack, model = frames
    layer = viewer.add_image(stack, name="tyx", axis_labels=("t", "y", "x"))
    widget = _apply(viewer, qtbot, layer, model, tmp_path / "tyx.ome.zarr")
    assert widget.status.text().startswith("wrote"), widget.status.text()
    assert "T×Y×X" in widget.status.text() and "axis labels" in widget.status.text()
    result = _labels(viewer, "tyx labels")
    assert result.shape == stack.shape
    for t, frame in enumerate(stack):
        expected = sm.segment(frame, model, tmp_path / f"f{t}.ome.zarr").labels.read()
        np.testing.assert_array_equal(result[t], np.asarray(expected).reshape(64, 64))


def test_an_unnamed_5d_layer_is_a_one_line_error(viewer, qtbot, frames, tmp_path):
    stack, model = frames
    layer = viewer.add_image(stack.reshape(1, 2, 2, 64, 64), name="five")
    widget = _apply(viewer, qtbot, layer, model, tmp_path / "five.ome.zarr")
    text = widget.status.text()
    assert text.startswith("error:") and "5 dimensions" in text and "\n" not in text, text
    assert "axis_labels" in text
    layer.axis_labels = ("s", "t", "z", "y", "x")  # named: applied
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()


def test_special_value_texts_are_not_clipped(viewer, qtbot):
    """ "unlimited" (max depth) and "model default" (tile size) fit their spin boxes' text
    fields under napari's theme (its "−" button left of the text was not counted)."""
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    pixel, apply = PixelClassifierWidget(viewer), ApplyWidget(viewer)
    for widget in (pixel, apply):
        viewer.window.add_dock_widget(widget)
    viewer.window._qt_window.show()  # laid out and styled by napari's theme
    qtbot.waitExposed(viewer.window._qt_window)
    qtbot.wait(50)
    for box in (pixel.max_depth, apply.tile_size):
        edit = box.lineEdit()
        assert box.text() == box.specialValueText()
        assert edit.width() >= edit.fontMetrics().horizontalAdvance(box.text()) + 4, box.text()


def test_objects_of_a_time_series_are_measured_frame_by_frame(viewer, qtbot, frames, tmp_path):
    """Label objects on the class labels of a T×Y×X run keeps their time axis: Measure with
    the movie's intensities then has a row per object and time point, as the library's."""
    import tifffile

    from scopeml.napari.objects_widget import ObjectsWidget
    from scopeml.napari.open_widget import OpenImageWidget

    stack, model = frames
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, stack)
    store = sm.segment(str(movie), model, tmp_path / "run.ome.zarr", axes="TYX").path
    viewer.open(str(store), plugin="scopeml")
    opener = OpenImageWidget(viewer)
    opener.path.setText(str(movie))
    opener.axes.setCurrentText("TYX")
    (frames_layer,) = opener.open()
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText("run labels")
    widget.class_value.setText("nucleus")
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    assert widget.labels_choice.currentText() == "run labels objects", widget.status.text()
    widget.image_choice.setCurrentText(frames_layer.name)
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    table = widget.table
    assert table is not None, widget.status.text()
    objects = sm.label_objects(sm.Segmentation(store), tmp_path / "o.ome.zarr",
                               class_="nucleus", min_size=widget.min_size.value())  # fmt: skip
    expected = sm.measure_objects(objects, sm.open_image(movie, axes="TYX"))
    assert sorted(set(table["t"])) == [0, 1, 2, 3] and len(table) == len(expected)
    np.testing.assert_allclose(table["area"], expected["area"])

    first = table.index[table["t"] == 0][0]  # a class clicked on frame 0 only
    repeated = table.loc[first, "label"]
    table.loc[first, "user_class"] = "A"
    for _ in range(2):  # measured again, twice: kept on that frame's object alone
        widget.measure()
        qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
        clicked = widget.table[widget.table["user_class"] != ""]
        assert clicked[["label", "t", "user_class"]].values.tolist() == [[repeated, 0, "A"]], (
            widget.status.text()
        )


def test_a_layer_of_several_scenes_is_refused_in_the_widgets_words(viewer, qtbot, frames, tmp_path):
    """Scenes of one size open as one layer (an S slider): the model runs on one scene, so
    the widget says to open one, not the CLI's --scene."""
    import tifffile

    stack, model = frames
    plate = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(plate, ome=True) as tif:
        for scene in stack[:2]:
            tif.write(scene, metadata={"axes": "YX"})
    (layer,) = viewer.open(str(plate), plugin="scopeml")
    widget = _apply(viewer, qtbot, layer, model, tmp_path / "plate")
    assert widget.status.text() == (
        f"error: {plate}: the layer shows its 2 scenes; the model runs on one: open it in "
        "Plugins › scopeml › Open image scene and apply the model to that layer"
    )
    assert widget.output_path() == tmp_path / "plate.ome.zarr"  # a bare name gets the suffix


def test_the_axes_note_says_an_rgb_layer_is_a_picture(viewer):
    """It said "layer read as Y×X×C (RGB), by its 2 dimensions" (napari's colour axis is no
    dimension); a grey plane says nothing, a stack how it was read."""
    from scopeml.napari.apply_widget import _axes_note

    rgb = viewer.add_image(np.zeros((20, 30, 3), np.uint8), rgb=True)
    assert _axes_note(rgb) == " (layer read as Y×X×C, an RGB picture)"
    assert _axes_note(viewer.add_image(np.zeros((20, 30), np.uint16))) == ""
    stack = viewer.add_image(np.zeros((4, 20, 30), np.uint16))
    assert _axes_note(stack) == " (layer read as Z×Y×X, by its 3 dimensions)"
