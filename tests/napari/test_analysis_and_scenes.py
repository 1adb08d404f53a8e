"""Analysis settings run on the open image (same counts as ``sm.analyze``); scenes chosen in
the open-scene widget; the reader's layers carry names, scale and a lazy pyramid."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.demo import write_sample_image
from tests.napari.conftest import save_screenshot

SETTINGS = """\
version: 1
channels: [DAPI]
tile_size: 256
classes:
  - name: nucleus
    segmenter: {kind: threshold, channel: DAPI, method: otsu, sigma: 1.0}
    post:
      - step: remove_small
        min_size: 20
    measurements:
      intensity: [DAPI]
"""


def test_analysis_settings_run_on_the_open_image(viewer, qtbot, tmp_path):
    from scopeml.napari.analysis_widget import AnalysisWidget

    image, _ = write_sample_image(tmp_path / "cells.ome.zarr", size=384, block=384, seed=2)
    settings = tmp_path / "nuclei.yaml"
    settings.write_text(SETTINGS)
    viewer.open(str(image), plugin="scopeml")
    widget = AnalysisWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_choice.setCurrentText("DAPI")
    widget.load_settings(settings)
    assert widget.status.text() == "classes: nucleus"
    widget.output.setText(str(tmp_path / "napari-results"))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=180_000)
    assert widget.status.text().startswith("done"), widget.status.text()
    expected = sm.analyze(settings, [image], tmp_path / "api-results")
    assert widget.result.counts == expected.counts and expected.counts["cells"]["nucleus"] > 10
    layer = viewer.layers["nucleus"]
    level0 = np.asarray(layer.data[0] if layer.multiscale else layer.data)
    assert level0.max() > 0 and level0.shape[-2:] == (384, 384)
    save_screenshot(widget, "analysis_widget")


def test_bad_settings_file_is_a_one_line_error(viewer, tmp_path):
    from scopeml.napari.analysis_widget import AnalysisWidget

    settings = tmp_path / "broken.yaml"
    settings.write_text("version: 1\nclasses: [{name: x, segmenter: {kind: nope}}]\n")
    widget = AnalysisWidget(viewer)
    widget.load_settings(settings)
    text = widget.status.text()
    assert text.startswith("error: ") and "broken.yaml" in text and "\n" not in text


def test_run_runs_the_settings_file_named_in_the_field(viewer, qtbot, tmp_path):
    """Never an earlier file: a file that failed to load stays named and is not replaced by
    the one before it, and a path typed after a load is the one run (trial: Run ran the
    file loaded before and said done)."""
    from scopeml.napari.analysis_widget import AnalysisWidget

    image, _ = write_sample_image(tmp_path / "cells.ome.zarr", size=256, block=256, seed=2)
    good, other, broken = (tmp_path / n for n in ("good.yaml", "other.yaml", "broken.yaml"))
    good.write_text(SETTINGS)
    grown = "  - name: cell\n    segmenter: {kind: grow, seeds: blob, distance: 4}\n"
    other.write_text(SETTINGS.replace("name: nucleus", "name: blob") + grown)
    broken.write_text("version: 1\nclasses: [{name: x, segmenter: {kind: nope}}]\n")
    viewer.open(str(image), plugin="scopeml")
    widget = AnalysisWidget(viewer)
    widget.image_choice.setCurrentText("DAPI")
    widget.load_settings(good)
    widget.load_settings(broken)
    assert widget.path.text() == str(broken) and "broken.yaml" in widget.status.text()
    widget.run()  # the broken file again, not good.yaml
    assert not widget.busy and widget.status.text().startswith("error: ")
    assert "broken.yaml" in widget.status.text()
    widget.path.setText(str(other))  # typed, not loaded
    widget.output.setText(str(tmp_path / "r"))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=180_000)
    assert widget.status.text().startswith("done") and "blob" in widget.status.text()
    assert "blob" in viewer.layers and "nucleus" not in viewer.layers
    cells, blobs = viewer.layers["cell"], viewer.layers["blob"]
    assert (cells.contour, blobs.contour) == (2, 0)  # grown cells as outlines: blobs show
    grown_ids = np.unique(np.asarray(cells.data[0] if cells.multiscale else cells.data))
    assert set(np.unique(np.asarray(blobs.data))) == set(grown_ids) and len(grown_ids) > 10
    other.write_text(other.read_text().replace("blob", "spot"))  # edited since its load
    widget.output.setText(str(tmp_path / "r2"))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=180_000)
    assert "spot" in widget.status.text() and "spot" in viewer.layers


@pytest.fixture
def two_scenes(tmp_path):
    """An OME-TIFF with two scenes of different sizes (so they cannot stack)."""
    path = tmp_path / "scenes.ome.tif"
    first = np.full((40, 50), 7, np.uint16)
    second = np.arange(30 * 20, dtype=np.uint16).reshape(30, 20)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(first, metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
        tif.write(
            second,
            metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "Name": "A1-Pos3"},
        )  # fmt: skip (a name, as ZEN gives)
    return path, first, second


def test_scenes_are_selectable(viewer, two_scenes):
    from scopeml.napari.open_widget import OpenImageWidget

    path, first, second = two_scenes
    (default,) = viewer.open(str(path), plugin="scopeml")  # scenes differ: scene 0, said so
    np.testing.assert_array_equal(np.asarray(default.data), first)
    assert tuple(default.scale) == pytest.approx((0.5, 0.5))
    widget = OpenImageWidget(viewer)
    widget.path.setText(str(path))
    widget.scene.setValue(1)
    (layer,) = widget.open()
    np.testing.assert_array_equal(np.asarray(layer.data), second)
    assert layer.name.endswith("(scene 1: A1-Pos3)") and layer.metadata["scopeml"]["scene"] == 1
    assert widget.status.text() == f"opened scene 1: A1-Pos3 of {path}"
    widget.scene.setValue(5)
    assert widget.open() == [] and widget.status.text().startswith("error: ")
    save_screenshot(widget, "open_widget")


def test_demo_sample_opens(viewer):
    layers = viewer.open_sample("scopeml", "demo")
    assert [layer.name for layer in layers] == ["DAPI", "Membrane"]
    assert layers[0].data.shape == (1024, 1024) and layers[0].data.max() > 0


BLOBS = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter: {kind: threshold, channel: C0, method: fixed, value: 100}
"""


def _blobs(shape, n, seed):
    """A plane with ``n`` separate 4×4 blobs (value 200) on 0."""
    plane = np.zeros(shape, np.uint16)
    for i in range(n):
        y, x = 2 + 8 * (i // 4), 2 + 8 * (i % 4) + seed
        plane[y : y + 4, x : x + 4] = 200
    return plane


def _analyse_layer(viewer, qtbot, layer, settings, output):
    from scopeml.napari.analysis_widget import AnalysisWidget

    widget = AnalysisWidget(viewer)
    widget.image_choice.setCurrentText(layer.name)
    widget.load_settings(settings)
    widget.output.setText(str(output))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.status.text().startswith("done"), widget.status.text()
    return widget.result, widget.status.text()


def test_analysis_runs_on_the_scene_and_axes_the_layer_was_opened_with(viewer, qtbot, tmp_path):
    """A scene of a file whose scenes differ in size, and a multi-page TIFF opened as a time
    series: the analysis reads the file as the layer shows it (not the whole file, as Z)."""
    import pandas as pd

    from scopeml.napari.open_widget import OpenImageWidget

    settings = tmp_path / "blobs.yaml"
    settings.write_text(BLOBS)
    scenes = tmp_path / "scenes.ome.tif"
    with tifffile.TiffWriter(scenes, ome=True) as tif:
        tif.write(_blobs((40, 40), 3, 0), metadata={"axes": "YX"})
        tif.write(_blobs((32, 48), 5, 1), metadata={"axes": "YX"})
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(
        movie, np.stack([_blobs((32, 32), n, 0) for n in (2, 3, 4)]), photometric="minisblack"
    )
    opener = OpenImageWidget(viewer)
    opener.path.setText(str(scenes))
    opener.scene.setValue(1)
    (second,) = opener.open()
    result, said = _analyse_layer(viewer, qtbot, second, settings, tmp_path / "scene-results")
    assert said.startswith("done (scenes, scene 1: blob 5); results in"), said
    assert result.counts == {"scenes": {"blob": 5}}
    table = pd.read_csv(tmp_path / "scene-results/images/scenes/blob.csv")
    assert set(table["scene"]) == {1}  # the file's number of the scene, as opened
    assert result.counts == sm.analyze(settings, [scenes], tmp_path / "api", scene=1).counts

    opener.path.setText(str(movie))
    opener.scene.setValue(0)
    opener.axes.setCurrentText("TYX")
    (frames,) = opener.open()
    result, said = _analyse_layer(viewer, qtbot, frames, settings, tmp_path / "movie-results")
    assert said.startswith("done (movie, 3 time points: blob 9); results in"), said
    assert result.counts == {"movie": {"blob": 2 + 3 + 4}}  # read as Z: 4 objects in 3-D
    table = pd.read_csv(tmp_path / "movie-results/images/movie/blob.csv")
    assert table.groupby("t").size().tolist() == [2, 3, 4]


def test_an_image_the_analysis_fails_on_is_said(viewer, qtbot, tmp_path):
    from scopeml.napari.analysis_widget import AnalysisWidget

    settings = tmp_path / "blobs.yaml"
    settings.write_text(BLOBS)
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, np.full((32, 32), np.nan, np.float32))
    (layer,) = viewer.open(str(path), plugin="scopeml")
    widget = AnalysisWidget(viewer)
    widget.image_choice.setCurrentText(layer.name)
    widget.load_settings(settings)
    widget.output.setText(str(tmp_path / "res"))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert said.startswith("error: ") and "NaN or infinite" in said, said


def test_the_layers_scene_is_said_and_a_folder_of_another_scene_is_not_continued(
    viewer, qtbot, tmp_path
):
    """The status names the scene analysed, says where the layer's scene replaces the
    settings' (a worker's warning reaches no terminal), and a results folder of scene 1 is
    not continued with a plain image: said as such, without advising to delete it."""
    from scopeml.napari.analysis_widget import AnalysisWidget
    from scopeml.napari.open_widget import OpenImageWidget

    settings = tmp_path / "blobs.yaml"
    settings.write_text(BLOBS)
    scene0 = tmp_path / "scene0.yaml"
    scene0.write_text(BLOBS.replace("classes:", "scene: 0\nclasses:"))
    scenes = tmp_path / "scenes.ome.tif"
    with tifffile.TiffWriter(scenes, ome=True) as tif:
        tif.write(_blobs((40, 40), 3, 0), metadata={"axes": "YX", "Name": "well A1"})
        tif.write(_blobs((32, 48), 5, 1), metadata={"axes": "YX", "Name": "well B2"})
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, _blobs((32, 32), 2, 0))
    opener = OpenImageWidget(viewer)
    opener.path.setText(str(scenes))
    opener.scene.setValue(1)
    (second,) = opener.open()

    widget = AnalysisWidget(viewer)
    widget.image_choice.setCurrentText(second.name)
    widget.load_settings(scene0)
    widget.output.setText(str(tmp_path / "override"))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    said = widget.status.text()
    assert said.startswith(
        "done (scenes, scene 1: well B2: blob 5); the layer's scene 1 was "
        "analysed, not the settings' scene 0 (open scene 0 in Plugins › "
        "scopeml › Open image scene to analyse it so); results in"
    ), said

    widget.load_settings(settings)  # no scene in the settings: the layer's, said by name only
    widget.output.setText(str(tmp_path / "results"))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.status.text().startswith("done (scenes, scene 1: well B2: blob 5); results")
    (layer,) = viewer.open(str(plain), plugin="scopeml")
    widget.image_choice.setCurrentText(layer.name)
    widget.run()  # continue it (the default), with a plain image
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.status.text() == (
        f"error: {tmp_path / 'results'} holds images analysed as scene 1; this layer's image is "
        "analysed whole (every scene): choose another results folder for it"
    )
    assert [p.name for p in (tmp_path / "results" / "images").iterdir()] == ["scenes"]
