"""bioimage.io model package → czann: one input, one output, ONNX (or TorchScript) weights.

Axes become channels-last by a wrapper around the unchanged graph (:mod:`.graph`). Steps that
work pixel by pixel (``scale_linear``, ``clip`` with fixed bounds, ``binarize``,
``fixed_zero_mean_unit_variance``, ``sigmoid``, ``softmax`` over channels) are baked into the
wrapper. Steps that need image statistics (``scale_range`` with percentiles,
``zero_mean_unit_variance``) become the container's normalisation policy (``ScopeMLNormalize``),
which the engine applies from whole-image statistics so tiles stay exact. Anything else is
refused, naming the step.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import InvalidContainerError, InvalidRequestError
from scopeml.io.replace import check_output_file
from scopeml.model.bioimageio.graph import PixelStep, wrap_graph
from scopeml.model.bioimageio.package import Package, open_package
from scopeml.model.metadata import size_key_problem

#: Spatial size a czann ``InputShape`` aims at for a model that takes a range of sizes.
TARGET_TILE = 256
_SPATIAL = ("z", "y", "x")
WEIGHT_FORMATS = (
    "onnx", "torchscript", "pytorch_state_dict", "keras_hdf5", "keras_v3",
    "tensorflow_saved_model_bundle", "tensorflow_js",
)  # fmt: skip


def import_bioimageio(
    source: str | PathLike[str],
    output: str | PathLike[str],
    *,
    model_type: str | None = None,
    overwrite: bool = False,
    time_budget: float | None = None,
    memory_limit: int | None = None,
) -> Path:
    """Convert a bioimage.io model (zip, folder or ``rdf.yaml``/``bioimageio.yaml``) to a czann.

    ``model_type`` is the czann ``Type``; by default ``Regression`` for models tagged as
    restoration/denoising, else ``MultiClassSemanticSegmentation``. An existing ``output`` is
    refused before the package is read unless ``overwrite``; the package itself never.

    TorchScript weights (when there are no ONNX weights) are exported to ONNX with torch (the
    ``train`` extra), traced on the package's test input.

    Before anything is written, the czann runs as ``scopeml model validate`` runs a package
    (a zero probe tile and the package's test input, in a memory-capped child under the time
    budget): a package whose axes disagree with its graph, whose test tensors cannot be read
    or whose test output the model does not give is refused (a second or so per package).
    ``time_budget`` and ``memory_limit`` are those runs' (``None``: the defaults, as
    ``validate`` has them).

    Returns
    -------
    Path
        ``output``, a czann recording the package's normalisation, if any
        (``ScopeMLNormalize``), which ``segment`` applies and :func:`~scopeml.open_model`
        reports as ``spec.normalize``.

    Raises
    ------
    InvalidContainerError
        Missing or URL weights, neither ONNX nor TorchScript weights, axes scopeml cannot
        map, preprocessing it cannot express exactly, test tensors that are not plain numbers
        or that the model does not reproduce; the message names the step, axis or file.
    IncompatibleModelError
        The graph fails on the probe tile or the test input (axes that disagree with it).
    InvalidRequestError
        ``output`` exists (without ``overwrite``), or is the package.
    """
    from scopeml.model.bioimageio.run import run_imported
    from scopeml.model.container import write_container

    check_model_output(output, overwrite=overwrite, source=source)
    package = open_package(source)
    try:
        imported = build_czann(package, model_type=model_type)
        tests = read_test_tensors(package)
    finally:
        package.close()
    limits = {"time_budget": time_budget, "memory_limit": memory_limit}  # None: the defaults
    run_imported(package.path, imported, tests, limits)  # as validate runs it, before writing
    return write_container(output, imported.graph, imported.metadata, overwrite=overwrite)


@dataclass(frozen=True)
class Imported:
    """A package imported in memory: the czann's graph and metadata, and the axis roles of the
    package's input and output tensors (``batch``, ``channel``, ``z``, ``y``, ``x``)."""

    graph: Any
    metadata: Any
    input_roles: tuple[str, ...]
    output_roles: tuple[str, ...]


def build_czann(
    package: Package, *, model_type: str | None = None, cache: Path | None = None
) -> Imported:
    """The czann graph and metadata of an opened package (what :func:`import_bioimageio`
    writes). ``cache``: a folder where TorchScript weights exported to ONNX are kept, keyed by
    the SHA-256 of what the export reads (``None``: export every time)."""
    from scopeml.model.container import load_onnx
    from scopeml.model.metadata import ModelMetadata, validate_metadata

    descr = package.description
    fail = _failer(package.path)
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        fail(
            f"the model has {len(descr.inputs)} inputs and {len(descr.outputs)} outputs; "
            "scopeml runs models with one of each"
        )
    tensor_in, tensor_out = descr.inputs[0], descr.outputs[0]
    for tensor in (t for t in (tensor_in, tensor_out) if getattr(t, "test_tensor", None)):
        package.check_source(tensor.test_tensor, f"the test tensor of {tensor.id}")  # read later
    in_roles, spatial = _roles(tensor_in, "input", fail)
    onnx_model = load_onnx(_onnx_bytes(package, in_roles, fail, cache), path=package.path)
    out_roles, out_spatial = _roles(tensor_out, "output", fail)
    if out_spatial and out_spatial != spatial:
        fail(f"output spatial axes {out_spatial} differ from the input's {spatial}")
    channels = _channel_count(tensor_in)
    _check_graph_axes(onnx_model, tensor_in, in_roles, fail)
    _check_graph_channels(onnx_model, in_roles, channels, fail)
    pre, policy = _preprocessing(tensor_in.preprocessing, channels, fail)
    post, post_policy = _preprocessing(tensor_out.postprocessing, None, fail, output=True)
    if post_policy:
        fail("postprocessing that needs image statistics cannot be expressed per tile")
    opset = max((o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")),
                default=0)  # fmt: skip
    sizes, shape, valid = _sizes(tensor_in, spatial, fail, pad=opset >= 11)
    valid = _smallest_input(descr, spatial, valid, fail)
    _check_smallest_size(spatial, sizes, valid, fail)
    halo = _halo(tensor_out, tensor_in, spatial, fail) if out_spatial else None
    classes = _channel_names(tensor_out)
    _check_graph_channels(onnx_model, out_roles, len(classes), fail, output=True)
    graph = wrap_graph(
        onnx_model, input_roles=in_roles, output_roles=out_roles, spatial=spatial,
        input_sizes=sizes, channels=channels, pre=pre, post=post, valid_sizes=valid,
        out_channels=len(classes),  # declared: the output's channels are not left dynamic
    )  # fmt: skip
    exported = _exported_czann(descr, bool(out_spatial), fail)  # a round trip keeps them
    kind = model_type or exported.get("model_type") or _guess_type(descr, out_spatial)
    out_shape = (*shape, len(classes)) if out_spatial else (len(classes),)
    fields = {
        "model_type": kind,
        "input_shape": (*shape, channels),
        "output_shape": out_shape,
        "classes": classes,
        "min_overlap": halo,
        "model_name": str(descr.name),
        "normalize": policy,
        "scaling": scaling_of(tensor_in, spatial),
        **({"model_id": exported["model_id"]} if "model_id" in exported else {}),
        **size_keys(descr, fail),
    }
    meta = validate_metadata(ModelMetadata, fields, path=package.path)
    return Imported(graph, meta, tuple(in_roles), tuple(out_roles))


#: Metres per bioimage.io length unit that microscopy pixel sizes are given in.
METRES = {"nanometer": 1e-9, "micrometer": 1e-6, "millimeter": 1e-3, "meter": 1.0}


def scaling_of(tensor: Any, spatial: list[str]) -> list[float] | None:
    """The czann ``Scaling`` (x, y[, z] in metres) of an input tensor whose spatial axes all
    give a pixel size (``unit`` and ``scale``), else ``None`` (a package's pixel size was
    dropped on import)."""
    by_id = {str(axis.id): axis for axis in tensor.axes}
    metres = {}
    for name in spatial:
        axis = by_id[name]
        unit = getattr(axis, "unit", None)
        if unit not in METRES:
            return None
        metres[name] = float(getattr(axis, "scale", 1.0)) * METRES[unit]
    return [metres[name] for name in "xyz" if name in metres]


#: What a package's ``config: scopeml:`` may carry of a czann's own ``model.json`` keys (the
#: object size ``scale="auto"`` works from, :mod:`scopeml.tiling.size`): package key → czann key.
SIZE_KEYS = {
    "object_diameter": "ScopeMLObjectDiameter",
    "object_diameter_range": "ScopeMLObjectDiameterRange",
    "default_scale": "ScopeMLDefaultScale",
}


def size_keys(descr: Any, fail: Any) -> dict[str, Any]:
    """The czann keys a package's ``config: scopeml:`` carries (:data:`SIZE_KEYS`), checked:
    a positive diameter, a ``[low, high]`` range of them, ``auto`` as the default scale. A
    package without them gives none (the model then runs at scale 1 unless told)."""
    ours = scopeml_config(descr, fail)
    found: dict[str, Any] = {}
    for key, czann_key in SIZE_KEYS.items():
        if key not in ours:
            continue
        value = ours[key]
        problem = size_key_problem(czann_key, value)
        if problem is not None:
            fail(f"config.scopeml.{key} is {value!r}; {problem}")
        if key == "object_diameter":
            found[czann_key] = float(value)
        elif key == "object_diameter_range":
            found[czann_key] = [float(v) for v in value]
        else:
            found[czann_key] = "auto"
    return found


def _exported_czann(descr: Any, pixelwise: bool, fail: Any) -> dict[str, Any]:
    """The czann ``Type`` and ``Id`` a package exported by scopeml records
    (``config.scopeml.czann_type``, ``czann_id``), so that a czann exported and imported
    again is the same model (a SingleClass type came back MultiClass, with a new Id). A type
    that is no czann type, or that disagrees with the output (an image or one value), fails."""
    from scopeml.model.metadata import ModelType

    ours = scopeml_config(descr, fail)
    found: dict[str, Any] = {}
    kind = ours.get("czann_type")
    if kind is not None:
        if kind not in {t.value for t in ModelType}:
            fail(f"config.scopeml.czann_type is {kind!r}; expected a czann Type")
        if ModelType(kind).is_pixelwise != pixelwise:
            fail(f"config.scopeml.czann_type {kind} disagrees with the output's axes")
        found["model_type"] = kind
    if ours.get("czann_id") is not None:
        try:
            found["model_id"] = uuid.UUID(str(ours["czann_id"]))
        except ValueError:
            fail(f"config.scopeml.czann_id is {ours['czann_id']!r}; expected a UUID")
    return found


def scopeml_config(descr: Any, fail: Any = None) -> dict[str, Any]:
    """The package's ``config: scopeml:`` mapping (empty when it has none, or, without
    ``fail``, when it is no mapping)."""
    config = getattr(descr, "config", None)
    extra = getattr(config, "model_extra", None) or {}
    ours = extra.get("scopeml") if isinstance(extra, dict) else None
    if ours is None:
        return {}
    if not isinstance(ours, dict):
        if fail is None:
            return {}
        fail(f"config.scopeml is {type(ours).__name__}, not a mapping")
    return ours


def _check_smallest_size(
    spatial: list[str],
    sizes: list[int | None],
    valid: list[tuple[int, int]] | None,
    fail: Any,
) -> None:
    """Refuse a package whose smallest input is over the pixels a tile may hold: every tile,
    however small, would be padded up to it (a declared ``min: 20000`` made each tile of a
    512² image take 10 GB), where the engine's bound refuses such tiles before any read."""
    from scopeml.tiling.plan import MAX_TILE_ENV, max_tile_elements

    smallest = [low for low, _ in valid] if valid is not None else [s or 1 for s in sizes]
    bound = max_tile_elements()
    if math.prod(smallest) > bound:
        fail(
            f"its smallest input is {'×'.join(map(str, smallest))} pixels "
            f"({', '.join(spatial)}); a tile may hold at most {bound} ({MAX_TILE_ENV})"
        )


def _smallest_input(
    descr: Any, spatial: list[str], valid: list[tuple[int, int]] | None, fail: Any
) -> list[tuple[int, int]] | None:
    """The ``(min, step)`` sizes the wrapper pads to, each minimum lowered to the
    ``config: scopeml: smallest_input`` a package exported by scopeml records: the smallest
    input its graph takes. bioimage.io ties the declared minimum to the output halo
    (``min > 2·halo``), so without it an image under that minimum (120 px for the nuclei
    model) would be padded to it, and differ from the czann near its far border; with it the
    image is padded only to the graph's step, as the czann is run. The value must lie on the
    declared sizes' lattice (``min - n·step``), else the package is refused naming it."""
    ours = scopeml_config(descr, fail)
    if valid is None or "smallest_input" not in ours:
        return valid
    value, where = ours["smallest_input"], "config.scopeml.smallest_input"
    whole = isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    )
    if not whole or len(value) != len(spatial):
        fail(
            f"{where} is {value!r}; expected {len(spatial)} positive whole numbers of pixels "
            f"(axes {', '.join(spatial)})"
        )
    lowered = []
    for name, (low, step), smallest in zip(spatial, valid, value, strict=True):
        if smallest > low or (low - smallest) % max(step, 1):
            fail(
                f"{where} is {smallest} along {name}; expected at most the declared minimum "
                f"{low}, a whole number of steps ({step}) below it"
            )
        lowered.append((smallest, step))
    return lowered


def check_model_output(
    output: str | PathLike[str], *, overwrite: bool, source: str | PathLike[str]
) -> None:
    """Refuse, before any work, an ``output`` that exists (unless ``overwrite``), that is a
    folder, or that is the ``source`` (or lies in a source folder)."""
    output = Path(output)
    if "://" not in str(source):
        origin, target = Path(source).resolve(), output.resolve()
        if target == origin or origin in target.parents:
            raise InvalidRequestError(f"the output would replace the input {source}", path=output)
    check_output_file(output, overwrite=overwrite)


def _onnx_bytes(package: Package, roles: list[str], fail: Any, cache: Path | None) -> bytes:
    """The ONNX weights, or the TorchScript weights exported to ONNX (kept in ``cache``)."""
    weights = package.description.weights
    if weights.onnx is not None:
        return package.read(weights.onnx, "the ONNX weights")
    if weights.torchscript is not None:
        from scopeml.model.bioimageio.torchscript import torchscript_to_onnx

        data = package.read(weights.torchscript, "the TorchScript weights")
        example, _ = read_test_tensors(package)
        if cache is None:
            return torchscript_to_onnx(data, example, roles, path=package.path)
        return _cached_export(data, example, roles, cache, package.path)
    present = [name for name in WEIGHT_FORMATS if getattr(weights, name, None)]
    raise InvalidContainerError(
        f"weights are {', '.join(present) or 'none'}; scopeml imports ONNX and TorchScript",
        path=package.path,
    )


def _cached_export(
    data: bytes, example: np.ndarray, roles: list[str], cache: Path, path: Path
) -> bytes:
    """TorchScript → ONNX through a content-addressed cache: ``cache/<sha256>.onnx``, keyed by
    the weights, the test input it is traced on, the axis roles, the opset and torch's version
    (an unreadable or unwritable cache only costs the export)."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from scopeml.model.bioimageio.torchscript import OPSET, torchscript_to_onnx

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "none"
    digest = hashlib.sha256()
    for part in (f"torchscript-onnx/{OPSET}/{torch_version}/{','.join(roles)}", example.dtype.str,
                 str(example.shape)):  # fmt: skip
        digest.update(part.encode() + b"\0")
    digest.update(hashlib.sha256(data).digest())
    digest.update(hashlib.sha256(np.ascontiguousarray(example).tobytes()).digest())
    target = cache / f"{digest.hexdigest()}.onnx"
    try:
        return target.read_bytes()  # checked by load_onnx like any weights
    except OSError:
        pass
    onnx_bytes = torchscript_to_onnx(data, example, roles, path=path)
    try:
        from scopeml.io.replace import atomic_write

        cache.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, fsync=False) as temp:
            temp.write_bytes(onnx_bytes)
    except OSError:
        pass
    return onnx_bytes


def _failer(path: Path) -> Any:
    def fail(problem: str) -> None:
        raise InvalidContainerError(problem, path=path)

    return fail


def _roles(tensor: Any, which: str, fail: Any) -> tuple[list[str], list[str]]:
    roles = []
    for axis in tensor.axes:
        kind, name = axis.type, str(axis.id)
        if kind in ("batch", "channel"):
            roles.append(kind)
        elif kind == "space" and name in _SPATIAL:
            roles.append(name)
        else:
            fail(
                f"{which} axis {name!r} ({kind}) cannot be mapped; scopeml maps batch, "
                "channel and space axes z, y, x"
            )
    spatial = [role for role in _SPATIAL if role in roles]
    if which == "input" and spatial not in (["y", "x"], ["z", "y", "x"]):
        fail(f"input space axes {spatial} are not y, x (2-D) or z, y, x (3-D)")
    return roles, spatial


def _check_graph_channels(
    onnx_model: Any, roles: list[str], channels: int, fail: Any, *, output: bool = False
) -> None:
    """The description's input (``output``: output) channels are the weights' (a package that
    lies made a czann that failed in ONNX Runtime, in its words, when run; one listing fewer
    output channel names than the graph gives was converted, then failed on every image)."""
    values = onnx_model.graph.output if output else onnx_model.graph.input
    if "channel" not in roles or not values:
        return
    dims = values[0].type.tensor_type.shape.dim
    if len(dims) != len(roles):
        return  # the graph's own layout: the wrapper's checks say what is wrong
    taken = dims[roles.index("channel")].dim_value
    if taken > 0 and taken != channels:
        if output:
            fail(f"the description names {channels} output channels (channel_names); the "
                 f"weights give {taken}")  # fmt: skip
        fail(f"the description gives the input {channels} channels; the weights take {taken}")


def _check_graph_axes(onnx_model: Any, tensor: Any, roles: list[str], fail: Any) -> None:
    """A spatial size the weights fix where the description's axes put a size they do not
    allow (``batch, channel, y, x`` described for an ``N×Y×X×C`` graph: its channel axis, 1,
    read as ``x``, of at least 3) is refused naming both layouts; such a czann failed in ONNX
    Runtime's words on every image."""
    values = onnx_model.graph.input
    dims = values[0].type.tensor_type.shape.dim if values else ()
    if len(dims) != len(roles):
        return  # the graph's own layout: the wrapper's checks say what is wrong
    by_id = {str(axis.id): axis for axis in tensor.axes}
    for index, (role, dim) in enumerate(zip(roles, dims, strict=True)):
        size, taken = getattr(by_id.get(role), "size", None), dim.dim_value
        if role not in _SPATIAL or taken <= 0 or _allows(size, taken):
            continue
        allowed = f"{size}" if isinstance(size, int) else f"{size.min} + n·{size.step}"
        shown = "×".join(d.dim_param or str(d.dim_value) or "?" for d in dims)
        fail(
            f"the description's input axes ({', '.join(roles)}) do not fit the weights' input "
            f"{values[0].name!r} ({shown}): the weights fix axis {index} ({role} in the "
            f"description) at {taken}; the description's {role} takes {allowed}"
        )


def _allows(size: Any, taken: int) -> bool:
    """Whether a description's axis size (fixed, ``min + n·step``, or another kind, not
    judged here) allows ``taken``."""
    from bioimageio.spec.model import v0_5 as bio

    if isinstance(size, int):
        return size == taken
    if isinstance(size, bio.ParameterizedSize):
        if not size.step:
            return taken == size.min
        return taken >= size.min and (taken - size.min) % size.step == 0
    return True


def _channel_count(tensor: Any) -> int:
    for axis in tensor.axes:
        if axis.type == "channel":
            return len(axis.channel_names)
    return 1


def _channel_names(tensor: Any) -> tuple[str, ...]:
    for axis in tensor.axes:
        if axis.type == "channel":
            return tuple(str(name) for name in axis.channel_names)
    return ("channel0",)


def _sizes(
    tensor: Any, spatial: list[str], fail: Any, *, pad: bool
) -> tuple[list[int | None], tuple[int, ...], list[tuple[int, int]] | None]:
    """Graph input sizes (``None``: any), the czann ``InputShape`` spatial part, and the
    ``(min, step)`` the wrapper pads to (``None``: no padding).

    A size range ``min + n·step`` stays dynamic: the wrapper pads each tile to a valid size
    (:func:`~scopeml.model.bioimageio.graph.wrap_graph`); a graph too old for that (opset < 11)
    is fixed at the first valid size of at least ``TARGET_TILE`` instead. ``InputShape`` is that
    size either way (ZEN's tile size)."""
    from bioimageio.spec.model import v0_5 as bio

    by_id = {str(axis.id): axis for axis in tensor.axes}
    sizes: list[int | None] = []
    shape: list[int] = []
    valid: list[tuple[int, int]] = []
    for name in spatial:
        size = by_id[name].size
        if isinstance(size, int):
            sizes.append(int(size))
            shape.append(int(size))
            valid.append((int(size), 0))
        elif isinstance(size, bio.ParameterizedSize):
            n = max(0, -(-(TARGET_TILE - size.min) // max(size.step, 1)))
            shape.append(int(size.min + n * size.step))
            sizes.append(None if pad else shape[-1])
            valid.append((int(size.min), int(size.step)))
        else:
            fail(f"input axis {name!r} has a size scopeml cannot fix ({type(size).__name__})")
    dynamic = [v for v, s in zip(valid, sizes, strict=True) if s is None]
    needs_pad = any(m > 1 or st > 1 for m, st in dynamic)
    return sizes, tuple(shape), valid if pad and needs_pad and len(dynamic) == len(sizes) else None


def _halo(tensor: Any, tensor_in: Any, spatial: list[str], fail: Any) -> tuple[int, ...]:
    """The output's halo per spatial axis; its axes must be the input's size (their pixel
    size, ``scale``, the input's)."""
    input_scales = {str(a.id): float(getattr(a, "scale", 1.0)) for a in tensor_in.axes}
    halo = []
    by_id = {str(axis.id): axis for axis in tensor.axes}
    for name in spatial:
        axis = by_id[name]
        if getattr(axis, "scale", 1.0) != input_scales.get(name, 1.0):
            fail(f"output axis {name!r} has scale {axis.scale} (the input's "
                 f"{input_scales.get(name, 1.0)}); scopeml needs same-size outputs")  # fmt: skip
        size = getattr(axis, "size", None)
        if getattr(size, "offset", 0):
            fail(f"output axis {name!r} is offset from the input by {size.offset} pixels")
        halo.append(int(getattr(axis, "halo", 0) or 0))
    return tuple(halo)


def _guess_type(descr: Any, out_spatial: list[str]) -> str:
    if not out_spatial:
        return "MultiClassClassification"
    tags = {str(tag).lower() for tag in descr.tags}
    if tags & {"denoising", "restoration", "regression", "image-restoration", "deconvolution"}:
        return "Regression"
    return "MultiClassSemanticSegmentation"


def _values(kwargs: Any, name: str, channels: int | None, fail: Any, step: str) -> tuple:
    value = getattr(kwargs, name)
    if isinstance(value, (list, tuple)):
        if getattr(kwargs, "axis", "channel") != "channel":
            fail(f"{step}: per-axis values along {kwargs.axis!r}; only channel values bake in")
        return tuple(float(v) for v in value)
    return (float(value),)


def _preprocessing(
    steps: Any, channels: int | None, fail: Any, *, output: bool = False
) -> tuple[list[PixelStep], str | None]:
    """Per-pixel steps to bake in, and the statistics policy (at most one, first)."""
    pixel: list[PixelStep] = []
    policy = None
    where = "postprocessing" if output else "preprocessing"
    # numbered as written: bioimageio.spec adds ensure_dtype steps of its own
    position = 0
    for step in steps:
        kind, kwargs = step.id, getattr(step, "kwargs", None)
        position += kind != "ensure_dtype"
        label = f"{where} step {position} ({kind})"
        if kind == "ensure_dtype":
            if not str(kwargs.dtype).startswith("float"):
                fail(f"{label}: casting to {kwargs.dtype} is not expressed by scopeml")
        elif kind == "scale_linear":
            gain = _values(kwargs, "gain", channels, fail, label)
            offset = _values(kwargs, "offset", channels, fail, label)
            pixel.append(PixelStep("scale", gain, offset))
        elif kind == "fixed_zero_mean_unit_variance":
            mean = np.asarray(_values(kwargs, "mean", channels, fail, label))
            std = np.asarray(_values(kwargs, "std", channels, fail, label))
            pixel.append(PixelStep("scale", tuple(1 / std), tuple(-mean / std)))
        elif kind == "clip":
            if kwargs.min_percentile is not None or kwargs.max_percentile is not None:
                fail(f"{label}: percentile bounds need image statistics")
            low = -np.inf if kwargs.min is None else kwargs.min
            high = np.inf if kwargs.max is None else kwargs.max
            pixel.append(PixelStep("clip", (float(low),), (float(high),)))
        elif kind == "binarize":
            pixel.append(PixelStep("binarize", _values(kwargs, "threshold", channels, fail, label)))
        elif kind == "sigmoid":
            pixel.append(PixelStep("sigmoid"))
        elif kind == "softmax" and str(getattr(kwargs, "axis", "channel")) == "channel":
            pixel.append(PixelStep("softmax"))
        elif kind in ("scale_range", "zero_mean_unit_variance") and not output:
            if pixel or policy:
                fail(f"{label}: image statistics after another step cannot be made global")
            policy = _policy(kind, kwargs, channels, fail, label)
        else:
            fail(f"{label} cannot be expressed exactly per tile by scopeml")
    return pixel, policy


def _policy(kind: str, kwargs: Any, channels: int | None, fail: Any, label: str) -> str:
    axes = None if kwargs.axes is None else {str(a) for a in kwargs.axes}
    if (axes is None or "channel" in axes) and (channels or 1) > 1:
        fail(f"{label}: statistics joint over channels; scopeml computes them per channel")
    if axes is not None and axes - {"channel", "batch", *_SPATIAL}:
        fail(f"{label}: statistics over axes {sorted(axes)}")
    if kind == "zero_mean_unit_variance":
        return "meanstd"
    if getattr(kwargs, "reference_tensor", None) is not None:
        fail(f"{label}: statistics of another tensor ({kwargs.reference_tensor})")
    return f"percentile:{_number(kwargs.min_percentile)},{_number(kwargs.max_percentile)}"


def _number(value: float) -> str:
    return f"{float(value):g}" if float(value) != int(value) else str(int(value))


def read_test_tensors(package: Package) -> tuple[np.ndarray, np.ndarray]:
    """The package's test input and output (``.npy``, read without pickle)."""
    from scopeml.model.safezip import parse_npy

    descr = package.description
    arrays = []
    for tensor in (descr.inputs[0], descr.outputs[0]):
        what = f"the test tensor of {tensor.id}"
        data = package.read(tensor.test_tensor, what)
        arrays.append(parse_npy(data, what, path=package.path))
    return arrays[0], arrays[1]
