"""An image's result folder and ``image`` column have no character that Windows, SMB shares or
exFAT/FAT disks refuse (``<>:"\\|?*``, control characters): a microscope's ``t=0:05?.tif``
gave a folder ``t=0:05?`` that could not be copied there (new-user trial)."""

from __future__ import annotations

import csv

import numpy as np
import tifffile

from scopeml.analysis.inputs import find_images
from scopeml.analysis.runner import run_analysis
from scopeml.analysis.settings import parse_settings

REFUSED = set('<>:"\\|?*') | {chr(c) for c in range(32)}


def test_refused_characters_become_underscores_and_clashes_stay_apart(tmp_path):
    folder = tmp_path / "plate"
    (folder / "w:1").mkdir(parents=True)
    files = ["t=0:05?.tif", "t=0*05|.tif", 'a<"b">.tif', "tab\there.tif", "w:1/p*2.tif"]
    for name in files:
        (folder / name).write_bytes(b"")
    names = find_images([folder]).names
    assert sorted(names) == sorted(["t=0_05_", "t=0_05_-2", "a__b__", "tab_here", "w_1__p_2"])


def test_the_results_folder_and_tables_use_the_portable_name(tmp_path):
    image = tmp_path / "t=0:05?.tif"
    pixels = np.zeros((40, 40), np.uint16)
    pixels[10:20, 10:20] = 1000
    tifffile.imwrite(image, pixels)
    settings = parse_settings({"version": 1, "channels": ["C0"], "classes": [
        {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0"}}]})  # fmt: skip
    result = run_analysis(settings, [image], tmp_path / "res")
    assert result.counts == {"t=0_05_": {"blob": 1}}
    made = [p.name for p in (tmp_path / "res").rglob("*")]
    assert not [name for name in made if REFUSED & set(name)]
    with open(tmp_path / "res" / "tables" / "blob.csv", newline="") as table:
        assert [row["image"] for row in csv.DictReader(table)] == ["t=0_05_"]
