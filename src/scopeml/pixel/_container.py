"""Saving and loading a pixel classifier as a safe container (a zip; no pickle anywhere).

Layout (suffix ``.czseg`` by convention)::

    model.json            metadata: "Format": "scopeml-pixel-classifier", version, feature set,
                          channels, classes with colours, halo, spatial dims, versions;
                          Training: the training parameters and record (channel names,
                          "intensity_range": the training pixels' percentiles per channel,
                          absent from containers written before it)
    forest/<name>.npy     one plain numeric .npy per node array (see ``_forest.ARRAY_DTYPES``)
    network.onnx          deep features only: the user's feature network, when it is at most
                          ``EMBED_MAX_BYTES`` (50 MiB), so the classifier works wherever it goes

A deep classifier records its network file's absolute path ("network") and its path relative to
the container ("network_relative"); without an embedded copy, loading looks there and beside
the container (:func:`scopeml.features.deep.find_network`). The network's SHA-256 is checked
either way. Builtin VGG networks are never embedded (they are rebuilt from their weights).

Loading treats the file as untrusted, through the one safe container module
(:mod:`scopeml.model.safezip`, the limits every container shares): members are read by their
fixed names (never extracted, never a path from the archive), each read bounded in size whatever
the zip header claims, each ``.npy`` header checked (dtype, shape, byte count) before its bytes
become an array, the JSON validated field by field, and the forest validated node by node. Any
defect raises :class:`InvalidContainerError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scopeml.errors import InvalidContainerError, InvalidRequestError, ScopeMLError
from scopeml.features import DeepFeatures, parse_features
from scopeml.features._network import BUILTIN, EMBED_MAX_BYTES
from scopeml.io.replace import check_output_file
from scopeml.model.forest import ARRAY_DTYPES, Forest
from scopeml.model.metadata import class_name_problem
from scopeml.model.registry import check_kind, czann_words
from scopeml.model.safezip import DEFAULT_LIMITS, SafeZip, npy_bytes, write_zip
from scopeml.pixel._classifier import PixelClass, PixelClassifier, make_classes

FORMAT = "scopeml-pixel-classifier"
#: 2: derivative features are differences of the smoothed image (version 1 used Gaussian
#: derivative filters, so its models would see different features and are refused).
FORMAT_VERSION = 2
#: Largest forest array member; the shared per-member limit of every container.
MAX_ARRAY_BYTES = DEFAULT_LIMITS.max_member_bytes


class _ClassEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Name: str
    Color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    Label: int = Field(ge=1)

    @field_validator("Name")
    @classmethod
    def _printable(cls, name: str) -> str:
        problem = class_name_problem(name)
        if problem is not None:
            raise ValueError(f"class name {problem}")
        return name


class _ForestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Trees: int = Field(ge=1)
    Nodes: int = Field(ge=1)
    Features: int = Field(ge=1)


class _RangeEntry(BaseModel):
    """``Training["intensity_range"]``: percentiles of the training pixels, per channel."""

    model_config = ConfigDict(extra="forbid")
    percentiles: list[float] = Field(min_length=2, max_length=2)
    low: list[float] = Field(min_length=1, max_length=1024)
    high: list[float] = Field(min_length=1, max_length=1024)


class ClassifierMetadata(BaseModel):
    """``model.json`` of a pixel-classifier container."""

    model_config = ConfigDict(extra="forbid")
    Format: Literal["scopeml-pixel-classifier"]
    FormatVersion: Literal[2]
    Name: str = Field(max_length=1024)
    SpatialDims: Literal[2, 3]
    InChannels: int = Field(ge=1, le=1024)
    Features: dict[str, Any]
    FeatureNames: list[str]
    Classes: list[_ClassEntry] = Field(min_length=2, max_length=65535)
    Halo: list[int]
    Forest: _ForestEntry
    Training: dict[str, Any] = Field(default_factory=dict)
    SklearnVersion: str = ""
    ScopemlVersion: str = ""


#: The member holding an embedded feature network.
NETWORK_MEMBER = "network.onnx"


_GRAPH_SUFFIXES = (".czann", ".czmodel", ".onnx")


def check_classifier_name(path: str | PathLike[str]) -> None:
    """Refuse a graph's or an image's suffix for a classifier file (before training, where a
    command can): ``-o m.czann`` wrote a random forest that ZEN, czmodel and ONNX tools cannot
    open, and ``-o m.png`` one that every reader takes for an image."""
    from scopeml.io.registry import IMAGE_SUFFIXES

    path = Path(path)
    if path.name.lower().endswith(IMAGE_SUFFIXES):  # -o model.png: read as an image later
        raise InvalidRequestError(
            f"{path.suffix} names an image; a pixel classifier is saved as .czseg: name it "
            f"{path.with_suffix('.czseg').name}",
            path=path,
        )
    if path.suffix.lower() in _GRAPH_SUFFIXES:
        raise InvalidRequestError(
            f"a pixel classifier is a random forest on image features, saved as .czseg; "
            f"{path.suffix} names a graph that ZEN or ONNX tools run: name it "
            f"{path.with_suffix('.czseg').name}",
            path=path,
        )


def save_classifier(
    classifier: PixelClassifier,
    path: str | PathLike[str],
    *,
    embed_network: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``classifier`` to ``path`` atomically (temporary file in the folder, then rename);
    an existing file is replaced only if ``overwrite``.

    ``embed_network``: store a user's feature network (deep features) in the container; by
    default when it is at most ``EMBED_MAX_BYTES``. Builtin networks are never stored.
    """
    import sklearn

    import scopeml

    path = Path(path)
    check_classifier_name(path)
    check_output_file(path, overwrite=overwrite)
    spec = classifier.spec
    features = classifier.features.to_dict()
    network = None
    if features.get("kind") == "deep" and features["network"] not in BUILTIN:
        with contextlib.suppress(ValueError):  # another drive (Windows): no relative path
            features["network_relative"] = os.path.relpath(
                features["network"], path.resolve().parent
            )
        network = classifier.features.net.onnx_bytes if embed_network is not False else None
        if embed_network and network is None:
            raise InvalidRequestError(
                f"the feature network is larger than {EMBED_MAX_BYTES >> 20} MiB; it is not "
                "embedded (give embed_network=None or False)"
            )
        if network is not None:
            features["embedded"] = NETWORK_MEMBER
    meta = ClassifierMetadata(
        Format=FORMAT,
        FormatVersion=FORMAT_VERSION,
        Name=spec.name,
        SpatialDims=spec.spatial_dims,
        InChannels=spec.in_channels,
        Features=features,
        FeatureNames=classifier.feature_names,
        Classes=[
            _ClassEntry(Name=c.name, Color=c.color, Label=k + 1)
            for k, c in enumerate(classifier.classes)
        ],
        Halo=list(spec.halo),
        Forest=_ForestEntry(
            Trees=classifier.forest.n_trees,
            Nodes=classifier.forest.n_nodes,
            Features=classifier.forest.n_features,
        ),
        Training=classifier.info,
        SklearnVersion=sklearn.__version__,
        ScopemlVersion=scopeml.__version__,
    )
    members = [("model.json", meta.model_dump_json(indent=2).encode("utf-8"))]
    members += [
        (f"forest/{name}.npy", npy_bytes(array))
        for name, array in classifier.forest.arrays().items()
    ]
    if network is not None:
        members.append((NETWORK_MEMBER, network))
    write_zip(path, members, overwrite=overwrite)
    return path


def read_metadata(path: str | PathLike[str]) -> ClassifierMetadata:
    """Read and validate only ``model.json`` (cheap; for ``model info`` and format sniffing)."""
    with _open_zip(path) as archive:
        return _parse_metadata(_read_json(archive, "model.json"), path)


#: Model formats told apart from a pixel classifier for sure, refused by name. (Not czann: a
#: damaged pixel classifier, both holding a ``model.json``, may sniff as one; its loader says
#: what is wrong with it.)
NOT_PIXEL = ("object-classifier", "czmodel", "bioimageio")


def load_classifier(
    path: str | PathLike[str],
    *,
    n_jobs: int = -1,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
) -> PixelClassifier:
    """Load a classifier saved by :meth:`PixelClassifier.save`, validating everything.

    ``allowed_roots``: a feature network the classifier names (not stored inside it) must lie
    below one of these folders (a server job); ``None``: anywhere.

    Raises
    ------
    InvalidContainerError
        The file is not a zip, lacks a member, or anything in it is malformed or inconsistent.
    """
    try:
        meta, arrays, network = _read_members(path)
    except InvalidContainerError:  # a model of another kind: said by what it is
        check_kind(path, NOT_PIXEL, "a pixel classifier")
        raise
    deep = meta.Features.get("kind") == "deep"
    try:
        if deep:  # opens the network (embedded, or its file found), checks its hash
            base = Path(path).resolve().parent
            features = DeepFeatures.from_dict(
                meta.Features, base=base, embedded=network, allowed_roots=allowed_roots
            )
        else:
            features = parse_features(meta.Features)
        n_features = features.n_features(meta.InChannels, meta.SpatialDims)
        names = features.names(meta.InChannels, meta.SpatialDims)
    except ScopeMLError as err:
        raise InvalidContainerError(f"model.json: Features: {err}", path=path) from err
    checks = [
        (meta.FeatureNames == names, "FeatureNames do not match the feature set"),
        (meta.Forest.Features == n_features, f"forest has {meta.Forest.Features} features; "
         f"the feature set gives {n_features}"),
        (meta.Halo == [features.halo] * meta.SpatialDims,
         f"Halo {meta.Halo} disagrees with the feature set's {features.halo}"),
        ([c.Label for c in meta.Classes] == list(range(1, len(meta.Classes) + 1)),
         "class labels must be 1..K in order"),
        (meta.Forest.Trees == len(arrays["offsets"]) - 1, "forest tree count disagrees"),
        (meta.Forest.Nodes == len(arrays["left"]), "forest node count disagrees"),
    ]  # fmt: skip
    for ok, problem in checks:
        if not ok:
            raise InvalidContainerError(f"model.json: {problem}", path=path)
    forest = Forest.from_arrays(
        arrays, n_features=n_features, n_classes=len(meta.Classes), path=path
    )
    classes = make_classes(
        len(meta.Classes), [c.Name for c in meta.Classes], [c.Color for c in meta.Classes]
    )
    classifier = PixelClassifier(
        forest,
        features,
        in_channels=meta.InChannels,
        spatial_dims=meta.SpatialDims,
        classes=[PixelClass(c.name, c.color) for c in classes],
        name=meta.Name,
        n_jobs=n_jobs,
        info=meta.Training,
    )
    classifier.path = Path(path)
    return classifier


def _open_zip(path: str | PathLike[str]) -> SafeZip:
    try:
        return SafeZip(path)
    except InvalidContainerError as err:
        raise InvalidContainerError(
            f"not a readable zip container ({err.problem})", path=path
        ) from err


def _present(archive: SafeZip, name: str) -> str:
    if name not in archive:
        raise InvalidContainerError(f"member {name} is missing", path=archive.path)
    return name


def _read_json(archive: SafeZip, name: str) -> Any:
    return archive.read_json(_present(archive, name))


def _read_members(path: str | PathLike[str]) -> tuple[ClassifierMetadata, dict, bytes | None]:
    """A classifier file's metadata, forest arrays and embedded feature network (if any)."""
    with _open_zip(path) as archive:
        meta = _parse_metadata(_read_json(archive, "model.json"), path)
        arrays = {
            name: archive.read_array(
                _present(archive, f"forest/{name}.npy"),
                dtype=dtype,
                max_ndim=2,
                max_bytes=MAX_ARRAY_BYTES,
            )
            for name, dtype in ARRAY_DTYPES.items()
        }
        deep = meta.Features.get("kind") == "deep"
        embedded = meta.Features.get("embedded") if deep else None
        network = archive.read(_present(archive, NETWORK_MEMBER)) if embedded else None
    return meta, arrays, network


def _parse_metadata(raw: Any, path: Any) -> ClassifierMetadata:
    if not isinstance(raw, dict) or raw.get("Format") != FORMAT:
        found = raw.get("Format") if isinstance(raw, dict) else type(raw).__name__
        czann = isinstance(raw, dict) and found is None and {"Type", "InputShape"} <= set(raw)
        words, use = czann_words(raw["Type"]) if czann else ("", "")
        raise InvalidContainerError(
            f"model.json Format is {found!r}; expected {FORMAT!r}"
            + (f" ({words}? it goes to {use})" if czann else ""),
            path=path,
        )
    try:
        meta = ClassifierMetadata.model_validate(raw)
    except ValidationError as err:
        raise _invalid(err, (), path) from err
    if "intensity_range" in meta.Training:  # recorded since it exists; older files lack it
        try:
            entry = _RangeEntry.model_validate(meta.Training["intensity_range"])
        except ValidationError as err:
            raise _invalid(err, ("Training", "intensity_range"), path) from err
        if not len(entry.low) == len(entry.high) == meta.InChannels:
            raise InvalidContainerError(
                f"model.json: Training.intensity_range has {len(entry.low)} low and "
                f"{len(entry.high)} high values; the model has {meta.InChannels} "
                f"channel{'' if meta.InChannels == 1 else 's'}",
                path=path,
            )
    return meta


def _invalid(err: ValidationError, prefix: tuple[str, ...], path: Any) -> InvalidContainerError:
    """The first problem pydantic found, located in ``model.json``."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in (*prefix, *first["loc"])) or "(top)"
    return InvalidContainerError(f"model.json: {where}: {first['msg']}", path=path)
