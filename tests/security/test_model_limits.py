"""Hostile models end in bounded time and memory with a one-line error (issue #18).

A ``Loop`` of 2**62 iterations (a few hundred bytes) is stopped at the per-call time budget by
``model validate``, ``model run`` and ``segment``; a graph that would allocate 1.7 GB fails
validation before anything is allocated; a container whose ONNX member is near the size limit
opens in well under 1.5 GB, and bigger or bomb-like members are refused as they stream.

Each command runs in a child process, so a hang is caught by the subprocess timeout (a guard far
above the budget, never a timing assertion) and peak memory is the child's ``ru_maxrss``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.errors import InvalidContainerError, ModelTimeoutError
from scopeml.model import ModelMetadata, ModelType, load_model, read_container, write_container
from scopeml.model.safezip import DEFAULT_LIMITS, SafeZip, ZipLimits
from scopeml.model.testing import allocating_onnx, endless_loop_onnx

BUDGET = 1.0
HANG_GUARD = 120  # seconds: far above the budget; only a hang reaches it
GiB = 2**30


def _metadata(channels: int) -> ModelMetadata:
    return ModelMetadata(
        model_type=ModelType.SINGLE_CLASS_SEMANTIC_SEGMENTATION,
        input_shape=(64, 64, channels),
        output_shape=(64, 64, channels),
        classes=tuple(f"c{k}" for k in range(channels)),
        min_overlap=(0, 0),
    )


@pytest.fixture
def endless(tmp_path: Path) -> Path:
    return write_container(tmp_path / "endless.czann", endless_loop_onnx(), _metadata(2))


@pytest.fixture
def allocating(tmp_path: Path) -> Path:
    path = tmp_path / "allocating.czann"
    return write_container(path, allocating_onnx(channels=2), _metadata(2))


#: Runs its arguments as a grandchild and reports the grandchild's peak RSS on its last line.
#: The small middle process matters: a child's ``ru_maxrss`` includes the RSS of the process it
#: was forked from, so measuring straight from pytest would count pytest's own memory.
_MEASURE = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr); "
    "sys.exit(code)"
)


def run_measured(
    args: list[str], env: dict[str, str] | None = None, timeout: float = HANG_GUARD
) -> tuple[int, str, int]:
    """Run ``args`` in a grandchild; return its exit code, stderr and peak RSS in bytes."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    *lines, peak = done.stderr.rstrip("\n").split("\n")
    return done.returncode, "\n".join(lines), int(peak)


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, int]:
    """Run ``scopeml ARGS`` in a grandchild; return its exit code, stderr and peak RSS."""
    code = "import sys; from scopeml.cli import main; sys.exit(main(sys.argv[1:]))"
    return run_measured([sys.executable, "-c", code, *args], env=env)


def assert_one_line_error(stderr: str, path: Path, words: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {path}: ") and words in lines[0], stderr
    assert "Traceback" not in stderr


def test_predict_stops_at_the_time_budget(endless):
    model = load_model(endless, providers=["CPUExecutionProvider"], time_budget=BUDGET)
    with pytest.raises(ModelTimeoutError, match="time budget of 1 s") as caught:
        model.predict(np.zeros((1, 2, 8, 8), np.float32))
    assert caught.value.path == str(endless)
    assert isinstance(caught.value, TimeoutError)


def test_a_finite_loop_within_the_budget_runs(tmp_path):
    path = write_container(tmp_path / "short.czann", endless_loop_onnx(trips=5), _metadata(2))
    model = load_model(path, providers=["CPUExecutionProvider"], time_budget=30)
    batch = np.random.default_rng(0).random((2, 2, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(batch), batch)


def test_time_budget_from_the_environment(endless, monkeypatch):
    monkeypatch.setenv("SCOPEML_MODEL_TIME_BUDGET", "0.5")
    model = load_model(endless, providers=["CPUExecutionProvider"])
    assert model.time_budget == 0.5
    with pytest.raises(ModelTimeoutError):
        model.predict(np.zeros((1, 2, 8, 8), np.float32))
    monkeypatch.setenv("SCOPEML_MODEL_TIME_BUDGET", "soon")
    with pytest.raises(ValueError, match="SCOPEML_MODEL_TIME_BUDGET must be seconds"):
        load_model(endless, providers=["CPUExecutionProvider"])


def test_validate_stops_an_endless_loop(endless):
    code, stderr, _ = run_cli("model", "validate", str(endless), "--time-budget", str(BUDGET))
    assert code == 2
    assert_one_line_error(stderr, endless, "time budget of 1 s")


def test_model_run_stops_an_endless_loop(endless, tmp_path):
    image = tmp_path / "image.npy"
    np.save(image, np.zeros((16, 16, 2), np.float32))
    out = tmp_path / "out.npy"
    code, stderr, _ = run_cli(
        "model", "run", str(endless), str(image), "-o", str(out), "--time-budget", str(BUDGET)
    )
    assert code == 2
    assert_one_line_error(stderr, endless, "time budget")
    assert not out.exists()


def test_segment_stops_an_endless_loop(endless, tmp_path):
    image = tmp_path / "image.ome.tif"
    tifffile.imwrite(image, np.zeros((2, 64, 64), np.uint8), metadata={"axes": "CYX"}, ome=True)
    out = tmp_path / "out.ome.zarr"
    args = ("segment", str(image), "-m", str(endless), "-o", str(out), "--quiet")
    code, stderr, _ = run_cli(*args, "--time-budget", str(BUDGET))
    assert code == 2, stderr
    assert_one_line_error(stderr, endless, "time budget of 1 s")
    env = {"SCOPEML_MODEL_TIME_BUDGET": "0.5"}  # or from the environment
    other = tmp_path / "other.ome.zarr"
    code, stderr, _ = run_cli(*args[:-2], str(other), "--quiet", env=env)
    assert code == 2, stderr
    assert_one_line_error(stderr, endless, "time budget of 0.5 s")
    assert not out.exists() and not other.exists()  # only resumable .partial stores remain


def test_validate_refuses_a_graph_that_allocates_gigabytes(allocating):
    assert allocating.stat().st_size < 2000
    code, stderr, peak = run_cli("model", "validate", str(allocating))
    assert code == 2
    assert_one_line_error(stderr, allocating, "would make tensor 'big' of 1.66 GiB")
    assert peak < 1 * GiB  # refused from inferred shapes, before anything was allocated


def test_loading_refuses_a_constant_tensor_over_the_limit(allocating, monkeypatch):
    """ONNX Runtime would constant-fold it into memory while building the session."""
    with pytest.raises(InvalidContainerError, match=r"'big' of 1\.66 GiB whatever its input"):
        load_model(allocating, providers=["CPUExecutionProvider"])
    monkeypatch.setenv("SCOPEML_MODEL_MEMORY_LIMIT", str(2 * GiB))
    assert load_model(allocating, providers=["CPUExecutionProvider"]).spec.in_channels == 2


def test_validate_refuses_an_allocation_that_depends_on_pixel_values(tmp_path):
    """Shape inference cannot size it; the isolated probe's capped address space stops it."""
    graph = allocating_onnx(channels=2, data_dependent=True)
    path = write_container(tmp_path / "sly.czann", graph, _metadata(2))
    code, stderr, peak = run_cli("model", "validate", str(path))
    assert code == 2
    assert_one_line_error(stderr, path, "tried to allocate more than 1.25 GiB")
    assert peak < 1.5 * 10**9
    code, stderr, _ = run_cli("model", "validate", str(path), "--memory-limit", str(2 * GiB))
    assert code == 0, stderr  # the same graph, allowed 2 GiB, runs


def test_the_memory_limit_is_configurable(allocating, capsys):
    assert main(["model", "validate", str(allocating), "--memory-limit", str(2 * GiB)]) == 0
    assert "valid czann" in capsys.readouterr().out
    assert main(["model", "validate", str(allocating), "--memory-limit", "1000000"]) == 2
    assert "the limit is 0.00 GiB" in capsys.readouterr().err


def _big_container(path: Path, weight_bytes: int) -> Path:
    """A valid container whose graph holds ``weight_bytes`` of weights (compressible ~4:1)."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).integers(0, 4, weight_bytes, dtype=np.uint8)
    nodes = [
        helper.make_node("ReduceMax", ["w"], ["m"], keepdims=0),
        helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["input", "mf"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "heavy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", "Y", "X", 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "Y", "X", 1])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    del weights
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data = model.SerializeToString()
    del model, graph
    meta = json.dumps(_metadata(1).to_json_dict())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("model.json", meta)
        archive.writestr("model.model", data)
    return path


@pytest.mark.slow
def test_opening_a_container_near_the_limit_stays_under_1_5_gb(tmp_path):
    near = DEFAULT_LIMITS.max_member_bytes - 2**20
    path = tmp_path / "heavy.czann"
    build = f"from pathlib import Path; from tests.security.test_model_limits import _big_container; _big_container(Path({str(path)!r}), {near})"  # noqa: E501
    subprocess.run([sys.executable, "-c", build], check=True, timeout=HANG_GUARD * 3)
    script = textwrap.dedent(
        f"""
        from scopeml.model import load_model, read_container
        container = read_container({str(path)!r})
        assert len(container.onnx_bytes) > {near}
        del container
        load_model({str(path)!r}, providers=["CPUExecutionProvider"])
        """
    )
    code, stderr, peak = run_measured([sys.executable, "-c", script], timeout=HANG_GUARD * 3)
    assert code == 0, stderr
    assert peak < 1.5 * 10**9, f"peak {peak / 2**20:.0f} MiB"


def test_a_member_over_the_limit_is_refused_from_its_header(tmp_path):
    """The issue's bomb: an ONNX member that unpacks to 2 GB (at a ratio under 200)."""
    meta = json.dumps(_metadata(1).to_json_dict()).encode()
    data = bytearray(_zip({"model.json": meta, "model.model": bytes(4096)}))
    _declare_size(data, "model.model", 2 * 10**9)
    path = tmp_path / "bomb.czann"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidContainerError, match="unpacks to 2000000000 bytes") as caught:
        read_container(path)
    assert caught.value.path == str(path)


def test_a_stream_past_the_member_limit_is_stopped_as_it_streams():
    limits = ZipLimits(max_member_bytes=3 * 2**20, ratio_floor_bytes=2**40)
    data = bytearray(_zip({"model.model": bytes(8 * 2**20)}))
    _declare_size(data, "model.model", 1000)  # the header lies: small
    with SafeZip(bytes(data), limits=limits) as archive, pytest.raises(InvalidContainerError):
        archive.read("model.model")
    honest = _zip({"model.model": bytes(8 * 2**20)})
    with (
        SafeZip(honest, limits=limits) as archive,
        pytest.raises(InvalidContainerError, match="larger than 3145728 bytes"),
    ):
        archive.read("model.model")


def test_metadata_members_get_the_small_json_limit(tmp_path):
    big_json = json.dumps({"pad": "x" * (DEFAULT_LIMITS.max_json_bytes + 10)}).encode()
    path = tmp_path / "fat.czann"
    path.write_bytes(_zip({"model.json": big_json, "model.model": b""}))
    with pytest.raises(InvalidContainerError, match=r"model\.json"):
        read_container(path)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _declare_size(data: bytearray, name: str, size: int) -> None:
    """Patch the uncompressed size of member ``name`` in its local and central headers."""
    encoded = name.encode()
    local = data.find(b"PK\x03\x04")
    while local >= 0:
        name_len = int.from_bytes(data[local + 26 : local + 28], "little")
        if bytes(data[local + 30 : local + 30 + name_len]) == encoded:
            data[local + 22 : local + 26] = size.to_bytes(4, "little")
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if bytes(data[central + 46 : central + 46 + name_len]) == encoded:
            data[central + 24 : central + 28] = size.to_bytes(4, "little")
        central = data.find(b"PK\x01\x02", central + 4)


def _valid_members(kind: str, folder: Path) -> dict[str, bytes]:
    """The members of a small valid container of ``kind``."""
    from scopeml.model.safezip import read_zip_members

    if kind == "czann":
        path = write_container(folder / "ok.czann", endless_loop_onnx(trips=1), _metadata(2))
    elif kind == "pixel classifier":
        from scopeml.pixel import train_classifier

        rng = np.random.default_rng(0)
        image = rng.random((1, 32, 32)).astype(np.float32)
        labels = np.zeros((32, 32), np.uint8)
        labels[:4], labels[-4:] = 1, 2
        classifier = train_classifier(
            image, labels, features="gaussian_smoothing:1", n_estimators=2, n_jobs=1, seed=0
        )
        path = classifier.save(folder / "ok.czseg")
    else:
        import pandas as pd

        from scopeml.objects.classifier import ObjectClassifier

        table = pd.DataFrame({"area": [1.0, 2, 3, 10, 11, 12], "kind": list("aaabbb")})
        path = ObjectClassifier.train(table, "kind", n_estimators=2).save(folder / "ok.zip")
    return read_zip_members(path)


def _load(kind: str, path: Path) -> object:
    if kind == "czann":
        return read_container(path)
    if kind == "pixel classifier":
        from scopeml.pixel._container import load_classifier

        return load_classifier(path)
    from scopeml.objects.classifier import load_object_classifier

    return load_object_classifier(path)


#: Per kind: its metadata member and one array (or graph) member.
KINDS = {
    "czann": ("model.json", "model.model"),
    "pixel classifier": ("model.json", "forest/left.npy"),
    "object classifier": ("classifier.json", "left.npy"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_container_kind_has_the_same_limits(tmp_path, kind):
    """One safe container module: the same bomb, member count and JSON size are refused by
    every loader, by the same rule, naming the file."""
    meta_name, array_name = KINDS[kind]
    valid = _valid_members(kind, tmp_path)
    _load(kind, _write(tmp_path / "valid.zip", valid))  # the untouched members load
    defects = {
        "compression ratio above 200": {array_name: bytes(64 * 2**20)},  # zeros: ~1000:1
        f"at most {DEFAULT_LIMITS.max_members} are allowed": {
            f"extra{i}": b"" for i in range(DEFAULT_LIMITS.max_members)
        },
        f"larger than {DEFAULT_LIMITS.max_json_bytes} bytes": {
            meta_name: b"[" + b"0," * DEFAULT_LIMITS.max_json_bytes + b"0]"
        },
    }
    for expected, change in defects.items():
        path = _write(tmp_path / "bad.zip", {**valid, **change})
        with pytest.raises(InvalidContainerError, match=expected) as caught:
            _load(kind, path)
        assert caught.value.path == str(path)


def _write(path: Path, members: dict[str, bytes]) -> Path:
    path.write_bytes(_zip(members))
    return path


def _czann_with_metadata(path, text: bytes, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("model.json", text)
        archive.writestr("model.model", b"\0")
    return path


def test_oversized_model_json_is_named_as_such_not_as_bad_json_nor_twice(tmp_path):
    """The limit's error was wrapped as "model.json is not valid JSON (PATH: member …)",
    which put a server's storage path into the message its client saw."""
    path = _czann_with_metadata(tmp_path / "big.czann", b" " * (5 << 20) + b"{}")
    with pytest.raises(InvalidContainerError) as caught:
        read_container(path)
    assert "not valid JSON" not in str(caught.value)
    assert "larger than" in caught.value.problem
    assert str(path) not in caught.value.problem


def test_deeply_nested_model_json_says_so(tmp_path):
    path = _czann_with_metadata(tmp_path / "deep.czann", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(InvalidContainerError, match="nested too deep"):
        read_container(path)
