"""What ``scopeml model inspect`` shows, as a library: a model's metadata, its graph and what
the tiling engine will use, as one JSON-ready dict (:func:`inspect_model`)."""

from __future__ import annotations

from collections import Counter
from os import PathLike
from pathlib import Path
from typing import Any


def inspect_model(model: str | PathLike[str]) -> dict[str, Any]:
    """Describe a model of any kind (a file, a package, a built-in name) without running it:
    ``path`` and ``format``; a container's or package's ``metadata``, ``graph``, ``engine``
    (channels, classes, halo, tile step and shape, normalisation), ``license`` and ``notes``;
    a classifier's ``engine`` or ``classes`` and ``features``. ``scopeml model inspect
    --json`` prints it.

    Returns a JSON-ready ``dict`` with those keys (``engine["normalize"]``: the normalisation
    the engine applies, ``None`` for raw values).

    >>> inspect_model("nuclei")["engine"]["classes"]
    ['background', 'nucleus', 'boundary']
    """
    from scopeml.model.container import read_container
    from scopeml.model.registry import format_of, resolve_model

    path = resolve_model(model)
    kind = format_of(path)
    if kind == "bioimageio":
        return describe_package(path)
    if kind not in ("czann", "czmodel"):
        return describe_model(path, kind)
    return describe(read_container(path))


def describe_package(path: Path) -> dict[str, Any]:
    """A bioimage.io package as :func:`describe` shows a container (the czann it is imported
    as, in memory: what scopeml runs), with what the package itself declares under
    ``package``."""
    from scopeml.model.bioimageio.importer import WEIGHT_FORMATS, scopeml_config
    from scopeml.model.bioimageio.package import open_package
    from scopeml.model.bioimageio.run import import_in_memory

    package = open_package(path)
    try:
        descr = package.description
        declared = {
            "name": str(descr.name),
            "format_version": package.original_format,
            "weights": [n for n in WEIGHT_FORMATS if getattr(descr.weights, n, None)],
            "input": _tensor_summary(descr.inputs[0], "preprocessing") if descr.inputs else None,
            "output": _tensor_summary(descr.outputs[0], "postprocessing")
            if descr.outputs
            else None,
            "license": str(descr.license) if descr.license else None,
        }
        recorded = scopeml_config(descr).get("czann_id")  # scopeml's export records it
    finally:
        package.close()
    container = import_in_memory(path)[0]
    description = describe(container)
    description["format"] = "bioimage.io package, imported as a czann in memory"
    if recorded is None:  # a fresh one at each import: not the package's
        description["metadata"].pop("Id", None)
    description["package"] = declared
    return description


def _tensor_summary(tensor: Any, steps: str) -> str:
    axes = ",".join(
        str(axis.id) if axis.type == "space" else str(axis.type) for axis in tensor.axes
    )
    done = [str(step.id) for step in getattr(tensor, steps) if step.id != "ensure_dtype"]
    return f"{tensor.id} ({axes}){'; ' + ', '.join(done) if done else ''}"


def describe_model(path: Path, kind: str) -> dict[str, Any]:
    """A JSON-ready description of a model that is not a container, opened by the registry."""
    from scopeml.model.registry import open_model

    model = open_model(path)
    spec = getattr(model, "spec", None)
    description: dict[str, Any] = {"path": str(path), "format": kind}
    if spec is None:  # an object classifier: rows of a table in, one class out
        description["classes"] = list(model.classes)
        description["features"] = list(model.features)
        return description
    description["engine"] = {
        "spatial_dims": spec.spatial_dims,
        "in_channels": spec.in_channels,
        "classes": list(spec.classes),
        "halo": list(spec.halo),
        "tile_step": list(spec.tile_step),
        "tile_shape": list(spec.tile_shape) if spec.tile_shape else None,
        "normalize": spec.normalize,
    }
    if hasattr(model, "feature_names"):
        description["features"] = f"{len(model.feature_names)} ({model.features.name})"
    return description


def describe(container: Any) -> dict[str, Any]:
    """A JSON-ready description of a container: metadata, graph summary, engine spec."""
    import onnx

    from scopeml.errors import IncompatibleModelError
    from scopeml.model.convert import normalisation_note
    from scopeml.model.metadata import LegacyModelMetadata
    from scopeml.model.runtime import model_spec

    meta = container.metadata
    if isinstance(meta, LegacyModelMetadata):
        metadata = meta.model_dump(mode="json")
    else:
        metadata = meta.to_json_dict()
    proto = onnx.load_model_from_string(container.onnx_bytes)
    ops = Counter(node.op_type for node in proto.graph.node)
    info = container.graph
    try:
        spec = model_spec(container)
        engine: dict[str, Any] | None = {
            "in_channels": spec.in_channels,
            "classes": list(spec.classes),
            "halo": list(spec.halo),
            "tile_step": list(spec.tile_step),
            "tile_shape": list(spec.tile_shape) if spec.tile_shape else None,
            "pixel_size": list(spec.pixel_size) if spec.pixel_size else None,
            "normalize": spec.normalize,
        }
    except IncompatibleModelError:
        engine = None
    return {
        "path": str(container.path),
        "format": container.format,
        "metadata": metadata,
        "graph": {
            "input": info.input_name,
            "output": info.output_name,
            "input_shape": [info.batch or "N", *shown_shape(info.input_shape)],
            "output_shape": [info.batch or "N", *shown_shape(info.output_shape)],
            "opset": info.opset,
            "nodes": len(proto.graph.node),
            "ops": dict(ops.most_common()),
            "bytes": len(container.onnx_bytes),
            "tile_step": list(info.tile_step),
        },
        "engine": engine,
        "license": container.license_name,
        "ignored_members": list(container.ignored_members),
        "notes": [note] if (note := normalisation_note(meta)) else [],
    }


def shown_shape(shape: tuple[int | None, ...]) -> list[int | str]:
    """A graph's sizes as shown: ``?`` for a dynamic one."""
    return ["?" if size is None else size for size in shape]
