"""Look into and edit ONNX graphs: shapes, tile step, prepended pre-processing, spatial dims.

Graphs here are channels-last like czann models (``N×Y×X×C`` or ``N×Z×Y×X×C``). Sizes that the
graph leaves open are ``None``.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scopeml.errors import InvalidRequestError

#: Pre-processing steps :func:`prepend_preprocessing` knows, with the argument they take.
PREPROCESSING_STEPS = {
    "rgb2bgr": "reverse the channel order (RGB <-> BGR)",
    "bgr2rgb": "reverse the channel order (same as rgb2bgr)",
    "standardize": "per-image standardisation: (x - mean) / max(std, 1/sqrt(n))",
    "scale": "divide by a maximum value, e.g. scale:255 maps [0, 255] to [0, 1]",
}

#: Environment variable with the largest tensor (bytes) a graph may make.
MEMORY_LIMIT_ENV = "SCOPEML_MODEL_MEMORY_LIMIT"
#: Largest tensor a graph may make when nothing else is set: 1 GiB.
DEFAULT_MEMORY_LIMIT = 2**30

_DOWNSAMPLING_OPS = {"MaxPool", "AveragePool", "LpPool", "Conv", "ConvInteger", "QLinearConv"}


@dataclass(frozen=True)
class GraphInfo:
    """What the tiling engine and the metadata need from a graph.

    Attributes
    ----------
    input_name, output_name
        The one real graph input and the first output.
    input_shape, output_shape
        Sizes without the batch axis, channels last; ``None`` for a dynamic size.
    tile_step
        Per spatial axis, the product of the strides of pooling and strided convolutions.
    opset
        Version of the default ONNX operator set.
    batch
        The input's fixed batch size (a graph exported without dynamic shapes takes 1 image
        at a time), or ``None`` where any batch is taken.
    """

    input_name: str
    output_name: str
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    tile_step: tuple[int, ...]
    opset: int
    input_dtype: int = TensorProto.FLOAT
    batch: int | None = None

    @property
    def spatial_dims(self) -> int:
        return len(self.input_shape) - 1

    @property
    def spatial_input(self) -> tuple[int | None, ...]:
        return self.input_shape[:-1]

    @property
    def fixed_spatial(self) -> tuple[int, ...] | None:
        """The fixed spatial input size, or ``None`` if any spatial size is dynamic."""
        spatial = self.spatial_input
        return None if any(size is None for size in spatial) else tuple(spatial)  # type: ignore[misc]


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int | None, ...] | None:
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(dim.dim_value if dim.dim_value > 0 else None for dim in tensor.shape.dim)


def _real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    initializers = {init.name for init in graph.initializer}
    return [value for value in graph.input if value.name not in initializers]


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default (``ai.onnx``) operator set, 0 when there is none."""
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return opset.version
    return 0


def inspect_graph(model: onnx.ModelProto) -> GraphInfo:
    """Read input/output shapes and the tile step of a channels-last image model.

    Raises
    ------
    ValueError
        When the graph has not exactly one real input, no output, an input of rank other than
        4 or 5, or shapes that are not declared.

    Examples
    --------
    >>> from scopeml.model.testing import tiny_unet_onnx
    >>> info = inspect_graph(tiny_unet_onnx(in_channels=2, n_classes=3, depth=2))
    >>> info.input_shape, info.output_shape, info.tile_step
    ((None, None, 2), (None, None, 3), (4, 4))
    """
    graph = model.graph
    inputs = _real_inputs(graph)
    if len(inputs) != 1:
        raise ValueError(f"the graph has {len(inputs)} inputs; an image model has exactly 1")
    if not graph.output:
        raise ValueError("the graph has no output")
    in_dims = _dims(inputs[0])
    if in_dims is None or len(in_dims) not in (4, 5):
        rank = "no declared" if in_dims is None else f"a rank-{len(in_dims)}"
        raise ValueError(
            f"the graph input {inputs[0].name!r} has {rank} shape; expected N×Y×X×C or N×Z×Y×X×C"
        )
    out_dims = _dims(graph.output[0])
    if out_dims is None or any(size is None for size in out_dims[1:]):
        out_dims = _inferred_output_dims(model) or out_dims
    if out_dims is None or len(out_dims) < 2:
        raise ValueError(f"the graph output {graph.output[0].name!r} has no usable shape")
    spatial = len(in_dims) - 2
    return GraphInfo(
        input_name=inputs[0].name,
        output_name=graph.output[0].name,
        input_shape=in_dims[1:],
        output_shape=out_dims[1:],
        tile_step=graph_tile_step(model, spatial),
        opset=default_opset(model),
        input_dtype=inputs[0].type.tensor_type.elem_type,
        batch=in_dims[0],
    )


def _inferred_output_dims(model: onnx.ModelProto) -> tuple[int | None, ...] | None:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is a best effort: any failure leaves the declared shape
        return None
    return _dims(inferred.graph.output[0]) if inferred.graph.output else None


def graph_tile_step(model: onnx.ModelProto, spatial_dims: int) -> tuple[int, ...]:
    """Product of the spatial strides of pooling and strided convolution nodes, per axis.

    For a U-Net of depth ``d`` that is ``2**d``: tiles whose sizes are multiples of it pool
    and upsample back without rounding. A graph without strides has step 1.
    """
    step = [1] * spatial_dims
    for node in _all_nodes(model.graph):
        if node.op_type not in _DOWNSAMPLING_OPS:
            continue
        for attribute in node.attribute:
            if attribute.name == "strides" and len(attribute.ints) == spatial_dims:
                step = [
                    size * int(stride) for size, stride in zip(step, attribute.ints, strict=True)
                ]
    return tuple(max(size, 1) for size in step)


def _all_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _all_nodes(subgraph)


def parse_preprocessing(spec: str | Sequence[str]) -> list[tuple[str, float | None]]:
    """Parse ``"rgb2bgr,standardize,scale:255"`` into ``[(name, argument), ...]``.

    Examples
    --------
    >>> parse_preprocessing("rgb2bgr,scale:255")
    [('rgb2bgr', None), ('scale', 255.0)]
    """
    items = [item.strip() for item in spec.split(",")] if isinstance(spec, str) else list(spec)
    steps: list[tuple[str, float | None]] = []
    for item in items:
        if not item:
            continue
        name, _, argument = item.partition(":")
        name = name.strip().lower()
        if name not in PREPROCESSING_STEPS:
            known = ", ".join(PREPROCESSING_STEPS)
            raise ValueError(f"unknown pre-processing step {item!r}; known: {known}")
        if name == "scale":
            try:
                value = float(argument)
            except ValueError as err:
                raise ValueError(
                    f"scale needs a maximum value, e.g. scale:255; got {item!r}"
                ) from err
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"scale maximum must be positive, got {value}")
            steps.append((name, value))
        elif argument:
            raise ValueError(f"pre-processing step {name!r} takes no argument; got {item!r}")
        else:
            steps.append((name, None))
    return steps


def prepend_preprocessing(model: onnx.ModelProto, steps: str | Sequence[str]) -> onnx.ModelProto:
    """Return a copy of ``model`` whose input passes through ``steps`` first.

    The steps run in the order given on the channels-last input, so the container keeps the
    same input name and shape. ``standardize`` computes statistics of each image it sees, as
    ``tf.image.per_image_standardization`` does; on tiles that breaks exact tiling, so scopeml's
    own models bake fixed normalisation values instead.

    Examples
    --------
    >>> import onnxruntime as ort
    >>> from scopeml.model.testing import tiny_unet_onnx
    >>> graph = prepend_preprocessing(tiny_unet_onnx(in_channels=3), "rgb2bgr,scale:255")
    >>> cpu = ["CPUExecutionProvider"]
    >>> session = ort.InferenceSession(graph.SerializeToString(), providers=cpu)
    >>> session.run(None, {"input": np.zeros((1, 8, 8, 3), np.float32)})[0].shape
    (1, 8, 8, 2)
    """
    parsed = parse_preprocessing(steps)
    result = onnx.ModelProto()
    result.CopyFrom(model)
    if not parsed:
        return result
    info = inspect_graph(result)
    graph = result.graph
    rank = len(info.input_shape) + 1
    opset = info.opset
    channels = info.input_shape[-1]
    internal = f"{info.input_name}__preprocessed"
    _rename_input(graph, info.input_name, internal)

    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    current = info.input_name
    for index, (name, argument) in enumerate(parsed):
        prefix = f"scopeml_pre{index}_{name}"
        out = internal if index == len(parsed) - 1 else f"{prefix}_out"
        if name in ("rgb2bgr", "bgr2rgb"):
            if channels is None:
                raise ValueError("rgb2bgr needs a graph input with a fixed channel count")
            order = np.arange(channels - 1, -1, -1, dtype=np.int64)
            initializers.append(numpy_helper.from_array(order, f"{prefix}_order"))
            nodes.append(
                helper.make_node("Gather", [current, f"{prefix}_order"], [out], axis=rank - 1)
            )
        elif name == "scale":
            scale = np.array(argument, np.float32)
            initializers.append(numpy_helper.from_array(scale, f"{prefix}_max"))
            nodes.append(helper.make_node("Div", [current, f"{prefix}_max"], [out]))
        else:  # standardize
            nodes.extend(_standardize_nodes(current, out, prefix, rank, opset, initializers))
        current = out
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)
    graph.initializer.extend(initializers)
    del graph.value_info[:]
    onnx.checker.check_model(result)
    return result


def _reduce_mean(x: str, out: str, axes: list[int], opset: int, prefix: str, inits: list):
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), f"{prefix}_axes"))
        return helper.make_node("ReduceMean", [x, f"{prefix}_axes"], [out], keepdims=1)
    return helper.make_node("ReduceMean", [x], [out], axes=axes, keepdims=1)


def _standardize_nodes(
    x: str, out: str, prefix: str, rank: int, opset: int, inits: list
) -> list[onnx.NodeProto]:
    axes = list(range(1, rank))
    p = prefix
    zero = np.array([0], np.int64)
    inits.append(numpy_helper.from_array(zero, f"{p}_zero"))
    return [
        _reduce_mean(x, f"{p}_mean", axes, opset, f"{p}_m", inits),
        helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_centred"]),
        helper.make_node("Mul", [f"{p}_centred", f"{p}_centred"], [f"{p}_sq"]),
        _reduce_mean(f"{p}_sq", f"{p}_var", axes, opset, f"{p}_v", inits),
        helper.make_node("Sqrt", [f"{p}_var"], [f"{p}_std"]),
        # n = elements per image = Size(x) / N; the std floor is 1 / sqrt(n)
        helper.make_node("Size", [x], [f"{p}_size"]),
        helper.make_node("Shape", [x], [f"{p}_shape"]),
        helper.make_node("Gather", [f"{p}_shape", f"{p}_zero"], [f"{p}_batch"], axis=0),
        helper.make_node("Div", [f"{p}_size", f"{p}_batch"], [f"{p}_n_int"]),
        helper.make_node("Cast", [f"{p}_n_int"], [f"{p}_n"], to=TensorProto.FLOAT),
        helper.make_node("Sqrt", [f"{p}_n"], [f"{p}_sqrt_n"]),
        helper.make_node("Reciprocal", [f"{p}_sqrt_n"], [f"{p}_floor"]),
        helper.make_node("Max", [f"{p}_std", f"{p}_floor"], [f"{p}_denom"]),
        helper.make_node("Div", [f"{p}_centred", f"{p}_denom"], [out]),
    ]


def _rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = new
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                _rename_input(attribute.g, old, new)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    _rename_input(subgraph, old, new)
    for output in graph.output:
        if output.name == old:
            raise ValueError(f"the graph input {old!r} is also an output; cannot prepend steps")


def set_spatial_dims(
    model: onnx.ModelProto, spatial_shape: Sequence[int] | None
) -> onnx.ModelProto:
    """Return a copy of ``model`` with fixed (``spatial_shape``) or dynamic (``None``) sizes.

    Only the declared input and output shapes change (the output where its rank matches the
    input's); intermediate shape annotations are dropped so they cannot contradict.

    Examples
    --------
    >>> from scopeml.model.testing import tiny_unet_onnx
    >>> fixed = set_spatial_dims(tiny_unet_onnx(), (64, 32))
    >>> inspect_graph(fixed).input_shape
    (64, 32, 1)
    >>> inspect_graph(set_spatial_dims(fixed, None)).input_shape
    (None, None, 1)
    """
    result = onnx.ModelProto()
    result.CopyFrom(model)
    info = inspect_graph(result)
    spatial = info.spatial_dims
    if spatial_shape is not None:
        spatial_shape = tuple(int(size) for size in spatial_shape)
        if len(spatial_shape) != spatial or any(size < 1 for size in spatial_shape):
            raise ValueError(
                f"spatial shape {list(spatial_shape)} must be {spatial} sizes >= 1 for this graph"
            )
    graph = result.graph
    value_infos = [value for value in _real_inputs(graph) if value.name == info.input_name]
    value_infos += [
        value
        for value in graph.output
        if (dims := _dims(value)) is not None and len(dims) == spatial + 2
    ]
    for value in value_infos:
        dims = value.type.tensor_type.shape.dim
        for axis in range(spatial):
            dim = dims[axis + 1]
            if spatial_shape is None:
                dim.Clear()
                dim.dim_param = f"spatial_{axis}"
            else:
                dim.Clear()
                dim.dim_value = spatial_shape[axis]
    del graph.value_info[:]
    return result


def to_channels_last(model: onnx.ModelProto) -> onnx.ModelProto:
    """Wrap a channels-first graph (``N×C×[Z×]Y×X``, as PyTorch exports) to be channels-last.

    A ``Transpose`` is put before the input and after each output of the input's rank, so the
    container speaks NHWC like every czann; names stay the same.

    Examples
    --------
    >>> from onnx import helper, TensorProto
    >>> node = helper.make_node("Relu", ["x"], ["y"])
    >>> graph = helper.make_graph([node], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 16])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 16])])
    >>> wrapped = to_channels_last(helper.make_model(graph))
    >>> inspect_graph(wrapped).input_shape
    (8, 16, 3)
    """
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    inputs = _real_inputs(graph)
    if len(inputs) != 1:
        raise ValueError(f"the graph has {len(inputs)} inputs; an image model has exactly 1")
    source = inputs[0]
    in_dims = _dims(source)
    if in_dims is None or len(in_dims) not in (4, 5):
        raise ValueError(f"the graph input {source.name!r} must have rank 4 or 5")
    rank = len(in_dims)
    to_first = [0, rank - 1, *range(1, rank - 1)]
    to_last = [0, *range(2, rank), 1]
    internal = f"{source.name}__channels_first"
    _rename_input(graph, source.name, internal)
    head = helper.make_node("Transpose", [source.name], [internal], perm=to_first)
    tail = []
    for output in graph.output:
        dims = _dims(output)
        if dims is None or len(dims) != rank:
            continue
        produced = f"{output.name}__channels_first"
        for node in _all_nodes(graph):
            for index, name in enumerate(node.output):
                if name == output.name:
                    node.output[index] = produced
        for node in graph.node:
            for index, name in enumerate(node.input):
                if name == output.name:
                    node.input[index] = produced
        tail.append(helper.make_node("Transpose", [produced], [output.name], perm=to_last))
        _permute_dims(output, to_last)
    _permute_dims(source, to_last)
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([head, *existing, *tail])
    del graph.value_info[:]
    return result


def softmax_channels_last(model: onnx.ModelProto) -> bool:
    """Turn ``Softmax`` over channels, then ``Transpose`` to channels last, into the transpose
    first and the softmax over the last axis, in place; whether any pair was turned.

    The same numbers, bit for bit: ONNX Runtime computes a softmax over any axis but the last
    by transposing, a last-axis softmax and transposing back: 11 % of the shipped ``nuclei``
    model's time, where PyTorch exports (``softmax(dim=1)``, then channels last) put it. Before
    opset 13 a softmax over axis 1 covered all of C×Y×X, so those graphs are left as they are.

    Examples
    --------
    >>> from scopeml.model.testing import tiny_unet_onnx
    >>> model = tiny_unet_onnx()
    >>> softmax_channels_last(model), [node.op_type for node in model.graph.node[-2:]]
    (True, ['Transpose', 'Softmax'])
    >>> softmax_channels_last(model)
    False
    """
    if default_opset(model) < 13:
        return False
    graph = model.graph
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            readers.setdefault(name, []).append(index)
    read_anywhere = Counter(name for node in _all_nodes(graph) for name in node.input)
    outputs = {output.name for output in graph.output}
    retired: set[str] = set()
    for index, softmax in enumerate(list(graph.node)):
        if softmax.op_type != "Softmax" or softmax.domain not in ("", "ai.onnx"):
            continue
        probabilities = softmax.output[0]
        after = readers.get(probabilities, [])
        if len(after) != 1 or read_anywhere[probabilities] != 1 or probabilities in outputs:
            continue  # also read by a subgraph, or wanted as it is
        transpose = graph.node[after[0]]
        perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), [])
        axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
        if transpose.op_type != "Transpose" or transpose.domain not in ("", "ai.onnx"):
            continue
        rank = len(perm)  # of an image tensor: 4 or 5
        if rank not in (4, 5) or perm != [0, *range(2, rank), 1] or axis not in (1, 1 - rank):
            continue
        first, then = onnx.NodeProto(), onnx.NodeProto()
        first.CopyFrom(transpose)
        then.CopyFrom(softmax)
        middle = f"{transpose.output[0]}__before_softmax"
        while middle in read_anywhere or middle in outputs:  # other names: read or an output
            middle += "_"
        first.input[0], first.output[0] = softmax.input[0], middle
        then.input[0], then.output[0] = middle, transpose.output[0]
        del then.attribute[:]
        then.attribute.append(helper.make_attribute("axis", -1))
        graph.node[index].CopyFrom(first)  # the transpose now runs where the softmax ran
        graph.node[after[0]].CopyFrom(then)
        retired.add(probabilities)
    if retired:  # shapes recorded for the names the swap retired (channels first) go too
        kept = [value for value in graph.value_info if value.name not in retired]
        del graph.value_info[:]
        graph.value_info.extend(kept)
    return bool(retired)


def _permute_dims(value: onnx.ValueInfoProto, perm: list[int]) -> None:
    dims = value.type.tensor_type.shape.dim
    copies = []
    for axis in perm:
        copy = onnx.TensorShapeProto.Dimension()
        copy.CopyFrom(dims[axis])
        copies.append(copy)
    for dim, copy in zip(dims, copies, strict=True):
        dim.CopyFrom(copy)


def resolve_memory_limit(memory_limit: int | None = None) -> int:
    """Bytes: ``memory_limit``, else ``$SCOPEML_MODEL_MEMORY_LIMIT``, else 1 GiB.

    Examples
    --------
    >>> resolve_memory_limit(1000)
    1000
    """
    if memory_limit is None:
        text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
        if not text:
            return DEFAULT_MEMORY_LIMIT
        try:
            memory_limit = int(float(text))
        except ValueError as err:
            raise InvalidRequestError(f"{MEMORY_LIMIT_ENV} must be bytes, got {text!r}") from err
    if memory_limit < 1:
        raise InvalidRequestError(f"the memory limit must be >= 1 byte, got {memory_limit}")
    return int(memory_limit)


def largest_tensor(
    model: onnx.ModelProto, input_shape: Sequence[int] | None = None
) -> tuple[str | None, int]:
    """Name and size in bytes of the largest tensor whose size shape inference can tell.

    ``input_shape`` fixes the graph input (``N×[Z×]Y×X×C``) for the inference; ``None`` keeps
    its dynamic sizes, so only tensors of constant shape count. Shapes come from ONNX shape
    inference with data propagation, so a ``ConstantOfShape``, ``Tile`` or ``Expand`` to a huge
    constant shape is sized without being run (ONNX Runtime would constant-fold it into memory
    when it builds the session). Pass a graph without weights (``graph_skeleton``) to keep
    this cheap; ``model`` is not changed.

    Examples
    --------
    >>> from scopeml.model.testing import allocating_onnx
    >>> largest_tensor(allocating_onnx(elements=1000), (1, 8, 8, 1))
    ('big', 4000)
    """
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    if input_shape is not None:
        for value in _real_inputs(fixed.graph)[:1]:
            dims = value.type.tensor_type.shape.dim
            if len(dims) == len(input_shape):
                for dim, size in zip(dims, input_shape, strict=True):
                    dim.Clear()
                    dim.dim_value = int(size)
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # inference is a best effort on odd graphs; runs are still time-bounded
        inferred = fixed
    best: tuple[str | None, int] = (None, 0)
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        size = _tensor_bytes(value)
        if size > best[1]:
            best = (value.name, size)
    return best


def _tensor_bytes(value: onnx.ValueInfoProto) -> int:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape") or not tensor.elem_type:
        return 0
    dims = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim]
    if any(size < 0 for size in dims):
        return 0
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
    except (KeyError, TypeError, ValueError):
        itemsize = 8
    return math.prod(dims) * itemsize
