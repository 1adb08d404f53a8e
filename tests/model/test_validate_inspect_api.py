"""``sm.validate_model`` and ``sm.inspect_model``: what ``scopeml model validate|inspect`` say,
from Python (the checks lived in the command line only), and ``model validate --json``."""

from __future__ import annotations

import json

import pytest

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidContainerError
from tests.model.model_builders import write_czann


def test_inspect_model_is_what_inspect_json_prints(capsys):
    assert main(["model", "inspect", "nuclei", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sm.inspect_model("nuclei") == printed
    assert printed["engine"]["classes"] == ["background", "nucleus", "boundary"]


def test_validate_model_returns_the_lines_and_json_splits_warnings(tmp_path, capsys):
    path = write_czann(tmp_path, min_overlap=None)  # loads, but tiles get no halo
    lines = sm.validate_model(path)
    assert lines[0] == "warning: no MinOverlap: tiles get no halo and may show seams"
    assert lines[-1].startswith(f"{path}: valid czann; ran on (1, ")
    assert main(["model", "validate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(["model", "validate", str(path), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["valid"] is True and said["found"] == lines[-1:]
    assert "no MinOverlap: tiles get no halo and may show seams" in said["warnings"]


def test_an_invalid_model_raises_from_python_and_says_so_in_json(tmp_path, capsys):
    bad = tmp_path / "bad.czann"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InvalidContainerError, match="not a model file of a known kind"):
        sm.validate_model(bad)
    assert main(["model", "validate", str(bad), "--json"]) == 2
    said = json.loads(capsys.readouterr().out)
    assert said["valid"] is False and said["error"].startswith(f"{bad}: not a model file")


def test_json_says_an_operating_system_error_too(tmp_path, capsys):
    folder = tmp_path / "adir.czann"
    folder.mkdir()
    assert main(["model", "validate", str(folder), "--json"]) == 2
    said = json.loads(capsys.readouterr().out)  # it printed plain text
    assert said["valid"] is False and str(folder) in said["error"]
