"""``summary/counts.csv`` for a time-lapse: the objects of all time points, how many time points,
and densities per time point under the still image's name (a batch's column names never depend
on what it holds: runs combine)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tifffile

import scopeml as sm

SETTINGS = """\
version: 1
channels: [C0]
tile_size: 128
classes:
  - name: nucleus
    segmenter: {kind: threshold, channel: C0, method: otsu, sigma: 0.5}
"""
PIXEL = 0.5  # µm


def _frame(squares: int) -> np.ndarray:
    plane = np.full((100, 120), 100, np.uint16)
    for i in range(squares):
        plane[10 + 30 * i : 25 + 30 * i, 20:40] = 3000
    return plane


def test_time_lapse_densities_are_per_time_point_under_the_plain_name(tmp_path):
    movie = tmp_path / "movie.ome.tif"
    tifffile.imwrite(movie, np.stack([_frame(2), _frame(3)]), metadata={
        "axes": "TYX", "PhysicalSizeX": PIXEL, "PhysicalSizeY": PIXEL})  # fmt: skip
    still = tmp_path / "still.ome.tif"
    tifffile.imwrite(still, _frame(3), metadata={
        "axes": "YX", "PhysicalSizeX": PIXEL, "PhysicalSizeY": PIXEL})  # fmt: skip
    settings = tmp_path / "nuclei.yaml"
    settings.write_text(SETTINGS)
    sm.analyze(settings, [movie, still], tmp_path / "res")
    counts = pd.read_csv(tmp_path / "res" / "summary" / "counts.csv").set_index("image")
    area = 100 * 120 * PIXEL**2 / 1e6  # one frame, mm²
    assert counts.loc["movie", "nucleus"] == 5  # 2 + 3 over both time points
    assert counts.loc["movie", "time_points"] == 2 and counts.loc["still", "time_points"] == 1
    np.testing.assert_allclose(counts["area_mm2"], area)
    assert not counts.columns.str.endswith("_per_time_point").any()  # as without the movie
    np.testing.assert_allclose(counts.loc["movie", "nucleus_per_mm2"], 2.5 / area)
    np.testing.assert_allclose(counts.loc["still", "nucleus_per_mm2"], 3 / area)


def test_a_batch_without_time_series_keeps_plain_density_names(tmp_path):
    still = tmp_path / "still.ome.tif"
    tifffile.imwrite(still, _frame(2), metadata={
        "axes": "YX", "PhysicalSizeX": PIXEL, "PhysicalSizeY": PIXEL})  # fmt: skip
    settings = tmp_path / "nuclei.yaml"
    settings.write_text(SETTINGS)
    sm.analyze(settings, [still], tmp_path / "res")
    counts = pd.read_csv(tmp_path / "res" / "summary" / "counts.csv")
    assert counts["time_points"].tolist() == [1]
    np.testing.assert_allclose(counts["nucleus_per_mm2"], 2 / (100 * 120 * PIXEL**2 / 1e6))
