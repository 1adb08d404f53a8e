"""``analyze --scene`` and the settings' ``scene:`` take a scene's name as ``scopeml info`` lists
it, which each image resolves to its own number (files of one batch may number a scene
differently); an image without that name fails on its own, naming its scenes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from scopeml.analysis import InvalidSettingsError, parse_settings, run_analysis, save_settings
from scopeml.cli import main
from tests.analysis.conftest import cell_image, three_level_settings, write_image

SHAPE = (160, 160)


def plate(path: Path, wells: dict[str, int]) -> Path:
    """An OME-TIFF of one scene per well, in this order, with the well's name and as many
    cells as given (the same pixels for a well in every file)."""
    meta = {"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    with tifffile.TiffWriter(path, ome=True) as tif:
        for name, cells in wells.items():
            tif.write(cell_image(SHAPE, seed=cells, n_cells=cells), metadata={**meta, "Name": name})
    return path


@pytest.fixture
def batch(tmp_path: Path) -> dict[str, Path]:
    """Two plates that number well B2 differently (1 and 0), and a plate without a B2."""
    folder = tmp_path / "plates"
    folder.mkdir()
    settings = tmp_path / "s.yaml"
    save_settings(three_level_settings(), settings)
    return {
        "settings": settings,
        "a": plate(folder / "a.ome.tif", {"A1": 2, "B2": 4}),
        "b": plate(folder / "b.ome.tif", {"B2": 4, "C3": 3}),
        "c": plate(folder / "c.ome.tif", {"A1": 2, "D4": 1}),
    }


def _with_scene(settings: Path, scene: str) -> str:
    """The settings' text with ``scene:`` set (a key given twice is refused)."""
    text = settings.read_text()
    assert "\nscene: null\n" in text
    return text.replace("\nscene: null\n", f"\nscene: {scene}\n")


def table(results: Path, image: str) -> pd.DataFrame:
    return pd.read_csv(results / "images" / image / "cell.csv")


def test_a_name_is_each_files_scene_of_that_name(batch, tmp_path: Path) -> None:
    out = tmp_path / "named"
    args = ["analyze", str(batch["settings"]), str(batch["a"]), str(batch["b"]), "-o", str(out)]
    assert main([*args, "--scene", "B2", "-q"]) == 0
    alone = {}
    for image, number in {"a": 1, "b": 0}.items():
        result = run_analysis(batch["settings"], [batch[image]], tmp_path / image, scene=number)
        alone[image] = result.counts[image]
        named = table(out, image)
        assert named["scene"].unique().tolist() == [number]
        assert named["scene_name"].unique().tolist() == ["B2"]
        pd.testing.assert_frame_equal(named, table(tmp_path / image, image))
    assert alone["a"] == alone["b"] and alone["a"]["cell"] == 4  # the same well's pixels
    records = [json.loads((out / "images" / i / "record.json").read_text()) for i in "ab"]
    assert [record["scene"] for record in records] == [1, 0]  # each file's number for B2
    in_file = tmp_path / "in-file.yaml"  # the settings' scene: in any case, as info's is
    in_file.write_text(_with_scene(batch["settings"], "b2"))
    result = run_analysis(in_file, [batch["a"], batch["b"]], tmp_path / "in-file")
    assert result.counts == alone
    assert "scene: b2" in (tmp_path / "in-file" / "settings.yaml").read_text()


def test_an_image_without_the_name_fails_alone(batch, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    first = ["analyze", str(batch["settings"]), str(batch["c"]), str(batch["a"])]  # c: no B2
    assert main([*first, "-o", str(out), "--scene", "B2", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"error: {batch['c']}: no scene named 'B2'; the image has 2: 0 A1, 1 D4\n" in err
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a"]
    assert table(out, "a")["scene"].unique().tolist() == [1]
    failures = pd.read_csv(out / "summary" / "failures.csv")
    assert failures["image"].tolist() == ["c"]
    assert "no scene named 'B2'; the image has 2: 0 A1, 1 D4" in failures.to_string()
    plain = write_image(tmp_path / "plain.ome.tif", cell_image(SHAPE, seed=1, n_cells=1))
    result = run_analysis(batch["settings"], [plain, batch["b"]], tmp_path / "plain", scene="B2")
    assert [record["status"] for record in result.records] == ["failed", "done"]
    assert result.failures[0]["reason"] == (
        "no scene named 'B2': the file names none; give its number (0–0)"
    )


def test_a_number_works_as_before(batch, tmp_path: Path, capsys) -> None:
    args = ["analyze", str(batch["settings"]), str(batch["a"]), str(batch["b"])]
    assert main([*args, "-o", str(tmp_path / "one"), "--scene", "1", "-q"]) == 0
    assert table(tmp_path / "one", "a")["scene_name"].unique().tolist() == ["B2"]
    assert table(tmp_path / "one", "b")["scene_name"].unique().tolist() == ["C3"]
    quoted = tmp_path / "quoted.yaml"  # "1" is the number 1, not a scene named 1
    quoted.write_text(_with_scene(batch["settings"], "'1'"))
    assert run_analysis(quoted, [batch["a"]], tmp_path / "quoted").records[0]["scene"] == 1
    assert main([*args, "-o", str(tmp_path / "none"), "--scene", "7", "-q"]) == 2
    assert "scene 7 does not exist; the image has 2 (0 A1, 1 B2)" in capsys.readouterr().err
    assert not (tmp_path / "none" / "images").exists()  # before any work, as before
    assert main([*args, "-o", str(tmp_path / "neg"), "--scene", "-1", "-q"]) == 2
    assert "scene must be a scene number >= 0 or a scene's name; got '-1'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(("scene", "got"), [("-1", "-1"), ("''", "''"), ("'-2'", "'-2'")])
def test_a_scene_that_is_neither_number_nor_name_names_its_line(scene: str, got: str) -> None:
    blob = "classes: [{name: b, segmenter: {kind: threshold, channel: a}}]"
    says = "s.yaml: line 4: scene: a scene is its number (0 or more) or its name as scopeml "
    with pytest.raises(InvalidSettingsError, match=re.escape(f"{says}info lists it; got {got}")):
        parse_settings(f"version: 1\nchannels: [a]\n{blob}\nscene: {scene}\n", path="s.yaml")
    named = parse_settings(f"version: 1\nchannels: [a]\n{blob}\nscene: ' A1-Pos3 '\n")
    assert named.scene == "A1-Pos3"


def test_the_server_counts_each_files_scene_of_that_name(batch, tmp_path: Path) -> None:
    """The submit check's child counts an image's scene of the settings' name, and leaves an
    image without one to fail when the analysis runs."""
    from scopeml.server._job_child import _sizes

    task = {"images": [str(batch["a"]), str(batch["b"]), str(batch["c"])],
            "roots": [str(tmp_path)], "scene": "B2"}  # fmt: skip
    shapes = json.loads(_sizes(task, lambda event: None) or "[]")
    assert shapes == [[[1, 1, 2, 1, *SHAPE]], [[1, 1, 2, 1, *SHAPE]], None]


def test_a_name_several_scenes_share_is_refused_with_their_numbers(tmp_path: Path) -> None:
    """Files whose scenes share one name (often the file's) do not say "no scene named":
    they say which scenes have it, and to give the number."""
    from scopeml.errors import InvalidImageError
    from scopeml.io.registry import scene_numbered

    both = plate(tmp_path / "same.ome.tif", {"A1": 2, "B2": 3})
    with tifffile.TiffWriter(tmp_path / "dup.ome.tif", ome=True) as tif:
        for _ in range(2):
            tif.write(tifffile.imread(both, series=0), metadata={"axes": "CYX", "Name": "A1"})
    assert scene_numbered(both, "b2") == 1
    with pytest.raises(InvalidImageError, match="scene name 'A1' is not one scene's: scenes "
                       "0, 1 are named so; give its number"):  # fmt: skip
        scene_numbered(tmp_path / "dup.ome.tif", "A1")
