"""The automatic threshold level each class was cut at (CellProfiler's FinalThreshold), for
quality control: per image in ``counts.csv`` and ``record.json``, per plane of a time series
in ``counts_per_time_point.csv``; the same whole-plane and tile by tile, a grow's from its
``within``; none where a level is fixed or taken per parent, empty for a blank plane."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.filters import gaussian, threshold_li, threshold_otsu

import scopeml as sm
from tests.analysis.conftest import cell_image, write_image


def _settings(memory_mb: int = 512, scope: str = "pooled") -> dict:
    cell = {"kind": "threshold", "channel": "GFP", "method": "li"}
    return {
        "version": 1, "channels": ["DAPI", "GFP"], "memory_mb": memory_mb, "tile_size": 64,
        "classes": [
            {"name": "cell", "segmenter": cell},
            {"name": "nucleus", "parent": "cell", "segmenter": {
                "kind": "threshold", "channel": "DAPI", "sigma": 1.0, "factor": 1.1,
                "scope": scope}},
            {"name": "spot", "parent": "nucleus", "segmenter": {
                "kind": "threshold", "channel": "GFP", "method": "fixed", "value": 2000}},
            {"name": "ring", "parent": "cell", "segmenter": {
                "kind": "grow", "seeds": "nucleus", "distance": 30, "within": cell}},
        ],
    }  # fmt: skip


@pytest.mark.parametrize("memory_mb", [512, 0])  # in memory, and tile by tile
def test_each_class_says_the_level_it_was_cut_at(tmp_path: Path, memory_mb: int):
    pixels = cell_image(seed=4)
    image = write_image(tmp_path / "cells.ome.tif", pixels)
    result = sm.analyze(_settings(memory_mb), [image], tmp_path / "out")
    counts = result.counts_table()
    gfp_li = threshold_li(pixels[1])
    smoothed = gaussian(pixels[0].astype(np.float32), 1.0, preserve_range=True)
    in_cells = smoothed[pixels[1] > gfp_li]  # pooled: from the parent's pixels
    assert counts["cell_threshold"].item() == pytest.approx(gfp_li, rel=1e-6)
    assert counts["ring_threshold"].item() == pytest.approx(gfp_li, rel=1e-6)  # its within
    nuclei = counts["nucleus_threshold"].item()
    assert nuclei == pytest.approx(1.1 * threshold_otsu(in_cells), rel=1e-3)  # times factor
    assert "spot_threshold" not in counts  # a fixed level is the settings'
    record = json.loads((tmp_path / "out" / "images" / "cells" / "record.json").read_text())
    (kept,) = record["thresholds"]["cell"]
    assert (kept["scene"], kept["t"]) == (0, 0) and kept["level"] == pytest.approx(gfp_li)


def test_the_levels_agree_tiled_and_whole_and_per_parent_keeps_none(tmp_path: Path):
    image = write_image(tmp_path / "cells.ome.tif", cell_image(seed=5))
    whole = sm.analyze(_settings(512), [image], tmp_path / "a").counts_table()
    tiled = sm.analyze(_settings(0), [image], tmp_path / "b").counts_table()
    for name in ("cell", "nucleus", "ring"):
        assert whole[f"{name}_threshold"].item() == pytest.approx(tiled[f"{name}_threshold"].item())
    per_parent = sm.analyze(_settings(scope="per_parent"), [image], tmp_path / "c")
    assert "nucleus_threshold" not in per_parent.counts_table()


def test_a_time_series_says_each_planes_level_and_a_blank_plane_none(tmp_path: Path):
    frames = cell_image(seed=6)[:, None].repeat(3, axis=1)  # C×T×Y×X
    frames[:, 1] = frames[:, 1] // 2  # half as bright: half the level
    frames[:, 2] = 100  # blank: no level
    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, frames.transpose(1, 0, 2, 3), ome=True,
                     metadata={"axes": "TCYX", "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip
    result = sm.analyze(_settings(), [path], tmp_path / "out")
    planes = result.output / "summary" / "counts_per_time_point.csv"
    levels = __import__("pandas").read_csv(planes)["cell_threshold"].tolist()
    assert levels[0] == pytest.approx(threshold_li(frames[1, 0]), rel=1e-6)
    assert levels[1] == pytest.approx(threshold_li(frames[1, 1]), rel=1e-6)
    assert np.isnan(levels[2])
    mean = result.counts_table()["cell_threshold"].item()
    assert mean == pytest.approx((levels[0] + levels[1]) / 2)
