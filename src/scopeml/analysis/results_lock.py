"""One analysis at a time in a results folder: a lock file created exclusively for the run.

A second run into the same folder would remove the first one's unfinished image folders (what
a stopped run leaves is cleared before a run starts) and write the same summary. So a run
creates ``RESULTS/.scopeml-lock`` with ``O_EXCL`` before it touches the folder, writing who
holds it (process id, host, start time), and removes it when it ends (done, failed or
interrupted). A second run refuses in one line naming the holder. A lock whose process is gone
(no such process on this host, or one started after the lock, its id reused) was left by a
killed run: it is taken over with a warning. One from another host is never guessed at.

A reused id is told by the process's start: on Linux the lock records its process's start
time from ``/proc/<pid>/stat`` and the boot it ran in, and a live process of that id that
started at another time (or a lock from an earlier boot) is another; elsewhere the process's
creation time as psutil gives it (where installed: it comes with dask) is compared with the
lock's; without either, a live id is taken at its word.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scopeml.errors import InvalidRequestError, find_stack_level

__all__ = ["LOCK", "results_lock"]

#: The lock file's name inside the results folder (hidden: never taken for an image).
LOCK = ".scopeml-lock"
#: A lock file that has stayed unreadable this long was left half-written by a killed run.
UNREADABLE_STALE_S = 30.0


@contextlib.contextmanager
def results_lock(
    folder: str | os.PathLike[str],
    *,
    who: str = "analysis",
    doing: str = "writing",
    place: str = "results folder",
) -> Iterator[Path]:
    """Hold the results ``folder`` (created if need be) for the duration of the block.

    ``who``, ``doing`` and ``place`` word the messages ("another analysis is writing this
    results folder"): a server holds its data folder ("another scopeml server is using this
    data folder").

    Raises
    ------
    InvalidRequestError
        Another run holds it (its process is alive, or on another host), or ``folder`` is a
        file.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "results"
    >>> with results_lock(folder):
    ...     sorted(p.name for p in folder.iterdir())
    ['.scopeml-lock']
    >>> folder.exists()  # created for the run, left as it was found: gone
    False
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidRequestError("exists and is not a folder", path=folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    words = (who, doing, place)
    mine = _take(path, folder, words)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_bytes() == mine:  # never another run's (one that took over ours)
                path.unlink()
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only where the run wrote nothing (refused before any work)


def _take(path: Path, folder: Path, words: tuple[str, str, str]) -> bytes:
    """Create the lock file for this process (taking over a stale one); its content."""
    who, doing, place = words
    mine = json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "started_s": time.time(),
            "token": uuid.uuid4().hex,
            **_start_of(os.getpid()),
        }
    ).encode()
    for _ in range(5):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read(path)
            if held is None:
                continue  # gone meanwhile: try again
            holder = _holder(held)
            if _alive(holder, path):
                raise InvalidRequestError(
                    f"another {who} is {doing} this {place} now ({_who(holder)}); wait for "
                    "it to end or "
                    f"choose another folder (if it is gone, remove {LOCK} in the folder)",
                    path=folder,
                ) from None
            article = "an" if who[0] in "aeiou" else "a"
            warnings.warn(
                f"the {place}'s lock was left by {article} {who} that is gone "
                f"({_who(holder)}); taking it over",
                UserWarning,
                stacklevel=find_stack_level(),
            )
            _move_aside(path, held)
            continue
        with os.fdopen(handle, "wb") as file:
            file.write(mine)
        return mine
    raise InvalidRequestError(
        f"cannot take the lock {LOCK}: other runs keep taking it", path=folder
    )


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _holder(held: bytes) -> dict[str, Any]:
    """The lock's content as a mapping; ``{}`` where it does not parse (half-written)."""
    try:
        holder = json.loads(held)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive(holder: dict[str, Any], path: Path) -> bool:
    """Whether the run that wrote ``holder`` may still be running.

    On another host: yes (its processes cannot be seen from here). A lock that does not parse
    is being written now, unless it has been so for :data:`UNREADABLE_STALE_S`."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        try:
            return time.time() - path.stat().st_mtime < UNREADABLE_STALE_S
        except FileNotFoundError:
            return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return not _reused(pid, holder)


#: Where Linux says which boot this is (its processes' start times count from that boot).
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _start_of(pid: int) -> dict[str, Any]:
    """``{"boot_id": ..., "proc_start": ...}``: the boot and the start time (clock ticks since
    that boot, field 22 of ``/proc/<pid>/stat``) of process ``pid``; just the boot where there
    is no such process; ``{}`` without ``/proc``.

    Examples
    --------
    >>> import sys
    >>> mine = _start_of(os.getpid())
    >>> sys.platform != "linux" or mine == _start_of(os.getpid()) and mine["proc_start"] > 0
    True
    """
    try:
        boot = _BOOT_ID.read_text().strip()
    except OSError:
        return {}
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:  # no such process (any more)
        return {"boot_id": boot} if boot else {}
    except OSError:
        return {}
    try:  # the command name (field 2) is in parentheses and may hold spaces and ')'
        start = int(stat.rpartition(b")")[2].split()[19])
    except (ValueError, IndexError):
        return {}
    return {"boot_id": boot, "proc_start": start} if boot else {}


def _reused(pid: int, holder: dict[str, Any]) -> bool:
    """Whether process ``pid`` is not the one that took the lock ``holder``: its id reused by
    a process started since (or in a later boot)."""
    recorded = holder.get("proc_start")
    if isinstance(recorded, int) and isinstance(holder.get("boot_id"), str):
        now = _start_of(pid)
        if now:  # gone, or another boot's, or started at another time: not the lock's
            return now["boot_id"] != holder["boot_id"] or now.get("proc_start") != recorded
    started = holder.get("started_s")
    if not isinstance(started, (int, float)):
        return False
    try:
        import psutil

        return psutil.Process(pid).create_time() > float(started) + 1.0
    except ImportError:  # psutil comes with dask; without it, a live id is taken at its word
        return False
    except Exception:  # the process ended meanwhile, or cannot be asked
        return False


def _who(holder: dict[str, Any]) -> str:
    if not holder:
        return "a lock file being written, or left unreadable"
    pid, host, started = holder.get("pid"), holder.get("host"), holder.get("started")
    return f"process {pid} on {host}, since {started}"


def _move_aside(path: Path, stale: bytes) -> None:
    """Remove the stale lock ``path`` held (content ``stale``), never a fresh one another run
    created meanwhile: it is renamed away first, and put back if it turns out to be that."""
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another run moved it first
    try:
        if aside.read_bytes() != stale:  # a fresh lock, taken after the stale one was read
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
    finally:
        with contextlib.suppress(OSError):
            aside.unlink()
