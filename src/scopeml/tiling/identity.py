"""What makes a run's output what it is: the record a resumed run must match exactly.

A path is not an identity: an image replaced by another of the same name, shape and dtype would
otherwise be resumed into a mixture of both. So every input file is fingerprinted by its size,
modification time and a hash of its content (the whole file when small, evenly spaced samples
when large, so the check costs milliseconds on a slide scan of hundreds of gigabytes).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, NamedTuple

from scopeml.io.image import Image
from scopeml.io.stores import ZARR_MARKERS
from scopeml.model.spec import Model
from scopeml.tiling.normalize import Normalization
from scopeml.tiling.options import SegmentOptions

#: Files up to this size are hashed whole.
FULL_HASH_BYTES = 1 << 24
#: Larger files: this many evenly spaced samples of :data:`SAMPLE_BYTES` (first and last included).
SAMPLES = 64
SAMPLE_BYTES = 1 << 16
#: In a folder (OME-Zarr), the content of at most this many files is hashed; all are listed.
FOLDER_SAMPLES = 64


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file (or of a folder's files, in sorted order), streamed."""
    path = Path(path)
    if path.is_dir():
        return _files_sha256(path, sorted(p for p in path.rglob("*") if p.is_file()))
    return _files_sha256(None, [path])


def model_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of what a model is made of: a file, a folder's files (a bioimage.io package
    folder, as :func:`file_sha256`), or a bioimage.io description (``.yaml``/``.yml``, run in
    its folder) with the files it names that exist beside it (weights, test tensors,
    architecture source...). A description's hash is its folder's when the folder holds just
    those files, so changed weights beside an ``rdf.yaml`` are a changed model, as in a folder.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "rdf.yaml").write_text("weights: {onnx: {source: weights.onnx}}")
    >>> _ = (folder / "weights.onnx").write_bytes(b"graph")
    >>> first = model_sha256(folder / "rdf.yaml")
    >>> first == file_sha256(folder)
    True
    >>> _ = (folder / "weights.onnx").write_bytes(b"other graph")
    >>> model_sha256(folder / "rdf.yaml") == first
    False
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return _files_sha256(path.parent, _described_files(path))
    return file_sha256(path)


def _described_files(description: Path) -> list[Path]:
    """The description and the files beside it (in its folder or below) that it names: every
    string of the YAML read as a relative path (``./`` allowed; ``file.py:Class`` by its file);
    URLs, paths leaving the folder and names of no file are passed over. A description that
    does not parse is hashed alone (opening the model refused it already)."""
    import yaml

    folder = description.parent.resolve()
    found = {Path(description.name)}
    try:
        content = yaml.safe_load(description.read_bytes()[:_MAX_DESCRIPTION])
    except yaml.YAMLError:
        content = None
    seen: set[int] = set()  # aliases share objects: each visited once
    stack = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list):
            if id(item) not in seen:
                seen.add(id(item))
                stack.extend(item.values() if isinstance(item, dict) else item)
            continue
        if not isinstance(item, str) or "://" in item or "\n" in item or len(item) > 1024:
            continue
        for name in {item, item.rpartition(":")[0]} - {""}:
            target = (folder / name.removeprefix("./")).resolve()
            if target.is_relative_to(folder) and target.is_file():
                found.add(target.relative_to(folder))
    return [description.parent / relative for relative in sorted(found)]


#: A description is read up to this size for the names of its files (``open_package``'s limit).
_MAX_DESCRIPTION = 1 << 20


def _files_sha256(base: Path | None, files: list[Path]) -> str:
    """SHA-256 of ``files`` in order, each preceded by its name relative to ``base`` (none
    without a base: a single file hashes as its bytes)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(base)).encode() if base is not None else b"")
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def image_content(image: Image) -> dict[str, Any]:
    """The :func:`fingerprint` of the file an image's pixels are read from, or of each
    channel's file of a field saved one file per channel (any of them may be rewritten)."""
    if len(image.channel_files) > 1:
        return {"files": [fingerprint(path) for path in image.channel_files]}
    return fingerprint(image.path)


def field_files(content: Any) -> int:
    """How many channel files an :func:`image_content` record covers; 0 for one file's."""
    return len(content["files"]) if isinstance(content, dict) and "files" in content else 0


def fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Size, modification time and a content hash of a file or a folder (an OME-Zarr store).

    Files up to :data:`FULL_HASH_BYTES` are hashed whole; larger ones by :data:`SAMPLES`
    samples. A folder lists every file (relative name, size, modification time) and hashes
    the content of its small metadata files and of up to :data:`FOLDER_SAMPLES` others.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.tif").write_bytes(b"pixels")
    >>> first = fingerprint(folder / "a.tif")
    >>> first["size"], first["sha256"] == hashlib.sha256(b"pixels").hexdigest()
    (6, True)
    >>> _ = (folder / "a.tif").write_bytes(b"pixelz")
    >>> fingerprint(folder / "a.tif")["sha256"] == first["sha256"]
    False
    """
    path = Path(path)
    if path.is_dir():
        return _folder_fingerprint(path)
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _file_hash(path)}


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size <= FULL_HASH_BYTES:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
            return digest.hexdigest()
        digest.update(f"sampled {size}".encode())
        for k in range(SAMPLES):
            handle.seek(k * (size - SAMPLE_BYTES) // (SAMPLES - 1))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def _folder_fingerprint(folder: Path) -> dict[str, Any]:
    listing = hashlib.sha256()
    files: list[tuple[str, Path]] = []
    size = 0
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            file = Path(root) / name
            stat = file.stat()
            relative = str(file.relative_to(folder))
            listing.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            files.append((relative, file))
            size += stat.st_size
    metadata = [f for f in files if f[0].endswith((".json", *ZARR_MARKERS))]
    chunks = [f for f in files if f not in metadata]
    step = max(1, len(chunks) // FOLDER_SAMPLES)
    content = hashlib.sha256()
    for relative, file in metadata[:FOLDER_SAMPLES] + chunks[::step][:FOLDER_SAMPLES]:
        content.update(relative.encode() + b"\0" + _file_hash(file).encode())
    return {
        "size": size,
        "files": len(files),
        "listing_sha256": listing.hexdigest(),
        "sha256": content.hexdigest(),
    }


class RunNames(NamedTuple):
    """The names a server's run records instead of where the server keeps its files: the
    image's as its client knows it (an upload's name, a path below the allowed root) and the
    model's as the user gave it (``None``: its own)."""

    image: str | None = None
    model: str | None = None


#: The run record's digest of a model held in memory only (a classifier trained in the
#: session): a record from before it was kept resumes without it, as one without ``axes``.
CONTENT_SHA256 = "content_sha256"


def run_identity(
    image: Image,
    model: Model,
    options: SegmentOptions,
    normalization: Normalization | None,
    *,
    model_path: str | os.PathLike[str] | None = None,
    image_name: str | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """What makes a run's output what it is; a resumed run must match it exactly.

    Progress reporting, workers, the scheduler and the batch size are left out: they never
    change a pixel, so a run may be resumed with other ones.

    The image is recorded by its resolved ``path``, or, given ``image_name`` (a server's run:
    the name its client knows the image by), by that ``name`` and no path at all, and by its
    view of the file (``image_view``: scene and channel indices; a resume of another view is
    told which differs, :meth:`~scopeml.io.image.Image.view`).
    Pixels a reader read from the file are fingerprinted from the file itself, so a resume
    still finds a changed image; an array that merely names a file has no fingerprint.
    ``model_name`` likewise replaces the model's own name (the model is recorded by its
    content hash, never by its path).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from scopeml.model.spec import ModelSpec
    >>> class Model:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))
    >>> path = Path(tempfile.mkdtemp()) / "secret" / "a.tif"
    >>> path.parent.mkdir()
    >>> _ = path.write_bytes(b"pixels")
    >>> image = Image(np.zeros((1, 1, 2, 1, 2, 2), np.uint8), path=path)
    >>> "content" in run_identity(image, Model(), SegmentOptions(), None)["image"]
    False
    >>> image.mark_read_from_file(None)  # as open_image does
    >>> public = run_identity(image, Model(), SegmentOptions(), None, image_name="a.tif")
    >>> public["image"]["name"], "path" in public["image"], public["image"]["content"]["size"]
    ('a.tif', False, 6)
    >>> run_identity(image.select_channels([1]), Model(), SegmentOptions(), None)["image_view"]
    {'scene': None, 'channels': [1]}
    >>> run_identity(image, Model(), SegmentOptions(), None)["image"]["path"] == str(path.resolve())
    True
    """
    spec = model.spec
    source = model_path or getattr(model, "path", None)
    model_id: dict[str, Any] = {
        "name": spec.name if model_name is None else model_name,
        "classes": list(spec.classes),
        "halo": list(spec.halo),
        "tile_step": list(spec.tile_step),
    }
    if source is not None and Path(source).exists():
        model_id["sha256"] = model_sha256(source)
    elif callable(getattr(model, "content_sha256", None)):  # trained in this session
        model_id[CONTENT_SHA256] = model.content_sha256()
    place: dict[str, Any] = (
        {"name": image_name}
        if image_name is not None
        else {"path": str(Path(image.path).resolve()) if image.path else None}
    )
    view = image.view()
    image_id: dict[str, Any] = {**place, "shape": list(image.shape), "dtype": str(image.dtype)}
    if view["from_file"] and image.path and Path(image.path).exists():
        image_id["content"] = image_content(image)
    from scopeml.tiling.store import WRITER, writer

    return {
        "format": 2,
        WRITER: writer(),
        "model": model_id,
        "image": image_id,
        "image_view": {"scene": view["scene"], "channels": view["channels"]},
        "options": options.result_dict(),
        "normalization": normalization.to_dict() if normalization else None,
    }
