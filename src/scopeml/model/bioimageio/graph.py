"""Wrap a bioimage.io ONNX graph for a czann: channels-last in and out, per-pixel steps baked in.

The wrapper feeds the original graph unchanged: ``input`` (``N×[Z×]Y×X×C``) → per-pixel
preprocessing (on the channels-last tensor, so per-channel constants broadcast over the last
axis) → ``Transpose`` (and ``Squeeze`` of a batch or channel axis the model lacks) → the model
→ ``Unsqueeze``/``Transpose`` back to channels-last → per-pixel postprocessing → ``output``.

A graph wrapped here before (a czann imported from bioimage.io, exported again and imported
again) is not wrapped a second time when the wrapping would change nothing: each round trip
added 17 nodes and made the output's channel count dynamic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PREFIX = "scopeml_wrap_"


@dataclass(frozen=True)
class PixelStep:
    """One per-pixel operation: ``op`` is ``scale`` (``x * a + b``), ``clip`` (``a ≤ x ≤ b``),
    ``binarize`` (``x > a``), ``sigmoid`` or ``softmax`` (over channels); ``a``, ``b`` are scalars
    or one value per channel."""

    op: str
    a: tuple[float, ...] = ()
    b: tuple[float, ...] = field(default=())


@dataclass
class _Builder:
    nodes: list[onnx.NodeProto]
    inits: list[onnx.TensorProto]
    opset: int
    prefix: str = PREFIX
    count: int = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, values: Sequence[float] | np.ndarray, dtype: type = np.float32) -> str:
        name = self.name("const")
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    def node(self, op: str, inputs: Sequence[str], hint: str, **attrs: object) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def axes_op(self, op: str, x: str, axes: Sequence[int]) -> str:
        if not axes:
            return x
        if self.opset >= 13:
            return self.node(op, [x, self.const(list(axes), np.int64)], op.lower())
        return self.node(op, [x], op.lower(), axes=list(axes))

    def pixel(self, x: str, step: PixelStep) -> str:
        if step.op == "scale":
            scaled = self.node("Mul", [x, self.const(step.a)], "gain")
            return self.node("Add", [scaled, self.const(step.b)], "offset")
        if step.op == "clip":
            low = self.node("Max", [x, self.const(step.a)], "clip_low")
            return self.node("Min", [low, self.const(step.b)], "clip_high")
        if step.op == "binarize":
            above = self.node("Greater", [x, self.const(step.a)], "above")
            return self.node("Cast", [above], "binary", to=TensorProto.FLOAT)
        if step.op == "sigmoid":
            return self.node("Sigmoid", [x], "sigmoid")
        if step.op == "softmax":
            return self.node("Softmax", [x], "softmax", axis=-1)
        raise ValueError(f"unknown pixel step {step.op!r}")


def channels_last_roles(spatial: Sequence[str]) -> list[str]:
    """``["batch", *spatial, "channel"]``: the czann order."""
    return ["batch", *spatial, "channel"]


def wrap_graph(
    model: onnx.ModelProto,
    *,
    input_roles: Sequence[str],
    output_roles: Sequence[str],
    spatial: Sequence[str],
    input_sizes: Sequence[int | None],
    channels: int,
    pre: Sequence[PixelStep] = (),
    post: Sequence[PixelStep] = (),
    valid_sizes: Sequence[tuple[int, int]] | None = None,
    out_channels: int | None = None,
) -> onnx.ModelProto:
    """The czann graph around ``model``, whose input and output axes are ``input_roles`` and
    ``output_roles`` (``batch``, ``channel``, ``z``, ``y``, ``x``; batch and channel optional).

    ``valid_sizes`` gives ``(min, step)`` per spatial axis for a model that takes only sizes
    ``min + n·step``: the wrapper pads each input with zeros at the end to the next such size
    (as the model's own zero padding would extend it) and crops the output back, so any tile
    size runs, and a tile's core is the same whatever its size when the halo covers the model's
    receptive field. ``out_channels`` (the classes) is declared on the output (``None``: left
    dynamic). A graph this function made (its ``input`` and ``output`` channels-last already)
    that would only be wrapped again in the same way is returned as it is, its input and
    output declared anew (:func:`wrapped_before`).

    Examples
    --------
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, None])
    >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None, None])
    >>> inner = helper.make_model(helper.make_graph(
    ...     [helper.make_node("Neg", ["x"], ["y"])], "g", [x], [y]),
    ...     opset_imports=[helper.make_opsetid("", 17)])
    >>> wrapped = wrap_graph(inner, input_roles=["channel", "y", "x"],
    ...     output_roles=["channel", "y", "x"], spatial=["y", "x"], input_sizes=[None, None],
    ...     channels=1, pre=[PixelStep("scale", (2.0,), (1.0,))])
    >>> import onnxruntime as ort
    >>> session = ort.InferenceSession(wrapped.SerializeToString())
    >>> session.run(None, {"input": np.ones((1, 2, 3, 1), np.float32)})[0].shape
    (1, 2, 3, 1)
    """
    if wrapped_before(model, input_roles, output_roles, spatial, pre, post, valid_sizes):
        return _declared(model, input_sizes, channels, out_channels)  # a round trip: as it was
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inner_input = next(i for i in graph.input if i.name not in initializers)
    inner_output = graph.output[0]
    prefix = _free_prefix(graph)
    build = _Builder([], [], opset, prefix)
    target = channels_last_roles(spatial)

    x = "input"
    for step in pre:
        x = build.pixel(x, step)
    sizes = None
    if valid_sizes is not None:
        x, sizes = _pad_to_valid(build, x, valid_sizes)
    missing = [role for role in ("batch", "channel") if role not in input_roles]
    order = missing + list(input_roles)  # the model's axes, absent ones first, then squeezed
    x = build.node("Transpose", [x], "to_model", perm=[target.index(r) for r in order])
    x = build.axes_op("Squeeze", x, list(range(len(missing))))
    dtype = inner_input.type.tensor_type.elem_type
    if dtype != TensorProto.FLOAT:
        x = build.node("Cast", [x], "cast_in", to=dtype)
    # the model's own tensors are renamed where they would clash with the wrapper's names
    names = {inner_input.name: f"{prefix}model_in", inner_output.name: f"{prefix}model_out"}
    names.setdefault("input", f"{prefix}inner_input")
    names.setdefault("output", f"{prefix}inner_output")
    inner_nodes = [_renamed(node, names) for node in graph.node]
    value_info = [v for v in graph.value_info if v.name not in names]
    build.nodes.append(helper.make_node("Identity", [x], [names[inner_input.name]]))
    pre_nodes = build.nodes
    build.nodes = []

    out_target = _to_czann_output(
        build, names[inner_output.name], inner_output, output_roles, spatial, sizes, post
    )

    dims = [None, *input_sizes, channels]
    new_input = helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)
    out_dims: list[int | None] = [None] * (len(out_target) - 1) + [out_channels]
    new_output = helper.make_tensor_value_info("output", TensorProto.FLOAT, out_dims)
    wrapped = helper.make_graph(
        [*pre_nodes, *inner_nodes, *build.nodes],
        graph.name or "bioimageio",
        [new_input, *[i for i in graph.input if i.name in initializers]],
        [new_output],
        [*graph.initializer, *build.inits],
        value_info=value_info,
    )
    result = helper.make_model(wrapped, opset_imports=list(model.opset_import))
    result.ir_version = model.ir_version
    for entry in model.metadata_props:
        result.metadata_props.append(entry)
    return result


def wrapped_before(
    model: onnx.ModelProto,
    input_roles: Sequence[str],
    output_roles: Sequence[str],
    spatial: Sequence[str],
    pre: Sequence[PixelStep] = (),
    post: Sequence[PixelStep] = (),
    valid_sizes: Sequence[tuple[int, int]] | None = None,
) -> bool:
    """Whether ``model`` is a graph :func:`wrap_graph` made that wrapping it again as asked
    would leave as it is: float32 ``input`` and ``output``, channels-last both as the roles
    say, no pixel steps, and the padding to valid sizes, when asked for, there already (the
    graph then takes any size). A czann exported to bioimage.io keeps its graph, so a
    package made from a czann imported from bioimage.io holds such a graph."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if [i.name for i in inputs] != ["input"] or [o.name for o in graph.output] != ["output"]:
        return False
    made = [name for node in graph.node for name in node.output if name.startswith(PREFIX)]
    if pre or post or not any(re.fullmatch(rf"{PREFIX}\d+_model_in", name) for name in made):
        return False
    out_spatial = [role for role in spatial if role in output_roles]
    if list(input_roles) != channels_last_roles(spatial):
        return False
    if list(output_roles) != channels_last_roles(out_spatial):
        return False
    floats = all(
        v.type.tensor_type.elem_type == TensorProto.FLOAT for v in (inputs[0], graph.output[0])
    )
    padded = any(re.fullmatch(rf"{PREFIX}\d+_padded_\d+", name) for name in made)
    return floats and (valid_sizes is None or padded)


def _declared(
    model: onnx.ModelProto,
    input_sizes: Sequence[int | None],
    channels: int,
    out_channels: int | None,
) -> onnx.ModelProto:
    """A copy of a wrapped graph with ``input`` declared ``N×[Z×]Y×X×C`` at ``input_sizes``
    and the output's last (channel) axis ``out_channels``."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    dims = [None, *input_sizes, channels]
    for value in graph.input:
        if value.name == "input":
            value.CopyFrom(helper.make_tensor_value_info("input", TensorProto.FLOAT, dims))
    rank = len(graph.output[0].type.tensor_type.shape.dim)
    out_dims: list[int | None] = [None] * (rank - 1) + [out_channels]
    graph.output[0].CopyFrom(helper.make_tensor_value_info("output", TensorProto.FLOAT, out_dims))
    return result


def _to_czann_output(
    build: _Builder,
    y: str,
    inner_output: onnx.ValueInfoProto,
    output_roles: Sequence[str],
    spatial: Sequence[str],
    sizes: str | None,
    post: Sequence[PixelStep],
) -> list[str]:
    """Nodes from the model's output ``y`` to the czann ``output``: float32, batch and channel
    added where absent, channels last, the valid-size padding cropped off, then ``post``;
    returns the output's axis roles."""
    if inner_output.type.tensor_type.elem_type != TensorProto.FLOAT:
        y = build.node("Cast", [y], "cast_out", to=TensorProto.FLOAT)
    absent = [role for role in ("batch", "channel") if role not in output_roles]
    y = build.axes_op("Unsqueeze", y, list(range(len(absent))))
    have = absent + list(output_roles)
    out_target = channels_last_roles([role for role in spatial if role in output_roles])
    y = build.node("Transpose", [y], "to_czann", perm=[have.index(r) for r in out_target])
    if sizes is not None and len(out_target) > 2:
        axes = build.const(list(range(1, len(spatial) + 1)), np.int64)
        zeros = build.const([0] * len(spatial), np.int64)
        y = build.node("Slice", [y, zeros, sizes, axes], "crop")
    for step in post:
        y = build.pixel(y, step)
    build.nodes.append(helper.make_node("Identity", [y], ["output"]))
    return out_target


def _renamed(node: onnx.NodeProto, names: dict[str, str]) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.input[:] = [names.get(name, name) for name in node.input]
    copy.output[:] = [names.get(name, name) for name in node.output]
    return copy


def _pad_to_valid(
    build: _Builder, x: str, valid_sizes: Sequence[tuple[int, int]]
) -> tuple[str, str]:
    """Zero-pad the spatial axes of channels-last ``x`` at the end to ``min + n·step``; returns
    the padded tensor and the original spatial sizes (``int64`` vector)."""
    spatial = len(valid_sizes)
    shape = build.node("Shape", [x], "shape")
    index = build.const(list(range(1, spatial + 1)), np.int64)
    size = build.node("Gather", [shape, index], "size", axis=0)
    low = build.const([m for m, _ in valid_sizes], np.int64)
    step = build.const([max(s, 1) for _, s in valid_sizes], np.int64)
    one = build.const([1] * spatial, np.int64)
    at_least = build.node("Max", [size, low], "at_least")
    over = build.node("Sub", [build.node("Add", [build.node("Sub", [at_least, low], "over0"),
                                                 step], "over1"), one], "over2")  # fmt: skip
    count = build.node("Div", [over, step], "count")
    wanted = build.node("Add", [low, build.node("Mul", [count, step], "grow")], "wanted")
    pad = build.node("Sub", [wanted, size], "pad")
    zeros = build.const([0] * (spatial + 2), np.int64)
    edge = build.const([0], np.int64)
    pads = build.node("Concat", [zeros, edge, pad, edge], "pads", axis=0)
    return build.node("Pad", [x, pads], "padded", mode="constant"), size


def _free_prefix(graph: onnx.GraphProto) -> str:
    """A name prefix no tensor of ``graph`` uses (a wrapped graph can be wrapped again)."""
    used = {name for node in graph.node for name in (*node.input, *node.output)}
    used |= {init.name for init in graph.initializer}
    number = 0
    while any(name.startswith(f"{PREFIX}{number}_") for name in used):
        number += 1
    return f"{PREFIX}{number}_"
