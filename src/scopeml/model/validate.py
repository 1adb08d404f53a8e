"""What ``scopeml model validate`` checks, as a library (:func:`validate_model`): a container
is safe, its metadata valid and true to its graph, and the graph runs (on a probe tile, and on
an image and a crop for the halo) within a time budget and a memory limit; a package, a
classifier are opened and run as scopeml runs them."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from scopeml.errors import IncompatibleModelError, InvalidContainerError


def validate_model(
    model: str | PathLike[str],
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
) -> list[str]:
    """Check a model of any kind (a file, a package, a built-in name) by opening and running
    it; return the lines ``scopeml model validate`` prints (``warning: …`` for what loads but
    may trouble ZEN or the engine, then what it is and what it ran on).

    ``time_budget``: seconds one run of the model may take before it is stopped (default
    ``$SCOPEML_MODEL_TIME_BUDGET`` or 300; 0: none). ``memory_limit``: bytes the largest
    tensor the graph makes for the probe tile (and a package's test input) may take (default
    1 GiB or ``$SCOPEML_MODEL_MEMORY_LIMIT``): a hostile graph is refused before it runs.

    Raises the :class:`~scopeml.errors.ScopeMLError` of the first check that fails, naming
    the file (a timeout, a tensor over the memory limit, metadata the graph contradicts).
    """
    from scopeml.model.container import read_container
    from scopeml.model.metadata import ModelMetadata
    from scopeml.model.probe import probe_model
    from scopeml.model.registry import format_of, resolve_model

    path = resolve_model(model)
    from scopeml.model.bioimageio.package import is_package

    if is_package(path):
        from scopeml.model.bioimageio.run import check_package

        return check_package(path, time_budget=time_budget, memory_limit=memory_limit)
    refuse_folder(path)
    kind = format_of(path)  # a file of no known kind: said as segment says it
    if kind in ("pixel-classifier", "object-classifier"):  # a scopeml zip, not a container
        return validate_classifier(model, path, kind.replace("-", " "))
    container = read_container(path)
    warnings = container_warnings(container)
    meta = container.metadata
    if isinstance(meta, ModelMetadata) and not meta.model_type.is_pixelwise:
        limits = {"time_budget": time_budget, "memory_limit": memory_limit}
        line = validate_image_classifier(model, path, meta, limits)
        return [f"warning: {warning}" for warning in warnings] + [line]  # repeated names too
    probe = probe_model(container, time_budget=time_budget, memory_limit=memory_limit)
    check_tiles(container, path)
    warnings += halo_warnings(path, time_budget, memory_limit)
    return [f"warning: {warning}" for warning in warnings] + [
        f"{model}: valid {container.format}; ran on {probe.input_shape[1:]} → "
        f"{probe.output_shape[1:]}"
    ]


#: The legacy XML's ``ColorHandling`` values and its channels' ``PixelType`` values, with the
#: channels each gives the graph when split (czmodel's ``LegacyModelMetadata`` lists them; an
#: RGB one is 3 channels unless ColorHandling converts it to monochrome).
COLOR_HANDLING = ("ConvertToMonochrome", "SplitRgb")
PIXEL_TYPES = {
    "Gray8": 1, "Gray16": 1, "Gray32Float": 1, "Gray64ComplexFloat": 1,
    "Bgr24": 3, "Bgr48": 3, "Bgr96Float": 3, "Bgra32": 3, "Bgr192ComplexFloat": 3,
}  # fmt: skip


def check_legacy_xml(meta: Any, graph: Any, path: Any) -> None:
    """The XML's values are czmodel's, and the channels it lists (its pixel types, as
    ColorHandling feeds them) are the graph's input channels: ZEN feeds what the XML lists,
    scopeml what the graph takes (a Bgr24 XML split on a 1-channel graph, a PixelType
    "Banana", two channels for a graph that takes one validated as valid)."""
    if meta.color_handling not in COLOR_HANDLING:
        raise InvalidContainerError(
            f"the XML's ColorHandling {meta.color_handling!r} is unknown; known: "
            f"{', '.join(COLOR_HANDLING)}",
            path=path,
        )
    unknown = [kind for kind in meta.pixel_types if kind not in PIXEL_TYPES]
    if unknown:
        raise InvalidContainerError(
            f"the XML's channel PixelType {unknown[0]!r} is unknown; known: "
            f"{', '.join(PIXEL_TYPES)}",
            path=path,
        )
    taken = graph.input_shape[-1]
    types = list(meta.pixel_types)
    mono = meta.color_handling == "ConvertToMonochrome"
    fed = sum(1 if mono else PIXEL_TYPES[kind] for kind in types)
    if taken is None or taken == fed:
        return
    handled = f" with ColorHandling {meta.color_handling}: {fed}" if fed != len(types) else ""
    listed = f"{len(types)} channel{'s' * (len(types) != 1)}"
    raise InvalidContainerError(
        f"the XML lists {listed} ({', '.join(types)}){handled}; the graph takes {taken}",
        path=path,
    )


def halo_warnings(path: Path, time_budget: float | None, memory_limit: int | None) -> list[str]:
    """A halo (MinOverlap) too small for the graph, found by running it on an image and a
    crop (:func:`scopeml.model.probe.check_halo`); a check the bounds stop is said, not
    fatal: the probe tile has passed."""
    from scopeml.errors import ScopeMLError
    from scopeml.model.probe import check_halo

    try:
        line = check_halo(path, time_budget=time_budget, memory_limit=memory_limit)
    except ScopeMLError as err:
        return [f"the halo was not checked: {err.problem}"]
    return [line] if line else []


def check_tiles(container: Any, path: Path) -> None:
    """A fixed input tile leaves a core around the halo, as segment plans its tiles (a legacy
    BorderSize of 500 in a 256² tile passed validation, then segment refused the model)."""
    from scopeml.model.runtime import model_spec
    from scopeml.tiling.plan import plan_tiles

    spec = model_spec(container)
    if spec.tile_shape is None:
        return
    axes = "ZYX"[-spec.spatial_dims :]
    fixed = dict(zip(axes, spec.tile_shape, strict=True))
    halo, step = (dict(zip(axes, sizes, strict=True)) for sizes in (spec.halo, spec.tile_step))
    try:
        plan_tiles(fixed, tile_shape=fixed, halo=halo, step=step, fixed_input=fixed)
    except IncompatibleModelError as err:
        raise IncompatibleModelError(err.problem, path=path) from None


def validate_image_classifier(model: Path, path: Path, meta: Any, limits: dict) -> str:
    """Run a classification container on a zero image of its input size as ``classify``
    runs it (its tensors sized, then a capped child): it must give one score per class."""
    import numpy as np

    from scopeml.model.probe import run_isolated

    kind = meta.model_type.value
    if kind == "ObjectDetection":
        return f"{model}: valid czann (not run: scopeml does not run ObjectDetection models yet)"
    zeros = np.zeros((1, meta.in_channels, *meta.input_shape[:-1]), np.float32)
    shown = "×".join(map(str, zeros.shape[2:]))
    scores = run_isolated(path, zeros, classifier=True, what=f"a {shown} zero image", **limits)
    if not np.all(np.isfinite(scores)):
        raise IncompatibleModelError("the graph gives non-finite scores on a zero image", path=path)
    return (
        f"{model}: valid czann, {meta.model_type.with_article} model of classes "
        f"{', '.join(meta.classes or ())}; ran on {zeros.shape[1:]} → {scores.shape[1:]}"
    )


def validate_classifier(model: Path, path: Path, kind: str) -> list[str]:
    """Open a scopeml classifier (a pixel classifier also runs on a zero probe tile) and say
    what it is, in the CLI's words; an invalid one raises scopeml's one-line error (exit 2)."""
    import numpy as np

    from scopeml.model.registry import open_model

    classifier = open_model(path)
    if kind == "object classifier":
        classes = list(classifier.classes)
        return [
            f"{model}: valid scopeml object classifier: {len(classes)} classes "
            f"({', '.join(classes)}), {len(classifier.features)} features",
            "  it classifies measured objects (not pixels; not a czann/czseg container): "
            f"scopeml objects classify {model} TABLE -o OUT",
        ]
    spec = classifier.spec
    step = spec.tile_step or (1,) * spec.spatial_dims
    size = [-(-(2 * h + 8) // s) * s for h, s in zip(spec.halo, step, strict=True)]
    probe = np.zeros((1, spec.in_channels, *size), np.float32)
    out = np.asarray(classifier.predict(probe))
    channels = f"{spec.in_channels} channel{'s' * (spec.in_channels != 1)}"
    return [
        f"{model}: valid scopeml pixel classifier: {len(spec.classes)} classes "
        f"({', '.join(spec.classes)}), {channels}, {spec.spatial_dims}-D; ran on "
        f"{tuple(probe.shape[1:])} → {tuple(out.shape[1:])}",
        "  scopeml's own .czseg (a random forest on image features), not a ZEN .czseg: ZEN "
        f"and czmodel do not open it; details: scopeml pixel info {model}",
    ]


def refuse_folder(path: Path) -> None:
    """Refuse a folder that is no bioimage.io package as ``model info`` refuses it (validate
    said "Is a directory", convert asked for --classes), saying what a package folder holds."""
    from scopeml.model.registry import model_formats, not_a_model

    if not path.is_dir():
        return
    problem = not_a_model(path, model_formats())
    if problem.startswith("is a folder, not a model file;"):
        problem = problem.replace(
            "not a model file",
            "not a model file nor a bioimage.io package folder (no rdf.yaml or bioimageio.yaml "
            "in it)",
            1,
        )
    raise InvalidContainerError(problem, path=path)


def container_warnings(container: Any) -> list[str]:
    """Things that load but may trouble ZEN or the engine."""
    from scopeml.model.convert import normalisation_note
    from scopeml.model.metadata import (
        CZANN_FORMAT_VERSION,
        LegacyModelMetadata,
        repeated_classes,
    )

    meta, graph = container.metadata, container.graph
    warnings = []
    if container.ignored_members:
        warnings.append(f"ignored members: {list(container.ignored_members)}")
    repeated = repeated_classes(meta)
    if repeated:
        warnings.append(
            f"class names repeat: {', '.join(repeated)} (scopeml runs it, a name choosing its "
            "first class; convert and export-bioimageio refuse it)"
        )
    if isinstance(meta, LegacyModelMetadata):
        check_legacy_xml(meta, graph, container.path)
        return warnings
    note = normalisation_note(meta)
    if note is not None:
        warnings.append(f"{note} (scopeml does: it records it as ScopeMLNormalize)")
    if meta.format_version != CZANN_FORMAT_VERSION:
        warnings.append(
            f"FormatVersion {meta.format_version}; scopeml writes {CZANN_FORMAT_VERSION}"
        )
    if meta.min_overlap is None:
        if meta.model_type.is_pixelwise:  # a classifier is not tiled
            warnings.append("no MinOverlap: tiles get no halo and may show seams")
    elif any(overlap % 2 for overlap in meta.min_overlap):
        warnings.append(f"MinOverlap {list(meta.min_overlap)} is odd (the czann spec asks even)")
    spatial = meta.input_shape[: len(meta.min_overlap or ())]
    if any(2 * o >= n for o, n in zip(meta.min_overlap or (), spatial, strict=True)):
        warnings.append(
            f"MinOverlap {list(meta.min_overlap or ())} leaves no tile interior in InputShape "
            f"{list(spatial)} (ZEN's tiles); scopeml reads that halo around each of its tiles"
        )
    warnings += _input_shape_warnings(meta) + _class_warnings(meta)
    if graph.fixed_spatial and any(
        size % step for size, step in zip(graph.fixed_spatial, graph.tile_step, strict=True)
    ):
        warnings.append(
            f"fixed input {graph.fixed_spatial} is not a multiple of the tile step "
            f"{graph.tile_step}"
        )
    return warnings


def _class_warnings(meta: Any) -> list[str]:
    """Classes the Type contradicts or leaves to a guess: a Regression model naming classes
    (a ModelType edited, say) runs as intensities, no labels; classes left unnamed are
    ``class 1 …``, and instances then take the first as background."""
    from scopeml.model.metadata import ModelType, default_classes

    if meta.model_type is ModelType.REGRESSION:
        outputs = default_classes(meta.output_shape[-1], meta.model_type)  # what it writes
        if not meta.classes or tuple(meta.classes) == outputs:
            return []
        return [f"Type Regression with Classes ({', '.join(meta.classes)}): its outputs are "
                "written as intensities, no labels; a segmentation model's Type is "
                "MultiClassSemanticSegmentation"]  # fmt: skip
    if meta.classes or not meta.model_type.is_pixelwise:
        return []
    named = ", ".join(default_classes(meta.output_shape[-1]))
    return [f"no Classes: its outputs are named {named} (instances take class 1 as the "
            "background)"]  # fmt: skip


def _input_shape_warnings(meta: Any) -> list[str]:
    """An InputShape tile (ZEN's, and a legacy container's size) over the pixels a tile of
    scopeml's engine may hold: 100000² validated without a word."""
    import math

    from scopeml.tiling.plan import MAX_TILE_ENV, max_tile_elements

    tile = meta.input_shape[:-1]
    bound = max_tile_elements()
    if not meta.model_type.is_pixelwise or math.prod(tile) <= bound:
        return []
    return [
        f"InputShape {list(meta.input_shape)}: its {'×'.join(map(str, tile))} tile (the one ZEN "
        f"runs) is over the {bound} pixels a tile of scopeml's engine may hold ({MAX_TILE_ENV}); "
        "converting it to a legacy container at that size is refused"
    ]
