"""``scopeml model validate PKG`` runs a package's test input under the probe's bounds: its
tensors sized against the memory limit first, then a child process with its address space
capped, so a package whose test input would take gigabytes gets one line and exit 2 (was: run
in the validating process itself, without any cap)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

from scopeml.cli import main
from tests.model.test_bioimageio import npy, rdf_v05, write_package

MiB = 2**20
PEAK = 12_000  # the test input's largest value: the greedy graph fills PEAK² floats (576 MB)


def _nchw_model(nodes: list, name: str) -> bytes:
    """A one-channel ``N×1×Y×X`` → ``N×1×Y×X`` graph of ``nodes`` (``input`` → ``output``)."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 1, "h", "w"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def greedy_weights() -> bytes:
    """The identity, after filling a ``peak × peak`` tensor where ``peak`` is the input's
    largest value: a zero probe tile allocates nothing, shape inference cannot size it."""
    one = helper.make_tensor("one", TensorProto.INT64, [2], [1, 1])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    return _nchw_model(
        [
            helper.make_node("Constant", [], ["one"], value=one),
            helper.make_node("ReduceMax", ["input"], ["peak"], keepdims=0),
            helper.make_node("Cast", ["peak"], ["peak_int"], to=TensorProto.INT64),
            helper.make_node("Mul", ["one", "peak_int"], ["shape"]),
            helper.make_node("ConstantOfShape", ["shape"], ["big"], value=zero),
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
            helper.make_node("Add", ["input", "total"], ["output"]),
        ],
        "greedy",
    )


def widening_weights(copies: int = 64) -> bytes:
    """The identity through ``copies`` copies of the input (a tensor ``copies`` times its
    size, which shape inference sizes from the input's shape)."""
    repeats = helper.make_tensor("repeats", TensorProto.INT64, [4], [1, copies, 1, 1])
    return _nchw_model(
        [
            helper.make_node("Constant", [], ["repeats"], value=repeats),
            helper.make_node("Tile", ["input", "repeats"], ["wide"]),
            helper.make_node("ReduceMax", ["wide"], ["output"], axes=[1], keepdims=1),
        ],
        "widening",
    )


def identity_package(path, weights: bytes, pixels: np.ndarray):
    """A package whose test output is its test input (no pre- or postprocessing)."""
    rdf = rdf_v05()
    del rdf["inputs"][0]["preprocessing"]
    output = rdf["outputs"][0]
    del output["postprocessing"]
    output["axes"][1]["channel_names"] = ["signal"]
    for axis in output["axes"][2:]:
        del axis["halo"]
    files = {
        "weights.onnx": weights,
        "test_input.npy": npy(pixels[None, None]),
        "test_output.npy": npy(pixels[None, None]),
        "README.md": b"# identity\n",
    }
    return write_package(path, rdf, files)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_test_input_that_allocates_gigabytes_is_stopped_by_the_cap(tmp_path, capsys):
    """The allocation depends on the test input's values: only the capped child stops it."""
    pixels = np.random.default_rng(0).uniform(0, PEAK, (48, 40)).astype(np.float32)
    pixels[0, 0] = PEAK
    package = identity_package(tmp_path / "greedy.zip", greedy_weights(), pixels)
    assert main(["model", "validate", str(package), "--memory-limit", str(MiB)]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"error: {package}: the graph tried to allocate more than 0.25 GiB "), err
    assert "on the package's 48×40 test input (--memory-limit" in err, err
    assert "scopeml-package-" not in err  # named as the package, not its temporary czann
    # allowed 1 GiB (+ 256 MiB), the same package runs and reproduces its test output
    assert main(["model", "validate", str(package), "--memory-limit", str(2**30)]) == 0
    out = capsys.readouterr().out
    assert "ran on (1, 32, 32)" in out, out
    assert "reproduces the package's test output (1, 48, 40) (max difference 0)" in out, out


def test_a_test_input_larger_than_the_probe_tile_is_run_under_the_cap(tmp_path, capsys):
    """A graph whose memory grows with the input's size: the 32×32 probe tile takes 8 MiB,
    the package's 256×256 test input 512 MiB, past the cap (1 MiB + 256 MiB). The package's
    step padding hides the sizes from shape inference, so the cap is what stops it."""
    pixels = np.random.default_rng(1).uniform(0, 100, (256, 256)).astype(np.float32)
    package = identity_package(tmp_path / "wide.zip", widening_weights(2048), pixels)
    assert main(["model", "validate", str(package), "--memory-limit", str(MiB)]) == 2
    err = one_error_line(capsys)
    assert err.startswith(f"error: {package}: the graph tried to allocate more than 0.25 GiB "), err
    assert "on the package's 256×256 test input" in err, err
    assert main(["model", "validate", str(package), "--memory-limit", str(2**30)]) == 0
    out = capsys.readouterr().out
    assert "reproduces the package's test output (1, 256, 256) (max difference 0)" in out, out
