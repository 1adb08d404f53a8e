"""An array with a zero-size axis is refused as the image's problem, not the model's (newuser
report, finding 13: ``sm.segment(np.zeros((0, 0)), "nuclei", out)`` said
"…/nuclei.czann: tile size along Y must be >= 1")."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.errors import InvalidImageError
from scopeml.pixel import train_classifier


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((0, 0), "empty axes Y, X (size 0)"), ((2, 0, 6), "an empty axis Y (size 0)"),
     ((1, 3, 5, 0), "an empty axis X (size 0)")],
)  # fmt: skip
def test_segment_refuses_an_empty_array_naming_the_axis(tmp_path, shape, axes):
    out = tmp_path / "out.ome.zarr"
    with pytest.raises(InvalidImageError) as info:
        sm.segment(np.zeros(shape, np.uint16), "nuclei", out)
    message = str(info.value)
    assert message.startswith(f"image has {axes}")
    assert f"shape {shape}" in message
    assert "czann" not in message and "tile" not in message  # the model is not blamed
    assert not out.exists()


def test_a_small_array_still_segments(tmp_path):
    # the check refuses only size 0: a one-row image is an image
    pixels = np.zeros((1, 1, 8), np.float32)
    pixels[..., 4:] = 1
    labels = np.zeros((1, 8), np.uint8)
    labels[0, :2], labels[0, 6:] = 1, 2
    clf = train_classifier(pixels, labels, features="gaussian_smoothing:0.7", n_estimators=3)
    model = clf.save(tmp_path / "tiny.czseg")
    seg = sm.segment(pixels, model, tmp_path / "row.ome.zarr")
    assert seg.labels.shape[-2:] == (1, 8)


def test_empty_label_and_intensity_arrays_are_refused_as_arrays(tmp_path):
    with pytest.raises(InvalidImageError, match=r"^array has an empty axis Y \(size 0\)"):
        sm.label_objects(np.zeros((0, 4), np.uint8), tmp_path / "objects.ome.zarr")
    with pytest.raises(InvalidImageError, match=r"^array has an empty axis X \(size 0\)"):
        sm.measure_objects(np.zeros((4, 0), np.uint8))
