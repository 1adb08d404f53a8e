"""Read and write czmodel containers: ``.czann`` and the legacy ``.czseg``/``.czmodel``.

A ``.czann`` is a zip holding ``model.json`` (:class:`~scopeml.model.metadata.ModelMetadata`),
the ONNX graph as ``model.model`` and optionally a license file. A legacy container holds
``<id>.xml`` (:class:`~scopeml.model.metadata.LegacyModelMetadata`), ``<id>.model`` and an empty
member ``modelid=<id>``. The format is read from the contents, not the file extension.

Containers are untrusted: members are read into memory within limits (:mod:`.safezip`), only JSON,
XML and ONNX are ever parsed (a pickle or a torch state dict in a container is ignored, never
loaded), an ONNX graph pointing at external data files is refused, and the metadata must agree
with the graph before a container is accepted or written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import onnx

from scopeml.errors import InvalidContainerError, InvalidRequestError
from scopeml.io.replace import check_output_file
from scopeml.model.graph import GraphInfo, inspect_graph
from scopeml.model.metadata import LegacyModelMetadata, ModelMetadata
from scopeml.model.safezip import DEFAULT_LIMITS, SafeZip, ZipLimits, write_zip

CZANN_METADATA = "model.json"
CZANN_MODEL = "model.model"
PIXEL_CLASSIFIER_FORMAT = "scopeml-pixel-classifier"
#: Model container suffixes: the one list for every caller that must recognise a model file by
#: name (the server's model store). The kind inside is read from the content, never the suffix.
CONTAINER_SUFFIXES = (".czann", ".czseg", ".czmodel")


@dataclass(frozen=True)
class Container:
    """A model container read into memory and checked.

    Attributes
    ----------
    metadata
        ``ModelMetadata`` for a czann, ``LegacyModelMetadata`` for a czseg/czmodel.
    onnx_bytes
        The serialised ONNX graph.
    graph
        What :func:`~scopeml.model.graph.inspect_graph` read from it.
    license_name, license_bytes
        The license member, if any.
    path
        Where it was read from, if it was.
    """

    metadata: ModelMetadata | LegacyModelMetadata
    onnx_bytes: bytes
    graph: GraphInfo
    license_name: str | None = None
    license_bytes: bytes | None = None
    path: Path | None = None
    ignored_members: tuple[str, ...] = ()

    @property
    def legacy(self) -> bool:
        return isinstance(self.metadata, LegacyModelMetadata)

    @property
    def format(self) -> str:
        return "czseg" if self.legacy else "czann"

    def __repr__(self) -> str:
        return (
            f"Container(format={self.format!r}, path={self.path!r}, "
            f"onnx={len(self.onnx_bytes)} bytes, metadata={self.metadata!r})"
        )


def read_container(path: str | PathLike[str], *, limits: ZipLimits = DEFAULT_LIMITS) -> Container:
    """Read and check a ``.czann``, ``.czseg`` or ``.czmodel`` file.

    Raises
    ------
    InvalidContainerError
        The file is not a zip, a member is unsafe or too big, the metadata is missing, malformed
        or disagrees with the graph, or the graph does not load. The message names the file.
    FileNotFoundError
        The file does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from scopeml.model.testing import tiny_unet_onnx
    >>> meta = ModelMetadata(model_type="MultiClassSemanticSegmentation",
    ...     input_shape=(64, 64, 1), output_shape=(64, 64, 2), classes=("bg", "fg"),
    ...     min_overlap=(16, 16))
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "m.czann"
    >>> read_container(write_container(out, tiny_unet_onnx(), meta)).metadata.classes
    ('bg', 'fg')
    """
    path = Path(path)
    with SafeZip(path, limits=limits) as archive:
        return parse_members(_ArchiveMembers(archive), path=path)


class _ArchiveMembers(Mapping[str, bytes]):
    """Members of an open archive, read (within its limits) only when looked up.

    Members a container does not use (a stray pickle, say) are listed but never read; metadata
    members get the smaller JSON limit.
    """

    def __init__(self, archive: SafeZip) -> None:
        self._archive = archive

    def __getitem__(self, name: str) -> bytes:
        if name not in self._archive:
            raise KeyError(name)
        small = name.lower().endswith((".json", ".xml"))
        limit = self._archive.limits.max_json_bytes if small else None
        return self._archive.read(name, max_bytes=limit)

    def __contains__(self, name: object) -> bool:  # Mapping's default would read the member
        return name in self._archive

    def __iter__(self) -> Iterator[str]:
        return iter(self._archive.names)

    def __len__(self) -> int:
        return len(self._archive.names)


def parse_members(members: Mapping[str, bytes], *, path: Path | None = None) -> Container:
    """Build a :class:`Container` from archive members already in memory."""
    if CZANN_METADATA in members:
        return _parse_czann(members, path)
    legacy_ids = [name[len("modelid=") :] for name in members if name.startswith("modelid=")]
    xml_names = [name for name in members if name.lower().endswith(".xml")]
    if legacy_ids or xml_names:
        return _parse_legacy(members, legacy_ids, xml_names, path)
    raise InvalidContainerError(
        f"no {CZANN_METADATA} (czann), no model XML (czseg/czmodel) and no rdf.yaml or "
        f"bioimageio.yaml (bioimage.io package) in the archive; members: {sorted(members)[:10]}",
        path=path,
    )


def _parse_czann(members: Mapping[str, bytes], path: Path | None) -> Container:
    text = members[CZANN_METADATA]  # over a limit: that error, not "not valid JSON"
    try:
        data = json.loads(text.decode("utf-8"))
    except RecursionError as err:
        raise InvalidContainerError(
            f"{CZANN_METADATA} is nested too deep to be model metadata", path=path
        ) from err
    except ValueError as err:  # bad JSON, UTF-8, a 5,000-digit number
        raise InvalidContainerError(
            f"{CZANN_METADATA} is not valid JSON ({err})", path=path
        ) from err
    if isinstance(data, dict) and data.get("Format") == PIXEL_CLASSIFIER_FORMAT:
        raise InvalidContainerError(
            "is a scopeml pixel classifier, not a czann model container: a random forest on "
            "image features, no ONNX graph (scopeml uses it as it is: segment -m, open_model)",
            path=path,
        )
    metadata = ModelMetadata.from_json_dict(data, path=path)
    if CZANN_MODEL not in members:
        raise InvalidContainerError(f"no {CZANN_MODEL} member (the ONNX graph)", path=path)
    onnx_bytes = members[CZANN_MODEL]
    graph = load_graph_info(onnx_bytes, path=path)
    check_metadata(metadata, graph, path=path)
    extras = [name for name in members if name not in (CZANN_METADATA, CZANN_MODEL)]
    return _with_license(metadata, onnx_bytes, graph, members, extras, path)


def _parse_legacy(
    members: Mapping[str, bytes], ids: list[str], xml_names: list[str], path: Path | None
) -> Container:
    if len(ids) > 1:
        raise InvalidContainerError(f"{len(ids)} modelid= members; expected one", path=path)
    if ids:
        xml_name, model_name = f"{ids[0]}.xml", f"{ids[0]}.model"
    elif len(xml_names) == 1:
        xml_name = xml_names[0]
        model_name = xml_name[: -len(".xml")] + ".model"
    else:
        raise InvalidContainerError(
            f"{len(xml_names)} XML members and no modelid= member; cannot tell the metadata",
            path=path,
        )
    if xml_name not in members:
        raise InvalidContainerError(f"no metadata member {xml_name!r}", path=path)
    if model_name not in members:
        model_names = [name for name in members if name.endswith(".model")]
        if len(model_names) != 1:
            raise InvalidContainerError(f"no model member {model_name!r}", path=path)
        model_name = model_names[0]
    metadata = LegacyModelMetadata.from_xml(members[xml_name], path=path)
    onnx_bytes = members[model_name]
    graph = load_graph_info(onnx_bytes, path=path)
    check_legacy_metadata(metadata, graph, path=path)
    known = {xml_name, model_name, *(f"modelid={i}" for i in ids)}
    extras = [name for name in members if name not in known]
    return _with_license(metadata, onnx_bytes, graph, members, extras, path)


def _with_license(
    metadata: ModelMetadata | LegacyModelMetadata,
    onnx_bytes: bytes,
    graph: GraphInfo,
    members: Mapping[str, bytes],
    extras: list[str],
    path: Path | None,
) -> Container:
    licenses = [name for name in extras if "licen" in name.lower()]
    license_name = licenses[0] if licenses else None
    return Container(
        metadata=metadata,
        onnx_bytes=onnx_bytes,
        graph=graph,
        license_name=license_name,
        license_bytes=members[license_name] if license_name else None,
        path=path,
        ignored_members=tuple(name for name in extras if name != license_name),
    )


def load_onnx(onnx_bytes: bytes, *, path: Any = None) -> onnx.ModelProto:
    """Parse and check a serialised ONNX graph; refuse external-data references."""
    model = _parse_onnx(onnx_bytes, path)
    _check_onnx(onnx_bytes, path)
    return model


def _parse_onnx(onnx_bytes: bytes, path: Any) -> onnx.ModelProto:
    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception as err:  # protobuf DecodeError and friends: the bytes are not ONNX
        raise InvalidContainerError(
            f"the model is not a valid ONNX graph ({err})", path=path
        ) from err
    for tensor in _all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise InvalidContainerError(
                f"the ONNX tensor {tensor.name!r} refers to external data; "
                "containers must be self-contained",
                path=path,
            )
    return model


def _check_onnx(onnx_bytes: bytes, path: Any) -> None:
    try:  # the checker parses the bytes itself; given a ModelProto it would serialise a copy
        onnx.checker.check_model(onnx_bytes)
    except Exception as err:  # ValidationError, or protobuf errors on odd graphs
        raise InvalidContainerError(f"the ONNX graph is invalid ({err})", path=path) from err


def graph_skeleton(onnx_bytes: bytes, *, path: Any = None) -> onnx.ModelProto:
    """The graph without its weights: a tensor of over 256 values keeps name, type and dims only.

    What inspecting a graph and inferring its shapes need, at a fraction of the memory of the
    whole model (small tensors, such as the shapes a ``Reshape`` reads, are kept). Refuses
    external-data references as :func:`load_onnx` does.
    """
    model = _parse_onnx(onnx_bytes, path)
    for tensor in _all_tensors(model):
        if math.prod(tensor.dims) > 256:  # not ByteSize(): upb serialises a copy to count
            for field in _TENSOR_DATA_FIELDS:
                tensor.ClearField(field)
    skeleton = model.SerializeToString()
    del model  # the parsed weights go here, before anything else is allocated
    return onnx.load_model_from_string(skeleton)


_TENSOR_DATA_FIELDS = (
    "raw_data",
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
)


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph can carry data in: initializers, sparse initializers, node
    attributes (tensors, sparse tensors, subgraphs) and the model's local functions. ONNX
    Runtime loads external data from any of them, relative to its working directory: one
    left unchecked let an uploaded model read a server's files."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:  # a function's default attribute values too
        yield from _attribute_tensors(function.attribute_proto)
        yield from _node_tensors(function.node)
    for training in model.training_info:  # graphs ONNX Runtime may not run, checked alike
        yield from _graph_tensors(training.initialization)
        yield from _graph_tensors(training.algorithm)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
    for node in nodes:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes: Iterable[onnx.AttributeProto]) -> Iterator[onnx.TensorProto]:
    """Every field is looked at, whatever the attribute's declared type says."""
    for attribute in attributes:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        sparse = [attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []
        for tensor in [*sparse, *attribute.sparse_tensors]:
            yield from (tensor.values, tensor.indices)
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for subgraph in attribute.graphs:
            yield from _graph_tensors(subgraph)


def load_graph_info(onnx_bytes: bytes, *, path: Any = None) -> GraphInfo:
    """Check a serialised graph and inspect it, errors as InvalidContainerError.

    Memory stays near twice the graph's size: the weights are dropped from the parsed copy
    before the checker parses the bytes once more (see :func:`graph_skeleton`).
    """
    skeleton = graph_skeleton(onnx_bytes, path=path)
    _check_onnx(onnx_bytes, path)
    try:
        return inspect_graph(skeleton)
    except ValueError as err:
        raise InvalidContainerError(str(err), path=path) from err


def _agree(name: str, meta: Sequence[int], graph: Sequence[int | None]) -> str | None:
    if len(meta) != len(graph):
        return (
            f"{name} {list(meta)} has {len(meta)} entries; the graph's has {len(graph)} "
            f"({_show(graph)}, batch axis excluded)"
        )
    if any(g is not None and g != m for m, g in zip(meta, graph, strict=True)):
        return f"{name} {list(meta)} disagrees with the graph's {_show(graph)}"
    return None


def _show(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"


def check_metadata(metadata: ModelMetadata, graph: GraphInfo, *, path: Any = None) -> None:
    """Raise :class:`InvalidContainerError` unless czann metadata and graph agree.

    Fixed graph sizes must equal the metadata's; dynamic ones accept any (as czmodel does).
    """
    problems = [
        _agree("InputShape", metadata.input_shape, graph.input_shape),
        _agree("OutputShape", metadata.output_shape, graph.output_shape),
    ]
    graph_classes = graph.output_shape[-1]
    if metadata.classes is not None and graph_classes not in (None, len(metadata.classes)):
        problems.append(
            f"Classes has {len(metadata.classes)} names; the graph outputs {graph_classes} channels"
        )
    problems = [problem for problem in problems if problem]
    if problems:
        raise InvalidContainerError("; ".join(problems), path=path)


def check_legacy_metadata(
    metadata: LegacyModelMetadata, graph: GraphInfo, *, path: Any = None
) -> None:
    """Raise unless legacy metadata fits the graph: 2-D, classes = output channels."""
    if graph.spatial_dims != 2:
        raise InvalidContainerError(
            f"legacy containers hold 2-D models; the graph has {graph.spatial_dims} spatial dims",
            path=path,
        )
    out_channels = graph.output_shape[-1]
    if out_channels is not None and out_channels != len(metadata.classes):
        raise InvalidContainerError(
            f"the XML lists {len(metadata.classes)} classes; the graph outputs {out_channels} "
            "channels",
            path=path,
        )


def _onnx_bytes(onnx_model: bytes | onnx.ModelProto | str | PathLike[str]) -> bytes:
    if isinstance(onnx_model, bytes | bytearray | memoryview):
        return bytes(onnx_model)
    if isinstance(onnx_model, onnx.ModelProto):
        return onnx_model.SerializeToString()
    return Path(onnx_model).read_bytes()


def write_container(
    path: str | PathLike[str],
    onnx_model: bytes | onnx.ModelProto | str | PathLike[str],
    metadata: ModelMetadata | LegacyModelMetadata,
    *,
    license_file: str | PathLike[str] | None = None,
    legacy: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a container atomically, after checking that metadata and graph agree.

    Parameters
    ----------
    path
        Output file; written as ``<path>.tmp…`` next to it and renamed when complete.
    onnx_model
        The graph: serialised bytes, a ``ModelProto`` or an ``.onnx`` file.
    metadata
        ``ModelMetadata`` writes a ``.czann``; ``LegacyModelMetadata`` a ``.czseg``/``.czmodel``.
    license_file
        A license text to include under its own file name.
    legacy
        Must agree with the metadata type when given (a guard for callers that pass both).
    overwrite
        Replace a file already at ``path`` (refused, before any work, when false).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidContainerError
        Metadata and graph disagree, the graph is not valid ONNX, or class names repeat (they
        name the outputs, e.g. ``--extract-class``; reading tolerates repeats, writing does not).
    """
    from scopeml.model.metadata import repeated_classes

    path = Path(path)
    check_output_file(path, overwrite=overwrite)
    repeated = repeated_classes(metadata)
    if repeated:
        raise InvalidContainerError(f"class names repeat: {', '.join(repeated)}", path=path)
    is_legacy = isinstance(metadata, LegacyModelMetadata)
    if legacy is not None and legacy != is_legacy:
        kind = "LegacyModelMetadata" if legacy else "ModelMetadata"
        raise InvalidContainerError(
            f"legacy={legacy} needs {kind}; got {type(metadata).__name__}", path=path
        )
    data = _onnx_bytes(onnx_model)
    graph = load_graph_info(data, path=path)
    members: list[tuple[str, bytes]]
    if isinstance(metadata, LegacyModelMetadata):
        check_legacy_metadata(metadata, graph, path=path)
        model_id = str(metadata.model_id)
        members = [(f"{model_id}.xml", metadata.to_xml()), (f"{model_id}.model", data)]
    else:
        check_metadata(metadata, graph, path=path)
        text = json.dumps(metadata.to_json_dict(), indent=2)
        members = [(CZANN_METADATA, text.encode("utf-8")), (CZANN_MODEL, data)]
    if license_file is not None:
        license_path = Path(license_file)
        if license_path.name in {name for name, _ in members}:
            raise InvalidRequestError(
                f"a license file may not be named {license_path.name!r} (a container member)",
                path=license_path,
            )
        members.append((license_path.name, license_path.read_bytes()))
    if is_legacy:
        members.append((f"modelid={metadata.model_id}", b""))
    write_zip(path, members, overwrite=overwrite)
    return path
