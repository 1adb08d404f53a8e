"""Writing and reading containers: round trips, atomic writes, what a container may not do."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from scopeml.errors import InvalidContainerError
from scopeml.model import (
    LegacyModelMetadata,
    load_model,
    read_container,
    write_container,
)
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import CPU, MODEL_ID, unet_metadata


def test_czann_round_trip_keeps_metadata_graph_and_license(tmp_path):
    graph = tiny_unet_onnx(in_channels=2, n_classes=3)
    meta = unet_metadata(in_channels=2, n_classes=3, scaling=(2e-7, 2e-7))
    license_file = tmp_path / "LICENSE.txt"
    license_file.write_text("free as in freedom")
    path = write_container(tmp_path / "out" / "m.czann", graph, meta, license_file=license_file)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["LICENSE.txt", "model.json", "model.model"]
        assert json.loads(archive.read("model.json")) == meta.to_json_dict()
    container = read_container(path)
    assert container.metadata == meta and not container.legacy
    assert container.onnx_bytes == graph.SerializeToString()
    assert container.license_name == "LICENSE.txt"
    assert container.license_bytes == b"free as in freedom"
    assert container.graph.input_shape == (None, None, 2)
    assert sorted(os.listdir(path.parent)) == ["m.czann"]  # no temporary files left


def test_graph_can_be_given_as_bytes_or_file(tmp_path):
    graph = tiny_unet_onnx()
    onnx_file = tmp_path / "g.onnx"
    onnx_file.write_bytes(graph.SerializeToString())
    for source in (graph.SerializeToString(), onnx_file, str(onnx_file)):
        path = write_container(tmp_path / "m.czann", source, unet_metadata(), overwrite=True)
        assert read_container(path).onnx_bytes == graph.SerializeToString()


def test_legacy_round_trip(tmp_path):
    meta = LegacyModelMetadata(model_id=MODEL_ID, name="old", classes=("bg", "fg"), border_size=8)
    graph = tiny_unet_onnx(tile_shape=(64, 64))
    path = write_container(tmp_path / "m.czseg", graph, meta, legacy=True)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted(
            [f"{MODEL_ID}.xml", f"{MODEL_ID}.model", f"modelid={MODEL_ID}"]
        )
    container = read_container(path)
    assert container.legacy and container.format == "czseg"
    assert container.metadata.model_dump(exclude={"colors"}) == meta.model_dump(exclude={"colors"})
    model = load_model(container, providers=CPU)
    assert model.spec.halo == (8, 8) and model.spec.tile_shape == (64, 64)


def test_write_refuses_metadata_that_disagrees_with_the_graph(tmp_path):
    graph = tiny_unet_onnx(in_channels=1, n_classes=2, tile_shape=(64, 64))
    cases = [
        (unet_metadata(in_channels=3), "InputShape"),
        (unet_metadata(n_classes=3), "OutputShape"),
        (unet_metadata(spatial=(32, 64)), "disagrees"),
        (unet_metadata(spatial=(8, 64, 64)), "entries"),
        (unet_metadata(classes=("cell", "cell")), "class names repeat: cell"),
    ]
    for meta, message in cases:
        with pytest.raises(InvalidContainerError, match=message):
            write_container(tmp_path / "bad.czann", graph, meta)
    with pytest.raises(InvalidContainerError, match="legacy=True"):
        write_container(tmp_path / "bad.czann", graph, unet_metadata(), legacy=True)
    assert not list(tmp_path.iterdir())


def test_a_failed_write_leaves_the_old_file_alone(tmp_path, czann):
    before = czann.read_bytes()
    with pytest.raises(InvalidContainerError):
        write_container(czann, b"not onnx", unet_metadata(), overwrite=True)
    assert czann.read_bytes() == before


def test_pixel_classifier_archives_are_named_as_such(tmp_path):
    path = tmp_path / "pc.czann"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.json", json.dumps({"Format": "scopeml-pixel-classifier"}))
    with pytest.raises(InvalidContainerError, match="is a scopeml pixel classifier, not a czann"):
        read_container(path)


class _Trap:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_pickle_in_a_container_is_never_executed(tmp_path, czann):
    marker = tmp_path / "pwned"
    trap = pickle.dumps(_Trap(str(marker)))
    pickle.loads(trap).close()  # the trap works when unpickled...
    assert marker.exists()
    marker.unlink()
    # ...but a container carrying it as an extra member, or as its model, never unpickles it
    with_pickle = tmp_path / "with_pickle.czann"
    with zipfile.ZipFile(czann) as source, zipfile.ZipFile(with_pickle, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
        target.writestr("state_dict.pt", trap)
    container = read_container(with_pickle)
    assert container.ignored_members == ("state_dict.pt",)
    load_model(container, providers=CPU).predict(np.zeros((1, 1, 8, 8), np.float32))
    as_model = tmp_path / "pickle_model.czann"
    with zipfile.ZipFile(as_model, "w") as archive:
        archive.writestr("model.json", json.dumps(unet_metadata().to_json_dict()))
        archive.writestr("model.model", trap)
    with pytest.raises(InvalidContainerError, match="ONNX"):
        read_container(as_model)
    assert not marker.exists()


def test_an_onnx_graph_with_external_data_is_refused(tmp_path):
    graph = tiny_unet_onnx()
    tensor = graph.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = tensor.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.json", json.dumps(unet_metadata().to_json_dict()))
        archive.writestr("model.model", graph.SerializeToString())
    path = tmp_path / "external.czann"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(InvalidContainerError, match="external data"):
        read_container(path)


def test_the_same_model_gives_the_same_bytes(tmp_path, monkeypatch):
    import time

    graph = tiny_unet_onnx(in_channels=1, n_classes=2, tile_shape=(64, 64))
    first = write_container(tmp_path / "a.czann", graph, unet_metadata())
    later = time.time() + 3 * 3600
    monkeypatch.setattr(time, "time", lambda: later)  # zip entries would record this clock
    second = write_container(tmp_path / "b.czann", graph, unet_metadata())
    assert first.read_bytes() == second.read_bytes()
    assert read_container(second).onnx_bytes == graph.SerializeToString()
