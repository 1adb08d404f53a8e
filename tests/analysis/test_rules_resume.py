"""New rules on a resume: the finished images' tables take the new object classes without
being segmented again, exactly as a new analysis with those rules would write them."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd
import pytest

from scopeml.analysis import run_analysis
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from tests.analysis.conftest import cell_image, write_image
from tests.analysis.test_rules import settings

BRIGHT = {"bright": {"intensity_mean_GFP": {"min": 1100}}, "other": {}}
DIMMER = {"bright": {"intensity_mean_GFP": {"min": 1000}}, "other": {}}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    return [write_image(folder / f"f{seed}.ome.tif", cell_image(seed=seed, n_cells=9))
            for seed in (3, 4)]  # fmt: skip


def _parquet(rules: dict) -> dict:
    return {**settings(rules), "outputs": {"parquet": True}}


def _files(out: Path) -> dict[str, bytes]:
    """Every file of a results folder that does not depend on when it was run, by path."""
    found = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.suffix in (".csv", ".parquet"):
            found[str(path.relative_to(out))] = path.read_bytes()
    return found


def _stamps(out: Path) -> dict[str, int]:
    """When each image's label store and record were written: a segmented image has new ones."""
    return {str(p): p.stat().st_mtime_ns for p in out.glob("images/*/*")
            if p.suffix not in (".csv", ".parquet")}  # fmt: skip


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        (BRIGHT, DIMMER, "classes[1].rules.bright.intensity_mean_GFP.min: 1100.0 → 1000.0"),
        ({**BRIGHT, "other": {"area": {"min": 200}}}, BRIGHT, "rules.other.area: {min: 200.0"),
        (
            {"big": {"area": {"min": 350}}, "bright": BRIGHT["bright"]},
            {"bright": BRIGHT["bright"], "big": {"area": {"min": 350}}},
            "classes[1].rules.(order): [big, bright] → [bright, big]",
        ),
        (BRIGHT, {}, "classes[1].rules: {bright:"),
        ({}, DIMMER, "classes[1].rules: (not set) → {bright:"),
    ],
    ids=["cutoff", "bounds dropped", "order", "rules dropped", "rules added"],
)
def test_a_resume_with_new_rules_writes_what_a_new_analysis_with_them_writes(
    images, tmp_path, before, after, said
):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_analysis(_parquet(before), images, out)
    stamps = _stamps(out)
    with pytest.warns(UserWarning, match="new rules") as caught:
        result = run_analysis(_parquet(after), images, out,
                              resume=True)  # fmt: skip
    message = str(caught[0].message)
    assert said in message and "tables of 2 finished images without segmenting" in message
    assert result.resumed == 2 and not result.failures
    assert _stamps(out) == stamps  # neither segmented nor measured again
    run_analysis(_parquet(after), images, fresh)
    assert _files(out) == _files(fresh)  # every table, to the byte, and the summary's counts
    assert (out / "settings.yaml").read_text() == (fresh / "settings.yaml").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same rules again: nothing to say
        run_analysis(_parquet(after), images, out, resume=True)


def test_a_rule_on_a_column_a_finished_table_lacks_refuses_the_resume_changing_nothing(
    images, tmp_path
):
    out = tmp_path / "out"
    run_analysis(settings(BRIGHT), images, out)
    table = out / "images" / "f4" / "nucleus.csv"  # edited by hand: a column gone
    pd.read_csv(table).drop(columns="area").to_csv(table, index=False)
    before = _files(out), (out / "settings.yaml").read_text()
    rules = {"big": {"area": {"min": 350}}, **DIMMER}
    with pytest.raises(InvalidRequestError) as caught:
        run_analysis(settings(rules), images, out, resume=True)
    assert str(caught.value) == (
        f"{table}: cannot apply the rules to this finished image's table: class "
        "'nucleus', rule 'big': this image's table has no column 'area'; analyse into a new "
        "results folder, or --overwrite to replace this one"
    )
    assert (_files(out), (out / "settings.yaml").read_text()) == before  # f3 not rewritten


def test_a_table_left_with_other_classes_takes_the_rules_on_the_next_resume(images, tmp_path):
    """As a resume stopped while rewriting the tables leaves them: the next one mends them."""
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_analysis(settings(DIMMER), images, out)
    table = out / "images" / "f3" / "nucleus.csv"
    rows = pd.read_csv(table)
    rows["object_class"] = "bright"
    rows.to_csv(table, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same rules: no new rules to speak of
        run_analysis(settings(DIMMER), images, out, resume=True)
    run_analysis(settings(DIMMER), images, fresh)
    assert _files(out) == _files(fresh)


def test_the_command_line_says_the_new_rules_in_one_warning(images, tmp_path, capsys):
    from scopeml.analysis.settings import parse_settings, save_settings

    path = tmp_path / "s.yaml"
    save_settings(parse_settings(settings(BRIGHT)), path)
    args = ["analyze", str(path), *map(str, images), "-o", str(tmp_path / "out"), "-q"]
    assert main(args) == 0
    save_settings(parse_settings(settings(DIMMER)), path)
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    warned = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "new rules (classes[1].rules.bright" in warned[0]
    assert "0 of 2 images analysed now, 2 already done" in captured.out
    assert os.path.isfile(tmp_path / "out" / "index.html")


def _not_a_number(text: str) -> str:
    lines = text.splitlines(keepends=True)
    column = lines[0].split(",").index("intensity_mean_GFP")
    cells = lines[1].split(",")
    lines[1] = ",".join([*cells[:column], "abc", *cells[column + 1 :]])
    return "".join(lines)


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (_not_a_number, "it does not read as a table (could not convert string to float: 'abc')"),
        (lambda text: "", "it does not read as a table (No columns to parse from file)"),
        (lambda text: text.replace("\n", ",9,9\n", 3)[text.index("\n") :], "it does not read"),
    ],
    ids=["not a number", "empty", "a field too many"],
)
def test_a_table_damaged_since_refuses_the_resume_in_one_line(images, tmp_path, edit, said):
    out = tmp_path / "out"
    run_analysis(settings(BRIGHT), images, out)
    table = out / "images" / "f4" / "nucleus.csv"
    table.write_text(edit(table.read_text()))
    with pytest.raises(InvalidRequestError) as caught:
        run_analysis(settings(DIMMER), images, out, resume=True)
    message = str(caught.value)
    assert message.startswith(f"{table}: cannot apply the rules to this finished image's table: "
                               f"{said}") and "\n" not in message, message  # fmt: skip


def test_a_parquet_copy_or_a_column_left_by_a_stopped_resume_is_mended(images, tmp_path):
    """A stop between a table's CSV and its Parquet copy, or before settings.yaml said the
    rules were gone: the next resume leaves every table as the settings say."""
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_analysis(_parquet(BRIGHT), images, out)
    old = (out / "images" / "f3" / "nucleus.parquet").read_bytes()
    run_analysis(_parquet(DIMMER), images, out, resume=True)
    (out / "images" / "f3" / "nucleus.parquet").write_bytes(old)  # as a stop there leaves it
    run_analysis(_parquet(DIMMER), images, out, resume=True)
    run_analysis(_parquet(DIMMER), images, fresh)
    assert _files(out) == _files(fresh)
    stray = pd.read_csv(out / "images" / "f4" / "nucleus.csv")  # rules dropped, then a stop
    (out / "settings.yaml").write_text((fresh / "settings.yaml").read_text())
    run_analysis(_parquet({}), images, out, resume=True)
    assert "object_class" in stray and "object_class" not in pd.read_csv(
        out / "images" / "f4" / "nucleus.csv")  # fmt: skip
    assert "object_class" not in pd.read_parquet(out / "images" / "f4" / "nucleus.parquet")


def test_results_from_before_rules_were_applied_on_resume_are_not_segmented_again(images, tmp_path):
    """Records made when the digest held the rules (scopeml before this resume existed)."""
    import json

    from scopeml.analysis.runner import _digests
    from scopeml.analysis.settings import dump_settings, parse_settings

    out = tmp_path / "out"
    run_analysis(settings(BRIGHT), images, out)
    legacy = _digests(dump_settings(parse_settings(settings(BRIGHT))))[-1]
    for record in out.glob("images/*/record.json"):
        record.write_text(json.dumps({**json.loads(record.read_text()), "settings": legacy}))
    stamps = _stamps(out)
    with pytest.warns(UserWarning, match="tables of 2 finished images"):
        result = run_analysis(settings(DIMMER), images, out, resume=True)
    assert result.resumed == 2
    changed = {k for k, v in _stamps(out).items() if stamps[k] != v}
    assert changed <= {str(p) for p in out.glob("images/*/record.json")} and not [
        p for p in out.glob("images/*/nucleus.ome.zarr") if str(p) in changed]  # fmt: skip
    assert run_analysis(settings(DIMMER), images, out, resume=True).resumed == 2  # and again
