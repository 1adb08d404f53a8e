"""Saving and loading a pixel classifier as a safe container (a zip; no pickle anywhere).

Layout (suffix ``.czseg`` by convention)::

    model.json            metadata: "Format": "scopeml-pixel-classifier", version, feature set,
                          channels, classes with colours, halo, spatial dims, versions
    forest/<name>.npy     one plain numeric .npy per node array (see ``_forest.ARRAY_DTYPES``)

Loading treats the file as untrusted: members are read by their fixed names (never extracted,
never a path from the archive), each read bounded in size whatever the zip header claims, each
``.npy`` header checked (dtype, shape, byte count) before its bytes become an array, the JSON
validated field by field, and the forest validated node by node. Any defect raises
:class:`InvalidContainerError` naming the file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scopeml.errors import InvalidContainerError, ScopeMLError
from scopeml.features import FeatureSet
from scopeml.pixel._classifier import PixelClass, PixelClassifier, make_classes
from scopeml.pixel._forest import ARRAY_DTYPES, Forest

FORMAT = "scopeml-pixel-classifier"
#: 2: derivative features are differences of the smoothed image (version 1 used Gaussian
#: derivative filters, so its models would see different features and are refused).
FORMAT_VERSION = 2
MAX_JSON_BYTES = 4 * 2**20
MAX_ARRAY_BYTES = 2 * 2**30
MAX_MEMBERS = 64
# RuntimeError: encrypted member; NotImplementedError: unknown compression.
_READ_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


class _ClassEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Name: str = Field(min_length=1, max_length=256)
    Color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    Label: int = Field(ge=1)


class _ForestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Trees: int = Field(ge=1)
    Nodes: int = Field(ge=1)
    Features: int = Field(ge=1)


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


def save_classifier(classifier: PixelClassifier, path: str | PathLike[str]) -> Path:
    """Write ``classifier`` to ``path`` atomically (temporary file in the folder, then rename)."""
    import sklearn

    import scopeml

    path = Path(path)
    spec = classifier.spec
    meta = ClassifierMetadata(
        Format=FORMAT,
        FormatVersion=FORMAT_VERSION,
        Name=spec.name,
        SpatialDims=spec.spatial_dims,
        InChannels=spec.in_channels,
        Features=classifier.features.to_dict(),
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("model.json", meta.model_dump_json(indent=2))
            for name, array in classifier.forest.arrays().items():
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
                zf.writestr(f"forest/{name}.npy", buffer.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_metadata(path: str | PathLike[str]) -> ClassifierMetadata:
    """Read and validate only ``model.json`` (cheap; for ``model info`` and format sniffing)."""
    with _open_zip(path) as zf:
        return _parse_metadata(_read_member(zf, "model.json", MAX_JSON_BYTES, path), path)


def load_classifier(path: str | PathLike[str], *, n_jobs: int = -1) -> PixelClassifier:
    """Load a classifier saved by :meth:`PixelClassifier.save`, validating everything.

    Raises
    ------
    InvalidContainerError
        The file is not a zip, lacks a member, or anything in it is malformed or inconsistent.
    """
    with _open_zip(path) as zf:
        meta = _parse_metadata(_read_member(zf, "model.json", MAX_JSON_BYTES, path), path)
        arrays = {
            name: _read_npy(
                _read_member(zf, f"forest/{name}.npy", MAX_ARRAY_BYTES, path), name, path
            )
            for name in ARRAY_DTYPES
        }
    try:
        features = FeatureSet.from_dict(meta.Features)
        n_features = meta.InChannels * features.n_per_channel(meta.SpatialDims)
        names = features.names(meta.InChannels, meta.SpatialDims)
    except ScopeMLError as err:
        raise InvalidContainerError(f"model.json: Features: {err.problem}", path=path) from err
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
    return PixelClassifier(
        forest,
        features,
        in_channels=meta.InChannels,
        spatial_dims=meta.SpatialDims,
        classes=[PixelClass(c.name, c.color) for c in classes],
        name=meta.Name,
        n_jobs=n_jobs,
        info=meta.Training,
    )


def _open_zip(path: str | PathLike[str]) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise InvalidContainerError(f"not a readable zip container ({err})", path=path) from err
    if len(zf.infolist()) > MAX_MEMBERS:
        zf.close()
        raise InvalidContainerError(f"more than {MAX_MEMBERS} members", path=path)
    return zf


def _read_member(zf: zipfile.ZipFile, name: str, limit: int, path: Any) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError as err:
        raise InvalidContainerError(f"member {name} is missing", path=path) from err
    if info.file_size > limit:
        raise InvalidContainerError(f"member {name} is larger than {limit} bytes", path=path)
    try:
        with zf.open(info) as member:
            data = member.read(limit + 1)
    except _READ_ERRORS as err:
        raise InvalidContainerError(f"member {name} cannot be read ({err})", path=path) from err
    if len(data) > limit:
        raise InvalidContainerError(f"member {name} is larger than {limit} bytes", path=path)
    return data


def _parse_metadata(data: bytes, path: Any) -> ClassifierMetadata:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise InvalidContainerError(f"model.json is not valid JSON ({err})", path=path) from err
    if not isinstance(raw, dict) or raw.get("Format") != FORMAT:
        found = raw.get("Format") if isinstance(raw, dict) else type(raw).__name__
        raise InvalidContainerError(
            f"model.json Format is {found!r}; expected {FORMAT!r}", path=path
        )
    try:
        return ClassifierMetadata.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidContainerError(f"model.json: {where}: {first['msg']}", path=path) from err


def _read_npy(data: bytes, name: str, path: Any) -> np.ndarray:
    """Turn the bytes of a ``.npy`` into an array after checking header, dtype and size."""
    expected = ARRAY_DTYPES[name]
    buffer = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buffer)
        reader = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }[version]
        shape, fortran, dtype = reader(buffer, max_header_size=10_000)
    except (ValueError, KeyError, SyntaxError, TypeError) as err:
        raise InvalidContainerError(f"forest/{name}.npy: bad header ({err})", path=path) from err
    if dtype != expected or fortran or len(shape) > 2 or any(n < 0 for n in shape):
        raise InvalidContainerError(
            f"forest/{name}.npy holds {dtype} {shape}; expected {expected}, C order, ≤ 2-D",
            path=path,
        )
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) - buffer.tell() != count * expected.itemsize:
        raise InvalidContainerError(
            f"forest/{name}.npy has {len(data) - buffer.tell()} data bytes; its header says "
            f"{count * expected.itemsize}",
            path=path,
        )
    return np.frombuffer(data, expected, count, offset=buffer.tell()).reshape(shape)
