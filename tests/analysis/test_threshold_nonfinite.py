"""A threshold class never makes a NaN or infinite pixel foreground (README: such pixels are
"written as unclassified: label 0", as model classes write them). A row of +inf pixels used
to pass every level, so it joined the blobs that touch it into one object whose area counted
the inf pixels (user test: 5 objects lost). Checked against scikit-image on the finite pixels,
for every method, ``dark``, ``per_parent``, in memory and tile by tile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.filters import threshold_li, threshold_otsu, threshold_triangle
from skimage.measure import label, regionprops_table

from scopeml.analysis.parent_threshold import threshold_per_parent_tiled
from scopeml.analysis.runner import run_analysis
from scopeml.analysis.segment import threshold_mask
from scopeml.analysis.settings import ThresholdSegmenter, parse_settings
from scopeml.analysis.tiled import threshold_tiled
from scopeml.io import open_image

LEVELS = {"otsu": threshold_otsu, "li": threshold_li, "triangle": threshold_triangle}


def blobs(dark: bool = False) -> np.ndarray:
    """``float32`` 48 × 96: six bright disks (radius 5) touching row 1, four lower down, noise;
    row 0 is +inf (``dark``: the disks dark on a bright ground, row 0 -inf)."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:48, :96]
    plane = 100 + rng.normal(0, 5, (48, 96))
    centres = [(6, 8 + 16 * i) for i in range(6)] + [(30, 12 + 24 * i) for i in range(4)]
    for cy, cx in centres:
        plane[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] += 400
    plane = (600 - plane) if dark else plane
    plane[0] = -np.inf if dark else np.inf
    return plane.astype(np.float32)


def expected_labels(plane: np.ndarray, method: str, dark: bool = False) -> np.ndarray:
    """scikit-image's objects of the finite pixels: the level from them alone, then compared."""
    finite = np.isfinite(plane)
    if method == "fixed":
        level = 300.0
    else:  # Li in float64: scopeml's float Li is that level to rounding (tiled.py notes)
        values = plane[finite].astype(np.float64 if method == "li" else plane.dtype)
        level = LEVELS[method](values)
    with np.errstate(invalid="ignore"):
        mask = (plane < level) if dark else (plane > level)
    return label(mask & finite, connectivity=1)


def segmenter(method: str, dark: bool = False, **extra: object) -> ThresholdSegmenter:
    value = 300.0 if method == "fixed" else None
    return ThresholdSegmenter(channel="C0", method=method, value=value, dark=dark, **extra)


@pytest.mark.parametrize("dark", [False, True], ids=["bright", "dark"])
@pytest.mark.parametrize("method", ["otsu", "li", "triangle", "fixed"])
def test_no_threshold_makes_an_infinite_pixel_foreground(method: str, dark: bool) -> None:
    plane = blobs(dark)
    expected = expected_labels(plane, method, dark)
    assert expected.max() >= 10  # the ten blobs (triangle's low level: a noise pixel too)
    whole = threshold_mask(plane, segmenter(method, dark))
    tiles, _ = threshold_tiled(plane, None, method, tile_size=16, value=segmenter(method).value,
                               dark=dark)  # fmt: skip
    for mask in (whole, np.asarray(tiles)):
        assert not mask[0].any()  # was the whole inf row
        np.testing.assert_array_equal(mask, expected > 0)


@pytest.mark.parametrize("dark", [False, True], ids=["bright", "dark"])
def test_a_per_parent_threshold_leaves_infinite_pixels_out(dark: bool) -> None:
    plane = blobs(dark)
    parents = np.zeros(plane.shape, np.int32)
    parents[:, :48], parents[:, 48:] = 1, 2
    expected = np.zeros(plane.shape, bool)
    for p in (1, 2):
        expected |= expected_labels(np.where(parents == p, plane, np.nan), "otsu", dark) > 0
    seg = segmenter("otsu", dark, scope="per_parent")
    tiles, _ = threshold_per_parent_tiled(plane, None, "otsu", tile_size=16, parent=parents,
                                          dark=dark)  # fmt: skip
    for mask in (threshold_mask(plane, seg, parents), np.asarray(tiles)):
        np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("memory_mb", [512, 0], ids=["in-memory", "tiled"])
@pytest.mark.parametrize("method", ["otsu", "fixed"])
def test_analyze_keeps_an_inf_row_out_of_the_objects(
    tmp_path: Path, method: str, memory_mb: int
) -> None:
    """The user's case: the inf row is label 0, the ten blobs are ten objects of their own
    area, as scikit-image finds them on the finite pixels."""
    plane = blobs()
    tifffile.imwrite(tmp_path / "blobs.tif", plane)
    rule = {"kind": "threshold", "channel": "C0", "method": method}
    rule.update({"value": 300.0} if method == "fixed" else {})
    settings = parse_settings({"version": 1, "channels": ["C0"], "tile_size": 16,
                               "memory_mb": memory_mb,
                               "classes": [{"name": "blob", "segmenter": rule}]})  # fmt: skip
    result = run_analysis(settings, [tmp_path / "blobs.tif"], tmp_path / "res")
    assert not result.failures, result.failures
    expected = expected_labels(plane, method)
    assert result.counts["blobs"]["blob"] == expected.max() == 10  # was 5
    folder = tmp_path / "res" / "images" / "blobs"
    stored = open_image(folder / "blob.ome.zarr").read()[0, 0, 0, 0]
    np.testing.assert_array_equal(stored, expected)
    table = pd.read_csv(folder / "blob.csv")
    props = regionprops_table(expected, properties=("label", "area"))
    np.testing.assert_array_equal(table["object_id"], props["label"])
    np.testing.assert_allclose(table["area"], props["area"])
