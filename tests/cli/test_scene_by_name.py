"""``--scene`` takes the name a file gives a scene (a ZEN position, an OME Image name), as
``scopeml info`` lists it, or its number; a name the file lacks is one line listing the scenes."""

from __future__ import annotations

import numpy as np
import tifffile

import scopeml as sm
from scopeml.cli import main


def plate(tmp_path):
    path = tmp_path / "plate.ome.tif"
    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(path, ome=True) as tif:
        for name, shape in (("A1-Pos1", (40, 48)), ("B2-Pos3", (32, 56))):
            plane = rng.integers(0, 60, shape).astype(np.uint16)
            plane[8:20, 8:20] = 900
            tif.write(plane, metadata={"axes": "YX", "Name": name})
    return path


def test_a_scene_is_chosen_by_its_name(tmp_path, capsys):
    path = plate(tmp_path)
    assert main(["info", str(path), "--scene", "b2-pos3"]) == 0  # any case
    assert "scenes: 1: 1 B2-Pos3 (T=1 C=1 Z=1 Y=32 X=56)" in capsys.readouterr().out
    out = tmp_path / "b2.ome.zarr"
    assert main(["segment", str(path), "-m", "nuclei", "-o", str(out), "--scene", "B2-Pos3",
                 "-q"]) == 0  # fmt: skip
    by_number = sm.segment(path, "nuclei", tmp_path / "n.ome.zarr", scene=1)
    np.testing.assert_array_equal(sm.Segmentation(out).labels.read(), by_number.labels.read())


def test_a_name_the_file_lacks_lists_its_scenes(tmp_path, capsys):
    path = plate(tmp_path)
    assert main(["info", str(path), "--scene", "C3"]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: no scene named 'C3'; the image has 2: 0 A1-Pos1, 1 B2-Pos3\n"
    )
