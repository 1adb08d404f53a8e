"""Repeated class names: a container with them is read and run (a ZEN model still works;
``model validate`` warns), never written: convert, write_container and export-bioimageio
refuse them in one line (export wrote a package its own validate then refused)."""

from __future__ import annotations

import json
import zipfile

import numpy as np

from scopeml.cli import main
from scopeml.model import load_model, write_container
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import unet_metadata


def _repeated(tmp_path):
    """A czann whose model.json says Classes [nuc, nuc, edge]."""
    meta = unet_metadata(n_classes=3, classes=("nuc", "edge", "bg"))
    source = write_container(tmp_path / "three.czann", tiny_unet_onnx(n_classes=3), meta)
    repeated = tmp_path / "repeated.czann"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(repeated, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == "model.json":
                data = json.dumps({**json.loads(data), "Classes": ["nuc", "nuc", "edge"]})
            new.writestr(name, data)
    return source, repeated


def test_repeated_classes_are_read_and_run_but_never_written(tmp_path, capsys):
    source, repeated = _repeated(tmp_path)
    batch = np.random.default_rng(0).random((1, 1, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(load_model(repeated).predict(batch),
                                  load_model(source).predict(batch))  # fmt: skip
    assert main(["model", "validate", str(repeated)]) == 0
    out = capsys.readouterr().out
    assert "warning: class names repeat: nuc (scopeml runs it" in out
    refused = [
        ["convert", str(repeated), "-o", str(tmp_path / "out.czseg"), "--spatial", "64x64"],
        ["convert", str(repeated), "-o", str(tmp_path / "out.czann")],
        ["export-bioimageio", str(repeated), "-o", str(tmp_path / "out.zip")],
    ]
    for command in refused:
        assert main(["model", *command]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "class names repeat: nuc" in err, err
        assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("out.*"))


def test_a_classifiers_repeated_classes_are_warned_of_too(tmp_path, capsys):
    """The classifier branch of validate returned before the warnings were printed."""
    from scopeml.model import ModelMetadata
    from tests.test_classify import SIZE, classifier_onnx

    meta = ModelMetadata(model_type="MultiClassClassification", input_shape=(SIZE, SIZE, 1),
                         output_shape=(2,), classes=("dim", "bright"))  # fmt: skip
    source = write_container(tmp_path / "c.czann", classifier_onnx(2.0, -8.0), meta)
    repeated = tmp_path / "rep.czann"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(repeated, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == "model.json":
                data = json.dumps({**json.loads(data), "Classes": ["dim", "dim"]})
            new.writestr(name, data)
    assert main(["model", "validate", str(repeated)]) == 0
    out = capsys.readouterr().out
    assert "warning: class names repeat: dim" in out and "ran on (1, 16, 16) → (2,)" in out
