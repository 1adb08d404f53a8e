"""An image whose name Windows keeps for a device (``CON.tif``, ``nul.x.tif``) gets a result
folder Windows can make (``_CON``), as class names that are device names are refused
(:func:`~scopeml.analysis.settings.is_device_name`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.analysis.inputs import find_images
from scopeml.analysis.runner import run_analysis
from scopeml.analysis.settings import is_device_name, parse_settings, same_file_name


def empty_files(folder: Path, names: list[str]) -> list[Path]:
    files = []
    for name in names:
        files.append(folder / name)
        files[-1].parent.mkdir(parents=True, exist_ok=True)
        files[-1].write_bytes(b"")
    return files


@pytest.mark.parametrize(
    ("file", "name"),
    [("CON.tif", "_CON"), ("nul.ome.tif", "_nul"), ("Com1.x.tif", "_Com1.x"),
     ("lpt9.tiff", "_lpt9"), ("aux.czi", "_aux")],
)  # fmt: skip
def test_an_image_named_as_a_device_gets_a_folder_windows_can_make(
    tmp_path: Path, file: str, name: str
) -> None:
    found = find_images(empty_files(tmp_path, [file]), warn=False)
    assert found.names == [name]
    assert not is_device_name(name)


@pytest.mark.parametrize("file", ["console.tif", "com10.tif", "nuls.tif", "con_1.tif"])
def test_names_that_only_begin_like_a_device_are_kept(tmp_path: Path, file: str) -> None:
    assert find_images(empty_files(tmp_path, [file]), warn=False).names == [file[:-4]]


def test_a_device_name_made_safe_does_not_take_another_images_folder(tmp_path: Path) -> None:
    files = empty_files(tmp_path, ["a/_CON.tif", "b/CON.tif", "c/con.tif", "CON/x.tif"])
    found = find_images([*files[:3], tmp_path / "CON"], warn=False)
    assert found.names == ["_CON", "_CON-2", "_con-3", "x"]
    assert same_file_name(found.names) is None
    found = find_images([tmp_path], warn=False)  # in a folder: named by their path below it
    assert found.names == ["CON__x", "a___CON", "b__CON", "c__con"]


def test_an_analysis_of_con_tif_writes_its_results_in_folder__con(tmp_path: Path) -> None:
    pixels = np.zeros((48, 48), np.uint16)
    pixels[10:20, 10:20] = 1000
    image = tmp_path / "CON.tif"
    tifffile.imwrite(image, pixels)
    blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0"}}
    settings = parse_settings({"version": 1, "channels": ["C0"], "classes": [blob]})
    result = run_analysis(settings, [image], tmp_path / "results")
    assert result.counts == {"_CON": {"blob": 1}}
    folders = [p.name for p in (tmp_path / "results" / "images").iterdir()]
    assert folders == ["_CON"]
    record = json.loads((tmp_path / "results" / "images" / "_CON" / "record.json").read_text())
    assert record["name"] == "_CON"
    assert Path(record["image"]).name == "CON.tif"
