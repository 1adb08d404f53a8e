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
    with pytest.warns(UserWarning, match=r"takes float16 .* beyond ±65504 \(clipped to them\)"):
        out = model.predict(batch)
    assert np.isfinite(out[0, :, 0, :4]).all()  # 65535 and 70000 were infinite: NaN out
    np.testing.assert_allclose(out[0, 1, 0, :4], [0.55, 1, 1, 1], atol=0.01)
    assert np.isnan(out[0, :, 0, 4]).all()  # NaN stays NaN (the engine gives it no class)
    with warnings.catch_warnings():  # once a model
        warnings.simplefilter("error")
        model.predict(batch)
        model.predict(np.full((1, 1, 2, 2), 100, np.uint16))


def _identity_model(path, dtype, model_type="Regression"):
    """A graph that returns its input, of ``dtype``, as a regression image."""
    x = helper.make_tensor_value_info("x", dtype, ["N", "H", "W", 1])
    y = helper.make_tensor_value_info("y", dtype, ["N", "H", "W", 1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return convert_onnx(model, path, model_type=model_type)


def test_an_integer_graph_gets_its_input_clipped_and_rounded_with_one_warning(tmp_path):
    """A uint8 graph on 16-bit values wrapped them round (256 read as 0, 260 as 4) without a
    word; an int64 graph cut fractions off."""
    model = open_model(_identity_model(tmp_path / "u8.czann", TensorProto.UINT8))
    ramp = np.array([248.0, 252.0, 256.0, 260.0, -3.0, 2.6], np.float32).reshape(1, 1, 1, 6)
    said = r"takes uint8 and the input has values beyond 0…255 \(clipped to them\) and fractions"
    with pytest.warns(UserWarning, match=f"u8.czann: the model {said}"):
        out = model.predict(ramp)
    assert out.ravel().tolist() == [248, 252, 255, 255, 0, 3]
    with warnings.catch_warnings():  # once a model; values that fit are not warned of
        warnings.simplefilter("error")
        model.predict(ramp)
        fits = open_model(_identity_model(tmp_path / "u8b.czann", TensorProto.UINT8))
        assert fits.predict(np.array([0.0, 7.0, 255.0], np.float32).reshape(1, 1, 1, 3)).ravel(
        ).tolist() == [0, 7, 255]  # fmt: skip


def test_a_graph_answering_nan_on_finite_input_is_warned_of_once(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "H", "W", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "H", "W", 1])
    log = helper.make_node("Log", ["x"], ["y"])  # log of a negative value: NaN
    graph = helper.make_graph([log], "log", [x], [y])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model = open_model(convert_onnx(onnx_model, tmp_path / "log.czann", model_type="Regression"))
    batch = np.array([1.0, -1.0, -2.0, np.nan], np.float32).reshape(1, 1, 1, 4)
    with pytest.warns(UserWarning, match=r"log.czann: the model answered NaN or infinity \(2 of"):
        model.predict(batch)  # the NaN pixel's NaN is the input's, not counted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict(batch)
