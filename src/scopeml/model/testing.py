"""Small, seeded U-Net-like ONNX graphs for tests, benchmarks and examples.

The graphs have what makes tiling hard — zero-padded 3×3 convolutions, max-pooling, nearest
upsampling, skip connections and a softmax — at a size that runs in milliseconds. The input is
channels-last like a czann container (``N×Y×X×C`` or ``N×Z×Y×X×C``), spatial dims dynamic.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def unet_receptive_halo(depth: int) -> int:
    """A halo (pixels per side) that covers the receptive field of :func:`tiny_unet_onnx`.

    Two 3×3 convolutions per level at scale ``2**level`` on the way down, at the bottom and on
    the way up, plus the pooling windows; rounded up to the tile step ``2**depth``.
    """
    reach = sum(2 * 2**level for level in range(depth)) * 2 + 2 * 2**depth
    reach += sum(2**level for level in range(depth))
    step = 2**depth
    return -(-reach // step) * step


def tiny_unet_onnx(
    *,
    in_channels: int = 1,
    n_classes: int = 2,
    depth: int = 2,
    width: int = 4,
    spatial_dims: int = 2,
    tile_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> onnx.ModelProto:
    """Build a seeded U-Net-like classifier graph, input ``"input"``, output ``"output"``.

    Parameters
    ----------
    tile_shape
        Fixed spatial input size; ``None`` leaves the spatial dims dynamic.

    Returns
    -------
    onnx.ModelProto
        ``N×[Z×]Y×X×C`` float32 → ``N×[Z×]Y×X×K`` float32 softmax probabilities. Spatial sizes
        must be multiples of ``2**depth``.

    Examples
    --------
    >>> import onnxruntime as ort
    >>> graph = tiny_unet_onnx(in_channels=2, n_classes=3)
    >>> cpu = ["CPUExecutionProvider"]
    >>> session = ort.InferenceSession(graph.SerializeToString(), providers=cpu)
    >>> session.run(None, {"input": np.zeros((1, 16, 16, 2), np.float32)})[0].shape
    (1, 16, 16, 3)
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    g = _Builder(np.random.default_rng(seed), spatial_dims)
    x = g.add("Transpose", "input", perm=[0, spatial_dims + 1, *range(1, spatial_dims + 1)])
    skips, channels = [], in_channels
    for level in range(depth):
        x = g.block(x, channels, width * 2**level)
        channels = width * 2**level
        skips.append((x, channels))
        x = g.add("MaxPool", x, kernel_shape=[2] * spatial_dims, strides=[2] * spatial_dims)
    x = g.block(x, channels, width * 2**depth)
    channels = width * 2**depth
    scales = g.constant(np.array([1, 1] + [2] * spatial_dims, np.float32))
    for skip, skip_channels in reversed(skips):
        up = g.add("Resize", x, "", scales, mode="nearest")
        x = g.block(g.add("Concat", up, skip, axis=1), channels + skip_channels, skip_channels)
        channels = skip_channels
    probs = g.add("Softmax", g.conv(x, channels, n_classes, 1, relu=False), axis=1)
    g.nodes.append(
        helper.make_node("Transpose", [probs], ["output"], perm=[0, *range(2, spatial_dims + 2), 1])
    )

    spatial = list(tile_shape) if tile_shape else [f"d{i}" for i in range(spatial_dims)]
    graph = helper.make_graph(
        g.nodes,
        "tiny_unet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *spatial, in_channels])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *spatial, n_classes])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="scopeml.model.testing"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class _Builder:
    """Nodes and seeded initializers of a small channels-first conv graph, named uniquely."""

    def __init__(self, rng: np.random.Generator, spatial_dims: int) -> None:
        self.rng, self.spatial_dims = rng, spatial_dims
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.counter = iter(range(10**6))

    def name(self, prefix: str) -> str:
        return f"{prefix}_{next(self.counter)}"

    def add(self, op: str, *inputs: str, **attributes: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attributes))
        return out

    def constant(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def conv(self, x: str, c_in: int, c_out: int, kernel: int, relu: bool = True) -> str:
        dims = self.spatial_dims
        std = np.sqrt(2.0 / (c_in * kernel**dims))
        w = self.rng.normal(0, std, (c_out, c_in) + (kernel,) * dims).astype(np.float32)
        b = self.rng.normal(0, 0.1, c_out).astype(np.float32)
        out = self.add(
            "Conv", x, self.constant(w, "w"), self.constant(b, "b"), pads=[kernel // 2] * (2 * dims)
        )
        return self.add("Relu", out) if relu else out

    def block(self, x: str, c_in: int, c_out: int) -> str:
        return self.conv(self.conv(x, c_in, c_out, 3), c_out, c_out, 3)


def tiny_czann(folder: str | os.PathLike[str] | None = None) -> Path:
    """``m.czann`` in ``folder`` (default: a new temporary folder): :func:`tiny_unet_onnx` as a
    two-class (``bg``, ``fg``) segmentation container with a 16-pixel overlap; the one
    example model of the doctests.

    Examples
    --------
    >>> from scopeml.model import read_container
    >>> read_container(tiny_czann()).metadata.classes
    ('bg', 'fg')
    """
    from scopeml.model.container import write_container
    from scopeml.model.metadata import ModelMetadata

    meta = ModelMetadata(model_type="MultiClassSemanticSegmentation",
        input_shape=(64, 64, 1), output_shape=(64, 64, 2), classes=("bg", "fg"),
        min_overlap=(16, 16))  # fmt: skip
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp())
    return write_container(folder / "m.czann", tiny_unet_onnx(), meta, overwrite=True)


def _image_model(nodes: list[onnx.NodeProto], name: str, channels: int, classes: int):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", "Y", "X", channels])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "Y", "X", classes])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="scopeml.model.testing"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def endless_loop_onnx(
    *, channels: int = 2, trips: int = 2**62, body_op: str = "Identity"
) -> onnx.ModelProto:
    """A hostile graph of a few hundred bytes: its output is its input after ``trips`` no-ops.

    A ``Loop`` whose body passes the image through unchanged; with the default 2**62 trips it
    never ends, which is what the per-call time budget is for. ``N×Y×X×C → N×Y×X×C``.
    ``body_op="Abs"`` (the identity on non-negative pixels) makes each trip cost time in
    proportion to the tile's pixels: a model quick on a small tile and slow on a large one.

    Examples
    --------
    >>> import onnxruntime as ort
    >>> graph = endless_loop_onnx(trips=3)
    >>> cpu = ["CPUExecutionProvider"]
    >>> session = ort.InferenceSession(graph.SerializeToString(), providers=cpu)
    >>> session.run(None, {"input": np.ones((1, 4, 4, 2), np.float32)})[0].sum()
    np.float32(32.0)
    """
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node(body_op, ["x_in"], ["x_out"]),
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
    trip = helper.make_tensor("trips", TensorProto.INT64, [], [trips])
    keep_going = helper.make_tensor("go", TensorProto.BOOL, [], [True])
    nodes = [
        helper.make_node("Constant", [], ["trips"], value=trip),
        helper.make_node("Constant", [], ["go"], value=keep_going),
        helper.make_node("Loop", ["trips", "go", "input"], ["output"], body=body),
    ]
    return _image_model(nodes, "endless_loop", channels, channels)


def allocating_onnx(
    *, channels: int = 1, elements: int = 425 * 2**20, data_dependent: bool = False
) -> onnx.ModelProto:
    """A hostile graph of a few hundred bytes that allocates ``elements`` float32 values.

    ``ConstantOfShape`` fills a ``1×elements`` tensor (1.7 GB by default) whose sum is added to
    the input, so the output is the input (plus 0) and the allocation cannot be optimised away.
    ``data_dependent`` adds the input's largest value to the count (as a float), so no shape
    inference can size the tensor before the graph runs.

    Examples
    --------
    >>> import onnxruntime as ort
    >>> graph = allocating_onnx(elements=10)
    >>> cpu = ["CPUExecutionProvider"]
    >>> session = ort.InferenceSession(graph.SerializeToString(), providers=cpu)
    >>> session.run(None, {"input": np.ones((1, 2, 2, 1), np.float32)})[0].ravel().tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, elements])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    nodes = [helper.make_node("Constant", [], ["shape"], value=shape)]
    if data_dependent:
        nodes[0].output[0] = "fixed"
        nodes += [
            helper.make_node("ReduceMax", ["input"], ["peak"], keepdims=0),
            helper.make_node("Cast", ["peak"], ["peak_int"], to=TensorProto.INT64),
            helper.make_node("Add", ["fixed", "peak_int"], ["shape"]),
        ]
    nodes += [
        helper.make_node("ConstantOfShape", ["shape"], ["big"], value=zero),
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
        helper.make_node("Add", ["input", "total"], ["output"]),
    ]
    return _image_model(nodes, "allocating", channels, channels)
