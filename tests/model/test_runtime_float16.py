"""A float16 graph on values beyond float16's range: clipped to ±65504 with one warning. Cast
as they were, a raw 16-bit image's brightest pixels became infinite and the model's output NaN."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from scopeml.model import convert_onnx, open_model


def _half_model(path):
    """Channels-last softmax of ``(x·s, −x·s)`` in float16: two classes, dark and bright."""
    scale = numpy_helper.from_array(np.array([0.01], np.float16), "s")
    nodes = [
        helper.make_node("Mul", ["x", "s"], ["xs"]),
        helper.make_node("Neg", ["xs"], ["nxs"]),
        helper.make_node("Concat", ["nxs", "xs"], ["a"], axis=-1),
        helper.make_node("Softmax", ["a"], ["p"], axis=-1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", "H", "W", 1])
    p = helper.make_tensor_value_info("p", TensorProto.FLOAT16, ["N", "H", "W", 2])
    graph = helper.make_graph(nodes, "half", [x], [p], [scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return convert_onnx(model, path, classes=["dark", "bright"])


def test_values_beyond_float16_are_clipped_with_one_warning(tmp_path):
    model = open_model(_half_model(tmp_path / "half.czann"))
    batch = np.array([10.0, 60000.0, 65535.0, 70000.0, np.nan], np.float32).reshape(1, 1, 1, 5)
    with pytest.warns(UserWarning, match=r"takes float16 .* beyond ±65504; they are clipped"):
        out = model.predict(batch)
    assert np.isfinite(out[0, :, 0, :4]).all()  # 65535 and 70000 were infinite: NaN out
    np.testing.assert_allclose(out[0, 1, 0, :4], [0.55, 1, 1, 1], atol=0.01)
    assert np.isnan(out[0, :, 0, 4]).all()  # NaN stays NaN (the engine gives it no class)
    with warnings.catch_warnings():  # once a model
        warnings.simplefilter("error")
        model.predict(batch)
        model.predict(np.full((1, 1, 2, 2), 100, np.uint16))
