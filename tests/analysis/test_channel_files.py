"""Fields saved one file per channel (``inputs: channel_files``), as plate readers export them:
each field's files are analysed as one image, named by what the patterns' ``*`` stand for."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import run_analysis
from scopeml.analysis.inputs import find_images
from scopeml.analysis.settings import InvalidSettingsError, parse_settings
from scopeml.cli import main
from scopeml.errors import InvalidRequestError, OutsideRootError
from scopeml.io import open_image
from scopeml.io.registry import ChannelFiles

CHANNEL_FILES = {"DNA": "*_D.tif", "Cells": "*_R.tif"}


def settings(**inputs) -> dict:
    """Nuclei on DNA; each nucleus's cell grown into the Cells stain; intensities of both."""
    return {
        "version": 1,
        "channels": ["DNA", "Cells"],
        "inputs": {"channel_files": CHANNEL_FILES, **inputs},
        "classes": [
            {"name": "nucleus", "segmenter": {"kind": "threshold", "channel": "DNA"}},
            {
                "name": "cell",
                "segmenter": {
                    "kind": "grow",
                    "seeds": "nucleus",
                    "distance": 6,
                    "within": {"channel": "Cells"},
                },
            },
        ],
    }


def field(folder: Path, stem: str, nuclei: int) -> np.ndarray:
    """``stem_D.tif`` (``nuclei`` bright squares) and ``stem_R.tif`` (a cell body around
    each); the two channels stacked, as one file would hold them."""
    dna = np.full((64, 64), 5, np.uint16)
    cells = np.full((64, 64), 5, np.uint8)
    for i in range(nuclei):
        y, x = divmod(i, 3)
        cells[2 + 20 * y : 18 + 20 * y, 2 + 20 * x : 18 + 20 * x] = 90 + 10 * i
        dna[6 + 20 * y : 14 + 20 * y, 6 + 20 * x : 14 + 20 * x] = 3000
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / f"{stem}_D.tif", dna)
    tifffile.imwrite(folder / f"{stem}_R.tif", cells)
    return np.stack([dna, cells.astype(np.uint16)])


def test_each_fields_files_are_one_image_as_a_stacked_file_is(tmp_path):
    plate = tmp_path / "plate"
    stacked = {"A9__p1": field(plate / "A9", "p1", 2), "A9__p2": field(plate / "A9", "p2", 5),
               "B2__p1": field(plate / "B2", "p1", 4)}  # fmt: skip
    result = run_analysis(settings(), [plate], tmp_path / "out")
    assert result.counts == {"A9__p1": {"nucleus": 2, "cell": 2},
                             "A9__p2": {"nucleus": 5, "cell": 5},
                             "B2__p1": {"nucleus": 4, "cell": 4}}  # fmt: skip
    record = json.loads((tmp_path / "out/images/A9__p2/record.json").read_text())
    assert record["image"] == f"{plate / 'A9/p2_D.tif'} + {plate / 'A9/p2_R.tif'}"
    assert set(record["input"]["channel_files"]) == {"DNA", "Cells"}
    # the same fields saved as two-channel files: the same objects, the same intensities
    (tmp_path / "stacked").mkdir()
    for name, pixels in stacked.items():
        tifffile.imwrite(tmp_path / "stacked" / f"{name}.tif", pixels, metadata={"axes": "CYX"})
    one = parse_settings({**settings(), "inputs": {}, "axes": "CYX"})
    again = run_analysis(one, [tmp_path / "stacked"], tmp_path / "again")
    assert again.counts == result.counts
    columns = ["image", "object_id", "area", "intensity_mean_Cells"]
    mine, theirs = result.table("cell")[columns], again.table("cell")[columns]
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), theirs.reset_index(drop=True))


def test_fields_lacking_a_channel_and_stray_files_are_left_out_with_a_warning(tmp_path):
    field(tmp_path, "p1", 3)
    field(tmp_path, "p2", 2)
    os.remove(tmp_path / "p2_R.tif")
    (tmp_path / "p3_F.tif").write_bytes((tmp_path / "p1_D.tif").read_bytes())
    with pytest.warns(UserWarning, match=r"channel_files left out 1 file matches no pattern, "
                      r"such as p3_F.tif; 1 field lacking a channel's file, such as "
                      rf"{tmp_path / 'p2_D.tif'}'s \(no Cells file;"):  # fmt: skip
        result = run_analysis(settings(), [tmp_path], tmp_path / "out")
    assert result.counts == {"p1": {"nucleus": 3, "cell": 3}}
    # the results say so too, for a batch whose log was lost
    left = pd.read_csv(tmp_path / "out" / "summary" / "left_out.csv")
    assert sorted(zip(left["file"], left["reason"], strict=True)) == [
        (str(tmp_path / "p2_D.tif"), "incomplete field"),
        (str(tmp_path / "p3_F.tif"), "no channel pattern"),
    ]
    assert "left_out.csv</a>\n(2 files the inputs found and left out" in (
        tmp_path / "out" / "index.html").read_text()  # fmt: skip


def test_info_on_the_results_counts_the_files_left_out(tmp_path, capsys):
    field(tmp_path / "in", "p1", 1)
    (tmp_path / "in" / "p1_labels.tif").write_bytes((tmp_path / "in" / "p1_D.tif").read_bytes())
    (tmp_path / "in" / "p9_D.tif").write_bytes((tmp_path / "in" / "p1_D.tif").read_bytes())
    with pytest.warns(UserWarning):
        run_analysis(settings(), [tmp_path / "in"], tmp_path / "out")
    assert main(["info", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "files left out: 1 (label images), 1 (incomplete field) (summary/left_out.csv)" in out
    table = tmp_path / "out" / "tables" / "cell.csv"  # said "unknown image format '.csv'"
    assert main(["info", str(table)]) == 2
    said = capsys.readouterr().err
    assert f"a table, not an image: scopeml info {tmp_path / 'out'} describes the analysis" in said


def test_channel_files_must_name_the_input_channels_and_only_them():
    with pytest.raises(InvalidSettingsError, match="'DAPI' is not an input channel"):
        parse_settings(settings(channel_files={"DAPI": "*_D.tif", "Cells": "*_R.tif"}))
    with pytest.raises(InvalidSettingsError, match="channel 'Cells' has no channel_files pattern"):
        parse_settings(settings(channel_files={"DNA": "*_D.tif"}))
    aliased = {**settings(channel_files={"DAPI": "*_D.tif", "Cells": "*_R.tif"}),
               "aliases": {"DNA": ["DAPI"]}}  # fmt: skip
    assert parse_settings(aliased).channels_of(["DAPI", "Cells"]) == ["DAPI", "Cells"]


def test_no_complete_field_and_ambiguous_patterns_are_refused_in_one_line(tmp_path, capsys):
    field(tmp_path / "in", "p1", 1)
    os.remove(tmp_path / "in" / "p1_R.tif")
    (tmp_path / "s.yaml").write_text(json.dumps(settings()))
    assert main(["analyze", str(tmp_path / "s.yaml"), str(tmp_path / "in"), "-o",
                 str(tmp_path / "out"), "-q"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in: no field has a file of each channel_files pattern" in err
    with pytest.raises(InvalidRequestError, match="matches the channel_files patterns of 'DNA' "
                       "and 'Cells'"):  # fmt: skip
        find_images([tmp_path / "in"], channel_files={"DNA": "p1*", "Cells": "*_D.tif"})
    with pytest.raises(InvalidSettingsError, match="without folders"):
        parse_settings(settings(channel_files={"DNA": "A9/*_D.tif"}))


def test_a_resume_analyses_again_only_the_field_whose_channel_file_changed(tmp_path):
    field(tmp_path / "in", "p1", 2)
    field(tmp_path / "in", "p2", 3)
    run_analysis(settings(), [tmp_path / "in"], tmp_path / "out")
    before = {n: json.loads((tmp_path / f"out/images/{n}/record.json").read_text())
              for n in ("p1", "p2")}  # fmt: skip
    dna = (tmp_path / "in" / "p2_D.tif").stat()
    cells = tifffile.imread(tmp_path / "in" / "p2_R.tif")
    cells[cells > 5] = 250  # only its cell stain's file changed: brighter cells
    tifffile.imwrite(tmp_path / "in" / "p2_R.tif", cells)
    result = run_analysis(settings(), [tmp_path / "in"], tmp_path / "out", resume=True)
    assert result.resumed == 1 and (tmp_path / "in" / "p2_D.tif").stat() == dna
    table = result.table("cell")
    assert (table[table["image"] == "p2"]["intensity_mean_Cells"] == 250).all()
    after = json.loads((tmp_path / "out/images/p1/record.json").read_text())
    assert after == before["p1"]


def test_a_resume_after_the_patterns_swapped_files_of_one_size_and_time_analyses_again(tmp_path):
    """Channel files of one shape have one size, and an unpacked archive gives them one time:
    a field is known by its files' names too."""
    folder = tmp_path / "in"
    field(folder, "p1", 2)
    tifffile.imwrite(folder / "p1_R.tif", tifffile.imread(folder / "p1_D.tif"))  # same size
    for name in ("p1_D.tif", "p1_R.tif"):
        os.utime(folder / name, ns=(10**18, 10**18))
    run_analysis(settings(), [folder], tmp_path / "out")
    swapped = {**settings(), "inputs": {"channel_files": {"DNA": "*_R.tif", "Cells": "*_D.tif"}}}
    result = run_analysis(swapped, [folder], tmp_path / "out", resume=True)
    assert result.resumed == 0


def test_worker_processes_give_the_same_results(tmp_path):
    for i in range(3):
        field(tmp_path / "in", f"p{i}", i + 1)
    alone = run_analysis(settings(), [tmp_path / "in"], tmp_path / "one")
    pool = run_analysis(settings(), [tmp_path / "in"], tmp_path / "two", workers=2)
    assert pool.counts == alone.counts == {f"p{i}": {"nucleus": i + 1, "cell": i + 1}
                                           for i in range(3)}  # fmt: skip


def test_a_channel_file_of_two_channels_fails_its_field_naming_the_file(tmp_path):
    field(tmp_path / "in", "p1", 1)
    field(tmp_path / "in", "p2", 2)
    bad = tmp_path / "in" / "p2_R.tif"
    tifffile.imwrite(bad, np.zeros((2, 64, 64), np.uint8), metadata={"axes": "CYX"})
    result = run_analysis(settings(), [tmp_path / "in"], tmp_path / "out")
    failed = {r["name"]: r["reason"] for r in result.failures}
    assert list(failed) == ["p2"]
    assert failed["p2"].startswith(f"{bad}: holds 2 channels; a file of channel 'Cells'")
    assert result.counts["p1"] == {"nucleus": 1, "cell": 1}


def test_open_image_stacks_a_fields_files_and_confines_each(tmp_path):
    pixels = field(tmp_path / "in", "p1", 2)
    files = ChannelFiles((tmp_path / "in/p1_D.tif", tmp_path / "in/p1_R.tif"), ("DNA", "Cells"))
    with open_image(files, allowed_roots=[tmp_path / "in"]) as image:
        assert image.channel_names == ("DNA", "Cells") and image.dtype == np.uint16
        np.testing.assert_array_equal(image.read()[0, 0, :, 0], pixels)
    (tmp_path / "in2").mkdir()
    (tmp_path / "in2" / "p1_D.tif").write_bytes((tmp_path / "in/p1_D.tif").read_bytes())
    second = ChannelFiles((tmp_path / "in2/p1_D.tif", tmp_path / "in/p1_R.tif"), ("a", "b"))
    with pytest.raises(OutsideRootError, match=r"p1_R\.tif"):  # its second file: outside
        open_image(second, allowed_roots=[tmp_path / "in2"])


def test_fields_group_whatever_the_case_and_a_channel_takes_one_pattern(tmp_path):
    folder = tmp_path / "in"
    field(folder, "p1", 1)
    os.rename(folder / "p1_R.tif", folder / "P1_R.TIF")  # as another instrument writes it
    found = find_images([folder], channel_files=CHANNEL_FILES, warn=False)
    assert found.names == ["p1"] and found.paths[0].paths[1].name == "P1_R.TIF"
    twice = {**settings(channel_files={"DNA": "*_D.tif", "DAPI": "*_X.tif", "Cells": "*_R.tif"}),
             "aliases": {"DNA": ["DAPI"]}}  # fmt: skip
    with pytest.raises(InvalidSettingsError, match="channel 'DNA' has 2 channel_files patterns"):
        parse_settings(twice)


def test_a_field_found_under_another_name_is_known_given_relative_or_absolute(
    tmp_path, monkeypatch
):
    """A resume given the well's folder (absolute) names the field ``p1``; the field the run
    given the plate (relative) finished as ``A9__p1`` is the same files, said so."""
    field(tmp_path / "plate" / "A9", "p1", 2)
    monkeypatch.chdir(tmp_path)
    run_analysis(settings(), ["plate"], tmp_path / "out")
    with pytest.warns(UserWarning, match=r"this run's files under an earlier name \(such as "
                      r"A9__p1, now p1"):  # fmt: skip
        run_analysis(settings(), [tmp_path / "plate" / "A9"], tmp_path / "out", resume=True)


def test_two_files_of_one_channel_and_field_are_refused_naming_both(tmp_path):
    """``p1_D.tif`` and ``P1_D.tif`` (case, or another Unicode form, ignored) would be one
    field's DNA twice: refused, rather than one of them dropped unsaid."""
    folder = tmp_path / "in"
    field(folder, "p1", 1)
    tifffile.imwrite(folder / "P1_D.tif", np.zeros((64, 64), np.uint16))
    if len(list(folder.iterdir())) < 3:
        pytest.skip("this file system ignores case: the two names are one file")
    with pytest.raises(InvalidRequestError, match=r"1_D.tif: its name and [pP]1_D.tif's "
                       r"give the DNA pattern '\*_D.tif' the same text") as refused:  # fmt: skip
        find_images([folder], channel_files=CHANNEL_FILES, warn=False)
    assert "p1_D.tif" in str(refused.value) and "P1_D.tif" in str(refused.value)
    other = tmp_path / "nfd"
    field(other, "Zelle_\N{LATIN SMALL LETTER A WITH DIAERESIS}", 1)  # composed
    os.rename(
        other / "Zelle_\N{LATIN SMALL LETTER A WITH DIAERESIS}_R.tif",
        other / "Zelle_a\N{COMBINING DIAERESIS}_R.tif",
    )  # decomposed, as macOS writes
    found = find_images([other], channel_files=CHANNEL_FILES, warn=False)
    assert len(found.paths) == 1 and len(found.paths[0].paths) == 2


def test_patterns_whose_wildcards_differ_are_refused_when_read():
    with pytest.raises(InvalidSettingsError, match=r"other wildcards \(DNA: \*; Cells: \*\*\)"):
        parse_settings(settings(channel_files={"DNA": "*_w1.tif", "Cells": "*_w2_*.tif"}))


def test_a_name_no_pattern_matches_is_told_in_linear_time(tmp_path):
    """Each wildcard keeps the first text that lets the pattern go on (as a glob does), so
    a name that does not match is not tried in every way to split it among the wildcards
    (about 20 s for seven ``*`` and a name of 60 characters when they backtracked)."""
    from scopeml.analysis.settings import metadata_pattern, name_regex

    star = name_regex("*" * 40 + "_D.tif")
    assert star.fullmatch("a" * 200 + "_R.tif") is None
    assert star.fullmatch("a_b_D.tif").groups()[-1] == "a_b"
    fields = metadata_pattern("".join(f"{{f{i}}}" for i in range(30)) + "X")
    assert fields.fullmatch("a" * 200) is None
    assert metadata_pattern("{row}{column}_s{site}").fullmatch("B02_s3").groupdict() == {
        "row": "B", "column": "02", "site": "3"}  # fmt: skip


def test_a_channel_pattern_may_name_files_that_look_like_labels(tmp_path):
    """``*_mask.tif`` as a channel's pattern takes those files; other label images are left
    out as label images, not as files no pattern names."""
    folder = tmp_path / "in"
    field(folder, "p1", 1)
    os.rename(folder / "p1_R.tif", folder / "p1_mask.tif")
    tifffile.imwrite(folder / "p1_labels.tif", np.zeros((64, 64), np.uint8))
    found = find_images([folder], channel_files={"DNA": "*_D.tif", "Cells": "*_mask.tif"},
                        warn=False)  # fmt: skip
    assert found.names == ["p1"] and found.paths[0].paths[1].name == "p1_mask.tif"
    assert found.skipped == {"label images": [folder / "p1_labels.tif"]}


def test_objects_of_a_field_are_measured_for_their_shapes_saying_why(tmp_path):
    """A store segmented from a field records each file's fingerprint; measuring it without
    an image says it read a field of files (it said the first file was gone or changed)."""
    import scopeml as sm

    field(tmp_path / "in", "p1", 3)
    files = ChannelFiles((tmp_path / "in" / "p1_D.tif", tmp_path / "in" / "p1_R.tif"),
                         ("DNA", "Cells"))  # fmt: skip
    store = tmp_path / "s.ome.zarr"
    with open_image(files) as image:
        sm.segment(image, "nuclei", store, outputs=("labels", "instances"), channels=["DNA"])
    with pytest.warns(UserWarning, match=r"read a field of 2 channel files \(.*p1_D.tif first"):
        table = sm.measure_objects(store)
    assert "intensity_mean_DNA" not in table.columns
