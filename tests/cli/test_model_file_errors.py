"""A file that is not a model says what it is instead, in one line, and the known model kinds come
in one order wherever they are listed (``model inspect``, ``segment``, ``model list``)."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest

from scopeml.cli import main
from scopeml.model.registry import resolve_model
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
    (folder / "garbage.czann").write_bytes(bytes(range(256)) * 8)
    whole = resolve_model("nuclei").read_bytes()
    (folder / "cut.czann").write_bytes(whole[: len(whole) // 2])
    return {
        folder / "empty.czann": f"empty file (0 bytes), not a model; {KINDS}",
        folder / "adir.czann": f"is a folder, not a model file; {KINDS}",
        folder / "notes.czann": (
            f"zip without model.json, model XML or rdf.yaml (it holds hello.txt), not a model; "
            f"{KINDS}"
        ),
        folder / "garbage.czann": f"not a model file of a known kind; {KINDS}",
        folder / "cut.czann": (
            "truncated or damaged zip: its list of members cannot be read, so no model can be "
            "opened from it (was it copied in full?)"
        ),
        image: f"a TIFF image, not a model; {KINDS}",
    }


def _args(command, model, tmp_path, image):
    out = tmp_path / "out"
    return {
        "inspect": ["model", "inspect", str(model)],
        "info": ["model", "info", str(model)],
        "validate": ["model", "validate", str(model)],
        "convert": ["model", "convert", str(model), "-o", str(out.with_suffix(".czann"))],
        "run": ["model", "run", str(model), str(image), "-o", str(out.with_suffix(".npy"))],
        "export-bioimageio": ["model", "export-bioimageio", str(model), "-o", f"{out}.zip"],
        "segment": ["segment", str(image), "-m", str(model), "-o", f"{out}.ome.zarr"],
    }[command]


COMMANDS = ["inspect", "info", "validate", "convert", "run", "export-bioimageio", "segment"]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_bad_model_file_says_what_it_is(command, image, tmp_path, capsys):
    """Every command says the same line of a file that is no model (validate and
    export-bioimageio said "not a valid zip archive (File is not a zip file)" of an empty file,
    and a cut zip was "a zip that cannot be read (not a valid zip archive (…))")."""
    for model, reason in _bad_models(tmp_path, image).items():
        if command in ("validate", "convert") and model.name == "adir.czann":
            continue  # a folder may be a bioimage.io package: said so (test_model_messages)
        if command == "convert" and model == image:
            continue  # convert also takes bare graphs (any suffix): it says it is none
        assert main(_args(command, model, tmp_path, image)) == 2
        err = capsys.readouterr().err
        assert err == f"error: {model}: {reason}\n", command
        assert len(reason) < 200 or model == image
        assert not list(tmp_path.glob("out*"))


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
        orders.append(err.split("known kinds: ")[1].split(" (scopeml")[0].split(", "))
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
