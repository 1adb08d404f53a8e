"""Pixel classifier widget: paint → train → preview equals ``sm.segment`` on that region;
live preview after a stroke; save/load; scribbles out and in; a model file opens in the widget."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.demo import write_sample_image
from tests.napari.conftest import save_screenshot

WAIT_MS = 180_000


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A 2-channel 512² OME-Zarr of nuclei with its true instance labels."""
    folder = tmp_path_factory.mktemp("sample")
    image, truth = write_sample_image(folder / "cells.ome.zarr", size=512, block=512, seed=3)
    import zarr

    return image, np.asarray(zarr.open_array(str(truth), mode="r")[:])


def paint_truth(layer, truth: np.ndarray, step: int = 9) -> None:
    """Scribbles from the truth: every ``step``-th pixel, 1 background, 2 nucleus."""
    scribbles = np.zeros(truth.shape, np.uint8)
    grid = (slice(None, None, step), slice(None, None, step))
    scribbles[grid] = np.where(truth[grid] > 0, 2, 1)
    layer.data = scribbles


def wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert not widget.status.text().startswith("error"), widget.status.text()


def test_paint_train_preview_equals_segment(viewer, qtbot, sample, tmp_path):
    from scopeml.napari._layers import layer_classes
    from scopeml.napari.pixel_widget import PREVIEW, PixelClassifierWidget

    image_path, truth = sample
    layers = viewer.open(str(image_path), plugin="scopeml")
    assert [layer.name for layer in layers] == ["DAPI", "Membrane"]
    assert layers[0].metadata["scopeml"]["path"] == str(image_path)
    widget = PixelClassifierWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_choice.setCurrentText("DAPI")
    scribbles = widget.scribbles()
    assert scribbles.data.shape == truth.shape
    paint_truth(scribbles, truth)
    scribbles.paint((5, 5), 1)  # napari's own brush, as a user's stroke
    widget.features.setCurrentText("basic25")
    widget.train()
    wait_idle(qtbot, widget)
    assert widget.model.spec.classes == ("background", "foreground")
    assert widget.model.spec.in_channels == 2  # the whole file, not the one layer
    assert "gaussian" in widget.importances.toPlainText().lower()

    region = {"Y": (37, 301), "X": (150, 512)}  # crosses tile borders, touches the edge
    widget.update_preview(region)
    wait_idle(qtbot, widget)
    preview = np.asarray(viewer.layers[PREVIEW].data)
    seg = sm.segment(image_path, widget.model, tmp_path / "seg.ome.zarr", tile_size=128)
    written = seg.labels.read()[0, 0, 0, 0]
    np.testing.assert_array_equal(preview, written[37:301, 150:512])
    truth_region = (truth[37:301, 150:512] > 0) + 1
    assert (preview == truth_region).mean() > 0.9  # it learnt the nuclei
    clear, shown = viewer.layers[PREVIEW].colormap.map(np.array([1, 2]))
    assert clear[3] == 0 and shown[3] == 1  # background clear on the preview, the image shows
    assert layer_classes(viewer.layers[PREVIEW]) == ["background", "foreground"]
    assert scribbles.colormap.map(np.array([1]))[0][3] == 1  # but painted on the scribbles
    assert tuple(viewer.layers[PREVIEW].translate) == pytest.approx(
        (37 * layers[0].scale[0], 150 * layers[0].scale[1])
    )
    save_screenshot(widget, "pixel_widget")
    save_screenshot(viewer, "pixel_viewer")


def test_live_preview_after_a_stroke_and_files(viewer, qtbot, sample, tmp_path):
    from scopeml.napari.pixel_widget import PREVIEW, PixelClassifierWidget

    image_path, truth = sample
    viewer.open(str(image_path), plugin="scopeml")
    widget = PixelClassifierWidget(viewer)
    widget.image_choice.setCurrentText("DAPI")
    scribbles = widget.scribbles()
    paint_truth(scribbles, truth, step=13)
    widget.trees.setValue(20)
    widget.live.setChecked(True)
    scribbles.paint((200, 200), 1)  # a stroke: train, then preview, in the worker
    assert widget.busy  # painting returned at once; the work runs off the GUI thread
    wait_idle(qtbot, widget)
    first = widget.model
    assert first is not None and PREVIEW in viewer.layers
    scribbles.paint((300, 300), 2)
    wait_idle(qtbot, widget)
    assert widget.model is not first  # each stroke retrains
    assert widget.model.forest.n_trees == 20

    saved = widget.save_model(tmp_path / "pixels.czseg")
    exported = widget.export_scribbles(tmp_path / "scribbles.tif")
    other = PixelClassifierWidget(viewer)
    other.load_model(saved)
    assert other.class_names() == ["background", "foreground"]
    batch = np.random.default_rng(0).random((1, 2, 40, 40), np.float32) * 3000
    np.testing.assert_array_equal(other.model.predict(batch), widget.model.predict(batch))
    before = np.asarray(scribbles.data).copy()
    scribbles.data = np.zeros_like(before)
    widget.import_scribbles(exported)
    np.testing.assert_array_equal(scribbles.data, before)


def test_model_file_dropped_opens_in_widget(viewer, qtbot, sample, tmp_path):
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    image_path, truth = sample
    labels = np.zeros(truth.shape, np.uint8)
    labels[::11, ::11] = (truth[::11, ::11] > 0) + 1
    with sm.open_image(image_path) as image:
        model = sm.train_pixel_classifier(
            image,
            labels,
            classes=["bg", "nucleus"],
            features="gaussian_smoothing:1",
            n_estimators=5,
        )
    path = model.save(tmp_path / "dropped.czseg")
    assert viewer.open(str(path), plugin="scopeml") == []
    widgets = [w for w in viewer.window.dock_widgets.values()]
    found = [w for w in widgets if isinstance(w, PixelClassifierWidget)]
    assert found and found[0].class_names() == ["bg", "nucleus"]


def test_bad_scribbles_file_is_one_line_error(viewer, sample, tmp_path):
    from scopeml.errors import ScopeMLError
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    viewer.open(str(sample[0]), plugin="scopeml")
    widget = PixelClassifierWidget(viewer)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(ScopeMLError, match=r"bad\.tif"):
        widget.import_scribbles(bad)
    widget._guard(widget.import_scribbles, bad)
    assert widget.status.text().startswith("error: ") and "\n" not in widget.status.text()


def test_scribbles_and_preview_take_the_image_units(viewer, qtbot, sample):
    from scopeml.napari.pixel_widget import PREVIEW, PixelClassifierWidget

    image_path, truth = sample
    dapi, _ = viewer.open(str(image_path), plugin="scopeml")
    assert str(dapi.units[-1]) == "micrometer"
    widget = PixelClassifierWidget(viewer)
    widget.image_choice.setCurrentText("DAPI")
    scribbles = widget.scribbles()
    assert tuple(scribbles.units) == tuple(dapi.units)
    assert viewer.layers.extent.units is not None  # no "Inconsistent units across layers"
    paint_truth(scribbles, truth, step=13)
    widget.trees.setValue(5)
    widget.train()
    wait_idle(qtbot, widget)
    widget.update_preview({"Y": (0, 100), "X": (0, 120)})
    wait_idle(qtbot, widget)
    assert tuple(viewer.layers[PREVIEW].units) == tuple(dapi.units)
    assert viewer.layers.extent.units is not None


def test_the_channels_trained_on_are_named_and_saved(viewer, qtbot, sample, tmp_path, capsys):
    """The widget trains on every channel of the file behind the layer chosen: it names them
    (an RGB image's R, G, B too), and the saved classifier records them as the CLI's does."""
    import tifffile

    from scopeml.cli import main
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    image_path, truth = sample
    viewer.open(str(image_path), plugin="scopeml")
    widget = PixelClassifierWidget(viewer)
    widget.image_choice.setCurrentText("Membrane")
    assert widget.channels.text() == "trains on channels DAPI, Membrane"
    paint_truth(widget.scribbles(), truth, step=13)
    widget.trees.setValue(5)
    widget.train()
    wait_idle(qtbot, widget)
    assert widget.status.text().endswith("labelled pixels of channels DAPI, Membrane")
    saved = widget.save_model(tmp_path / "widget.czseg")
    capsys.readouterr()
    assert main(["pixel", "info", str(saved)]) == 0
    assert "  trained on channels: DAPI, Membrane" in capsys.readouterr().out.splitlines()

    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[20:60, 30:90] = (200, 40, 90)
    file = tmp_path / "ihc.tif"
    tifffile.imwrite(file, rgb, photometric="rgb")
    layers = viewer.open(str(file), plugin="scopeml")  # three grey layers: R, G, B
    assert [layer.name for layer in layers] == ["R", "G", "B"]
    widget.image_choice.setCurrentText("R")
    assert widget.channels.text() == "trains on channels R, G, B"
    viewer.add_image(rgb, rgb=True, name="ihc in memory")  # napari's own RGB layer
    widget.image_choice.setCurrentText("ihc in memory")
    assert widget.channels.text() == "trains on channels R, G, B"
    viewer.layers.remove("scopeml scribbles")
    scribbles = widget.scribbles()
    scribbles.data[::5, ::5] = 1
    scribbles.data[25:55:5, 35:85:5] = 2
    widget.train()
    wait_idle(qtbot, widget)
    assert widget.model.info["channels"] == ["R", "G", "B"]
    assert widget.model.spec.in_channels == 3
