"""What an analysis' model and classifier files are: by their whole content, checked cheaply.

Each file is fingerprinted by its size, modification time and the SHA-256 of all of its bytes
(:func:`~scopeml.tiling.identity.model_sha256`, the hash ``segment`` records its model by: a
bioimage.io description with the files it names, a package folder with all its files), so a
file changed in any byte is a changed model, whatever its size. Hashing costs about 0.2 s per
200 MB, so a process hashes a file once per run (``run``: the run's token) and, within the run,
again only when the file's stat (size, modification and change times, inode, of each of its
files) changes: a worker checks the files before every image at the cost of a ``stat``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scopeml.tiling.identity import FULL_HASH_BYTES, model_sha256

__all__ = ["HASHED", "files_identity", "model_fingerprint", "same_content"]

#: The fingerprint's ``hashed`` value: the content hash covers every byte (records made before
#: it hashed samples of files over 16 MB, see :func:`same_content`).
HASHED = "whole"
#: This process's fingerprints: absolute path → (run, stat, fingerprint).
_SEEN: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {}
_seen_lock = threading.Lock()


def files_identity(resources: Any, run: str | None = None) -> dict[str, dict[str, Any]] | None:
    """``{"models": {class: fingerprint}, "classifiers": {...}}`` of the files ``resources``
    were opened from (:func:`model_fingerprint`); ``None`` where one is gone."""
    try:
        return {
            kind: {name: model_fingerprint(path, run) for name, path in paths.items()}
            for kind, paths in resource_paths(resources).items()
        }
    except OSError:
        return None


def resource_paths(resources: Any) -> dict[str, Mapping[str, Any]]:
    """The model and classifier files of opened resources, by kind and class."""
    return {"models": resources.model_paths, "classifiers": resources.classifier_paths}


def model_fingerprint(path: str | os.PathLike[str], run: str | None = None) -> dict[str, Any]:
    """Size and modification time (of all its files: their sum, the latest) and the SHA-256
    of the whole content of a model or classifier file, folder or bioimage.io description.

    ``run``: hashed once in this process for that run, then again only when the stat of the
    file (or of a folder's files) changes; ``None``: hashed now.

    Examples
    --------
    >>> import hashlib, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m.bin"
    >>> _ = path.write_bytes(b"weights")
    >>> found = model_fingerprint(path, run="r1")
    >>> found["size"], found["sha256"] == hashlib.sha256(b"weights").hexdigest()
    (7, True)
    """
    path = Path(path)
    key = os.path.abspath(path)
    stat = _stat(path)  # before hashing: a change while hashing shows at the next stat
    if run is not None:
        with _seen_lock:
            held = _SEEN.get(key)
        if held is not None and held[0] == run and held[1] == stat:
            return dict(held[2])
    found = {
        "size": sum(entry[1] for entry in stat),
        "mtime_ns": max((entry[2] for entry in stat), default=0),
        "sha256": model_sha256(path),
        "hashed": HASHED,
    }
    if run is not None:
        with _seen_lock:
            _SEEN[key] = (run, stat, found)
    return dict(found)


def _stat(path: Path) -> tuple[Any, ...]:
    """(name, size, mtime_ns, ctime_ns, inode) of the file, or of every file of a folder (a
    bioimage.io description: of its folder, which holds the files it names)."""
    folder = path if path.is_dir() else None
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        folder = path.parent
    if folder is None:
        files = [(path.name, path)]
    else:
        files = [
            (os.path.relpath(os.path.join(root, name), folder), Path(root) / name)
            for root, dirs, names in sorted(os.walk(folder))
            for name in sorted(names)
        ]
    entries = []
    for name, file in files:
        st = file.stat()
        entries.append((name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(entries)


def same_content(
    then: Mapping[str, Any], now: Mapping[str, Any], path: str | os.PathLike[str]
) -> bool:
    """Whether ``then`` (a record's fingerprint) and ``now`` (:func:`model_fingerprint`) of the
    file at ``path`` say the same content; modification times are left out (a copy of the same
    file is the same model).

    A fingerprint recorded before :data:`HASHED` (tiling's
    :func:`~scopeml.tiling.execute.source_fingerprint`: a file up to 16 MB hashed whole, a
    larger one or a folder by samples) is compared with that fingerprint of the file now, so
    results made then still resume."""
    if then.get("hashed") == HASHED:
        return then.get("sha256") == now.get("sha256")
    size = then.get("size")
    if "files" not in then and isinstance(size, int) and size <= FULL_HASH_BYTES:
        return size == now.get("size") and then.get("sha256") == now.get("sha256")
    from scopeml.tiling.execute import source_fingerprint

    try:
        earlier = source_fingerprint(path)
    except OSError:
        return False
    when = ("mtime_ns", "listing_sha256")
    return {k: v for k, v in then.items() if k not in when} == {
        k: v for k, v in earlier.items() if k not in when
    }
