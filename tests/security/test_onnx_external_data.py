"""An ONNX graph may point any tensor at external data, which ONNX Runtime then reads from
its working directory: a server's database and lock file were read back through an uploaded
model's predictions. Every place a graph can carry a tensor is refused, not only initializers."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from scopeml.errors import InvalidContainerError
from scopeml.model.container import load_graph_info, load_onnx


def _external(name: str, n: int = 9) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.UINT8, dims=[n])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "secret.txt"), ("offset", "0"), ("length", str(n))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _sparse(name: str) -> onnx.SparseTensorProto:
    indices = numpy_helper.from_array(np.arange(9, dtype=np.int64), f"{name}_i")
    return helper.make_sparse_tensor(_external(name), indices, [9])


def _graph_with(kind: str) -> onnx.ModelProto:
    """``Y = X + sum(C)``, the constant ``C`` held where ``kind`` says."""
    nodes, sparse, functions, domains = [], [], [], []
    if kind == "sparse initializer":
        sparse.append(_sparse("C"))
    elif kind == "sparse attribute":
        nodes.append(helper.make_node("Constant", [], ["C"], sparse_value=_sparse("v")))
    elif kind == "function":
        inner = helper.make_node("Constant", [], ["c"], value=_external("fc"))
        opset = [helper.make_opsetid("", 17)]
        functions.append(helper.make_function("leak", "Leak", [], ["c"], [inner], opset))
        domains.append(helper.make_opsetid("leak", 1))
        nodes.append(helper.make_node("Leak", [], ["C"], domain="leak"))
    elif kind == "function default":  # the body takes the tensor from the default value
        inner = helper.make_node("Constant", [], ["c"])
        inner.attribute.append(onnx.AttributeProto(
            name="value", ref_attr_name="val", type=onnx.AttributeProto.TENSOR
        ))  # fmt: skip
        opset = [helper.make_opsetid("", 17)]
        function = helper.make_function("leak", "Leak", [], ["c"], [inner], opset)
        function.attribute_proto.append(helper.make_attribute("val", _external("fd")))
        functions.append(function)
        domains.append(helper.make_opsetid("leak", 1))
        nodes.append(helper.make_node("Leak", [], ["C"], domain="leak"))
    elif kind == "subgraph":
        inner = helper.make_node("Constant", [], ["c"], value=_external("gc"))
        c_out = helper.make_tensor_value_info("c", TensorProto.UINT8, [9])
        branch = helper.make_graph([inner], "branch", [], [c_out])
        cond = numpy_helper.from_array(np.array(True), "cond")
        nodes += [
            helper.make_node("Constant", [], ["T"], value=cond),
            helper.make_node("If", ["T"], ["C"], then_branch=branch, else_branch=branch),
        ]
    nodes += [
        helper.make_node("Cast", ["C"], ["Cf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["Cf"], ["S"], keepdims=0),
        helper.make_node("Add", ["X", "S"], ["Y"]),
    ]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1, "H", "W"])
    graph = helper.make_graph(nodes, "g", [x], [y], sparse_initializer=sparse)
    opsets = [helper.make_opsetid("", 17), *domains]
    return helper.make_model(graph, opset_imports=opsets, functions=functions, ir_version=9)


KINDS = ["sparse initializer", "sparse attribute", "function", "function default", "subgraph"]


@pytest.mark.parametrize("kind", KINDS)
def test_external_data_anywhere_in_the_graph_is_refused(kind, tmp_path, monkeypatch):
    data = _graph_with(kind).SerializeToString()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_bytes(b"TOPSECRET")
    with pytest.raises(InvalidContainerError, match="external data"):
        load_onnx(data, path="leak.czann")
    with pytest.raises(InvalidContainerError, match="external data"):
        load_graph_info(data, path="leak.czann")


@pytest.mark.parametrize("kind", ["sparse initializer", "function default"])
def test_such_graphs_would_read_the_file(tmp_path, monkeypatch, kind):
    """What the check stands between: ONNX Runtime, given the bytes, reads the secret."""
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_bytes(b"TOPSECRET")
    data = _graph_with(kind).SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"X": np.zeros((1, 1, 2, 2), np.float32)})
    assert out.ravel()[0] == sum(b"TOPSECRET")
