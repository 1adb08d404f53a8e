"""``scopeml info OUT.ome.zarr`` on a ``segment`` store lists its outputs (shape, dtype,
classes) and the run (model, scale) instead of failing on the group without NGFF metadata."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.model.spec import ModelSpec


class Threshold:
    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "cell"), halo=(0, 0))
    name = "threshold"

    def predict(self, batch):
        fg = (batch > 5).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=1)


@pytest.fixture
def store(tmp_path):
    image = (np.arange(2 * 40 * 60).reshape(2, 40, 60) % 10).astype(np.uint16)
    path = tmp_path / "t2.ome.tif"
    tifffile.imwrite(path, image, metadata={"axes": "TYX", "PhysicalSizeX": 0.645,
                                            "PhysicalSizeY": 0.645})  # fmt: skip
    out = tmp_path / "t2.ome.zarr"
    sm.segment(path, Threshold(), out, outputs=("labels", "probabilities", "instances"),
               scale=0.5)  # fmt: skip
    return path, out


def test_info_lists_the_outputs_and_the_run(store, capsys):
    image, out = store
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(out)
    assert lines[1].startswith(f"  segment store of {image}: model ")
    assert lines[1].endswith("(classes bg, cell), scale 0.5") and "at scale" not in lines[1]
    objects = sm.open_image(out / "instances").read()
    per_time = [len(np.unique(objects[0, t])) - 1 for t in range(2)]  # each its own ids
    spread = f"{min(per_time)}–{max(per_time)} per time point"
    assert sum(per_time) > 2
    assert lines[2:] == [
        "  labels: T=2 Y=40 X=60, uint8, classes bg, cell",
        f"  instances: T=2 Y=40 X=60, uint32, objects of cell: {sum(per_time)} ({spread})",
        "  probabilities: T=2 C=2 Y=40 X=60, float32, channels bg, cell",
        "  pixel sizes (µm): Y=0.645 X=0.645",
        "  normalisation: none (raw values)",  # the model records none
        f"  written by scopeml {sm.__version__}",
    ]


def test_info_json_and_a_store_missing_an_output(store, capsys):
    _, out = store
    shutil.rmtree(out / "instances")  # as a run stopped before the instances leaves it
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["run"]["scale"] == 0.5 and info["missing"] == ["instances"]
    assert info["outputs"]["labels"]["shape"] == [2, 40, 60]
    assert info["outputs"]["probabilities"]["classes"] == ["bg", "cell"]
    assert main(["info", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("  missing: instances (")
    assert main(["info", str(out / "labels")]) == 0  # one output still opens as an image
    assert "shape: S=1 T=2 C=1 Z=1 Y=40 X=60, uint8" in capsys.readouterr().out


def test_info_says_which_scene_and_channels_the_run_read(tmp_path, capsys):
    path = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for name in ("A1", "B2"):
            tif.write(np.full((2, 30, 40), 9, np.uint16), metadata={"axes": "CYX", "Name": name})
    out = tmp_path / "b2.ome.zarr"
    sm.segment(path, Threshold(), out, scene="B2", channels=[1])
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"  segment store of {path} (scene 1, channels 1): model ")


def test_a_scene_named_in_python_is_its_number(tmp_path):
    """``scene="B2"`` as the command line's ``--scene B2``: it was handed to the reader as it
    was and read as a broken TIFF ("'<=' not supported between int and str")."""
    path = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for value, name in ((1, "A1"), (9, "B2")):
            tif.write(np.full((30, 40), value, np.uint16), metadata={"axes": "YX", "Name": name})
    with sm.open_image(path, scene="B2") as image:
        assert image.read().max() == 9
    seg = sm.segment(path, Threshold(), tmp_path / "b2.ome.zarr", scene="b2")  # any case
    assert seg.labels.read().max() == 2  # the bright scene: all "cell"
    with pytest.raises(sm.ScopeMLError, match="this image names no scenes; give a number"):
        sm.segment(np.zeros((8, 8)), Threshold(), tmp_path / "a.ome.zarr", scene="B2")


def test_a_scene_named_of_an_image_holding_another_is_refused(tmp_path):
    """One scene opened, another named: the engine ran on the one the image holds."""
    from scopeml.io.registry import ChannelFiles

    path = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for value, name in ((1, "A1"), (9, "B2")):
            tif.write(np.full((30, 40), value, np.uint16), metadata={"axes": "YX", "Name": name})
    with sm.open_image(path, scene="B2") as b2:
        with pytest.raises(sm.ScopeMLError, match="'A1' is scene 0 of the file; this image is"):
            sm.segment(b2, Threshold(), tmp_path / "a.ome.zarr", scene="A1")
        assert sm.segment(b2, Threshold(), tmp_path / "b.ome.zarr", scene="B2").labels.read().max()
    field = ChannelFiles(paths=(path, path), channels=("DAPI", "GFP"))  # a scene named: numbered
    with sm.open_image(field, scene="B2") as both:
        assert both.view()["scene"] == 1 and both.read().max() == 9
