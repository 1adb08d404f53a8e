"""``model validate`` holds a legacy (.czseg/.czmodel) XML to its graph as it holds a czann's
model.json: ColorHandling and PixelType values czmodel knows, as many channels (as
ColorHandling feeds them) as the graph takes, and a BorderSize that covers the graph's reach
(a missing one is 0) warned of as a too small MinOverlap is. Each of these validated as
"valid" (the channel count a warning only, rc 0)."""

from __future__ import annotations

import re
import zipfile

import pytest

from scopeml.cli import main
from scopeml.errors import InvalidContainerError
from scopeml.model import LegacyModelMetadata, write_container
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from scopeml.model.validate import validate_model

HALO = unet_receptive_halo(2)  # 24 px: what the tiny U-Net reaches


def legacy(tmp_path, name: str, **fields) -> str:
    """A .czseg of the 64×64 one-channel tiny U-Net, its XML made from ``fields``."""
    meta = LegacyModelMetadata(name=name, classes=("bg", "fg"), **{"border_size": HALO, **fields})
    graph = tiny_unet_onnx(tile_shape=(64, 64))
    return str(write_container(tmp_path / f"{name}.czseg", graph, meta, legacy=True))


def edited(path: str, pattern: str, replacement: str) -> str:
    """The container with its XML edited (a regular-expression substitution), as a user's
    text editor leaves it."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    xml = next(name for name in members if name.endswith(".xml"))
    members[xml] = re.sub(pattern, replacement, members[xml].decode()).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def refused(capsys, path: str) -> str:
    assert main(["model", "validate", path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {path}: "), err
    return err[len(f"error: {path}: ") :]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"pixel_types": ("Banana",)}, "the XML's channel PixelType 'Banana' is unknown; known: "
                                       "Gray8, Gray16, Gray32Float"),
        ({"color_handling": "Sepia"}, "the XML's ColorHandling 'Sepia' is unknown; known: "
                                      "ConvertToMonochrome, SplitRgb"),
        ({"pixel_types": ("Gray32Float", "Gray16")},
         "the XML lists 2 channels (Gray32Float, Gray16); the graph takes 1"),
        ({"pixel_types": ("Bgr24",), "color_handling": "SplitRgb"},
         "the XML lists 1 channel (Bgr24) with ColorHandling SplitRgb: 3; the graph takes 1"),
    ],
)  # fmt: skip
def test_an_xml_the_graph_or_czmodel_contradicts_is_an_error(tmp_path, capsys, fields, problem):
    path = legacy(tmp_path, "bad", **fields)
    assert refused(capsys, path).startswith(problem)
    with pytest.raises(InvalidContainerError) as caught:
        validate_model(path, time_budget=30)
    assert caught.value.path == path and caught.value.problem.startswith(problem)


def test_an_rgb_channel_converted_to_monochrome_feeds_one_channel(tmp_path, capsys):
    """czmodel: ConvertToMonochrome "converts color to gray scale" (one channel to the graph)."""
    path = legacy(tmp_path, "mono", pixel_types=("Bgr24",), color_handling="ConvertToMonochrome")
    assert main(["model", "validate", path]) == 0
    assert f"{path}: valid czseg" in capsys.readouterr().out


def test_a_missing_border_size_warns_of_seams_as_a_czann_does(tmp_path, capsys):
    path = edited(legacy(tmp_path, "noborder"), r"<BorderSize>\d+</BorderSize>", "")
    assert main(["model", "validate", path]) == 0
    out = capsys.readouterr().out
    assert "warning: BorderSize [0, 0] is too small for the graph: a tile's core differs" in out
    assert "(seams between tiles); a BorderSize of [" in out and f"{path}: valid czseg" in out
    assert "is too small" not in "\n".join(validate_model(legacy(tmp_path, "enough")))


def test_a_too_small_border_size_is_warned_of_with_the_one_to_give(tmp_path, capsys):
    path = legacy(tmp_path, "small", border_size=4)
    lines = validate_model(path, time_budget=30)
    warning = next(line for line in lines if "too small" in line)
    needed = re.search(r"a BorderSize of \[(\d+), (\d+)\] gives the same core", warning)
    assert warning.startswith("warning: BorderSize [4, 4] is too small for the graph")
    assert needed and 4 < int(needed[1]) <= HALO, warning
