"""A feature network: an ONNX graph with named taps, opened once into an ONNX Runtime session.

Sources: ``vgg16`` / ``vgg19`` (torchvision's ImageNet weights, fetched on first use),
``vgg16-random`` / ``vgg19-random`` (torchvision's initialisation, seeded; for testing and for
machines without internet), a built-in model by name (``nuclei``: its shipped ``.czann``), or the
path of any ``.onnx`` graph or ``.czann`` container whose intermediate tensors (node outputs, by
name) are exposed as outputs by graph surgery.

What a tap needs to be exact tile by tile is read from the graph, not guessed: its *stride* and
channel axis by two probe runs of different sizes, its *receptive field* by walking the
convolutions and poolings it depends on (a safe over-estimate for branching graphs).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scopeml.errors import (
    IncompatibleModelError,
    InvalidContainerError,
    InvalidRequestError,
    summarize,
)
from scopeml.features import _vgg
from scopeml.io.replace import write_atomically
from scopeml.model.graph import graph_tile_step

BUILTIN = {f"{arch}{suffix}" for arch in _vgg.CFGS for suffix in ("", "-random")}
#: Longest side of the probe runs that measure strides (a tap's stride must divide it).
_PROBES = (64, 96)
#: A network up to this size (ONNX bytes) is kept with its session, so a classifier trained
#: on it can carry it (see :func:`scopeml.pixel.save_classifier`).
EMBED_MAX_BYTES = 50 * 2**20

_LOCK = threading.Lock()
_OPEN: dict[tuple, FeatureNetwork] = {}


def resolve_network(source: str) -> str:
    """A VGG name or a file path as given; a built-in model's name (``nuclei``, when no such
    file is here) becomes its shipped file (see :func:`scopeml.model.registry.resolve_model`).

    Examples
    --------
    >>> resolve_network("vgg19"), Path(resolve_network("nuclei")).name
    ('vgg19', 'nuclei.czann')
    """
    from scopeml.model.registry import BUILTIN_MODELS, resolve_model

    text = str(source)
    if text in BUILTIN_MODELS and not Path(text).exists():
        return str(resolve_model(text))
    return text


def known_networks() -> str:
    """What a network may be named, for messages."""
    from scopeml.model.registry import BUILTIN_MODELS

    return (
        f"give an .onnx or .czann file, a built-in model ({', '.join(sorted(BUILTIN_MODELS))}) "
        f"or one of {', '.join(sorted(BUILTIN))}"
    )


@dataclass(frozen=True)
class Tap:
    """One tapped tensor: name, feature maps, stride (input pixels per output pixel), receptive
    field (input pixels), and which axis of the output holds the maps."""

    name: str
    channels: int
    stride: int
    field: int
    channel_axis: int


class FeatureNetwork:
    """An ONNX Runtime session returning the tapped tensors of one network.

    Attributes
    ----------
    source
        As given: a builtin name or a file path.
    sha256
        Content hash of the network's ONNX bytes (before tapping).
    onnx_bytes
        Those bytes when at most :data:`EMBED_MAX_BYTES`, else ``None``.
    in_channels, channels_last
        The graph's input channels and layout.
    taps
        One :class:`Tap` per requested layer, in request order.
    step
        Input sizes must be multiples of this: the product of the strides of the graph the
        taps need (a U-Net's decoder joins its skip connections only on that grid; its
        pooling grids line up across blocks only there).
    """

    def __init__(self, source: str, onnx_bytes: bytes, layers: tuple[str, ...], path=None):
        import onnx

        from scopeml.model.container import load_onnx

        self.source = source
        self.sha256 = hashlib.sha256(onnx_bytes).hexdigest()
        self.onnx_bytes = onnx_bytes if len(onnx_bytes) <= EMBED_MAX_BYTES else None
        model = load_onnx(onnx_bytes, path=path)
        graph = model.graph
        inits = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise InvalidContainerError(
                f"a feature network has one input; this graph has {len(inputs)}", path=path
            )
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inputs[0].type.tensor_type.shape.dim]  # fmt: skip
        if len(dims) != 4:
            raise InvalidContainerError(
                f"a feature network takes N×C×H×W or N×H×W×C; input has {len(dims)} axes",
                path=path,
            )
        self.channels_last = dims[3] is not None and (dims[1] is None or dims[3] <= 4)
        self.in_channels = int((dims[3] if self.channels_last else dims[1]) or 3)
        self._input = inputs[0].name
        produced = {o: node for node in graph.node for o in node.output}
        missing = [name for name in layers if name not in produced]
        if missing:
            raise InvalidRequestError(_missing_layer(missing[0], onnx_bytes, path), path=path)
        fields = _receptive_fields(graph, layers)
        # keep only what the taps need: a U-Net's decoder (and its size constraints) goes
        del graph.output[:]
        graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in layers)
        model = onnx.utils.Extractor(model).extract_model([self._input], list(layers))
        self.step = math.lcm(*graph_tile_step(model, 2))
        options = _session_options()
        self._session = _ort().InferenceSession(
            model.SerializeToString(), options, providers=_providers()
        )
        self._outputs = list(layers)
        self.taps = tuple(self._probe(layers, fields, path))

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """``1×C×H×W`` float32 (H, W multiples of :attr:`step`) → one ``maps×h×w`` per tap."""
        x = np.ascontiguousarray(batch.transpose(0, 2, 3, 1) if self.channels_last else batch)
        try:
            outs = self._session.run(self._outputs, {self._input: x})
        except Exception as err:  # ORT's own types (Fail, InvalidArgument…), never a traceback
            size = "×".join(map(str, batch.shape[2:]))
            raise IncompatibleModelError(
                f"the feature network failed on a {size} input, tapping "
                f"{', '.join(self._outputs)}: {_ort_message(err)}",
                path=self.source,
            ) from err
        result = []
        for tap, out in zip(self.taps, outs, strict=True):
            order = [tap.channel_axis - 1] + [a - 1 for a in (1, 2, 3) if a != tap.channel_axis]
            result.append(np.ascontiguousarray(out[0].transpose(order)))
        return result

    def _probe(self, layers, fields, path) -> list[Tap]:
        shapes, probes = [], [self.step * -(-size // self.step) for size in _PROBES]
        probes[1] = max(probes[1], probes[0] + self.step)
        for size in probes:
            x = np.zeros((1, self.in_channels, size, size), np.float32)
            x = x.transpose(0, 2, 3, 1) if self.channels_last else x
            try:
                outs = self._session.run(self._outputs, {self._input: np.ascontiguousarray(x)})
            except Exception as err:  # ORT's errors: the graph cannot run on an image
                raise InvalidContainerError(
                    f"the network does not run on a {size}×{size} image ({_ort_message(err)})",
                    path=path,
                ) from err
            shapes.append([o.shape for o in outs])
        taps = []
        for k, name in enumerate(layers):
            a, b = shapes[0][k], shapes[1][k]
            spatial = [i for i in (1, 2, 3) if len(a) == 4 and a[i] != b[i]]
            fixed = [i for i in (1, 2, 3) if len(a) == 4 and a[i] == b[i]]
            if len(a) != 4 or len(spatial) != 2 or len(fixed) != 1 or a[spatial[0]] == 0:
                raise InvalidRequestError(
                    f"layer {name!r} gives shape {a}; a tap must be an image of feature maps",
                    path=path,
                )
            stride = probes[0] // a[spatial[0]]
            if stride < 1 or probes[0] % stride or a[spatial[0]] * stride != probes[0]:
                raise InvalidRequestError(f"layer {name!r}: stride is not a power of 2", path=path)
            taps.append(Tap(name, int(a[fixed[0]]), stride, fields[name], fixed[0]))
        return taps


def open_network(source: str, layers: tuple[str, ...], *, seed: int = 0) -> FeatureNetwork:
    """The network of ``source`` with ``layers`` tapped, opened once per process and reused.

    Examples
    --------
    >>> net = open_network("vgg19-random", ("conv1_2", "conv2_2"))
    >>> [(t.name, t.channels, t.stride, t.field) for t in net.taps]
    [('conv1_2', 64, 1, 5), ('conv2_2', 128, 2, 14)]
    """
    key: tuple = (source, tuple(layers), seed)
    if source not in BUILTIN and Path(source).is_file():  # a changed file is opened afresh
        stat = Path(source).stat()
        key += (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        if key not in _OPEN:
            _OPEN[key] = _build(source, tuple(layers), seed)
        return _OPEN[key]


def open_network_bytes(
    source: str, data: bytes, layers: tuple[str, ...], *, path=None
) -> FeatureNetwork:
    """The network of ONNX bytes ``data`` (``source`` names it in messages), as
    :func:`open_network` opens a file: once per process, keyed by the bytes' hash."""
    key: tuple = ("sha256", hashlib.sha256(data).hexdigest(), tuple(layers))
    with _LOCK:
        if key not in _OPEN:
            _OPEN[key] = FeatureNetwork(source, data, tuple(layers), path=path)
        return _OPEN[key]


def list_tensors(source: str, *, size: int = 256) -> list[tuple[str, str, tuple | None]]:
    """The tensors of a network that could be tapped: ``(name, op, shape)`` in graph order,
    ``shape`` the ``C×H×W`` ONNX shape inference gives for a ``size×size`` input (``None`` where
    it gives none). A builtin VGG lists its named layers.

    Examples
    --------
    >>> list_tensors("vgg19-random")[:2]
    [('conv1_1', 'Relu', (64, 256, 256)), ('conv1_2', 'Relu', (64, 256, 256))]
    """
    source = resolve_network(source)
    if source in BUILTIN:
        arch = source.partition("-")[0]
        out, channels, stride = [], 3, 1
        for v, name in zip(_vgg.CFGS[arch], _vgg.layer_names(arch), strict=True):
            stride *= 2 if v == "M" else 1
            channels = channels if v == "M" else int(v)
            op = "MaxPool" if v == "M" else "Relu"
            out.append((name, op, (channels, size // stride, size // stride)))
        return out

    data, path = network_bytes(source, ())
    return tappable(data, path, size=size)


def tappable(data: bytes, path=None, *, size: int = 256) -> list[tuple[str, str, tuple | None]]:
    """:func:`list_tensors` of ONNX bytes: what ``pixel features --list`` prints, and what a
    wrong layer's message offers."""
    from scopeml.model.container import load_onnx

    graph = load_onnx(data, path=path).graph
    first, second = (_inferred_shapes(data, path, n) for n in (size, size // 2))
    shapes = {}
    for name, a in first.items():  # the axis that keeps its size holds the maps (the probe's rule)
        b = second.get(name)
        fixed = [i for i in (1, 2, 3) if b is not None and a[i] == b[i]]
        if len(fixed) == 1 and all(a[1:]):
            shapes[name] = (a[fixed[0]], *(a[i] for i in (1, 2, 3) if i != fixed[0]))
    outputs = [(name, node.op_type) for node in graph.node for name in node.output if name]
    if shapes:  # a tap is an image of feature maps: list the 4-D tensors
        return [(name, op, shapes[name]) for name, op in outputs if name in shapes]
    return [(name, op, None) for name, op in outputs if op != "Constant"]


def _inferred_shapes(data: bytes, path, size: int) -> dict[str, list[int]]:
    """4-D tensor shapes ONNX shape inference gives for one ``size×size`` input (spatial axes of
    the input: the two that are not its channel axis, read as the network's layout is)."""
    import onnx

    from scopeml.model.container import load_onnx

    model = load_onnx(data, path=path)
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        return {}
    dims = inputs[0].type.tensor_type.shape.dim
    last = dims[3].HasField("dim_value") and dims[3].dim_value <= 4
    for axis, dim in enumerate(dims):
        if axis == 0 or axis == (3 if last else 1):
            if not dim.HasField("dim_value"):
                dim.dim_value = 1 if axis == 0 else 3
        else:
            dim.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except Exception:
        return {}
    shapes = {}
    for info in (*inferred.value_info, *inferred.output):
        shape = [d.dim_value if d.HasField("dim_value") else 0
                 for d in info.type.tensor_type.shape.dim]  # fmt: skip
        if len(shape) == 4:
            shapes[info.name] = shape
    return shapes


def network_bytes(source: str, layers: tuple[str, ...], seed: int = 0) -> tuple[bytes, Path | None]:
    """The ONNX bytes of ``source`` (a builtin is built and cached once) and its file, if any."""
    if source in BUILTIN:
        arch, _, variant = source.partition("-")
        names = _vgg.layer_names(arch)
        for name in layers:
            if name not in names:
                raise InvalidRequestError(
                    f"layer {name!r} is not in {arch}; its layers: {summarize(names, head=8)}"
                )
        deepest = max(names[n] for n in layers)
        taps = {n: i for n, i in names.items() if i <= deepest and not n.startswith("pool")}
        folder = _vgg.cache_dir()
        path = folder / f"{source}{'-seed' + str(seed) if variant else ''}-{deepest}.onnx"
        if not path.exists():
            state = (
                _vgg.random_state_dict(arch, upto=deepest, seed=seed)
                if variant
                else _vgg.imagenet_state_dict(arch)
            )
            data = _vgg.vgg_onnx(arch, state, taps)
            write_atomically(path, data)
        return path.read_bytes(), path
    path = Path(resolve_network(source))
    if not path.is_file():
        raise InvalidRequestError(
            f"feature network does not exist; {known_networks()}", path=source
        )
    if path.suffix.lower() in (".czann", ".czseg", ".czmodel"):
        from scopeml.model.container import read_container

        return read_container(path).onnx_bytes, path
    if path.stat().st_size > 2**31:
        raise InvalidRequestError("network file is larger than 2 GiB", path=path)
    return path.read_bytes(), path


def _missing_layer(layer: str, data: bytes, path) -> str:
    """The message for a layer that is not in the graph: a did-you-mean and the tensors
    ``pixel features --list`` lists (the same set, the same count)."""
    from scopeml.errors import did_you_mean

    names = [name for name, _, _ in tappable(data, path)]
    hint = did_you_mean(layer, names)
    shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
    return (
        f"layer {layer!r} is not in the network{hint}; it has {len(names)} tensors to tap "
        f"(`scopeml pixel features --list` lists them): {shown}"
    )


def _build(source: str, layers: tuple[str, ...], seed: int) -> FeatureNetwork:
    data, path = network_bytes(source, layers, seed)
    return FeatureNetwork(source, data, layers, path=path)


def _receptive_fields(graph, layers) -> dict[str, int]:
    """Per tap, ``1 + Σ (kernel - 1)·dilation·jump`` over the convolutions and poolings it
    depends on (``jump``: product of earlier strides), in graph order."""
    producer = {o: node for node in graph.node for o in node.output}
    fields = {}
    for name in layers:
        needed, stack = set(), [name]
        while stack:
            node = producer.get(stack.pop())
            if node is not None and id(node) not in needed:
                needed.add(id(node))
                stack.extend(node.input)
        field, jump = 1, 1
        for node in graph.node:
            if id(node) not in needed or node.op_type not in _SPATIAL_OPS:
                continue
            attrs = {a.name: list(a.ints) for a in node.attribute}
            kernel = max(attrs.get("kernel_shape", [1]) or [1])
            dilation = max(attrs.get("dilations", [1]) or [1])
            field += (kernel - 1) * dilation * jump
            jump *= max(attrs.get("strides", [1]) or [1])
        fields[name] = field
    return fields


_SPATIAL_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"}


def _session_options():
    options = _ort().SessionOptions()
    options.intra_op_num_threads = 1  # blocks run in parallel threads; one ORT thread each
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # a failure is raised as our one-line error, not logged too
    return options


def _ort_message(err: Exception) -> str:
    """ONNX Runtime's message on one line, without its ``[ONNXRuntimeError] : 1 : FAIL :``."""
    text = " ".join(str(err).split())
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)


def _providers() -> list[str]:
    """ONNX Runtime's CUDA provider when present, else the CPU (quietly: the CPU is the norm)."""
    available = _ort().get_available_providers()
    cuda = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
    return [*cuda, "CPUExecutionProvider"]


def _ort():
    import onnxruntime

    return onnxruntime


def tap_alignment(taps: tuple[Tap, ...], scales: tuple[int, ...], step: int = 1) -> int:
    """Block origins must be multiples of this for pooling grids to line up across blocks:
    the largest tap stride or the network's ``step``, at the largest scale."""
    return max(step, *(t.stride for t in taps)) * max(scales)


def tap_halo(taps: tuple[Tap, ...], scales: tuple[int, ...]) -> int:
    """Pixels per side a block needs: half the receptive field plus one output pixel (the
    bilinear upsampling's neighbour), at the largest scale, rounded up to the alignment."""
    step = tap_alignment(taps, scales)
    reach = max((math.ceil(t.field / 2) + t.stride) * s for t in taps for s in scales)
    return step * math.ceil(reach / step)
