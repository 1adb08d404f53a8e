"""Pixel classifier on an in-memory layer whose axis labels name a channel axis (``c``): the
scribbles and the preview leave ``C`` out (the model's input, not a dimension of its labels),
training sees both channels, the preview is ``sm.predict_region``'s and Apply writes what
``sm.segment`` writes; a ``C`` after another axis is a one-line error, since napari would line
the labels up with the wrong sliders."""

from __future__ import annotations

import numpy as np

import scopeml as sm
from scopeml.io._view import AxesView
from tests.napari.test_pixel_widget_series import wait_idle

SQUARE = (slice(12, 36), slice(16, 48))  # bright in channel 1 only


def _two_channels() -> np.ndarray:
    pixels = np.random.default_rng(0).normal(200, 20, (2, 48, 64)).astype(np.float32)
    pixels[(1, *SQUARE)] += 1500
    return pixels


def test_scribbles_preview_and_apply_on_a_channel_axis(viewer, qtbot, tmp_path):
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.napari.pixel_widget import PREVIEW, PixelClassifierWidget

    pixels = _two_channels()
    viewer.add_image(pixels, name="cyx", axis_labels=("c", "y", "x"), scale=(1, 0.5, 0.5))
    widget = PixelClassifierWidget(viewer)
    scribbles = widget.scribbles()
    assert scribbles.data.shape == (48, 64) and widget.channels.text().endswith("C0, C1")
    for y, x, label in ((24, 32, 2), (20, 24, 2), (4, 4, 1), (43, 59, 1)):
        scribbles.paint((y, x), label)
    widget.features.setCurrentText("gaussian_smoothing:1,2")
    widget.trees.setValue(10)
    widget.train()
    wait_idle(qtbot, widget)
    assert widget.model.info["channels"] == ["C0", "C1"]

    widget.update_preview()
    wait_idle(qtbot, widget)
    preview = viewer.layers[PREVIEW]
    image = sm.Image(AxesView(pixels, "CYX"))
    expected = sm.predict_region(image, widget.model, {"Y": (0, 48), "X": (0, 64)})
    np.testing.assert_array_equal(np.asarray(preview.data), np.asarray(expected).reshape(48, 64))
    assert list(preview.scale) == [0.5, 0.5] and (preview.data[24:32, 24:40] == 2).all()

    apply = ApplyWidget(viewer)
    apply.image_choice.setCurrentText("cyx")
    apply.model_path.setText(str(widget.save_model(tmp_path / "m.czseg")))
    apply.output.setText(str(tmp_path / "cyx.ome.zarr"))
    apply.run()
    wait_idle(qtbot, apply)
    assert "C×Y×X" in apply.status.text(), apply.status.text()
    written = sm.segment(pixels, widget.model, tmp_path / "alone.ome.zarr").labels.read()
    layer = viewer.layers["cyx labels"]
    result = np.asarray(layer.data[0] if layer.multiscale else layer.data)
    np.testing.assert_array_equal(result, np.asarray(written).reshape(48, 64))


def test_a_channel_axis_after_time_is_a_one_line_error(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    frames = np.stack([_two_channels()] * 3)  # T, C, Y, X
    viewer.add_image(frames, name="tcyx", axis_labels=("t", "c", "y", "x"))
    widget = PixelClassifierWidget(viewer)
    text = widget.status.text()
    assert text.startswith("error:") and "\n" not in text, text
    assert "TCYX" in text and "CTYX" in text and SCRIBBLES not in viewer.layers
