"""Pixel classifier widget on a time series: the scribbles are ``T×Y×X`` (napari's T slider
moves the plane painted), every frame painted is trained on, and the exported scribbles name
their axes, so ``scopeml pixel train`` and the widget read them back as time points."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

import scopeml as sm

WAIT_MS = 180_000
SQUARE = (slice(12, 36), slice(16, 48))  # bright on frame 2 only
INSIDE = (slice(16, 32), slice(20, 44))  # the square less its rim (filters blur the edge)


@pytest.fixture
def movie(tmp_path):
    """A ``T×Y×X`` OME-TIFF of 3 frames of noise; frame 2 has a bright square."""
    frames = np.random.default_rng(0).normal(200, 20, (3, 48, 64)).astype(np.float32)
    frames[(2, *SQUARE)] += 1800
    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, frames, ome=True, metadata={"axes": "TYX"})
    return path


def wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert not widget.status.text().startswith("error"), widget.status.text()


def paint_two_frames(viewer, widget):
    """With napari's brush at the T slider's frame: the square's middle is background on
    frame 0 and foreground on frame 2 (the same pixels); background in the corners of both."""
    scribbles = widget.scribbles()
    for frame, inside in ((0, 1), (2, 2)):
        viewer.dims.set_current_step(0, frame)
        for y, x, label in ((24, 32, inside), (20, 24, inside), (4, 4, 1), (43, 59, 1)):
            scribbles.paint((frame, y, x), label)
    return scribbles


def test_scribbles_on_two_frames_both_reach_training(viewer, qtbot, movie, tmp_path):
    from scopeml.napari._preview import layer_axes
    from scopeml.napari.pixel_widget import PREVIEW, PixelClassifierWidget

    (layer,) = viewer.open(str(movie), plugin="scopeml")
    assert layer.data.shape == (3, 48, 64)
    widget = PixelClassifierWidget(viewer)
    scribbles = paint_two_frames(viewer, widget)
    assert scribbles.data.shape == (3, 48, 64) and layer_axes(scribbles) == "TYX"
    assert (scribbles.data[0, 24, 32], scribbles.data[2, 24, 32]) == (1, 2)
    assert not np.any(scribbles.data[1])  # the frame not painted
    widget.features.setCurrentText("gaussian_smoothing:1,2")
    widget.trees.setValue(10)
    widget.train()
    wait_idle(qtbot, widget)
    labelled = np.asarray(scribbles.data)
    assert widget.model.info["n_samples"] == np.count_nonzero(labelled)
    assert widget.model.info["samples_per_class"] == [
        int((labelled == 1).sum()),
        int((labelled == 2).sum()),
    ]
    seg = sm.segment(movie, widget.model, tmp_path / "seg.ome.zarr").labels.read()
    assert seg.shape == (1, 3, 1, 1, 48, 64)
    classes = seg[0, :, 0, 0]
    assert (classes[(2, *INSIDE)] == 2).mean() > 0.95  # painted only on frame 2
    assert (classes[(0, *INSIDE)] == 1).mean() > 0.95  # the same pixels on frame 0
    far = np.ones((48, 64), bool)  # 6 px or more from the square
    far[6:42, 10:54] = False
    assert (classes[2][far] == 1).mean() > 0.9

    viewer.dims.set_current_step(0, 2)  # the preview is the frame on screen, at that frame
    widget.update_preview()
    wait_idle(qtbot, widget)
    preview = viewer.layers[PREVIEW]
    assert preview.translate[0] == 2 and widget.status.text().startswith("preview of T 2")
    np.testing.assert_array_equal(np.asarray(preview.data)[0], classes[2])


def test_exported_series_scribbles_name_their_axes_for_pixel_train(viewer, qtbot, movie, tmp_path):
    from scopeml.cli import main
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    viewer.open(str(movie), plugin="scopeml")
    widget = PixelClassifierWidget(viewer)
    scribbles = paint_two_frames(viewer, widget)
    painted = np.asarray(scribbles.data).copy()
    exported = widget.export_scribbles(tmp_path / "scribbles.tif")
    with tifffile.TiffFile(exported) as tiff:
        assert tiff.is_ome and tiff.series[0].axes == "TYX"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read as written: no "pages of unknown kind" guess
        with sm.open_image(exported) as image:
            assert image.sizes["T"] == 3 and image.sizes["Z"] == 1
            np.testing.assert_array_equal(image.read()[0, :, 0, 0], painted)

    model = tmp_path / "cli.czseg"
    args = [str(movie), str(exported), "-o", str(model), "--n-estimators", "10"]
    assert main(["pixel", "train", *args, "--features", "gaussian_smoothing:1,2"]) == 0
    widget.features.setCurrentText("gaussian_smoothing:1,2")
    widget.trees.setValue(10)
    widget.train()
    wait_idle(qtbot, widget)
    cli = sm.open_model(model)
    assert cli.info["samples_per_class"] == widget.model.info["samples_per_class"]
    with sm.open_image(movie) as image:
        frames = image.read()[0][:, :, 0]  # T×C×Y×X: each frame as one C×Y×X batch item
    np.testing.assert_array_equal(cli.predict(frames), widget.model.predict(frames))

    scribbles.data = np.zeros_like(painted)
    widget.import_scribbles(exported)
    np.testing.assert_array_equal(scribbles.data, painted)


def test_a_plain_tiff_of_pages_imports_as_time_points(viewer, movie, tmp_path):
    """Pages of unknown kind (a stack of pages, as ImageJ or napari's own export write them)
    fill the frames; a file of other sizes is one line naming it."""
    from scopeml.errors import InvalidLabelsError
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    viewer.open(str(movie), plugin="scopeml")
    widget = PixelClassifierWidget(viewer)
    pages = np.zeros((3, 48, 64), np.uint8)
    pages[1, 5:9, 5:9] = 2
    tifffile.imwrite(tmp_path / "pages.tif", pages, photometric="minisblack")  # not RGB
    widget.import_scribbles(tmp_path / "pages.tif")
    np.testing.assert_array_equal(widget.scribbles().data, pages)
    tifffile.imwrite(tmp_path / "two.tif", pages[:2], photometric="minisblack")
    with pytest.raises(InvalidLabelsError, match=r"two\.tif.*T=2.*TYX 3×48×64"):
        widget.import_scribbles(tmp_path / "two.tif")
