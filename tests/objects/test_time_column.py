"""A time series' object table says each time point's time in seconds (``time_s``) where the
file records its time step, as the analysis's ``counts_per_time_point.csv`` does, and never
feeds it to the object classifier as a feature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.objects.classifier import POSITION_COLUMNS
from scopeml.synthetic import synthetic_nuclei

STEP = 30.0  # seconds between time points


def test_segment_measure_table_has_the_time_of_each_time_point(tmp_path) -> None:
    frames = np.stack([synthetic_nuclei((64, 80), density=0.004, seed=s)[0][0] for s in (1, 2, 3)])
    timed, plain = tmp_path / "timed.ome.tif", tmp_path / "plain.ome.tif"
    step = {"TimeIncrement": STEP, "TimeIncrementUnit": "s"}
    tifffile.imwrite(timed, frames, ome=True, metadata={"axes": "TYX", **step})
    tifffile.imwrite(plain, frames, ome=True, metadata={"axes": "TYX"})
    for image in (timed, plain):
        out, table = tmp_path / f"{image.stem}.ome.zarr", tmp_path / f"{image.stem}.csv"
        args = ["segment", str(image), "-m", "nuclei", "-o", str(out), "--outputs", "instances"]
        assert main([*args, "--measure", str(table), "--quiet"]) == 0
    rows = pd.read_csv(tmp_path / "timed.ome.csv")
    assert list(rows.columns[:3]) == ["t", "time_s", "label"]
    np.testing.assert_allclose(rows["time_s"], rows["t"] * STEP)
    assert sorted(rows["t"].unique()) == [0, 1, 2]
    untimed = pd.read_csv(tmp_path / "plain.ome.csv")
    assert "time_s" not in untimed  # no time step: no made-up times
    pd.testing.assert_frame_equal(rows.drop(columns="time_s"), untimed)
    assert "time_s" in POSITION_COLUMNS  # where an object is, not what it is


def test_the_classifier_leaves_the_time_out_of_its_features(tmp_path) -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"t": np.repeat([0, 1], 20), "time_s": np.repeat([0.0, 30.0], 20),
                          "label": np.arange(40), "area": rng.normal(50, 20, 40)})  # fmt: skip
    table["kind"] = np.where(table["area"] > 50, "big", "small")
    model = sm.train_object_classifier(table, "kind")
    assert "time_s" not in model.features and "area" in model.features
