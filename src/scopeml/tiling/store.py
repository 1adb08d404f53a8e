"""The output store of a run: written under ``OUT.partial``, moved into place when complete.

Layout while running::

    OUT.ome.zarr.partial/
        zarr.json                 root group
        labels/ probabilities/ …  one NGFF image group per output (level "0")
        .scopeml-run.json         the run's identity (model, image and its content, options;
                                  a server's run names the image as its client knows it,
                                  never by the server's path)
        .scopeml-lock             flock held by the run writing the store
        .scopeml-tiles            the number of tiles in the run's plan
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
import shlex
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
from scopeml.io.replace import check_replaceable_store, create_temporary, write_atomically
from scopeml.tiling.identity import CONTENT_SHA256

_RUN = ".scopeml-run.json"
#: The run record's key for the scopeml that wrote it: kept for a methods section, never
#: compared (a resume after an upgrade goes on).
WRITER = "written_by"
_DONE = ".scopeml-done"
_LOCK = ".scopeml-lock"
_TILES = ".scopeml-tiles"
#: A zarr.json larger than this is not one scopeml wrote (its record is a few kilobytes).
_MAX_RECORD_BYTES = 1 << 22


def other_tiling(output: Path, what: str) -> IncompleteOutputError:
    """The refusal of a resume whose unfinished run was cut into other tiles (``what``)."""
    return IncompleteOutputError(
        f"the unfinished run here was cut into other tiles ({what}), as another scopeml "
        "version cuts it; start again with --overwrite (overwrite=True)",
        path=output,
    )


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


_UNFINISHED = (
    "an interrupted run left this partial output; pass --resume (resume=True) to continue it "
    "or --overwrite (overwrite=True) to start again"
)
_IN_THE_WAY = (
    "a folder of this name is in the way and scopeml did not make it (no scopeml run record); "
    "remove it yourself or choose another output"
)


def check_partial(
    output: str | os.PathLike[str],
    identity: Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    inputs: tuple[str | os.PathLike[str] | None, ...] = (),
    ignore: tuple[str, ...] = (),
) -> None:
    """Make the refusals of :meth:`OutputStore.open` that depend only on the partial store
    (``OUT.partial``), before a run does any work: one in the way that scopeml did not make;
    one another run is writing now; one left by an interrupted run, without ``resume`` or
    ``overwrite``; with ``resume``, one whose record differs from ``identity`` (``None``: not
    compared) in other keys than ``ignore`` (the normalisation statistics, which cost a pass
    over the image). Nothing there is fine; :meth:`OutputStore.open` checks all again.

    Examples
    --------
    >>> out = Path(tempfile.mkdtemp()) / "o.ome.zarr"
    >>> store, _ = OutputStore.open(out, {"model": {"name": "a"}})
    >>> store.release()  # as a killed run leaves it
    >>> check_partial(out, {"model": {"name": "a"}}, resume=True)
    >>> check_partial(out, {"model": {"name": "b"}}, resume=True)
    Traceback (most recent call last):
    ...
    scopeml.errors.IncompleteOutputError: ...: cannot resume: the partial output comes from a \
different run: the run used the model 'a', not 'b'; pass --overwrite (overwrite=True) to start again
    """
    partial = partial_path(output)
    if not (partial.exists() or partial.is_symlink()):
        return
    if not is_own_store(partial):
        raise InvalidRequestError(_IN_THE_WAY, path=partial)
    check_own_store(partial, inputs=inputs)
    if fcntl is not None and (partial / _LOCK).is_file():  # a run writing it now
        probe = OutputStore(Path(output), {})
        probe._acquire()
        probe.release()
    if not resume and not overwrite:
        raise IncompleteOutputError(_UNFINISHED, path=partial)
    if resume and identity is not None:
        check_record(partial, identity, ignore=ignore)


#: The run-record key of the axes the image file was read with where the run named them
#: (``axes=``, ``--axes``: ``"TYX"``); absent where it read the file's own. A record from
#: before it was kept lacks it too: such a run is told apart from this one by the image's
#: shape alone, as it was then (:func:`check_record`).
AXES_RECORD = "axes"

#: Run-record keys renamed since a release wrote them, by section: a store an older scopeml
#: recorded still resumes (or reads as finished) under the new names.
RENAMED_RECORD_KEYS = {"instances": {"boundary": "boundary_class", "threshold": "seed_threshold"}}


def writer() -> str:
    """What a record names as the software that wrote it (``scopeml 0.1.0``)."""
    from scopeml import __version__

    return f"scopeml {__version__}"


def upgraded_record(recorded: dict[str, Any]) -> dict[str, Any]:
    """``recorded`` with the keys of :data:`RENAMED_RECORD_KEYS` under their new names.

    Examples
    --------
    >>> upgraded_record({"instances": {"class_": "nucleus", "threshold": 0.6}, "model": "m"})
    {'instances': {'class_': 'nucleus', 'seed_threshold': 0.6}, 'model': 'm'}
    """
    upgraded = dict(recorded)
    for section, renamed in RENAMED_RECORD_KEYS.items():
        if isinstance(upgraded.get(section), dict):
            upgraded[section] = {renamed.get(k, k): v for k, v in upgraded[section].items()}
    return upgraded


def recorded_run(output: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run record of ``output``: its partial store's, else the finished store's (renamed
    keys upgraded, :func:`upgraded_record`); ``None`` when there is neither."""
    for path in (partial_path(output) / _RUN, Path(output) / "zarr.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if path.name == "zarr.json":
            data = (data.get("attributes") or {}).get("scopeml") if isinstance(data, dict) else None
        if isinstance(data, dict):
            return upgraded_record(data)
    return None


def check_record(
    partial: str | os.PathLike[str], identity: Mapping[str, Any], *, ignore: tuple[str, ...] = ()
) -> None:
    """Refuse to resume ``partial`` unless its run record equals ``identity`` (but for the
    top-level keys in ``ignore``), naming what changed: the model or the image (short
    hashes), or the settings that differ, and the way out (``overwrite``)."""
    partial = Path(partial)
    try:
        recorded = json.loads((partial / _RUN).read_text())
    except (OSError, ValueError) as err:
        raise IncompleteOutputError(
            f"cannot read the run record {_RUN}: {err}", path=partial
        ) from err
    if not isinstance(recorded, dict):
        raise IncompleteOutputError(f"the run record {_RUN} is not a JSON object", path=partial)
    check_same_run(recorded, identity, path=partial, ignore=ignore, what="partial output")


def check_same_run(
    recorded: Mapping[str, Any],
    identity: Mapping[str, Any],
    *,
    path: str | os.PathLike[str],
    ignore: tuple[str, ...] = (),
    what: str = "output",
) -> None:
    """Refuse to resume the store at ``path`` (its ``what``: a partial store's record, or a
    published one's) unless its run ``recorded`` equals ``identity`` but for the top-level keys
    in ``ignore``: the one comparison of a resume, naming what differs and the way out."""
    recorded = upgraded_record(dict(recorded))
    expected = json.loads(json.dumps(dict(identity)))
    if AXES_RECORD not in recorded:  # the file's own axes, or a run from before they were kept
        expected.pop(AXES_RECORD, None)  # either way the shape it read decides
    if CONTENT_SHA256 not in (recorded.get("model") or {}):  # before in-memory models had it
        (expected.get("model") or {}).pop(CONTENT_SHA256, None)
    ignore = (*ignore, WRITER)
    recorded = {k: v for k, v in recorded.items() if k not in ignore}
    expected = {k: v for k, v in expected.items() if k not in ignore}
    found = _differences(recorded, expected)
    if not found:
        return
    changed = _changed_inputs(recorded, expected)
    models = recorded.get("model"), expected.get("model")
    rescaled = all(isinstance(m, dict) for m in models) and _rescaled(*models)
    settings = [
        f"{key}: {_short(old)} (recorded) vs {_short(new)} (now)"
        for key, old, new in found
        if (
            not (rescaled and key.startswith("model."))  # said by options.scale
            and not changed
        )
        or (
            key.split(".")[0] not in ("model", "image", AXES_RECORD)
            and key not in ("image_view.scene", "options.scene")  # said by _other_scene
        )
    ]
    said = changed + ([summarize(settings, head=4, separator="; ")] if settings else [])
    raise IncompleteOutputError(
        f"cannot resume: the {what} comes from a different run: "
        + ("; ".join(said) or "the model is not the one the run started with")
        + "; pass --overwrite (overwrite=True) to start again",
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
            raise InvalidRequestError(_IN_THE_WAY, path=store.partial)
        check_own_store(store.partial, inputs=inputs)
        store._acquire()
        try:
            if not resume and not overwrite:
                raise IncompleteOutputError(_UNFINISHED, path=store.partial)
            if resume:
                check_record(store.partial, store.identity)
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
        # the umask's permissions (mkdtemp's 0700 left the store unreadable to a group)
        temp = create_temporary(self.partial, folder=True)
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

        # "a", not "w": "w" empties the folder, the lock file with it, and a second run then
        # locked a new file and wrote beside a run that --overwrite started on a partial store
        zarr.open_group(folder, mode="a", zarr_format=3)
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

    def record_tiles(self, total: int, *, resumed: bool = False) -> None:
        """Record how many tiles the run has (``scopeml info`` says how far it got). A
        ``resumed`` run cut into another number of tiles (by another scopeml: the done records
        are tile numbers, so its tiles would be taken for this plan's and the rest left empty)
        is refused; the arrays' chunks are checked as they are opened."""
        if resumed:
            try:
                recorded: int | None = int((self.partial / _TILES).read_text())
            except (OSError, ValueError):
                recorded = None
            if recorded is not None and recorded != total:
                raise other_tiling(self.output, f"{recorded} tiles; this run: {total}")
        write_atomically(self.partial / _TILES, str(int(total)))

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

    def record_identity(self) -> None:
        """Write the run's record into the partial store's attributes, as the published store
        holds it: a step run on the partial store before publishing reads its scale there."""
        import zarr

        root = zarr.open_group(self.partial, mode="r+")
        root.attrs["scopeml"] = json.loads(json.dumps(self.identity))

    def finalize(self, *, overwrite: bool = False, hold: PublishedLock | None = None) -> Path:
        """Publish the store under its final name and return that path; ``hold``: its lock
        goes on there, until the caller's steps are added (:meth:`PublishedLock.release`).

        Every tile is done when this is called, so the bookkeeping is removed only after the
        rename: a crash in between leaves a complete output with a stale record, never a
        partial store that can no longer be resumed.
        """
        self.record_identity()
        if self.output.exists():
            if not overwrite:
                raise InvalidRequestError("output appeared during the run", path=self.output)
            check_own_store(self.output)
            refuse_held(self.output)
            _remove(self.output)
        os.replace(self.partial, self.output)
        shutil.rmtree(self.output / _DONE, ignore_errors=True)
        for name in (_RUN, _TILES):
            (self.output / name).unlink(missing_ok=True)
        if hold is not None and self._lock is not None:  # its file went with the store: held
            hold.handle, self._lock = self._lock, None
        else:
            self.release()
            (self.output / _LOCK).unlink(missing_ok=True)
        return self.output


def describe_partial(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """An unfinished run, from its partial store: ``path`` is the store itself or the output
    it becomes (``OUT.ome.zarr``, when only ``OUT.ome.zarr.partial`` exists). ``None`` when
    there is no partial store that scopeml made.

    Returns the partial store's and the output's paths, the tiles done and in all (``None``
    for a store of a scopeml that did not record it), the model's name and the image's path
    (or the name a server's run recorded instead).

    Examples
    --------
    >>> out = Path(tempfile.mkdtemp()) / "o.ome.zarr"
    >>> partial_path(out).mkdir()
    >>> run = {"model": {"name": "nuclei"}, "image": {"path": "/data/a.czi"}}
    >>> _ = (partial_path(out) / ".scopeml-run.json").write_text(json.dumps(run))
    >>> _ = (partial_path(out) / ".scopeml-tiles").write_text("12")
    >>> (partial_path(out) / ".scopeml-done").mkdir()
    >>> mark_done(partial_path(out), [0, 3])
    >>> run = describe_partial(out)
    >>> run["tiles_done"], run["tiles"], run["model"], run["image"]
    (2, 12, 'nuclei', '/data/a.czi')

    ``damaged``: the run record lacks the model or the image (a cut or edited file), so no
    resume can be checked against it.
    """
    path = Path(path)
    if not (path / _RUN).is_file():
        if path.exists() or path.is_symlink():
            return None  # a finished output (or anything else) describes itself
        path = partial_path(path)
    if not (path / _RUN).is_file() or not is_own_store(path):
        return None
    try:
        record = json.loads((path / _RUN).read_text())
    except (OSError, ValueError):
        record = None
    record = record if isinstance(record, dict) else {}
    try:
        total: int | None = int((path / _TILES).read_text())
    except (OSError, ValueError):
        total = None
    try:
        done = sum(1 for name in os.listdir(path / _DONE) if name.isdigit())
    except OSError:
        done = 0
    model = record.get("model") if isinstance(record.get("model"), dict) else {}
    image = record.get("image") if isinstance(record.get("image"), dict) else {}
    return {
        "path": str(path),
        "output": str(path.with_name(path.name.removesuffix(".partial"))),
        "kind": "unfinished segment run",
        "damaged": not model or not image,  # its run record: a resume cannot be checked
        "tiles_done": done,
        "tiles": total,
        "model": model.get("name"),
        "image": image_place(image),
        "image_axes": image_axes(image),  # as read: the --axes a resume must be given again
        "options": record.get("options") if isinstance(record.get("options"), dict) else {},
    }


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


class PublishedLock:
    """The lock on a published store while one call adds to it (its instances, table…), so
    another call replacing it meanwhile is refused (:func:`refuse_held`): taken by
    ``finalize(hold=...)`` or :meth:`take`, dropped by :meth:`release`, each call its own."""

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output, self.handle = Path(output), None

    def take(self) -> None:
        """Lock a published store (a resumed call's steps). One that cannot be written (a
        read-only archive) is left unlocked: a resume with nothing to add still ends as a
        no-op, and one with something to add fails at its first write."""
        try:
            self.handle = _lock(self.output / _LOCK)
        except BlockingIOError:
            raise _held_error(self.output) from None
        except OSError as err:
            if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise

    def release(self) -> None:
        """Drop this call's lock (none taken: nothing) and its file."""
        handle, self.handle = self.handle, None
        if handle is None:
            return
        if fcntl is None:  # Windows: an open file cannot be removed
            os.close(handle)
        with contextlib.suppress(OSError):
            (self.output / _LOCK).unlink(missing_ok=True)
        if fcntl is not None:  # removed while locked: no other call locks the old file
            os.close(handle)


def refuse_held(output: Path) -> None:
    """Refuse to replace a store another run is still adding to: a second ``--overwrite``
    call replaced one whose first call went on to write its instances and table from it."""
    if fcntl is None or not (output / _LOCK).is_file():
        return
    try:
        os.close(_lock(output / _LOCK))
    except BlockingIOError:
        raise _held_error(output) from None


def _held_error(output: Path) -> InvalidRequestError:
    return InvalidRequestError(
        "another run is still writing this store (its instances or table); wait for it to "
        "end or choose another output",
        path=output,
    )


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


def _changed_inputs(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """What changed of the model and the image since the run started, in words: ``the model
    'nuclei' changed since this run (sha256 1a2b3c4d5e6f… → …)``, ``the image FILE is not the
    file the run started from``, ``the run used another image (A, not B)``; empty when only
    settings differ."""
    said = []
    old, new = recorded.get("model") or {}, expected.get("model") or {}
    rescaled = isinstance(old, dict) and isinstance(new, dict) and _rescaled(old, new)
    if isinstance(old, dict) and isinstance(new, dict) and old != new and not rescaled:
        name, other = old.get("name"), new.get("name")
        if name != other:
            said.append(f"the run used the model {name!r}, not {other!r}")
        elif old.get("sha256") != new.get("sha256"):
            said.append(
                f"the model {name!r} changed since this run (sha256 {_short(old.get('sha256'))}"
                f" → {_short(new.get('sha256'))})"
            )
        else:
            said.append(f"the model {name!r} is not the one the run started with")
    old, new = recorded.get("image") or {}, expected.get("image") or {}
    scene = _other_scene(recorded, expected)
    said += [scene] if scene is not None else []
    if scene is not None and old.get("content") == new.get("content"):
        return said  # the same file: its other scene is all that differs of it
    told, telling = recorded.get(AXES_RECORD), expected.get(AXES_RECORD)
    if isinstance(old, dict) and isinstance(new, dict) and (old != new or told != telling):
        path = image_place(new)
        read_as = _read_with_other_axes(old, new)
        if told is not None and told != telling and old.get("content") == new.get("content"):
            read_as = _told_other_axes(old, new, told, telling)
        if path and image_place(old) == path and read_as:
            said.append(f"the run read the image {path} {read_as}")
        elif path and image_place(old) == path:
            said.append(_touched(path, old.get("content"), new.get("content")))
        elif image_place(old) != path:
            was, now = (image_place(i) or "an array in memory" for i in (old, new))
            said.append(f"the run was on another image ({was}, not {now})")
        else:
            said.append("the image is not the one the run started from")
    return said


def _touched(path: str, old: Any, new: Any) -> str:
    """``the image FILE is not the file the run started from``; where only its modification
    time differs (its size and content hash the same: touched, or copied without its times),
    how to give it back, as the time guards what the sampled hash of a large file does not
    read.

    >>> _touched("a.tif", {"size": 4, "sha256": "x", "mtime_ns": 10**18},
    ...          {"size": 4, "sha256": "x", "mtime_ns": 2 * 10**18})
    "the image a.tif is not the file the run started from: only its modification time \
differs (its size and content hash are the run's); if its pixels are the same, give it back \
(touch -d @1000000000.000000000 a.tif) and resume"
    """
    said = f"the image {path} is not the file the run started from"
    keys = ("size", "sha256")
    same = isinstance(old, dict) and isinstance(new, dict) and "mtime_ns" in old
    if not same or any(old.get(k) != new.get(k) for k in keys) or {*old} != {*new}:
        return said
    seconds, nanoseconds = divmod(int(old["mtime_ns"]), 10**9)  # to the nanosecond it had
    return (f"{said}: only its modification time differs (its size and content hash are the "
            f"run's); if its pixels are the same, give it back (touch -d "
            f"@{seconds}.{nanoseconds:09d} {shlex.quote(path)}) and resume")  # fmt: skip


def _rescaled(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two model records are one model run at other scales (``NAME at scale 0.5``,
    the same file and classes; its halo and step scale with it): the options' ``scale`` says
    that change, not the model."""

    from scopeml.tiling.scale import SCALED, unscaled_name

    def base(record: Mapping[str, Any]) -> Any:
        return unscaled_name(str(record.get("name"))), record.get("classes"), record.get("sha256")

    scaled = any(SCALED in str(record.get("name")) for record in (old, new))
    return scaled and base(old) == base(new)  # not two models of one name at one scale


def _other_scene(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """``the run read scene 2 of the image, not scene 1; pass --scene 2 (scene=2)`` when the
    run read another scene (``None``: every scene) than this call; else ``None``.

    Examples
    --------
    >>> _other_scene({"image_view": {"scene": 2}}, {"image_view": {"scene": 1}})
    'the run read scene 2 of the image, not scene 1; pass --scene 2 (scene=2)'
    >>> _other_scene({"image_view": {"scene": None}}, {"image_view": {"scene": 0}})
    'the run read every scene of the image, not scene 0; give no --scene (scene=None)'
    """
    was = (recorded.get("image_view") or {}).get("scene", None)
    now = (expected.get("image_view") or {}).get("scene", None)
    if was == now:
        return None
    shown = [f"scene {n}" if n is not None else "every scene" for n in (was, now)]
    how = f"pass --scene {was} (scene={was})" if was is not None else "give no --scene (scene=None)"
    return f"the run read {shown[0]} of the image, not {shown[1]}; {how}"


def _read_with_other_axes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """How the run read the same file (same content and dtype) when only its shape, the axes
    it was read with, differs now: ``with axes TYX (T=20 Y=700 X=1100), not Z=20 Y=700 X=1100;
    pass --axes TYX (axes='TYX')``; ``None`` otherwise. The axes are named when the run's
    reading has as many axes (of more than one pixel) as today's, so they fit the file.

    Examples
    --------
    >>> old = {"shape": [1, 20, 1, 1, 7, 11], "dtype": "uint16", "content": {"size": 9}}
    >>> _read_with_other_axes(old, {**old, "shape": [1, 1, 1, 20, 7, 11]})
    "with axes TYX (T=20 Y=7 X=11), not Z=20 Y=7 X=11; pass --axes TYX (axes='TYX')"
    >>> _read_with_other_axes(old, {**old, "content": {"size": 8}}) is None
    True
    """
    if not old.get("content") or old.get("content") != new.get("content"):
        return None
    if old.get("dtype") != new.get("dtype") or old.get("shape") == new.get("shape"):
        return None
    was, now = image_axes(old), image_axes(new)
    if was is None or now is None:
        return None
    reading = " ".join(f"{a}={n}" for a, n in was.items())
    other = " ".join(f"{a}={n}" for a, n in now.items())
    if len(was) != len(now) or "".join(was) == "".join(now):
        return f"as {reading}, not {other}; pass the --axes (axes=) the run started with"
    axes = "".join(was)
    return f"with axes {axes} ({reading}), not {other}; pass --axes {axes} (axes={axes!r})"


def _told_other_axes(
    old: Mapping[str, Any], new: Mapping[str, Any], told: str, telling: str | None
) -> str:
    """How a run that named the file's axes (``told``) read it, and how this call reads it
    (``telling``: the axes it names, ``None`` for the file's own), both with their sizes.

    Examples
    --------
    >>> old = {"shape": [1, 20, 1, 1, 7, 11]}
    >>> print(_told_other_axes(old, {"shape": [1, 1, 1, 20, 7, 11]}, "TYX", None)[31:])
    not the file's own (Z=20 Y=7 X=11); pass --axes TYX (axes='TYX')
    >>> _told_other_axes(old, {"shape": [1, 1, 20, 1, 7, 11]}, "TYX", "CYX")
    "with axes TYX (T=20 Y=7 X=11), not CYX (C=20 Y=7 X=11); pass --axes TYX (axes='TYX')"
    """

    def sizes(image: Mapping[str, Any]) -> str:
        found = image_axes(image)
        return "" if found is None else f" ({' '.join(f'{a}={n}' for a, n in found.items())})"

    now = "the file's own" if telling is None else telling
    return f"with axes {told}{sizes(old)}, not {now}{sizes(new)}; pass --axes {told} " + (
        f"(axes={told!r})"
    )


def image_axes(image: Mapping[str, Any]) -> dict[str, int] | None:
    """The axes a run read its image with, from the ``S T C Z Y X`` shape it recorded: the
    axes of more than one pixel (Y and X always), with their sizes; ``None`` without a shape.

    Examples
    --------
    >>> image_axes({"shape": [1, 20, 1, 1, 700, 1100]})
    {'T': 20, 'Y': 700, 'X': 1100}
    """
    shape = image.get("shape")
    if not isinstance(shape, list) or len(shape) != 6:
        return None
    return {a: int(n) for a, n in zip("STCZYX", shape, strict=True) if n != 1 or a in "YX"}


def rename_inputs(
    output: str | os.PathLike[str], image: str | os.PathLike[str], names: Any
) -> bool:
    """Make the record of a run that named the image ``image`` by its path (a scopeml before
    :class:`~scopeml.tiling.identity.RunNames`) record ``names`` instead, in ``output``'s
    partial store or the published ``output``: a server's run stopped by an older server then
    resumes under the names (the content still checked) and never publishes the path. Whether
    a record was rewritten.

    Examples
    --------
    >>> from scopeml.tiling.identity import RunNames
    >>> out = Path(tempfile.mkdtemp()) / "o.ome.zarr"
    >>> partial_path(out).mkdir()
    >>> run = {"model": {"name": "f00d"}, "image": {"path": "/srv/up/a.tif", "shape": [1]}}
    >>> _ = (partial_path(out) / ".scopeml-run.json").write_text(json.dumps(run))
    >>> rename_inputs(out, "/srv/up/a.tif", RunNames("a.tif", "cells"))
    True
    >>> json.loads((partial_path(out) / ".scopeml-run.json").read_text())
    {'image': {'name': 'a.tif', 'shape': [1]}, 'model': {'name': 'cells'}}
    """

    def renamed(record: Any) -> dict[str, Any] | None:
        if not isinstance(record, dict) or not isinstance(record.get("image"), dict):
            return None
        if record["image"].get("path") != str(Path(image).resolve()):
            return None
        place = {} if names.image is None else {"name": names.image}
        record["image"] = {**place, **{k: v for k, v in record["image"].items() if k != "path"}}
        if names.model is not None and isinstance(record.get("model"), dict):
            record["model"]["name"] = names.model
        return record

    run = partial_path(output) / _RUN
    with contextlib.suppress(OSError, ValueError):
        record = renamed(json.loads(run.read_text()))
        if record is not None:
            write_atomically(run, json.dumps(record, indent=1, sort_keys=True))
            return True
    if not is_own_store(output) or not (Path(output) / "zarr.json").is_file():
        return False
    import zarr

    group = zarr.open_group(str(output), mode="r+")
    record = renamed(group.attrs.get("scopeml"))
    if record is not None:
        group.attrs["scopeml"] = record
    return record is not None


def image_place(image: Mapping[str, Any]) -> str | None:
    """The image a run record names: its path, or the name a server's run recorded instead
    (:class:`~scopeml.tiling.identity.RunNames`).

    Examples
    --------
    >>> image_place({"path": "/data/a.czi"}), image_place({"name": "a.czi"}), image_place({})
    ('/data/a.czi', 'a.czi', None)
    """
    return image.get("path") or image.get("name")


def _short(value: Any) -> str:
    """A value for a message, a SHA-256 digest cut to its first 12 digits (``1a2b…``)."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    return repr(value)


def _remove(path: Path) -> None:
    """Remove a store or file: first move it aside under a unique name, so a crash never leaves
    a half-removed store under its real name."""
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.removing-", dir=path.parent))
    os.replace(path, trash / "store")
    shutil.rmtree(trash)
