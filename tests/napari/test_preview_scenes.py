"""The live preview of a layer of several scenes (the reader's ``S`` slider) classifies the
scene on screen, placed at that scene, as ``sm.segment(..., scene=)`` writes it."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei

WAIT_MS = 180_000


@pytest.fixture
def two_scenes(tmp_path):
    """An OME-TIFF of two ``Z×Y×X`` scenes of one size and different nuclei, and a 2-D
    classifier trained on scene 0's first plane."""
    first, truth = synthetic_nuclei((64, 80), channels=1, seed=1)
    second, _ = synthetic_nuclei((64, 80), channels=1, seed=2)
    scenes = [np.stack([first[0], first[0, ::-1]]), np.stack([second[0], second[0, :, ::-1]])]
    path = tmp_path / "scenes.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for scene in scenes:
            tif.write(scene.astype(np.float32), metadata={"axes": "ZYX"})
    labels = np.zeros(truth.shape, np.uint8)
    labels[::4, ::4] = (truth[::4, ::4] > 0) + 1
    model = sm.train_pixel_classifier(
        first, labels, features="gaussian_smoothing:1,2.5", n_estimators=8
    )
    return path, model


def segmented(path, model, scene: int, folder) -> np.ndarray:
    """What ``sm.segment`` writes for one scene: ``Z×Y×X``."""
    out = folder / f"scene{scene}.ome.zarr"
    return sm.segment(path, model, out, scene=scene).labels.read()[0, 0, 0]


def test_preview_is_the_scene_on_screen(viewer, qtbot, two_scenes, tmp_path):
    from scopeml.napari.pixel_widget import PREVIEW, PixelClassifierWidget

    path, model = two_scenes
    (layer,) = viewer.open(str(path), plugin="scopeml")
    assert layer.data.shape == (2, 2, 64, 80) and layer.metadata["scopeml"]["axes"] == "SZYX"
    scene0, scene1 = (segmented(path, model, s, tmp_path) for s in (0, 1))
    assert not np.array_equal(scene0[1], scene1[1])  # the scenes differ: the scene matters

    widget = PixelClassifierWidget(viewer)
    widget.set_model(model)
    viewer.dims.set_current_step(0, 1)  # scene 1
    viewer.dims.set_current_step(1, 1)  # plane 1
    widget.update_preview()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text() == "preview of scene 1, Z 1, Y 0–63, X 0–79"
    assert widget.last_region["S"] == (1, 2)
    preview = viewer.layers[PREVIEW]
    assert preview.data.shape == (1, 1, 64, 80)
    np.testing.assert_array_equal(np.asarray(preview.data)[0, 0], scene1[1])
    assert not np.array_equal(np.asarray(preview.data)[0, 0], scene0[1])
    assert tuple(preview.translate)[:2] == pytest.approx((1, 1))  # placed at scene 1, plane 1

    widget.live.setChecked(True)  # live: moving the S slider previews the scene shown
    viewer.dims.set_current_step(0, 0)
    qtbot.waitUntil(lambda: widget.status.text().startswith("preview of scene 0"), timeout=WAIT_MS)
    np.testing.assert_array_equal(np.asarray(viewer.layers[PREVIEW].data)[0, 0], scene0[1])
    assert tuple(viewer.layers[PREVIEW].translate)[:2] == pytest.approx((0, 1))


def test_a_region_of_several_scenes_is_refused_in_one_line():
    from scopeml.napari._preview import split_scene

    with pytest.raises(sm.ScopeMLError, match=r"one scene.*scenes 0 to 1"):
        split_scene({"S": (0, 2), "Y": (0, 4), "X": (0, 4)})


def test_the_preview_of_a_scene_opened_alone_names_it(viewer, qtbot, two_scenes):
    """A scene opened in *Open image scene* (no S slider): the status names it as its layer
    does, by number and the file's name for it."""
    from scopeml.napari.open_widget import OpenImageWidget
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    path, model = two_scenes
    named = path.with_name("named.ome.tif")
    with tifffile.TiffFile(path) as tif, tifffile.TiffWriter(named, ome=True) as out:
        for index, series in enumerate(tif.series):
            out.write(series.asarray(), metadata={"axes": "ZYX", "Name": f"well {index}"})
    opener = OpenImageWidget(viewer)
    opener.path.setText(str(named))
    opener.scene.setValue(1)
    (layer,) = opener.open()
    widget = PixelClassifierWidget(viewer)
    widget.image_choice.setCurrentText(layer.name)
    widget.set_model(model)
    viewer.dims.set_current_step(0, 1)
    widget.update_preview()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text() == "preview of scene 1: well 1, Z 1, Y 0–63, X 0–79"

    (whole,) = viewer.open(str(named), plugin="scopeml")  # one layer, an S slider: named too
    widget.image_choice.setCurrentText(whole.name)
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 1)
    widget.update_preview()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text() == "preview of scene 1: well 1, Z 1, Y 0–63, X 0–79"
