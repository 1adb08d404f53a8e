"""A model that is quick on a small probe tile and slow on a large one (for time-budget tests)."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def slow_onnx(*, trips: int, channels: int = 2) -> onnx.ModelProto:
    """``N×Y×X×C → N×Y×X×C``: ``Abs`` applied ``trips`` times in a ``Loop`` (output = input for
    non-negative pixels), so its run time grows with the tile's pixels: on one idle CPU core
    20000 trips take 0.02 s for 32×32 and 1.1 s for 512×512; 100000 trips 0.1 s and 5.4 s."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Abs", ["x_in"], ["x_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("trip", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, None),
        ],
    )
    constants = [
        helper.make_node(
            "Constant", [], ["trips"], value=helper.make_tensor("t", TensorProto.INT64, [], [trips])
        ),
        helper.make_node(
            "Constant", [], ["go"], value=helper.make_tensor("g", TensorProto.BOOL, [], [True])
        ),
    ]
    graph = helper.make_graph(
        [*constants, helper.make_node("Loop", ["trips", "go", "input"], ["output"], body=body)],
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", "Y", "X", channels])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "Y", "X", channels])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
