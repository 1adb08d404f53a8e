"""One short line for what a new user gives ``model convert``/``validate`` by mistake: a
folder that is no package (was "Invalid value for --classes" and "Is a directory"), a zip
without rdf.yaml (its message named czann and czseg only), a model.json field of the wrong
type (``Scaling: ["x", "y"]`` gave ~400 characters of pydantic union members)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from scopeml.cli import main
from scopeml.errors import InvalidContainerError
from scopeml.model import read_container
from scopeml.model.testing import tiny_czann
from scopeml.model.validate import validate_model

FOLDER = (
    "is a folder, not a model file nor a bioimage.io package folder (no rdf.yaml or "
    "bioimageio.yaml in it); known kinds: "
)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("command", ["convert", "validate", "info"])
def test_a_folder_that_is_no_package_is_said_to_be_one(tmp_path, capsys, command):
    folder = tmp_path / "emptydir"
    folder.mkdir()
    (folder / "weights.onnx").write_bytes(b"\x08\x07")  # a package's files, no rdf.yaml
    args = ["model", command, str(folder)]
    args += ["-o", str(tmp_path / "e.czann")] if command == "convert" else []
    assert main(args) == 2
    err = one_line(capsys)
    said = FOLDER if command != "info" else "is a folder, not a model file; known kinds: "
    assert err.startswith(f"error: {folder}: {said}"), err
    assert not (tmp_path / "e.czann").exists()


def test_validate_of_a_folder_raises_with_the_folder_named(tmp_path):
    with pytest.raises(InvalidContainerError) as caught:
        validate_model(tmp_path)
    assert caught.value.path == str(tmp_path) and caught.value.problem.startswith(FOLDER)


def test_a_zip_without_rdf_yaml_names_the_package_description_too(tmp_path, capsys):
    package = tmp_path / "no_rdf.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("weights.onnx", b"\x08\x07")
        archive.writestr("test_input.npy", b"")
    assert main(["model", "validate", str(package)]) == 2
    assert one_line(capsys) == (
        f"error: {package}: zip without model.json, model XML or rdf.yaml (it holds "
        "weights.onnx, test_input.npy), not a model; known kinds: bioimageio, czann, czmodel, "
        "object-classifier, pixel-classifier (scopeml model list)"
    )  # as segment -m says it


def with_json(tmp_path: Path, name: str, **changes) -> Path:
    """The tiny czann with model.json fields replaced."""
    source = tiny_czann(tmp_path / "src")
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    meta = {**json.loads(members["model.json"]), **changes}
    members["model.json"] = json.dumps(meta).encode()
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("Scaling", ["x", "y"], "Scaling: expected a list of numbers, got ['x', 'y']"),
        ("MinOverlap", ["a", "b"], "MinOverlap: expected a list of integers, got ['a', 'b']"),
        ("InputShape", "256x256", "InputShape: expected a list, got '256x256'"),
        ("ModelName", 7, "ModelName: expected a string, got 7"),
    ],
)
def test_a_model_json_field_of_the_wrong_type_is_one_short_line(
    tmp_path, capsys, field, value, said
):
    path = with_json(tmp_path, "bad.czann", **{field: value})
    with pytest.raises(InvalidContainerError) as caught:
        read_container(path)
    assert caught.value.problem == f"invalid model.json: {said}"
    assert main(["model", "validate", str(path)]) == 2
    assert one_line(capsys) == f"error: {path}: invalid model.json: {said}"
