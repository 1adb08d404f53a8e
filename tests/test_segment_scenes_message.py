"""``segment`` on a file of several scenes of one size, given no scene, says which scenes there
are and how to do every one: it said only "choose one with scene= (--scene)" (user test).
One line, naming the file."""

from __future__ import annotations

import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.synthetic import synthetic_nuclei

SAID = (
    "image has 2 scenes (0–1); segment one at a time with --scene N (scene= in Python), "
    "or use scopeml analyze, which does every scene"
)


@pytest.fixture
def two_scenes(tmp_path):
    path = tmp_path / "multi.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for seed in (1, 2):
            pixels, _ = synthetic_nuclei((64, 64), density=0.004, seed=seed)
            tif.write(pixels.reshape(64, 64), metadata={"axes": "YX"})
    return path


def test_the_cli_names_the_scenes_and_the_way_to_do_all(two_scenes, tmp_path, capsys):
    out = tmp_path / "x.ome.zarr"
    assert main(["segment", str(two_scenes), "-m", "nuclei", "-o", str(out), "-q"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {two_scenes}: {SAID}"
    assert not out.exists()


def test_python_says_it_too(two_scenes, tmp_path):
    with pytest.raises(InvalidRequestError, match="scenes \\(0–1\\); segment one at a time"):
        sm.segment(two_scenes, "nuclei", tmp_path / "x.ome.zarr")
