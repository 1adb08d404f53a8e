"""Object classes by rules on measurements (CellProfiler's ClassifyObjects): each object named
by the first rule it meets, counted in the summary; rules naming columns a class's table will
not have refused before any image, as are sizes in µm an image without a pixel size lacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import parse_settings, run_analysis
from scopeml.analysis.example import EXAMPLE_SETTINGS
from scopeml.analysis.rules import Bounds, classify_by_rules
from scopeml.errors import ScopeMLError
from tests.analysis.conftest import cell_image, write_image


def settings(nucleus_rules: dict, **nucleus: object) -> dict:
    return {
        "version": 1, "channels": ["DAPI", "GFP"], "classes": [
            {"name": "cell", "segmenter": {"kind": "threshold", "channel": "GFP"}},
            {"name": "nucleus", "parent": "cell", "rules": nucleus_rules, **nucleus,
             "segmenter": {"kind": "threshold", "channel": "DAPI"}},
        ],
    }  # fmt: skip


def test_each_object_takes_the_first_rule_it_meets_and_the_summary_counts_them(tmp_path: Path):
    image = write_image(tmp_path / "cells.ome.tif", cell_image(seed=3, n_cells=9))
    rules = {"large": {"area": {"min": 350}}, "bright": {"intensity_mean_GFP": {"min": 1100}}}
    result = run_analysis(settings(rules), [image], tmp_path / "out")
    assert not result.failures
    table = result.table("nucleus")
    large = table["area"] >= 350
    bright = ~large & (table["intensity_mean_GFP"] >= 1100)
    expected = np.where(large, "large", np.where(bright, "bright", ""))
    assert table["object_class"].fillna("").tolist() == expected.tolist()
    assert large.any() and bright.any() and (expected == "").any()  # all three cases met
    counts = result.counts_table()
    named = [c for c in counts.columns if c.startswith("nucleus_class_")]
    assert named == ["nucleus_class_large", "nucleus_class_bright"]  # the rules' order
    assert counts["nucleus_class_large"].item() == large.sum()
    assert counts["nucleus_class_bright"].item() == bright.sum()
    left = int((expected == "").sum())  # counted too, so the classes add up
    assert counts["nucleus_unclassified"].item() == left
    index = (tmp_path / "out" / "index.html").read_text()
    assert f"(large {large.sum()}, bright {bright.sum()}, unclassified {left})" in index
    assert "object_class" not in result.table("cell")  # only the class with rules


def test_a_missing_value_meets_no_bound_and_a_rule_without_bounds_takes_the_rest():
    table = pd.DataFrame({"spot_area_mean": [4.0, np.nan, 9.0], "area": [10, 20, 30]})
    rules = {"tiny": {"spot_area_mean": Bounds(max=5)}, "spotless": {"spot_area_mean": Bounds(
        min=0, max=1e9)}, "other": {}}  # fmt: skip
    named = classify_by_rules(table, rules, "nucleus")["object_class"]
    assert named.tolist() == ["tiny", "other", "spotless"]
    named = classify_by_rules(table, {"x": {"area": Bounds(min=15, max=25)}}, "nucleus")
    assert named["object_class"].fillna("").tolist() == ["", "x", ""]  # none met: empty


@pytest.mark.parametrize(
    ("rules", "extra", "said"),
    [
        (
            {"big": {"aera": {"min": 3}}},
            {},
            "the nucleus table has no column 'aera' (did you mean 'area'?)",
        ),
        (
            {"b": {"intensity_mean_GFP": {"min": 3}}},
            {"measurements": {"intensity": ["DAPI"]}},
            "no column 'intensity_mean_GFP' (it measures DAPI: measurements: intensity)",
        ),
        (
            {"round": {"solidity": {"min": 0.9}}},
            {"measurements": {"shape": False}},
            "shape features are not measured",
        ),
        ({"busy": {"spot_count": {"min": 2}}}, {}, "no column 'spot_count'"),  # no spot class
        (
            {"o": {}, "big": {"area": {"min": 3}}},
            {},
            "rule 'o' has no bounds, so it takes every "
            "object left and 'big' after it would name none; put it last",
        ),
        ({"big": {"area": {}}}, {}, "give min, max or both"),
        ({"big": {"area": {"min": 9, "max": 1}}}, {}, "min 9 is above max 1"),
        ({"big": {"area": {"min": 9}}}, {"classifier": "c.zip"}, "has both a classifier and rules"),
        ({"a b": {"area": {"min": 9}}}, {}, "a name is ASCII letters (A-Z, a-z), digits"),
        ({"über": {"area": {"min": 9}}}, {}, "'über': a name is ASCII letters"),
        ({"NA": {"area": {"min": 9}}}, {}, "'NA' reads as a missing value in a table"),
        ({True: {"area": {"min": 9}}}, {}, "rule name True is read as bool: quote it"),
        ({"small": {"area": None}}, {}, "rule 'small': area has no bounds: give min, max"),
        ({"small": {"area": {"max": True}}}, {}, "true is no number: a bound is one"),
    ],
)
def test_rules_that_cannot_work_are_refused_when_the_settings_are_read(rules, extra, said):
    with pytest.raises(ScopeMLError, match="rules") as err:
        parse_settings(settings(rules, **extra))
    assert said in str(err.value)


def test_a_parent_may_name_its_children_counts_and_the_example_rules_validate():
    blob = settings({"crowded": {"nucleus_count": {"min": 2}}, "other": {}})
    blob["classes"][0]["rules"] = blob["classes"][1].pop("rules")
    assert list(parse_settings(blob).classes[0].rules) == ["crowded", "other"]
    text = EXAMPLE_SETTINGS.replace("# rules:", "rules:").replace("#   mitotic", "  mitotic")
    text = text.replace("#   other: {}", "  other: {}")
    found = [c for c in parse_settings(text).classes if c.rules]
    assert [(c.name, list(c.rules)) for c in found] == [("nucleus", ["mitotic", "other"])]


@pytest.mark.parametrize(("name", "column"), [("nucleus", "area_um2"),
                                              ("cell", "nucleus_area_um2_mean")])  # fmt: skip
def test_sizes_in_micrometres_need_a_pixel_size_before_any_image(tmp_path: Path, name, column):
    """A child's mean size in µm escaped the check: each image then failed, said to be 2-D."""
    pixels = cell_image(seed=1)
    tifffile.imwrite(tmp_path / "plain.tif", pixels)  # no pixel size, no channel names
    blob = settings({})
    blob["classes"][["cell", "nucleus"].index(name)]["rules"] = {"big": {column: {"min": 30}}}
    blob["axes"] = "CYX"
    with pytest.raises(ScopeMLError, match="no pixel size") as err:
        run_analysis(blob, [tmp_path / "plain.tif"], tmp_path / "out")
    assert f"the {name} rules use sizes in micrometres ({column})" in str(err.value)
    assert not (tmp_path / "out" / "images").exists()
    blob["pixel_size"] = 0.5
    result = run_analysis(blob, [tmp_path / "plain.tif"], tmp_path / "out2")
    table = result.table(name)
    assert (table["object_class"] == "big").sum() == (table[column] >= 30).sum() > 0


def test_a_two_dimensional_column_on_z_stacks_is_refused_then_fails_each_naming_the_rule(
    tmp_path: Path,
):
    """The first image a Z stack: refused before any image (every image failed, one by one,
    after its segmentation); a later one in a batch of planes fails alone, naming the rule."""
    plane = cell_image(seed=2)[0]
    tifffile.imwrite(tmp_path / "stack.ome.tif", np.stack([plane] * 4), ome=True,
                     metadata={"axes": "ZYX"})  # fmt: skip
    tifffile.imwrite(tmp_path / "a_plane.ome.tif", plane, ome=True, metadata={"axes": "YX"})
    blob = {"version": 1, "channels": ["C0"], "classes": [{
        "name": "nucleus", "segmenter": {"kind": "threshold", "channel": "C0"},
        "rules": {"round": {"circularity": {"min": 0.8}}}}]}  # fmt: skip
    with pytest.raises(ScopeMLError, match=r"rule 'round': .*stack\.ome\.tif is 3-D \(Z=4\), "
                       r"and circularity is measured in 2-D images only"):  # fmt: skip
        run_analysis(blob, [tmp_path / "stack.ome.tif"], tmp_path / "out")
    both = [tmp_path / "a_plane.ome.tif", tmp_path / "stack.ome.tif"]  # the plane first
    result = run_analysis(blob, both, tmp_path / "out2")
    (failure,) = result.failures
    assert "class 'nucleus', rule 'round'" in failure["reason"]
    assert "no column 'circularity': only 2-D images have it" in failure["reason"]


def test_a_time_series_counts_each_rule_class_per_time_point(tmp_path: Path):
    """A mitotic index over time: counts_per_time_point.csv had each class's objects per time
    point but not its rule classes'; they are there now, in the rules' order."""
    frames = np.stack([cell_image(seed=s, n_cells=9) for s in (3, 4)], axis=1)  # C×T×Y×X
    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, frames.transpose(1, 0, 2, 3), ome=True,
                     metadata={"axes": "TCYX", "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip
    rules = {"large": {"area": {"min": 350}}, "bright": {"intensity_mean_GFP": {"min": 1100}}}
    result = run_analysis(settings(rules), [path], tmp_path / "out")
    table = result.table("nucleus")
    planes = pd.read_csv(tmp_path / "out" / "summary" / "counts_per_time_point.csv")
    kinds = [c for c in planes.columns if c.startswith("nucleus_class_")]
    assert kinds == ["nucleus_class_large", "nucleus_class_bright"]
    for t, row in planes.set_index("t").iterrows():
        for rule in rules:
            expected = int(((table["t"] == t) & (table["object_class"] == rule)).sum())
            assert row[f"nucleus_class_{rule}"] == expected
    assert planes[kinds].to_numpy().sum() == table["object_class"].notna().sum() > 0


def test_a_rule_no_object_meets_is_a_column_of_zeros_in_the_rules_order(tmp_path: Path):
    """A rule that no object met had no column, so one plate's counts.csv lacked a column
    another's had; every rule is a column, in the rules' order, also per time point."""
    image = write_image(tmp_path / "cells.ome.tif", cell_image(seed=3, n_cells=9))
    rules = {"huge": {"area": {"min": 1e9}}, "never": {"area": {"max": 0}}, "other": {}}
    result = run_analysis(settings(rules), [image], tmp_path / "out")
    counts = result.counts_table()
    named = [c for c in counts.columns if c.startswith("nucleus_class_")]
    assert named == ["nucleus_class_huge", "nucleus_class_never", "nucleus_class_other"]
    assert counts[["nucleus_class_huge", "nucleus_class_never"]].to_numpy().tolist() == [[0, 0]]
    assert counts["nucleus_class_other"].tolist() == counts["nucleus"].tolist()
    assert counts["nucleus_unclassified"].tolist() == [0]
    index = (tmp_path / "out" / "index.html").read_text()
    assert f"(huge 0, never 0, other {counts['nucleus'].item()})" in index


def test_info_on_the_results_gives_the_rules_classes(tmp_path: Path, capsys):
    from scopeml.cli import main

    image = write_image(tmp_path / "cells.ome.tif", cell_image(seed=3, n_cells=9))
    rules = {"large": {"area": {"min": 350}}, "bright": {"intensity_mean_GFP": {"min": 1100}}}
    result = run_analysis(settings(rules), [image], tmp_path / "out")
    named = result.table("nucleus")["object_class"].fillna("unclassified").value_counts()
    capsys.readouterr()
    assert main(["info", str(tmp_path / "out")]) == 0
    said = f"nucleus {len(result.table('nucleus'))} (large {named['large']}, bright "
    said += f"{named['bright']}, unclassified {named['unclassified']})"
    assert said in capsys.readouterr().out
