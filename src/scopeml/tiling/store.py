"""The output store of a run: written under ``OUT.partial``, moved into place when complete.

Layout while running::

    OUT.ome.zarr.partial/
        zarr.json                 root group
        labels/ probabilities/ …  one NGFF image group per output (level "0")
        .scopeml-run.json         the run's identity (model, image and its content, options)
        .scopeml-lock             flock held by the run writing the store
        .scopeml-done/<index>     one file per finished tile, written after its chunks (empty,
                                  or the count of its NaN/infinite input pixels)

A tile's done record is created only after all its chunks are written, so a run killed at any
moment resumes from exactly the tiles that are complete; a half-written chunk belongs to a tile
without a record and is rewritten whole (tiles own whole chunks). The final name appears only
through one rename at the end, so a half-written output is never taken for a finished one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; runs on one output are then not kept apart
    fcntl = None  # type: ignore[assignment]

from scopeml.errors import IncompleteOutputError, InvalidRequestError, summarize
from scopeml.io.replace import check_replaceable_store, write_atomically

_RUN = ".scopeml-run.json"
_DONE = ".scopeml-done"
_LOCK = ".scopeml-lock"
#: A zarr.json larger than this is not one scopeml wrote (its record is a few kilobytes).
_MAX_RECORD_BYTES = 1 << 22


def partial_path(output: str | os.PathLike[str]) -> Path:
    """Where an output lives until it is complete."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def is_own_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a store a scopeml run made: a finished output (its ``zarr.json``
    carries the run record) or a partial one (it holds ``.scopeml-run.json``).

    Only such a store may be replaced by ``overwrite=True``: a user's folder that merely has
    the output's name (``OUT.ome.zarr.partial``) is never deleted.

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp()) / "o.ome.zarr.partial"
    >>> folder.mkdir()
    >>> _ = (folder / "thesis.docx").write_text("mine")
    >>> is_own_store(folder)
    False
    >>> _ = (folder / ".scopeml-run.json").write_text("{}")
    >>> is_own_store(folder)
    True
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    if (path / _RUN).is_file():
        return True
    record = path / "zarr.json"
    try:
        if not record.is_file() or record.stat().st_size > _MAX_RECORD_BYTES:
            return False
        attributes = json.loads(record.read_text()).get("attributes") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(attributes, dict) and isinstance(attributes.get("scopeml"), dict)


def check_own_store(
    path: str | os.PathLike[str], *, inputs: tuple[str | os.PathLike[str] | None, ...] = ()
) -> None:
    """Refuse to replace ``path`` unless scopeml made it (see :func:`is_own_store`) and it
    holds none of ``inputs``; nothing there is fine.

    Raises
    ------
    InvalidRequestError
        ``path`` is a file, a foreign folder or zarr store, or holds an input.
    """
    check_replaceable_store(path, inputs=inputs)
    if (Path(path).exists() or Path(path).is_symlink()) and not is_own_store(path):
        raise InvalidRequestError(
            "refusing to overwrite: scopeml did not make it (no scopeml run record); remove "
            "it yourself or choose another output",
            path=path,
        )


class OutputStore:
    """An output store being written; records finished tiles and publishes itself when done.

    Use :meth:`open` rather than the constructor. An opened store holds an exclusive lock
    (``flock`` on ``.scopeml-lock`` inside the partial store) until :meth:`finalize` or
    :meth:`release`, so a second run on the same output refuses at once instead of mixing its
    tiles in; the operating system drops the lock when a process dies, so a killed run never
    blocks its resume.
    """

    def __init__(self, output: Path, identity: Mapping[str, Any]) -> None:
        self.output = output
        self.partial = partial_path(output)
        self.identity = dict(identity)
        self._lock: int | None = None

    @classmethod
    def open(
        cls,
        output: str | os.PathLike[str],
        identity: Mapping[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
        inputs: tuple[str | os.PathLike[str] | None, ...] = (),
    ) -> tuple[OutputStore, bool]:
        """Start a new store or reopen a partial one; return it (locked) and whether it was
        resumed.

        Raises
        ------
        InvalidRequestError
            The finished output exists and ``overwrite`` is false, or scopeml did not make it
            (or it holds one of ``inputs``), so it may not be replaced.
        IncompleteOutputError
            A partial store exists and neither ``resume`` nor ``overwrite`` is set; ``resume``
            is set but the partial store belongs to a different run; or another run is
            writing the same output now.
        """
        store = cls(Path(output), identity)
        if store.output.exists() and not overwrite:
            raise InvalidRequestError(
                "output exists; pass --overwrite (overwrite=True) to replace it", path=output
            )
        check_own_store(store.output, inputs=inputs)
        if store._create():
            return store, False
        if not is_own_store(store.partial):
            raise InvalidRequestError(
                "a folder of this name is in the way and scopeml did not make it (no scopeml "
                "run record); remove it yourself or choose another output",
                path=store.partial,
            )
        check_own_store(store.partial, inputs=inputs)
        store._acquire()
        try:
            if not resume and not overwrite:
                raise IncompleteOutputError(
                    "an interrupted run left this partial output; pass --resume (resume=True) "
                    "to continue it or --overwrite (overwrite=True) to start again",
                    path=store.partial,
                )
            if resume:
                store._check_identity()
                (store.partial / _DONE).mkdir(exist_ok=True)
                return store, True
            for child in store.partial.iterdir():  # keep the lock file: the lock stays held
                if child.name != _LOCK:
                    _remove(child)
            store._initialise(store.partial)
        except BaseException:
            store.release()
            raise
        return store, False

    def _create(self) -> bool:
        """Make a new partial store, complete and locked before it appears under its name;
        ``False`` if one exists already."""
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists() or self.partial.is_symlink():
            return False
        temp = Path(tempfile.mkdtemp(prefix=f".{self.partial.name}.", dir=self.partial.parent))
        try:
            self._initialise(temp)
            self._lock = _lock(temp / _LOCK)
            os.rename(temp, self.partial)  # fails if another run made the partial store first
        except OSError as err:
            self.release()
            shutil.rmtree(temp, ignore_errors=True)
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                return False
            raise
        except BaseException:
            self.release()
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return True

    def _initialise(self, folder: Path) -> None:
        import zarr

        zarr.open_group(folder, mode="w", zarr_format=3)
        write_atomically(folder / _RUN, json.dumps(self.identity, indent=1, sort_keys=True))
        (folder / _DONE).mkdir()

    def _acquire(self) -> None:
        """Lock the existing partial store, or refuse: another run is writing it."""
        try:
            self._lock = _lock(self.partial / _LOCK)
        except BlockingIOError as err:
            raise IncompleteOutputError(
                "another scopeml run is writing this output now; wait for it to finish "
                "(or stop it), then resume",
                path=self.partial,
            ) from err

    def release(self) -> None:
        """Drop the lock (the partial store stays, resumable)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None

    def _check_identity(self) -> None:
        try:
            recorded = json.loads((self.partial / _RUN).read_text())
        except (OSError, ValueError) as err:
            raise IncompleteOutputError(
                f"cannot read the run record {_RUN}: {err}", path=self.partial
            ) from err
        expected = json.loads(json.dumps(self.identity))
        differences = [
            f"{key}: {old!r} (recorded) vs {new!r} (now)"
            for key, old, new in _differences(recorded, expected)
        ]
        if differences:
            changed = _changed_input(recorded, expected)
            raise IncompleteOutputError(
                "cannot resume: the partial output comes from a different run"
                + (f"; {changed}" if changed else "")
                + "; "
                + summarize(differences, head=4, separator="; "),
                path=self.partial,
            )

    def path_of(self, name: str) -> Path:
        """The NGFF image group of one output inside the (partial) store."""
        return self.partial / name

    def done(self) -> set[int]:
        """Indices of tiles whose results are completely written."""
        folder = self.partial / _DONE
        return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}

    def invalid_pixels(self) -> int:
        """Pixels written as unclassified because their input was NaN or infinite (counted
        in the done records, so a resumed run counts the earlier run's tiles too)."""
        total = 0
        with os.scandir(self.partial / _DONE) as entries:
            for entry in entries:
                if entry.name.isdigit() and entry.stat().st_size:
                    with contextlib.suppress(OSError, ValueError):
                        total += int(Path(entry.path).read_text())
        return total

    def mark_done(self, indices: Iterable[int], invalid: Iterable[int] | None = None) -> None:
        """Record finished tiles (call only after their chunks are written)."""
        mark_done(self.partial, indices, invalid)

    def finalize(self, *, overwrite: bool = False) -> Path:
        """Publish the store under its final name and return that path.

        Every tile is done when this is called, so the bookkeeping is removed only after the
        rename: a crash in between leaves a complete output with a stale record, never a
        partial store that can no longer be resumed.
        """
        import zarr

        root = zarr.open_group(self.partial, mode="r+")
        root.attrs["scopeml"] = json.loads(json.dumps(self.identity))
        if self.output.exists():
            if not overwrite:
                raise InvalidRequestError("output appeared during the run", path=self.output)
            check_own_store(self.output)
            _remove(self.output)
        os.replace(self.partial, self.output)
        self.release()
        shutil.rmtree(self.output / _DONE, ignore_errors=True)
        for name in (_RUN, _LOCK):
            (self.output / name).unlink(missing_ok=True)
        return self.output


def mark_done(
    partial: str | os.PathLike[str], indices: Iterable[int], invalid: Iterable[int] | None = None
) -> None:
    """Create the done records of tiles in a partial store (usable from remote workers);
    ``invalid`` counts each tile's NaN/infinite input pixels (kept in its record)."""
    folder = Path(partial) / _DONE
    counts = iter(invalid) if invalid is not None else None
    for index in indices:
        count = next(counts, 0) if counts is not None else 0
        record = folder / str(int(index))
        if count:
            record.write_text(str(int(count)))
        else:
            record.touch()


def _lock(path: Path) -> int:
    """An exclusive, non-blocking ``flock`` on ``path`` (created if missing); its descriptor."""
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(handle)
        raise
    return handle


def _differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The leaves in which two JSON records differ, as dotted keys (``image.content``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def _changed_input(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """``the image FILE changed`` when the same file now has other content."""
    for what in ("image", "model"):
        old, new = recorded.get(what) or {}, expected.get(what) or {}
        path = new.get("path")
        if path and old.get("path") == path and old != new:
            return f"the {what} {path} is not the file the run started from"
    return ""


def _remove(path: Path) -> None:
    """Remove a store or file: first move it aside under a unique name, so a crash never leaves
    a half-removed store under its real name."""
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.removing-", dir=path.parent))
    os.replace(path, trash / "store")
    shutil.rmtree(trash)
