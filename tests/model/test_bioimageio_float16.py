"""A float16 czann exported to bioimage.io: the package declares float32 tensors, so its weights
take and give float32 (cast around the float16 graph). The bare float16 graph was written, and
every runtime but scopeml refused it: "Unexpected input data type … expected tensor(float16)"."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from scopeml.model import convert_onnx

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")


def _half_model(path, *, branch: bool = False):
    """Channels-last softmax of ``x·W + b`` in float16: three classes by brightness;
    ``branch``: ``x·s`` taken inside an If's branches, which use the outer ``x`` by name."""
    half = np.float16
    weights = [numpy_helper.from_array(np.array([[-1.0, 0.5, 1.0]], half), "W"),
               numpy_helper.from_array(np.array([0.5, 0.0, -0.5], half), "b"),
               numpy_helper.from_array(np.array([0.01], half), "s")]  # fmt: skip
    scaled = helper.make_node("Mul", ["x", "s"], ["xs"])
    if branch:
        out = helper.make_tensor_value_info("xs", TensorProto.FLOAT16, None)
        body = helper.make_graph([scaled], "body", [], [out])
        weights.append(numpy_helper.from_array(np.array(True), "yes"))
        scaled = helper.make_node("If", ["yes"], ["xs"], then_branch=body, else_branch=body)
    nodes = [
        scaled,
        helper.make_node("MatMul", ["xs", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Softmax", ["a"], ["p"], axis=-1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", "H", "W", 1])
    p = helper.make_tensor_value_info("p", TensorProto.FLOAT16, ["N", "H", "W", 3])
    graph = helper.make_graph(nodes, "half", [x], [p], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return convert_onnx(model, path, classes=["dim", "mid", "bright"])


@pytest.mark.parametrize("branch", [False, True])
def test_a_float16_model_exports_a_package_other_runtimes_run(tmp_path, branch):
    import onnxruntime as ort

    from scopeml.model.bioimageio import export_bioimageio

    czann = _half_model(tmp_path / "half.czann", branch=branch)
    package = export_bioimageio(czann, tmp_path / "half.zip")
    with zipfile.ZipFile(package) as archive:
        weights = archive.read("weights.onnx")
        given = np.load(io.BytesIO(archive.read("test_input.npy")))
        expected = np.load(io.BytesIO(archive.read("test_output.npy")))
    session = ort.InferenceSession(weights, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)" == session.get_outputs()[0].type
    assert given.dtype == np.float32
    (found,) = session.run(None, {session.get_inputs()[0].name: given})
    assert found.dtype == np.float32
    np.testing.assert_allclose(found, expected, atol=2e-3)  # float16 arithmetic inside
