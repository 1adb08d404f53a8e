"""Loose ends: a bioimage.io ``rdf.yaml`` is hashed in a run record with the files it names (a
resume notices changed weights beside it); ``classify -m`` takes what its help says;
``objects train`` says how many labelled objects of each class it trained on."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import IncompleteOutputError
from scopeml.tiling.identity import file_sha256, model_sha256
from scopeml.tiling.store import partial_path


def _package_folder(folder, kernels_sign: float = 1.0):
    """An unpacked bioimage.io package (the conv model of ``tests/model``): its ``rdf.yaml``."""
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    import onnx
    import yaml
    from onnx import numpy_helper

    from tests.model.test_bioimageio import KERNELS, rdf_v05, v05_files

    folder.mkdir(exist_ok=True)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf_v05()))
    for name, data in v05_files().items():
        (folder / name).write_bytes(data)
    if kernels_sign != 1.0:  # other weights, same names and description
        graph = onnx.load_from_string((folder / "weights.onnx").read_bytes())
        for k, tensor in enumerate(graph.graph.initializer):
            if tensor.name == "w":
                graph.graph.initializer[k].CopyFrom(
                    numpy_helper.from_array(kernels_sign * KERNELS, "w")
                )
        (folder / "weights.onnx").write_bytes(graph.SerializeToString())
    return folder / "rdf.yaml"


def test_an_rdf_yaml_is_hashed_with_the_files_it_names(tmp_path):
    rdf = _package_folder(tmp_path / "pkg")
    first = model_sha256(rdf)
    assert first != file_sha256(rdf)  # not the description alone
    assert first == file_sha256(rdf.parent)  # as the folder holding just the package
    (tmp_path / "pkg" / "notes.txt").write_text("not named by the description")
    assert model_sha256(rdf) == first  # a file it does not name is not the model
    _package_folder(tmp_path / "pkg", kernels_sign=-1.0)
    assert model_sha256(rdf) != first  # other weights beside the same rdf.yaml


def test_a_resume_notices_changed_weights_beside_an_rdf_yaml(tmp_path):
    from tests.tiling.engine_doubles import FailingAfter, write_image_file

    rdf = _package_folder(tmp_path / "pkg")
    rng = np.random.default_rng(0)
    image = write_image_file(
        tmp_path / "img.ome.tif", rng.integers(0, 900, (1, 64, 48)).astype(np.uint16)
    )
    out = tmp_path / "o.ome.zarr"
    run = {"tile_size": 16, "batch_size": 1, "workers": 1, "normalize": "percentile:1,99"}
    with pytest.raises(RuntimeError, match="power cut"):
        sm.segment(image, FailingAfter(sm.open_model(rdf), 3), out, **run)
    record = json.loads((partial_path(out) / ".scopeml-run.json").read_text())
    assert record["model"]["sha256"] == model_sha256(rdf)
    _package_folder(tmp_path / "pkg", kernels_sign=-1.0)  # weights replaced, rdf.yaml not
    with pytest.raises(IncompleteOutputError, match="changed since this run"):
        sm.segment(image, rdf, out, resume=True, **run)
    assert len(os.listdir(partial_path(out) / ".scopeml-done")) == 3  # nothing mixed in


def test_classify_takes_a_bioimageio_package_as_its_help_says(tmp_path, capsys):
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    from scopeml.io import write_ome_tiff
    from tests.model.test_bioimageio_run import classification_package

    assert main(["classify", "--help"]) == 0
    assert "bioimage.io package" in " ".join(capsys.readouterr().out.split())
    _, package = classification_package(tmp_path)
    rng = np.random.default_rng(1)
    for name, offset in (("dim", 0.0), ("bright", 5.0)):
        pixels = (rng.random((24, 20)) * 3 + offset).astype(np.float32)
        write_ome_tiff(tmp_path / f"{name}.ome.tif", pixels, axes="YX")
    images = [str(tmp_path / f"{name}.ome.tif") for name in ("dim", "bright")]
    out = tmp_path / "classes.csv"
    assert main(["classify", *images, "-m", str(package), "-o", str(out), "-q"]) == 0
    assert pd.read_csv(out)["class"].tolist() == ["dim", "bright"]


def test_objects_train_says_what_it_trained_on(tmp_path, capsys):
    rng = np.random.default_rng(2)
    area = np.concatenate([rng.normal(20, 2, 20), rng.normal(60, 4, 15)])
    kind = ["small"] * 20 + ["large"] * 15
    kind = [k if i % 4 == 0 or i >= 30 else "" for i, k in enumerate(kind)]  # some labelled
    table = pd.DataFrame({"label": np.arange(1, 36), "area": area, "kind": kind})
    table.to_csv(tmp_path / "t.csv", index=False)
    labelled = table[table["kind"] != ""]["kind"].value_counts()
    args = ["objects", "train", str(tmp_path / "t.csv"), "--class-column", "kind"]
    assert main([*args, "-o", str(tmp_path / "k.zip"), "--n-estimators", "3"]) == 0
    line, quality = capsys.readouterr().out.strip().splitlines()
    assert quality.startswith("out-of-bag accuracy")  # how far to trust it, on a line of its own
    n = int(labelled.sum())
    expected = (
        f"trained on {n} labelled objects (large {labelled['large']}, small {labelled['small']}) "
        f"of 35, {35 - n} unlabelled skipped → {tmp_path / 'k.zip'}"
    )
    assert line.endswith(expected), line
    assert line.startswith("ObjectClassifier(classes=['large', 'small'], 1 features, 3 trees)")
