"""A threshold class's ``sigma`` smoothing keeps NaN pixels local: one all-NaN plane of a Z
stack used to turn every plane within ``4 σ`` to NaN, so the whole stack found 0 objects;
now the other planes find what they find without smoothing, in memory and tile by tile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from scopeml.analysis.runner import run_analysis
from scopeml.analysis.segment import threshold_mask
from scopeml.analysis.settings import ThresholdSegmenter, parse_settings
from scopeml.analysis.tiled import gaussian_tiled, smooth_finite


def stack_with_a_nan_plane(nan_plane: int | None = 2) -> np.ndarray:
    """5 × 48 × 48: two bright squares through every plane, noise, one plane all NaN."""
    rng = np.random.default_rng(0)
    stack = (100 + rng.normal(0, 5, (5, 48, 48))).astype(np.float32)
    stack[:, 10:20, 10:20] += 500
    stack[:, 28:38, 28:38] += 500
    if nan_plane is not None:
        stack[nan_plane] = np.nan
    return stack


def test_a_nan_plane_leaves_the_other_planes_their_objects() -> None:
    stack = stack_with_a_nan_plane()
    smoothed = threshold_mask(stack, ThresholdSegmenter(channel="a", method="otsu", sigma=1.0))
    plain = threshold_mask(stack, ThresholdSegmenter(channel="a", method="otsu"))
    squares = [ndi.label(plane)[1] for plane in smoothed]
    assert squares == [2, 2, 0, 2, 2]  # was [0, 0, 0, 0, 0]: NaN smoothed across the planes
    assert [int(plane.sum()) for plane in smoothed] == pytest.approx([200] * 2 + [0] + [200] * 2,
                                                                     abs=2)  # fmt: skip
    assert not plain[2].any() and all(int(plane.sum()) >= 200 for plane in plain[[0, 1, 3, 4]])


@pytest.mark.parametrize("memory_mb", [512, 0], ids=["in-memory", "tiled"])
def test_an_analysis_of_a_z_stack_with_a_nan_plane_finds_its_objects(
    tmp_path: Path, memory_mb: int
) -> None:
    tifffile.imwrite(
        tmp_path / "stack.tif", stack_with_a_nan_plane(), imagej=True, metadata={"axes": "ZYX"}
    )
    counts = []
    for sigma in (0.0, 1.0):
        blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0",
                                              "method": "otsu", "sigma": sigma}}  # fmt: skip
        settings = parse_settings({"version": 1, "channels": ["C0"], "tile_size": 16,
                                   "memory_mb": memory_mb, "classes": [blob]})  # fmt: skip
        result = run_analysis(settings, [tmp_path / "stack.tif"], tmp_path / f"s{sigma}")
        assert not result.failures, result.failures
        counts.append(result.counts["stack"]["blob"])
    assert counts[1] >= 4 and counts[1] <= counts[0]  # two squares above and below the NaN plane


def test_smoothing_without_nan_is_scipys_and_nan_stays_where_it_is() -> None:
    clean = stack_with_a_nan_plane(None)
    assert np.array_equal(smooth_finite(clean, 1.5), ndi.gaussian_filter(clean, 1.5))
    stack = stack_with_a_nan_plane()
    stack[0, 0, :5] = np.inf
    smoothed = smooth_finite(stack, 1.5)
    invalid = ~np.isfinite(stack)
    assert np.isnan(smoothed[invalid]).all() and np.isfinite(smoothed[~invalid]).all()
    plane = stack[0]  # where the kernel (radius 6) reaches no inf: scipy's value bit for bit
    assert np.array_equal(
        smooth_finite(plane, 1.5)[7:, 7:], ndi.gaussian_filter(plane, 1.5)[7:, 7:]
    )


def test_tile_by_tile_equals_the_whole_plane_with_nan(tmp_path: Path) -> None:
    stack = stack_with_a_nan_plane()
    stack[1, 5:9, 30:40] = np.nan
    tiled = gaussian_tiled(stack, tmp_path / "g.zarr", 1.0, tile_size=16)[...]
    assert np.array_equal(tiled, smooth_finite(stack, 1.0), equal_nan=True)
