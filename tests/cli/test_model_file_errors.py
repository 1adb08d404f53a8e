"""A file that is not a model says what it is instead, in one line, and the known model kinds come
in one order wherever they are listed (``model inspect``, ``segment``, ``model list``)."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest

from scopeml.cli import main
from tests.tiling.engine_doubles import write_image_file

KINDS = (
    "known kinds: bioimageio, czann, czmodel, object-classifier, pixel-classifier "
    "(scopeml model list)"
)


@pytest.fixture
def image(tmp_path):
    return write_image_file(tmp_path / "img.ome.tif", np.ones((1, 32, 32), np.uint16))


def _bad_models(folder, image):
    (folder / "empty.czann").write_bytes(b"")
    (folder / "adir.czann").mkdir()
    with zipfile.ZipFile(folder / "notes.czann", "w") as archive:
        archive.writestr("hello.txt", "hi")
    return {
        folder / "empty.czann": "empty file (0 bytes), not a model",
        folder / "adir.czann": "is a folder, not a model file",
        folder / "notes.czann": "zip without model.json: not a czann (it holds hello.txt)",
        image: "a TIFF image, not a model",
    }


@pytest.mark.parametrize("command", ["inspect", "segment"])
def test_each_bad_model_file_says_what_it_is(command, image, tmp_path, capsys):
    for model, reason in _bad_models(tmp_path, image).items():
        if command == "inspect":
            args = ["model", "inspect", str(model)]
        else:
            args = ["segment", str(image), "-m", str(model), "-o", str(tmp_path / "o.ome.zarr")]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == f"error: {model}: {reason}; {KINDS}\n"
        assert not (tmp_path / "o.ome.zarr").exists()


def test_the_known_kinds_come_in_one_order(tmp_path, image, capsys):
    garbage = tmp_path / "garbage.czann"
    garbage.write_bytes(bytes(range(256)) * 8)
    orders = []
    for args in (
        ["model", "inspect", str(garbage)],
        ["segment", str(image), "-m", str(garbage), "-o", str(tmp_path / "o.ome.zarr")],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "not a model file of a known kind" in err
        orders.append(re.findall(r"([a-z-]+) \(", err.split("known: ")[1]))
    assert main(["model", "list"]) == 0
    listed = capsys.readouterr().out.split("model kinds")[1]
    orders.append(re.findall(r"^  ([a-z-]+):", listed, flags=re.M))
    assert orders[0] == ["bioimageio", "czann", "czmodel", "object-classifier", "pixel-classifier"]
    assert orders[1] == orders[0] and orders[2] == orders[0]


def test_a_bare_onnx_graph_says_how_to_wrap_it(image, tmp_path, capsys):
    """``segment -m x.onnx`` listed the known kinds; ``export-bioimageio x.onnx`` said "not a
    valid zip archive": neither said that a graph needs its classes and halo first."""
    import onnx

    from scopeml.model.testing import tiny_unet_onnx

    graph = tmp_path / "unet.onnx"
    onnx.save(tiny_unet_onnx(depth=2), graph)
    for args in (
        ["segment", str(image), "-m", str(graph), "-o", str(tmp_path / "o.ome.zarr")],
        ["model", "export-bioimageio", str(graph), "-o", str(tmp_path / "p.zip")],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a bare ONNX graph" in err, err
        assert "scopeml model convert unet.onnx -o unet.czann --classes" in err
