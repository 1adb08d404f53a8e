"""A time series' time step in an analysis's outputs (new-user trial): the label stores' NGFF
``t`` axis had scale 1 and no unit where ``segment``'s store of the same ImageJ movie
(finterval 30 s) said 30 seconds, also with ``pixel_size: {T: 60}``; and the per-object tables
had ``t`` but no ``time_s``, which only ``counts_per_time_point.csv`` had."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter, run_analysis
from scopeml.io import open_image


def _movie(path: Path, *, imagej: bool) -> Path:
    """Three frames of 1, 2, 3 bright squares; an ImageJ TIFF with finterval 30 s, or plain."""
    movie = np.full((3, 64, 64), 10, np.uint8)
    for t in range(3):
        for i in range(t + 1):
            movie[t, 4 + 15 * i : 12 + 15 * i, 4:12] = 200
    metadata = {"axes": "TYX", **({"finterval": 30.0} if imagej else {})}
    tifffile.imwrite(path, movie, imagej=imagej, metadata=metadata, photometric="minisblack")
    return path


def _settings(**more: object) -> AnalysisSettings:
    blob = ThresholdSegmenter(channel="C0", method="fixed", value=100)
    return AnalysisSettings(channels=["C0"], classes=[ClassSettings(name="blob", segmenter=blob)],
                            axes="TYX", **more)  # fmt: skip


def _t_axis(store: Path) -> tuple[dict, float]:
    """The NGFF ``t`` axis of a label store and its level-0 scale."""
    multiscale = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]["multiscales"]
    axes, datasets = multiscale[0]["axes"], multiscale[0]["datasets"]
    index = [a["name"] for a in axes].index("t")
    return axes[index], datasets[0]["coordinateTransformations"][0]["scale"][index]


@pytest.mark.parametrize(("imagej", "more", "step"), [
    (True, {}, 30.0),  # the file's finterval
    (False, {"pixel_size": {"T": 60, "Y": 0.5, "X": 0.5}}, 60.0),  # the settings'
])  # fmt: skip
def test_label_stores_carry_the_time_step(tmp_path, imagej, more, step) -> None:
    movie = _movie(tmp_path / "movie.tif", imagej=imagej)
    run_analysis(_settings(**more), [movie], tmp_path / "res")
    store = tmp_path / "res" / "images" / "movie" / "blob.ome.zarr"
    axis, scale = _t_axis(store)
    assert axis == {"name": "t", "type": "time", "unit": "second"} and scale == step
    assert open_image(store).pixel_sizes["T"] == step  # read back as segment's stores are


def test_object_tables_have_time_s_as_the_counts_per_time_point(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    timed = _movie(tmp_path / "timed.tif", imagej=True)
    plain = _movie(tmp_path / "plain.tif", imagej=False)  # no time step: no time_s
    run_analysis(_settings(), [timed, plain], tmp_path / "res")
    res = tmp_path / "res"
    own = pd.read_csv(res / "images" / "timed" / "blob.csv")
    assert list(own.columns[:5]) == ["image", "scene", "t", "time_s", "class"]
    assert own.groupby("t")["time_s"].first().tolist() == [0.0, 30.0, 60.0]
    assert "time_s" not in pd.read_csv(res / "images" / "plain" / "blob.csv")
    table = pd.read_csv(res / "tables" / "blob.csv")
    parquet = pd.read_parquet(res / "tables" / "blob.parquet")
    keys = ["image", "t", "time_s"]
    pd.testing.assert_frame_equal(parquet[keys], table[keys])
    over_time = pd.read_csv(res / "summary" / "counts_per_time_point.csv")
    per_plane = table.groupby(["image", "t"], dropna=False)["time_s"].first().reset_index()
    expected = over_time[["image", "t", "time_s"]].sort_values(["image", "t"], ignore_index=True)
    pd.testing.assert_frame_equal(per_plane, expected)  # one rule: NaN where no step
    assert table.loc[table["image"] == "plain", "time_s"].isna().all()
