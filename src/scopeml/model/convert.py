"""Make containers from trained models: an ONNX graph, a PyTorch module, a Keras 3 model, or
another container (czann ↔ legacy czseg/czmodel).

Every path ends in :func:`convert_onnx`: optional pre-processing is prepended to the graph, the
spatial input size is made dynamic or fixed, the metadata is built from the graph and the options,
checked against the graph, and the container is written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import tempfile
import uuid
import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import onnx

from scopeml.errors import InvalidContainerError, InvalidRequestError, find_stack_level
from scopeml.io.replace import check_output_file
from scopeml.model.container import load_onnx, write_container
from scopeml.model.graph import GraphInfo, inspect_graph, prepend_preprocessing, set_spatial_dims
from scopeml.model.metadata import (
    LegacyModelMetadata,
    ModelMetadata,
    ModelType,
    default_classes,
    segmentation_type,
    validate_metadata,
)

#: Metadata ``InputShape`` spatial sizes written for graphs with dynamic spatial dims: a tile
#: size hint for runtimes that want one (scopeml picks its own tiles for dynamic graphs).
DEFAULT_TILE_SHAPE = {2: (512, 512), 3: (64, 128, 128)}

Spatial = Literal["keep", "dynamic"] | Sequence[int]


def convert_onnx(
    onnx_model: bytes | onnx.ModelProto | str | PathLike[str],
    output: str | PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    min_overlap: int | Sequence[int] = 0,
    model_type: ModelType | str | None = None,
    name: str | None = None,
    scaling: Sequence[float] | None = None,
    preprocessing: str | Sequence[str] = (),
    spatial: Spatial = "keep",
    tile_shape: Sequence[int] | None = None,
    legacy: bool = False,
    license_file: str | PathLike[str] | None = None,
    model_id: str | uuid.UUID | None = None,
    channels_last: bool = False,
    normalize: str | None = None,
    scopeml_keys: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Wrap a channels-last ONNX graph (``N×[Z×]Y×X×C`` → ``N×[Z×]Y×X×K``) into a container.

    Parameters
    ----------
    onnx_model
        Graph as bytes, ``ModelProto`` or ``.onnx`` file.
    output
        The ``.czann`` (or, with ``legacy``, ``.czseg``/``.czmodel``) to write.
    classes
        One name per output channel; default ``class 1 …`` (a Regression model:
        :data:`~scopeml.model.metadata.REGRESSION_OUTPUT`, ``intensity_0 …`` for several channels).
    min_overlap
        Halo per side in pixels, one value for all spatial axes or one per axis ``([Z,] Y, X)``.
    model_type
        A :class:`ModelType` (or its value); default a semantic segmentation, single-class for
        one or two classes, else multi-class (:func:`~scopeml.model.metadata.segmentation_type`).
    name, scaling
        ``ModelName`` and ``Scaling`` (pixel extents x, y[, z] in metres).
    preprocessing
        Steps prepended to the graph, e.g. ``"rgb2bgr,scale:255"`` (see
        :data:`scopeml.model.graph.PREPROCESSING_STEPS`).
    spatial
        ``"keep"`` the graph's spatial sizes, make them ``"dynamic"``, or fix them to sizes.
    tile_shape
        ``InputShape`` spatial sizes to write when the graph is dynamic; default
        :data:`DEFAULT_TILE_SHAPE`. Ignored for fixed graphs (their sizes are written).
    legacy
        Write a legacy ``.czseg``/``.czmodel`` (2-D segmentation, fixed spatial sizes).
    channels_last
        The graph is channels-last even where its fixed input looks channels-first (see
        :func:`check_channels_last`, which is otherwise applied).
    normalize
        The input normalisation the model expects (``ScopeMLNormalize``: ``"percentile:1,99.8"``,
        ``"meanstd"``, ``"none"``), applied by scopeml's engine and *not* by ZEN/czmodel; czann
        only (legacy XML has no place for it).
    scopeml_keys
        Other keys of scopeml's own for ``model.json`` (``ScopeML…``: the object diameter
        ``scale="auto"`` works from, say), kept from a czann being converted; czann only.
    overwrite
        Replace a file already at ``output`` (refused, before any work, when false).

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    InvalidRequestError
        Options that do not fit the graph (class count, overlap entries, legacy on 3-D ...),
        or a fixed input that looks channels-first.
    InvalidContainerError
        The graph is not valid ONNX.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from scopeml.model import read_container
    >>> from scopeml.model.testing import tiny_unet_onnx
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "unet.czann"
    >>> path = convert_onnx(tiny_unet_onnx(), out, classes=["bg", "fg"], min_overlap=16)
    >>> meta = read_container(path).metadata
    >>> meta.input_shape, meta.min_overlap
    ((512, 512, 1), (16, 16))
    """
    output = Path(output)
    check_output_file(output, overwrite=overwrite)
    model = _as_model_proto(onnx_model)
    if not channels_last:  # before --spatial can turn a channel axis into a dynamic row axis
        is_file = isinstance(onnx_model, str | PathLike)
        check_channels_last(model, path=Path(onnx_model) if is_file else output)
    try:
        if preprocessing:
            model = prepend_preprocessing(model, preprocessing)
        if spatial == "dynamic":
            model = set_spatial_dims(model, None)
        elif spatial != "keep":
            if isinstance(spatial, str):
                raise ValueError(f"spatial must be 'keep', 'dynamic' or sizes; got {spatial!r}")
            model = set_spatial_dims(model, spatial)
        info = inspect_graph(model)
    except ValueError as err:
        raise InvalidRequestError(str(err), path=output) from err
    if model_type is None:  # by the classes, else the graph's output channels
        model_type = segmentation_type(len(classes) if classes else info.output_shape[-1] or 1)
    if info.fixed_spatial is not None and (legacy or _is_pixelwise(model_type)):
        fixed = info.fixed_spatial  # given as --spatial, or the graph's own (checked too)
        said = f"the graph's fixed size {'x'.join(map(str, fixed))}" if spatial == "keep" else None
        check_tile_size(fixed, info.tile_step, min_overlap, legacy=legacy, path=output,
                        given=said)  # fmt: skip
    if legacy:
        if normalize is not None:
            raise InvalidRequestError(
                f"legacy containers cannot record a normalisation ({normalize}); ZEN/czmodel do "
                "not apply one: write a .czann, or normalise the images before ZEN",
                path=output,
            )
        metadata: ModelMetadata | LegacyModelMetadata = _legacy_metadata(
            info, classes, min_overlap, name, model_id, output
        )
        check_engine_tile(info.fixed_spatial or (), output)
        unread = czmodel_unreadable(metadata)
        if unread is not None:
            warnings.warn(f"{output.name}: {unread}", UserWarning, stacklevel=find_stack_level())
    else:
        metadata = _czann_metadata(
            info, classes, min_overlap, model_type, name, scaling, tile_shape, model_id, output,
            normalize, scopeml_keys,
        )  # fmt: skip
    return write_container(output, model, metadata, license_file=license_file, overwrite=overwrite)


#: czann model types a legacy container can hold (ZEN's legacy models segment).
_LEGACY_TYPES = {
    ModelType.SINGLE_CLASS_SEMANTIC_SEGMENTATION,
    ModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION,
    ModelType.SINGLE_CLASS_INSTANCE_SEGMENTATION,
    ModelType.MULTI_CLASS_INSTANCE_SEGMENTATION,
}


def normalisation_note(metadata: ModelMetadata | LegacyModelMetadata) -> str | None:
    """The one line to show wherever a model that records a normalisation may leave scopeml.

    ``ScopeMLNormalize`` is scopeml's own key: ZEN and czmodel ignore it (and legacy XML cannot
    hold it), so there the model sees raw values and finds little. ``None`` when the model
    records no normalisation (or ``none``).

    Examples
    --------
    >>> meta = ModelMetadata(model_type="Regression", input_shape=(8, 8, 1),
    ...     output_shape=(8, 8, 1), normalize="percentile:1,99.8")
    >>> normalisation_note(meta)
    'this model expects percentile:1,99.8 normalisation, which ZEN/czmodel do not apply'
    """
    policy = getattr(metadata, "normalize", None)
    if policy is None or policy == "none":
        return None
    return f"this model expects {policy} normalisation, which ZEN/czmodel do not apply"


def convert_container(
    source: str | PathLike[str],
    output: str | PathLike[str],
    *,
    legacy: bool | None = None,
    classes: Sequence[str] | None = None,
    min_overlap: int | Sequence[int] | None = None,
    model_type: ModelType | str | None = None,
    name: str | None = None,
    scaling: Sequence[float] | None = None,
    spatial: Spatial | None = None,
    normalize: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Rewrap a container into the other kind: czann → legacy ``.czseg``/``.czmodel`` or back.

    The graph is kept as it is (only its spatial sizes change where asked), so predictions are
    bit for bit those of the source. Classes, MinOverlap (legacy: ``BorderSize``), model name,
    model type, Scaling, the license and the model Id are kept where the target holds them;
    options given replace them. What the target cannot hold is named in one warning each: above
    all a czann's normalisation (``ScopeMLNormalize``), which legacy XML cannot record and
    ZEN/czmodel do not apply (see :func:`normalisation_note`).

    Parameters
    ----------
    source
        A ``.czann``, ``.czseg`` or ``.czmodel``, or a built-in model's name (``"nuclei"``).
    output
        The container to write; an existing file is replaced only if ``overwrite``.
    legacy
        Write a legacy container; default: from ``output``'s suffix (``.czseg``/``.czmodel``).
    spatial
        Legacy containers need fixed sizes: default the graph's, else the czann's
        ``InputShape`` (its tile size). To a czann: ``"keep"`` (default) or ``"dynamic"`` or sizes.
    normalize
        The normalisation to record in a czann; default the source's (a legacy source has none).
    classes, min_overlap, model_type, name, scaling
        As for :func:`convert_onnx`; default the source's. A legacy source becomes a
        ``SingleClassSemanticSegmentation`` (2 classes) or ``MultiClassSemanticSegmentation`` czann.

    Raises
    ------
    InvalidRequestError
        A model the target cannot hold (3-D or not segmentation to legacy), or options that do
        not fit the graph.
    InvalidContainerError
        The source is not a valid container.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from scopeml.model import read_container
    >>> from scopeml.model.testing import tiny_czann
    >>> czann = tiny_czann()
    >>> legacy = convert_container(czann, czann.with_suffix(".czseg"), spatial=(64, 64))
    >>> read_container(legacy).format, read_container(legacy).graph.fixed_spatial
    ('czseg', (64, 64))
    """
    from scopeml.model.container import read_container
    from scopeml.model.registry import resolve_model

    source, output = resolve_model(source), Path(output)
    if output.resolve() == source.resolve():
        raise InvalidRequestError(f"the output would replace the input {source}", path=output)
    check_output_file(output, overwrite=overwrite)
    container = read_container(source)
    if legacy is None:
        legacy = output.suffix.lower() in (".czseg", ".czmodel")
    meta = container.metadata
    graph = load_onnx(container.onnx_bytes, path=source)
    options = {"model_id": meta.model_id, "legacy": legacy, "channels_last": True,
               **_source_options(container)}  # fmt: skip
    given = {
        "classes": classes, "min_overlap": min_overlap, "model_type": model_type, "name": name,
        "scaling": scaling, "normalize": normalize,
    }  # fmt: skip
    options |= {key: value for key, value in given.items() if value is not None}
    lost: list[str | None] = []
    if not legacy and isinstance(meta, LegacyModelMetadata):
        lost.append(_legacy_normalisation(container.onnx_bytes, options, source, normalize))
    if legacy:
        lost = _to_legacy(container, options, spatial, source, output)
    else:
        options["spatial"] = "keep" if spatial is None else spatial
        if isinstance(options["spatial"], str) and options["spatial"] == "dynamic":
            fixed = container.graph.fixed_spatial
            options.setdefault("tile_shape", fixed)
    with tempfile.TemporaryDirectory() as folder:
        if container.license_bytes is not None and container.license_name:
            license_path = Path(folder) / Path(container.license_name).name
            license_path.write_bytes(container.license_bytes)
            options["license_file"] = license_path
        written = convert_onnx(graph, output, overwrite=overwrite, **options)
    for line in filter(None, lost):
        warnings.warn(line, UserWarning, stacklevel=find_stack_level())
    return written


def _source_options(container: Any) -> dict[str, Any]:
    """What a container records, as :func:`convert_onnx` options: a legacy source becomes a
    single- or multi-class segmentation by its class count."""
    meta = container.metadata
    if isinstance(meta, LegacyModelMetadata):
        return {
            "classes": meta.classes,
            "min_overlap": meta.border_size,
            "name": meta.name,
            "model_type": segmentation_type(len(meta.classes)),
        }
    options = {
        "classes": meta.classes,
        "min_overlap": meta.min_overlap or 0,
        "name": meta.model_name,
        "model_type": meta.model_type,
        "scaling": meta.scaling,
        "normalize": meta.normalize,
        "scopeml_keys": scopeml_keys(meta),
    }
    if container.graph.fixed_spatial is None:  # keep the tile size hint it records
        options["tile_shape"] = meta.input_shape[:-1]
    return options


def _to_legacy(
    container: Any, options: dict[str, Any], spatial: Spatial | None, source: Path, output: Path
) -> list[str]:
    """Fit ``options`` (in place) to a legacy target; return a warning for each thing the
    legacy XML cannot hold."""
    kind = ModelType(options.pop("model_type"))
    if kind not in _LEGACY_TYPES:
        raise InvalidRequestError(
            f"legacy containers hold segmentation models; {source.name} is {kind.with_article} "
            "model (keep it a .czann)",
            path=output,
        )
    options["spatial"] = _legacy_spatial(container, spatial, output)
    lost = _lost_in_legacy(container.metadata, options, source)
    fixed = container.graph.fixed_spatial if options["spatial"] == "keep" else options["spatial"]
    overlap = options.get("min_overlap") or 0
    check_tile_size(fixed, container.graph.tile_step, overlap, legacy=True, path=output)
    slow = _small_cores(tuple(fixed), options.get("min_overlap") or 0, source,
                        resizable=container.graph.fixed_spatial is None)  # fmt: skip
    lost += [slow] if slow else []
    for key in ("normalize", "scaling", "tile_shape", "scopeml_keys"):
        options.pop(key, None)
    return lost


def _legacy_spatial(container: Any, spatial: Spatial | None, output: Path) -> Spatial:
    """Fixed sizes for a legacy target: given, the graph's, or the czann's InputShape."""
    if spatial is not None and not isinstance(spatial, str):
        return spatial
    if container.graph.fixed_spatial is not None:
        return "keep"
    if spatial == "dynamic":
        raise InvalidRequestError(
            "legacy containers need fixed spatial sizes; give them with --spatial HxW, e.g. "
            "--spatial 256x256 (spatial=(256, 256) in Python)",
            path=output,
        )
    return tuple(container.metadata.input_shape[:-1])


def graph_fingerprint(onnx_bytes: bytes) -> str:
    """SHA-256 of a graph's nodes and weights: the same for a graph whose input and output
    sizes alone were changed (a czann → legacy → czann round trip fixes its spatial sizes)."""
    graph = load_onnx(onnx_bytes).graph
    digest = hashlib.sha256()
    for item in (*graph.node, *graph.initializer):
        digest.update(item.SerializeToString(deterministic=True))
    return digest.hexdigest()


#: The prefix of scopeml's own ``model.json`` keys (czmodel ignores them).
SCOPEML = "ScopeML"


def scopeml_keys(meta: Any) -> dict[str, Any]:
    """A czann's own keys of scopeml (``ScopeMLObjectDiameter`` …) but the normalisation, which
    has its field; none for legacy metadata."""
    extra = getattr(meta, "model_extra", None) or {}
    return {key: value for key, value in extra.items() if key.startswith(SCOPEML)}


def builtin_twin(onnx_bytes: bytes) -> tuple[str, ModelMetadata] | None:
    """``(name, metadata)`` of the built-in model whose graph this is (the same nodes and
    weights: a copy through a legacy container, which cannot record its normalisation or
    object size), when that model records a normalisation; else ``None``. A graph of another
    size than every built-in's (by more than half: its weights are others) is not parsed
    again: a 1 GB graph's fingerprint took 1.7 GB where opening it is bounded at 1.5."""
    graphs = _builtin_graphs()
    if not any(abs(len(onnx_bytes) - size) * 2 <= size for size, _, _ in graphs.values()):
        return None
    found = graphs.get(graph_fingerprint(onnx_bytes))
    return None if found is None else found[1:]


@functools.cache
def _builtin_graphs() -> dict[str, tuple[int, str, ModelMetadata]]:
    """The built-ins that record a normalisation, by graph fingerprint, with their graph's
    size: read once, as the shipped files do not change while the process runs (only the
    fingerprints are kept)."""
    from scopeml.model.container import read_container
    from scopeml.model.registry import BUILTIN_MODELS

    graphs = {}
    for name, builtin in BUILTIN_MODELS.items():
        shipped = read_container(builtin.path)
        policy = getattr(shipped.metadata, "normalize", None)
        if policy and policy != "none":
            size = len(shipped.onnx_bytes)
            graphs[graph_fingerprint(shipped.onnx_bytes)] = (size, name, shipped.metadata)
    return graphs


def _legacy_normalisation(
    onnx_bytes: bytes, options: dict[str, Any], source: Path, given: str | None
) -> str | None:
    """A legacy source records no normalisation nor object size: restore a built-in model's
    (its graph; the normalisation ``given`` instead of its own, where given), or say that a
    normalisation the model may need is not known; the line to warn with (``None``: none)."""
    found = builtin_twin(onnx_bytes)
    if found is not None:
        name, meta = found
        options["normalize"] = given or meta.normalize
        options["scopeml_keys"] = scopeml_keys(meta)  # --normalize dropped these
        restored = (
            "object size is" if given else f"normalisation {meta.normalize} and object size are"
        )
        return (
            f"{source.name}: the graph is scopeml's built-in {name} model; its {restored} "
            f"restored{'' if given else ' (give --normalize to choose another)'}"
        )
    if given:
        return None
    return (
        f"{source.name}: a legacy container records no normalisation; the czann runs without "
        "one, so if the model needs one give --normalize (e.g. percentile:1,99.8)"
    )


def _small_cores(
    fixed: tuple[int, ...], overlap: Any, source: Path, *, resizable: bool
) -> str | None:
    """The line to warn with when a legacy container's fixed tile is mostly halo (the model's
    overlap on each side): each tile then keeps a small core, and a run costs that many times
    the model's work per pixel (the shipped nuclei model at 256²: 32² cores, about 11× slower
    than its czann); else ``None``.

    >>> _small_cores((256, 256), 112, Path("n.czann"), resizable=True).split(";")[0]
    'n.czann: a legacy container fixes the input at 256×256'
    >>> _small_cores((512, 512), 16, Path("n.czann"), resizable=True) is None
    True
    """
    halos = [overlap] * len(fixed) if isinstance(overlap, int) else list(overlap)[-len(fixed) :]
    cores = [max(size - 2 * halo, 0) for size, halo in zip(fixed, halos, strict=True)]
    kept = math.prod(cores) / math.prod(fixed)
    if kept >= 0.25:
        return None
    keep = 0.5 ** (1 / len(fixed))  # per axis, so that half the tile is kept
    larger = [max(-(-int(2 * halo / (1 - keep)) // 64) * 64, size)
              for size, halo in zip(fixed, halos, strict=True)]  # fmt: skip
    return (
        f"{source.name}: a legacy container fixes the input at {'×'.join(map(str, fixed))}; "
        f"with the model's halo of {max(halos)} px on each side, each tile keeps "
        f"{'×'.join(map(str, cores))} of it: a run computes about {1 / max(kept, 1e-9):.0f} pixels "
        "for each one it keeps"
        + (f" (--spatial {'x'.join(map(str, larger))}, spatial={tuple(larger)} in Python, "
           "keeps half)" if resizable else "")
    )  # fmt: skip


def check_tile_size(
    sizes: Sequence[int],
    step: Sequence[int],
    halo: int | Sequence[int],
    *,
    legacy: bool = False,
    path: Path,
    given: str | None = None,
) -> None:
    """Refuse fixed spatial sizes a segmentation graph cannot run on, before it is written
    (``given``: how the message names them; default as ``--spatial``).

    Each size must be a multiple of the graph's tile step (a U-Net pools and upsamples back:
    at 101 its skip connections meet 100, and ONNX Runtime refuses the file) and larger than
    twice the halo (``min_overlap``, per axis; ``legacy``: its largest, the one BorderSize),
    or no tile keeps a core and segment refuses the model. A halo of the wrong length is left
    to the metadata check, which names it.

    >>> check_tile_size((96, 96), (4, 4), 24, path=Path("u.czseg"))  # passes
    >>> check_tile_size((101, 101), (4, 4), 24, path=Path("u.czseg"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: u.czseg: --spatial 101x101 ... valid: 100x100 or 104x104
    """
    sizes, step = tuple(int(size) for size in sizes), tuple(step)
    if len(sizes) != len(step):  # the words set_spatial_dims uses for a czann
        raise InvalidRequestError(
            f"spatial shape {list(sizes)} must be {len(step)} sizes >= 1 for this graph", path=path
        )
    given = given or f"--spatial {'x'.join(map(str, sizes))} (spatial={sizes} in Python)"
    if any(size % each for size, each in zip(sizes, step, strict=True)):
        lower = [size // each * each for size, each in zip(sizes, step, strict=True)]
        upper = [-(-size // each) * each for size, each in zip(sizes, step, strict=True)]
        nearest = " or ".join("x".join(map(str, near)) for near in (lower, upper) if min(near))
        raise InvalidRequestError(
            f"{given}: the graph's sizes must be multiples of its tile step "
            f"{'×'.join(map(str, step))} (its pooling strides); nearest valid: {nearest}",
            path=path,
        )
    halos = (halo,) * len(sizes) if isinstance(halo, int) else tuple(halo)
    if legacy:
        halos = (max(halos, default=0),) * len(sizes)
    if len(halos) != len(sizes):
        return
    if any(size <= 2 * each for size, each in zip(sizes, halos, strict=True)):
        smallest = [max(size, (2 * each // unit + 1) * unit)
                    for size, each, unit in zip(sizes, halos, step, strict=True)]  # fmt: skip
        raise InvalidRequestError(
            f"{given} leaves no tile core inside the model's halo of {max(halos)} px on each "
            f"side; the smallest size that keeps one is {'x'.join(map(str, smallest))}",
            path=path,
        )


def _is_pixelwise(model_type: ModelType | str) -> bool:
    """Whether a model type (or its value) tiles; an unknown one is named by the metadata."""
    try:
        return ModelType(model_type).is_pixelwise
    except ValueError:
        return False


def _lost_in_legacy(meta: Any, options: dict[str, Any], source: Path) -> list[str]:
    """One line per property of the czann (or the options) that a legacy target cannot hold."""
    lines = []
    policy = options.get("normalize")
    if policy is not None and policy != "none":
        lines.append(
            f"{source.name}: this model expects {policy} normalisation, which ZEN/czmodel do not "
            f"apply; the legacy container cannot record it (run it in scopeml with --normalize "
            f"{policy}, or normalise the images before ZEN)"
        )
    overlap = options.get("min_overlap")
    if not isinstance(overlap, int) and overlap and len(set(overlap)) > 1:
        lines.append(
            f"{source.name}: MinOverlap {list(overlap)} becomes BorderSize {max(overlap)} "
            "(legacy containers have one border for both axes)"
        )
    if options.get("scaling") is not None:
        lines.append(
            f"{source.name}: Scaling {list(options['scaling'])} (the pixel size) is dropped: "
            "legacy containers have no place for it"
        )
    if options.get("scopeml_keys"):
        lines.append(
            f"{source.name}: scopeml's own keys ({', '.join(options['scopeml_keys'])}: the "
            "object size --scale auto works from) are dropped: legacy containers have no place "
            "for them"
        )
    return lines


#: A fixed input read channels-last whose first spatial size is at most this many pixels ...
FEW_ROWS = 4
#: ... while it has at least this many channels, or this many times its first spatial size, is
#: taken for a channels-first graph (``N×1×64×64`` would be 64 channels on tiles of one row).
MANY_CHANNELS = 16
CHANNEL_RATIO = 8


def check_channels_last(model: onnx.ModelProto, *, path: str | PathLike[str]) -> None:
    """Refuse a graph whose fixed input reads, channels-last, as many channels on thin tiles.

    czann graphs are ``N×[Z×]Y×X×C``; a channels-first graph (``N×C×[Z×]Y×X``, as PyTorch
    exports) read that way silently becomes a model of X channels whose tiles are C rows high.
    A first spatial size of at most :data:`FEW_ROWS` with at least :data:`MANY_CHANNELS`
    channels, or channels at least :data:`CHANNEL_RATIO` times the first spatial size, is
    refused with the two ways out. Graphs with a dynamic size there, or that
    :func:`~scopeml.model.graph.inspect_graph` cannot read, pass (other checks name those).

    Raises
    ------
    InvalidRequestError
        Naming ``path``, the input shape and ``--channels-first`` / ``--channels-last``.

    Examples
    --------
    >>> from onnx import TensorProto, helper
    >>> def relu(shape):
    ...     value = helper.make_tensor_value_info
    ...     graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
    ...         [value("x", TensorProto.FLOAT, shape)], [value("y", TensorProto.FLOAT, shape)])
    ...     return helper.make_model(graph)
    >>> check_channels_last(relu([1, 64, 64, 1]), path="nhwc.onnx")  # passes
    >>> check_channels_last(relu([1, 1, 64, 64]), path="nchw.onnx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: nchw.onnx: the graph input is N×1×64×64: read ...
    """
    try:
        info = inspect_graph(model)
    except ValueError:
        return
    first, channels = info.input_shape[0], info.input_shape[-1]
    if first is None or channels is None or channels < MANY_CHANNELS:
        return
    if first > FEW_ROWS and channels < CHANNEL_RATIO * first:
        return
    shape = "×".join("?" if size is None else str(size) for size in info.input_shape)
    spatial = "×".join("?" if size is None else str(size) for size in info.spatial_input)
    raise InvalidRequestError(
        f"the graph input is N×{shape}: read channels-last (N×[Z×]Y×X×C, as czann stores it) "
        f"that is {channels} channels on {spatial} tiles, which looks like a channels-first graph "
        "(N×C×[Z×]Y×X, as PyTorch exports); convert it with --channels-first "
        "(scopeml.model.graph.to_channels_last), or with --channels-last (channels_last=True) "
        f"if {channels} channels is right",
        path=path,
    )


def _as_model_proto(onnx_model: bytes | onnx.ModelProto | str | PathLike[str]) -> onnx.ModelProto:
    if isinstance(onnx_model, onnx.ModelProto):
        return onnx_model
    if isinstance(onnx_model, bytes | bytearray | memoryview):
        return load_onnx(bytes(onnx_model))
    return load_onnx(Path(onnx_model).read_bytes(), path=onnx_model)


def _per_axis(value: int | Sequence[int], spatial: int, what: str, path: Path) -> tuple[int, ...]:
    values = (int(value),) * spatial if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != spatial:
        raise InvalidRequestError(
            f"{what} has {len(values)} entries; the model has {spatial} spatial dims", path=path
        )
    return values


def _out_channels(info: GraphInfo, classes: Sequence[str] | None, path: Path) -> int:
    graph_channels = info.output_shape[-1]
    if classes is not None and graph_channels is not None and len(classes) != graph_channels:
        raise InvalidRequestError(
            f"{len(classes)} classes given; the graph outputs {graph_channels} channels", path=path
        )
    if graph_channels is None and classes is None:
        raise InvalidRequestError(
            "the graph's output channel count is dynamic; name the outputs with --classes "
            "(classes=[...] in Python)",
            path=path,
        )
    return graph_channels if graph_channels is not None else len(classes)  # type: ignore[arg-type]


_CLASSIFICATION = {ModelType.SINGLE_CLASS_CLASSIFICATION, ModelType.MULTI_CLASS_CLASSIFICATION}


def _check_image_output(info: GraphInfo, model_type: ModelType | str, path: Path) -> None:
    """Refuse a segmentation (or regression) type for a graph whose output is one score per
    class (``N×K``): it is a classifier, and its type, not its shape, is what to change; and a
    classification type for a graph with an image out (it was written, then every run failed
    "the graph returned 786432 scores; the model has 3 classes")."""
    if len(info.output_shape) > 1 and model_type in _CLASSIFICATION:
        shape = "×".join("?" if n is None else str(n) for n in info.output_shape)
        raise InvalidRequestError(
            f"the graph's output N×{shape} is an image, as a segmentation's; "
            f"{ModelType(model_type).value} needs one score per class (N×K): convert it with "
            "--model-type MultiClassSemanticSegmentation (or another pixelwise type; "
            "model_type= in Python)",
            path=path,
        )
    if len(info.output_shape) == 1 and _is_pixelwise(model_type):
        raise InvalidRequestError(
            f"the graph's output N×{info.output_shape[0] or '?'} has no spatial axes, as a "
            f"classifier's; {ModelType(model_type).value} needs an image out: convert it with "
            "--model-type SingleClassClassification or MultiClassClassification (model_type= "
            "in Python)",
            path=path,
        )


#: Pixel extents (metres) above this are no microscope's: micrometres given as metres, say.
MAX_PIXEL_METRES = 1e-3


def _warn_implausible_scaling(scaling: Sequence[float] | None, path: Path) -> None:
    """Warn when ``Scaling``, which is in metres, is too large for a microscope pixel: 0.5
    meant as µm is 0.5 m, and a bioimage.io export shows it as 500000 µm."""
    try:
        if scaling is None or all(float(size) <= MAX_PIXEL_METRES for size in scaling):
            return
    except (TypeError, ValueError):  # not numbers: the metadata's checks say so
        return
    shown = ", ".join(f"{float(size) * 1e6:g} µm" for size in scaling)
    warnings.warn(
        f"{path.name}: Scaling {list(scaling)} is in metres per pixel: that is {shown}, no "
        f"microscope's pixel; a pixel of 0.5 µm is 5e-07 (above {MAX_PIXEL_METRES:g} m warns)",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def _czann_metadata(
    info: GraphInfo,
    classes: Sequence[str] | None,
    min_overlap: int | Sequence[int],
    model_type: ModelType | str,
    name: str | None,
    scaling: Sequence[float] | None,
    tile_shape: Sequence[int] | None,
    model_id: str | uuid.UUID | None,
    path: Path,
    normalize: str | None = None,
    scopeml_keys: Mapping[str, Any] | None = None,
) -> ModelMetadata:
    spatial = info.spatial_dims
    if info.input_shape[-1] is None:  # first: a channels-first graph misreads its outputs too
        shape = "×".join("?" if n is None else str(n) for n in info.input_shape)
        raise InvalidRequestError(
            f"the graph's input channel count is dynamic (input N×{shape}, read channels-last: "
            "N×[Z×]Y×X×C); a channels-first graph (N×C×Y×X, as PyTorch exports) needs "
            "--channels-first (scopeml.model.graph.to_channels_last)",
            path=path,
        )
    channels = _out_channels(info, classes, path)
    _check_image_output(info, model_type, path)
    sizes = info.fixed_spatial
    if sizes is None:
        hint = tuple(tile_shape) if tile_shape is not None else DEFAULT_TILE_SHAPE[spatial]
        if len(hint) != spatial:
            raise InvalidRequestError(
                f"tile_shape has {len(hint)} entries; the model has {spatial} spatial dims",
                path=path,
            )
        sizes = tuple(
            size if known is None else known
            for size, known in zip(hint, info.spatial_input, strict=True)
        )
    out_spatial = info.output_shape[:-1]
    if len(out_spatial) == spatial:
        pairs = zip(sizes, out_spatial, strict=True)
        output_shape = (*(size if known is None else known for size, known in pairs), channels)
    else:
        output_shape = (*(size or 1 for size in out_spatial), channels)
    if classes is None:
        classes = default_classes(channels, model_type)
    _warn_implausible_scaling(scaling, path)
    fields: dict[str, Any] = {
        "model_type": model_type,
        "input_shape": (*sizes, info.input_shape[-1]),
        "output_shape": output_shape,
        "min_overlap": _per_axis(min_overlap, spatial, "min_overlap", path),
        "classes": tuple(classes),
        "model_name": name,
        "scaling": tuple(float(size) for size in scaling) if scaling is not None else None,
        "normalize": normalize,
        **{key: value for key, value in (scopeml_keys or {}).items() if key.startswith(SCOPEML)},
    }
    if model_id is not None:
        fields["model_id"] = model_id
    return _validated(ModelMetadata, fields, path)


def _legacy_metadata(
    info: GraphInfo,
    classes: Sequence[str] | None,
    min_overlap: int | Sequence[int],
    name: str | None,
    model_id: str | uuid.UUID | None,
    path: Path,
) -> LegacyModelMetadata:
    if info.spatial_dims != 2:
        raise InvalidRequestError(
            f"legacy containers hold 2-D models; the graph has {info.spatial_dims} spatial dims",
            path=path,
        )
    if info.fixed_spatial is None:
        raise InvalidRequestError(
            "legacy containers need fixed spatial sizes; give them with --spatial HxW, e.g. "
            "--spatial 256x256 (spatial=(256, 256) in Python)",
            path=path,
        )
    channels = _out_channels(info, classes, path)
    overlap = _per_axis(min_overlap, 2, "min_overlap", path)
    in_channels = info.input_shape[-1] or 1
    three = in_channels == 3
    fields: dict[str, Any] = {
        "name": name or "DNN model",
        "classes": tuple(classes) if classes is not None else default_classes(channels),
        "border_size": max(overlap),
        "pixel_types": ("Bgr24",) if three else ("Gray32Float",) * in_channels,
        "color_handling": "SplitRgb" if three else "ConvertToMonochrome",
    }
    if model_id is not None:
        fields["model_id"] = model_id
    return _validated(LegacyModelMetadata, fields, path)


def check_engine_tile(sizes: Sequence[int], path: Path) -> None:
    """Refuse a legacy container's fixed input over the pixels a tile of scopeml's engine may
    hold (a dynamic czann's InputShape of 100000² became a legacy file segment refused)."""
    from scopeml.tiling.plan import MAX_TILE_ENV, max_tile_elements

    bound = max_tile_elements()
    if math.prod(sizes) > bound:
        side = math.isqrt(bound)
        raise InvalidRequestError(
            f"a legacy container fixes the input at {'×'.join(map(str, sizes))}; scopeml's "
            f"engine runs tiles of at most {bound} pixels ({MAX_TILE_ENV}): give a smaller "
            f"--spatial, at most {side}x{side} (spatial=({side}, {side}) in Python)",
            path=path,
        )


def czmodel_unreadable(meta: LegacyModelMetadata) -> str | None:
    """Why czmodel's legacy reader (``extract_czseg_model``, 6.2) fails on this XML, else
    ``None``. It takes ``Channels/Item`` to be one element and ``TrainingClasses/Item`` a list
    of them (xmltodict makes several items a list, one a dict), so it cannot read several
    input channels (a TypeError) nor one class, whatever the XML says: ZEN's own format,
    which czmodel also writes.

    >>> czmodel_unreadable(LegacyModelMetadata(classes=("a", "b"))) is None
    True
    >>> two = LegacyModelMetadata(classes=("a", "b"), pixel_types=("Gray8",) * 2)
    >>> czmodel_unreadable(two).split(" (its")[0]
    'czmodel (6.2) cannot read a legacy container of 2 input channels'
    """
    problems = []
    if len(meta.pixel_types) > 1:
        problems.append(f"{len(meta.pixel_types)} input channels")
    if len(meta.classes) < 2:
        problems.append("one class")
    if not problems:
        return None
    return (
        f"czmodel (6.2) cannot read a legacy container of {' or '.join(problems)} (its reader "
        "takes one channel and two or more classes); it is written as ZEN's format has it, "
        "and czmodel reads the model as a .czann"
    )


def _validated(kind: type, fields: dict[str, Any], path: Path) -> Any:
    """Metadata built from the caller's arguments: a problem is a request error."""
    return validate_metadata(kind, fields, path=path, error=InvalidRequestError)


def convert_torch(
    module: Any,
    output: str | PathLike[str],
    *,
    input_shape: Sequence[int],
    spatial: Spatial = "dynamic",
    opset: int = 18,
    **options: Any,
) -> Path:
    """Export a PyTorch module (``N×C×[Z×]Y×X`` → ``N×K×[Z×]Y×X``) into a container.

    The module is traced on a zero input of ``input_shape`` (``C, [Z,] Y, X``) with the
    TorchScript exporter (weights embedded, no external data), wrapped channels-last as czann
    expects, then passed to :func:`convert_onnx` with ``options`` (``classes``, ``min_overlap``,
    ``model_type``, ``name``, ``scaling``, ``preprocessing``, ``legacy`` …). The module is put in
    eval mode for the export and its previous mode restored. Spatial sizes are dynamic by
    default so the engine may pick large tiles; ``spatial="keep"`` keeps ``input_shape``'s. An
    existing ``output`` is replaced only with ``overwrite=True``.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from scopeml.model import load_model
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Softmax(1))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "net.czann"
    >>> path = convert_torch(net, out, input_shape=(1, 32, 32), classes=["bg", "fg"], min_overlap=1)
    >>> load_model(path, providers=["CPUExecutionProvider"]).spec.tile_shape is None
    True
    """
    import torch

    check_output_file(output, overwrite=options.get("overwrite", False))  # before the export
    if len(input_shape) not in (3, 4):
        raise InvalidRequestError(
            f"input_shape {list(input_shape)} must be (C, Y, X) or (C, Z, Y, X)", path=output
        )
    spatial_dims = len(input_shape) - 1
    to_first = (0, spatial_dims + 1, *range(1, spatial_dims + 1))
    to_last = (0, *range(2, spatial_dims + 2), 1)

    class ChannelsLast(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.inner(x.permute(*to_first))  # N×K of a classifier: no axes to move
            return out.permute(*to_last) if out.dim() == len(to_last) else out

    parameter = next(iter(module.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    channels, *sizes = (int(size) for size in input_shape)
    dummy = torch.zeros((1, *sizes, channels), dtype=torch.float32, device=device)
    axes = {0: "N"}
    if spatial == "dynamic":
        axes |= {axis + 1: f"spatial_{axis}" for axis in range(spatial_dims)}
    was_training = module.training
    module.eval()
    try:
        data = torch_to_onnx(ChannelsLast(module), dummy, axes, opset=opset)
    except Exception as err:  # the exporter raises many types for unsupported modules
        raise InvalidRequestError(
            f"PyTorch could not export the module: {err}", path=output
        ) from err
    finally:
        module.train(was_training)
    model = load_onnx(data, path=output)
    keep = "keep" if spatial == "dynamic" else spatial
    options.setdefault("channels_last", True)  # wrapped channels-last above, whatever its sizes
    return convert_onnx(model, output, spatial=keep, **options)


def torch_to_onnx(module: Any, example: Any, dynamic: dict[int, str], *, opset: int) -> bytes:
    """ONNX bytes of a torch ``module`` traced on the tensor ``example``: one input ``input``,
    one output ``output``, the axes in ``dynamic`` left free (same names in both).

    The TorchScript exporter is deprecated, but unlike the dynamo one it embeds the weights and
    needs no onnxscript; czmodel makes the same choice. Exporter errors pass through.

    Examples
    --------
    >>> import torch
    >>> data = torch_to_onnx(torch.nn.ReLU(), torch.zeros(1, 4, 4, 1), {0: "N"}, opset=17)
    >>> [i.name for i in onnx.load_from_string(data).graph.input]
    ['input']
    """
    import torch

    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dynamic, "output": dynamic},
            do_constant_folding=True,
        )
    return buffer.getvalue()


def convert_keras(
    model: Any,
    output: str | PathLike[str],
    *,
    input_shape: Sequence[int] | None = None,
    opset: int = 18,
    **options: Any,
) -> Path:
    """Export a Keras 3 model (channels-last, as czann) into a container via Keras' ONNX export.

    Needs ``keras`` 3 with a backend that exports ONNX without TensorFlow: ``torch`` (set
    ``KERAS_BACKEND=torch`` before importing keras) or ``jax``. The torch backend traces fixed
    spatial sizes, so the graph keeps ``input_shape`` (``[Z,] Y, X, C``; default: the model's
    input shape, which must then be fully defined); the batch axis stays dynamic. Other
    ``options`` as for :func:`convert_onnx`.

    Raises
    ------
    InvalidRequestError
        Keras is not installed, the input shape is unknown, or Keras cannot export the model.
    """
    check_output_file(output, overwrite=options.get("overwrite", False))  # before the export
    try:
        import keras
    except ImportError as err:
        raise InvalidRequestError("keras is not installed; pip install keras", path=output) from err
    import tempfile

    if input_shape is None:
        input_shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else ()
    if not input_shape or any(size is None for size in input_shape):
        raise InvalidRequestError(
            f"give input_shape ([Z,] Y, X, C); the model's is {list(input_shape)}", path=output
        )
    signature = [keras.InputSpec(shape=(None, *input_shape), dtype="float32")]
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "model.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.export(
                    str(onnx_path),
                    format="onnx",
                    verbose=False,
                    input_signature=signature,
                    opset_version=opset,
                )
        except Exception as err:  # backends raise many types for unsupported models
            raise InvalidRequestError(
                f"keras {keras.__version__} ({keras.backend.backend()} backend) could not export "
                f"the model to ONNX: {err}",
                path=output,
            ) from err
        data = onnx_path.read_bytes()
    try:
        graph = load_onnx(data, path=output)
    except InvalidContainerError as err:
        raise InvalidRequestError(err.problem, path=output) from err
    return convert_onnx(graph, output, **options)
