"""Graph inspection and editing: tile step, pre-processing, spatial dims, channels-last wrap,
the softmax turned to the last axis."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from scopeml.model.graph import (
    inspect_graph,
    parse_preprocessing,
    prepend_preprocessing,
    set_spatial_dims,
    softmax_channels_last,
    to_channels_last,
)
from scopeml.model.runtime import session_bytes
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import run_onnx


def identity_graph(shape: list, opset: int = 18) -> onnx.ModelProto:
    """``input`` → Identity → ``output``: shows exactly what the prepended steps compute."""
    node = helper.make_node("Identity", ["input"], ["output"])
    graph = helper.make_graph(
        [node],
        "identity",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def standardize(image: np.ndarray) -> np.ndarray:
    """``tf.image.per_image_standardization`` in numpy, per image of an N×... batch."""
    axes = tuple(range(1, image.ndim))
    mean = image.mean(axis=axes, keepdims=True)
    std = image.std(axis=axes, keepdims=True)
    floor = 1.0 / np.sqrt(np.prod(image.shape[1:]))
    return (image - mean) / np.maximum(std, floor)


@pytest.mark.parametrize("opset", [13, 18])
def test_preprocessing_equals_the_numpy_reference(opset):
    rng = np.random.default_rng(1)
    batch = rng.uniform(0, 255, (2, 6, 10, 3)).astype(np.float32)
    batch[1] = 7.0  # a constant image: std 0, the floor keeps it finite
    graph = identity_graph(["N", "H", "W", 3], opset)
    cases = {
        "rgb2bgr": batch[..., ::-1],
        "scale:255": batch / 255,
        "standardize": standardize(batch),
        "rgb2bgr,scale:255": batch[..., ::-1] / 255,
        "scale:255,standardize": standardize(batch / 255),
    }
    for steps, expected in cases.items():
        got = run_onnx(prepend_preprocessing(graph, steps).SerializeToString(), batch)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=steps)
    assert np.all(
        np.isfinite(
            run_onnx(prepend_preprocessing(graph, "standardize").SerializeToString(), batch)
        )
    )


def test_preprocessing_runs_before_the_model():
    unet = tiny_unet_onnx(in_channels=3, n_classes=2, seed=4)
    batch = np.random.default_rng(2).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    wrapped = prepend_preprocessing(unet, ["bgr2rgb", "scale:255"])
    assert inspect_graph(wrapped).input_shape == (None, None, 3)
    expected = run_onnx(unet.SerializeToString(), batch[..., ::-1] / 255)
    np.testing.assert_allclose(run_onnx(wrapped.SerializeToString(), batch), expected, atol=1e-6)


@pytest.mark.parametrize(
    "spec", ["flip", "scale", "scale:0", "scale:x", "rgb2bgr:1", "standardize:2"]
)
def test_bad_preprocessing_specs(spec):
    with pytest.raises(ValueError):
        parse_preprocessing(spec)


def test_rgb2bgr_needs_a_known_channel_count():
    with pytest.raises(ValueError, match="channel count"):
        prepend_preprocessing(identity_graph(["N", "H", "W", "C"]), "rgb2bgr")


def test_set_spatial_dims_fixed_and_dynamic_in_the_onnx_shapes():
    fixed = set_spatial_dims(tiny_unet_onnx(n_classes=3), (32, 48))

    def dims(value):
        return [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]

    assert dims(fixed.graph.input[0]) == ["N", 32, 48, 1]
    assert dims(fixed.graph.output[0]) == ["N", 32, 48, 3]
    onnx.checker.check_model(fixed, full_check=True)
    dynamic = set_spatial_dims(fixed, None)
    assert dims(dynamic.graph.input[0]) == ["N", "spatial_0", "spatial_1", 1]
    batch = np.zeros((1, 16, 24, 1), np.float32)
    assert run_onnx(dynamic.SerializeToString(), batch).shape == (1, 16, 24, 3)
    with pytest.raises(ValueError, match="2 sizes"):
        set_spatial_dims(fixed, (8, 8, 8))


@pytest.mark.parametrize(("depth", "dims"), [(0, 2), (1, 2), (3, 2), (2, 3)])
def test_tile_step_is_two_to_the_depth(depth, dims):
    info = inspect_graph(tiny_unet_onnx(depth=depth, spatial_dims=dims))
    assert info.tile_step == (2**depth,) * dims
    assert info.spatial_dims == dims and info.fixed_spatial is None


def test_inspect_refuses_non_image_graphs():
    with pytest.raises(ValueError, match="rank-2"):
        inspect_graph(identity_graph(["N", 5]))
    two_inputs = identity_graph(["N", 4, 4, 1])
    two_inputs.graph.input.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, [1]))
    with pytest.raises(ValueError, match="2 inputs"):
        inspect_graph(two_inputs)


def test_to_channels_last_wraps_a_channels_first_graph():
    # a channels-first 1×1 convolution mixing 2 channels into 3, like a PyTorch export
    weights = np.arange(6, dtype=np.float32).reshape(3, 2, 1, 1)
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "nchw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        initializer=[onnx.numpy_helper.from_array(weights, "w")],
    )
    nchw = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    nhwc = to_channels_last(nchw)
    info = inspect_graph(nhwc)
    assert (info.input_name, info.output_name) == ("x", "y")
    assert info.input_shape == (None, None, 2) and info.output_shape == (None, None, 3)
    batch = np.random.default_rng(0).normal(size=(2, 2, 5, 7)).astype(np.float32)
    expected = run_onnx(nchw.SerializeToString(), batch)
    got = run_onnx(nhwc.SerializeToString(), np.moveaxis(batch, 1, -1))
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), expected, rtol=1e-6)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_softmax_turned_to_the_last_axis_gives_the_same_bits(spatial_dims: int):
    model = tiny_unet_onnx(in_channels=2, n_classes=3, depth=2, spatial_dims=spatial_dims)
    before = model.SerializeToString()
    assert softmax_channels_last(model)
    assert [node.op_type for node in model.graph.node[-2:]] == ["Transpose", "Softmax"]
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(spatial_dims)
    batch = rng.normal(0, 3, (2, *(8,) * (spatial_dims - 2), 16, 24, 2)).astype(np.float32)
    expected = run_onnx(before, batch)
    np.testing.assert_array_equal(run_onnx(model.SerializeToString(), batch), expected)
    np.testing.assert_array_equal(run_onnx(session_bytes(before), batch), expected)
    assert not softmax_channels_last(model)  # turned once


def softmax_then_transpose(axis: int, perm: list[int], *, opset: int = 17, read_twice=False):
    """``x`` (N×C×Y×X) → Softmax(axis) → Transpose(perm) → ``y``; ``read_twice``: the
    probabilities are a graph output too."""
    nodes = [
        helper.make_node("Softmax", ["x"], ["p"], axis=axis),
        helper.make_node("Transpose", ["p"], ["y"], perm=perm),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if read_twice:
        outputs.append(helper.make_tensor_value_info("p", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])], outputs
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(
    "axis, perm, opset, read_twice",
    [
        (-1, [0, 2, 3, 1], 17, False),  # over X, not the channels
        (1, [0, 3, 2, 1], 17, False),  # not to channels last
        (1, [0, 2, 3, 1], 11, False),  # before opset 13 axis 1 meant all of C×Y×X
        (1, [0, 2, 3, 1], 17, True),  # the channels-first probabilities are wanted too
    ],
)
def test_other_softmaxes_are_left_as_they_are(axis, perm, opset, read_twice):
    model = softmax_then_transpose(axis, perm, opset=opset, read_twice=read_twice)
    before = model.SerializeToString()
    assert not softmax_channels_last(model)
    assert model.SerializeToString() == before
    assert session_bytes(before) is before


def test_a_softmax_over_channels_minus_three_is_turned_too():
    model = softmax_then_transpose(-3, [0, 2, 3, 1])
    batch = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32)
    expected = run_onnx(model.SerializeToString(), batch)
    assert softmax_channels_last(model)
    np.testing.assert_array_equal(run_onnx(model.SerializeToString(), batch), expected)


def test_a_softmax_a_subgraph_also_reads_is_left_as_it_is():
    model = softmax_then_transpose(1, [0, 2, 3, 1])
    branch = [
        helper.make_graph(
            [helper.make_node("Identity", ["p"], [f"z_{name}"])],
            name,
            [],
            [helper.make_tensor_value_info(f"z_{name}", TensorProto.FLOAT, None)],
        )
        for name in ("then", "other")
    ]
    graph = model.graph
    graph.input.append(helper.make_tensor_value_info("flag", TensorProto.BOOL, []))
    graph.node.append(
        helper.make_node("If", ["flag"], ["z"], then_branch=branch[0], else_branch=branch[1])
    )
    graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    before = model.SerializeToString()
    assert not softmax_channels_last(model)
    assert model.SerializeToString() == before
