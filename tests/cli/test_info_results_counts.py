"""``scopeml info RESULTS`` counts what the summary counts: after a resume given the folder
otherwise, the same files under their earlier names are not counted twice; a time series' count
is said to be over its time points, with the range per time point."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter, run_analysis
from scopeml.cli import main
from scopeml.synthetic import synthetic_nuclei
from tests.analysis.conftest import nuclei_tiffs

SETTINGS = AnalysisSettings(
    channels=["C0"],
    classes=[
        ClassSettings(name="nucleus", segmenter=ThresholdSegmenter(channel="C0", method="otsu"))
    ],
)


def _info(capsys, *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["info", *args]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.fixture
def resumed(tmp_path):
    """plate/A9 (2 images) and plate/B2 (1) analysed as plate, then resumed with plate/A9."""
    plate = tmp_path / "plate"
    for well, seeds in (("A9", (5, 6)), ("B2", (7,))):
        (plate / well).mkdir(parents=True)
        nuclei_tiffs(plate / well, seeds)
    out = tmp_path / "res"
    run_analysis(SETTINGS, [plate], out)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = run_analysis(SETTINGS, [plate / "A9"], out, resume=True)
    assert any("the summary has them once" in str(w.message) for w in said)
    return out, result


def test_info_counts_the_images_and_objects_of_the_summary_once(resumed, capsys):
    out, result = resumed
    summary = pd.read_csv(out / "summary" / "counts.csv")
    assert sorted(summary["image"]) == ["cells5", "cells6"]  # this run's names, once each
    objects = int(summary["nucleus"].sum())
    assert objects == sum(c["nucleus"] for c in result.counts.values()) > 0
    lines = _info(capsys, str(out))
    assert lines[1] == "  analysis results: 2 image(s) analysed, 0 failed"
    assert lines[2] == f"  objects: nucleus {objects}"  # was the A9 images' objects twice
    assert lines[3] == (
        "  not in the summary: 3 more finished images in images/: 2 of its files under an "
        "earlier name (such as A9__cells5, now cells5: not counted twice); 1 of other files "
        "(such as B2__cells7): to count them, resume with the earlier run's inputs given as "
        "it was given them"
    )
    said = json.loads("\n".join(_info(capsys, str(out), "--json")))
    assert said["images"] == 2 and said["objects"] == {"nucleus": objects}
    assert said["not_in_summary"] == {
        "images": ["A9__cells5", "A9__cells6", "B2__cells7"],
        "same_files": {"A9__cells5": "cells5", "A9__cells6": "cells6"},
    }


def test_info_without_a_summary_counts_every_finished_image(resumed, capsys):
    out, _ = resumed
    shutil.rmtree(out / "summary")  # as a run stopped before its report leaves it
    (out / "index.html").unlink()
    lines = _info(capsys, str(out))
    assert lines[1] == "  analysis results: 5 image(s) analysed, 0 failed"
    assert lines[-1] == "  report: not written (an unfinished run: --resume)"


def test_info_after_an_image_finished_since_the_summary_counts_every_finished_one(resumed, capsys):
    """A resume stopped after an image and before its summary: the summary is the earlier
    run's, which would leave that image out (and tell to resume with other inputs)."""
    import os

    out, _ = resumed
    record = out / "images" / "B2__cells7" / "record.json"
    later = (out / "summary" / "counts.csv").stat().st_mtime + 10
    os.utime(record, (later, later))  # finished after the summary was written
    lines = _info(capsys, str(out))
    assert lines[1] == "  analysis results: 5 image(s) analysed, 0 failed"
    assert not any("not in the summary" in line for line in lines), lines


def _movie(path, seeds: tuple[int, ...]) -> None:
    frames = [synthetic_nuclei((64, 80), density=0.004, seed=seed)[0][0] for seed in seeds]
    tifffile.imwrite(path, np.stack(frames), metadata={"axes": "TYX"})


def test_a_time_series_count_is_said_over_its_time_points(tmp_path, capsys):
    _movie(tmp_path / "a.ome.tif", (1, 2, 3))
    _movie(tmp_path / "b.ome.tif", (4, 5, 6))
    out = tmp_path / "res"
    run_analysis(SETTINGS, [tmp_path / "a.ome.tif", tmp_path / "b.ome.tif"], out)
    table = pd.read_csv(out / "tables" / "nucleus.csv")
    per_time = table.groupby(["image", "t"]).size()
    assert len(per_time) == 6 and per_time.min() < per_time.max()
    lines = _info(capsys, str(out))
    assert lines[2] == (
        f"  objects: nucleus {len(table)} over 6 time points of 2 images "
        f"({per_time.min()}–{per_time.max()} per time point)"
    )
    said = json.loads("\n".join(_info(capsys, str(out), "--json")))
    assert said["time_points"] == 6
    assert said["objects_per_time_point"] == {"nucleus": [per_time.min(), per_time.max()]}
    one = tmp_path / "one"
    run_analysis(SETTINGS, [tmp_path / "a.ome.tif"], one)
    first = per_time.loc["a"]
    assert _info(capsys, str(one))[2] == (
        f"  objects: nucleus {first.sum()} over 3 time points ({first.min()}–{first.max()} "
        "per time point)"
    )
