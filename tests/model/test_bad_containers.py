"""Bad containers get an InvalidContainerError naming the file: never a crash, hang or write."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scopeml.errors import InvalidContainerError, ScopeMLError
from scopeml.model import load_model, read_container
from scopeml.model.container import parse_members
from scopeml.model.safezip import read_zip_members
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import CPU, unet_metadata

GRAPH = tiny_unet_onnx(depth=1, width=2).SerializeToString()
META = unet_metadata(spatial=(32, 32)).to_json_dict()


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def czann_bytes(meta: object = META, graph: bytes = GRAPH, raw_json: bytes | None = None) -> bytes:
    text = raw_json if raw_json is not None else json.dumps(meta).encode()
    return zip_bytes({"model.json": text, "model.model": graph})


VALID = czann_bytes()

BAD = {
    "not a zip": b"this is not a zip archive at all",
    "empty file": b"",
    "truncated": VALID[: len(VALID) // 2],
    "no model.json": zip_bytes({"model.model": GRAPH}),
    "no model.model": zip_bytes({"model.json": json.dumps(META).encode()}),
    "invalid json": czann_bytes(raw_json=b'{"Type": '),
    "not utf-8": czann_bytes(raw_json=b"\xff\xfe{}"),
    "json list": czann_bytes(raw_json=b"[1, 2, 3]"),
    "deep json": czann_bytes(raw_json=b"[" * 100000 + b"]" * 100000),
    "huge number": czann_bytes(raw_json=b'{"MinOverlap": [' + b"9" * 100000 + b"]}"),
    "wrong types": czann_bytes({**META, "InputShape": "64x64"}),
    "nan diameter": czann_bytes({**META, "ScopeMLObjectDiameter": float("nan")}),
    "reversed range": czann_bytes({**META, "ScopeMLObjectDiameterRange": [40, 10]}),
    "tiny diameter": czann_bytes({**META, "ScopeMLObjectDiameter": 1e-300}),  # auto fell to 1
    "huge range": czann_bytes({**META, "ScopeMLObjectDiameterRange": [10, 1e9]}),
    "NUL class name": czann_bytes({**META, "Classes": ["background", "nucleus\x00"]}),
    "RTL override class name": czann_bytes({**META, "Classes": ["\u202ebackground", "n"]}),
    "junk default scale": czann_bytes({**META, "ScopeMLDefaultScale": "banana"}),
    "class count": czann_bytes({**META, "Classes": ["a", "b", "c"]}),
    "graph channels": czann_bytes({**META, "InputShape": [32, 32, 3]}),
    "onnx garbage": czann_bytes(graph=b"\x08\x07garbage" * 10),
    "onnx empty graph": czann_bytes(graph=b""),
    "dotdot member": zip_bytes({"model.json": b"{}", "../model.model": GRAPH}),
    "absolute member": zip_bytes({"model.json": b"{}", "/tmp/model.model": GRAPH}),
    "zip bomb": zip_bytes(
        {"model.json": json.dumps(META).encode(), "model.model": bytes(40 << 20)}
    ),
    "legacy without xml": zip_bytes({"modelid=abc": b"", "abc.model": GRAPH}),
    "legacy bad xml": zip_bytes({"modelid=abc": b"", "abc.xml": b"<Model", "abc.model": GRAPH}),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_container_is_refused_naming_the_file(tmp_path: Path, case: str):
    path = tmp_path / f"{case.replace(' ', '_')}.czann"
    path.write_bytes(BAD[case])
    with pytest.raises(InvalidContainerError) as caught:
        read_container(path)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert sorted(tmp_path.iterdir()) == [path]


def test_a_graph_onnxruntime_cannot_load_is_refused_at_load(tmp_path: Path):
    graph = tiny_unet_onnx(depth=1, width=2)
    graph.graph.node[1].op_type = "NoSuchOp"  # passes the checker with a custom domain only
    graph.graph.node[1].domain = "com.example"
    graph.opset_import.add(domain="com.example", version=1)
    path = tmp_path / "custom_op.czann"
    path.write_bytes(czann_bytes(graph=graph.SerializeToString()))
    with pytest.raises(InvalidContainerError, match="ONNX Runtime cannot load"):
        load_model(path, providers=CPU)


def _check(archive: bytes) -> None:
    """Reading (and running, when it reads) gives a container or a ScopeMLError, nothing else."""
    try:
        container = parse_members(read_zip_members(archive))
        model = load_model(container, providers=CPU)
        spec = model.spec
        size = spec.tile_shape or tuple(8 * step for step in spec.tile_step)
        model.predict(np.zeros((1, spec.in_channels, *size), np.float32))
    except ScopeMLError:
        pass


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@FUZZ
@given(st.data())
def test_fuzz_flipped_and_truncated_archives(data):
    archive = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(archive) - 1))
        archive[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        archive = archive[: data.draw(st.integers(0, len(archive)))]
    _check(bytes(archive))


@FUZZ
@given(st.data())
def test_fuzz_flipped_members_behind_a_valid_zip(data):
    member = data.draw(st.sampled_from(["json", "onnx"]))
    content = bytearray(json.dumps(META).encode() if member == "json" else GRAPH)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(content) - 1))
        content[position] = data.draw(st.integers(0, 255))
    if member == "json":
        _check(czann_bytes(raw_json=bytes(content)))
    else:
        _check(czann_bytes(graph=bytes(content)))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(st.sampled_from(sorted(META)), JSON_VALUES | st.just("delete"))
def test_fuzz_json_fields(key, value):
    meta = dict(META)
    if value == "delete":
        del meta[key]
    else:
        meta[key] = value
    _check(czann_bytes(raw_json=json.dumps(meta).encode()))  # NaN/Infinity written as Python does
