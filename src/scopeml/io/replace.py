"""Writing outputs safely: atomic file writes, and guards for replacing an existing output.

:func:`atomic_write` is the one way scopeml writes a file: into a uniquely named temporary file
next to the target, renamed over it only when complete, so a reader (or a crash) never sees a
half-written file and two writers never share a temporary name.

Overwriting must never delete what is not an output of the same kind: ``-o image.tif
--overwrite`` or ``-o ~/data --overwrite`` by mistake would otherwise remove an input image or a
whole folder. A store output may replace only a zarr store (a folder with ``zarr.json``, or a
zarr v2 ``.zgroup``/``.zarray``); anything else is refused with a clear error.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scopeml.errors import InvalidRequestError, os_problem
from scopeml.io.stores import is_zarr_store


@contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    *,
    mode: int | None = None,
    fsync: bool = True,
    folder: bool = False,
    overwrite: bool = True,
) -> Iterator[Path]:
    """A unique temporary path next to ``path``, moved onto ``path`` when the block succeeds.

    The caller writes the file at the yielded path (with any library: ``open``, zipfile,
    tifffile, pandas). On success it is flushed to disk, given ``mode`` (by default what a
    plain ``open(path, "w")`` gives: ``0o666`` less the umask) and renamed over ``path`` in one
    step; on any error it is removed and ``path`` is left as it was. With ``folder=True`` the
    yielded path is an empty folder (a zarr store, say) that replaces ``path`` (by default
    ``0o777`` less the umask, as ``mkdir``); a folder already at ``path`` is first moved
    aside, then deleted. Whether ``path`` may be replaced at all is the caller's check
    (:func:`check_replaceable_store`, :func:`check_output_file`); with ``overwrite=False`` a
    file that appeared at ``path`` while the temporary was written is still not replaced.

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_write(folder / "a.txt") as temp:
    ...     _ = temp.write_text("complete")
    >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('complete', ['a.txt'])
    >>> with atomic_write(folder / "b.zarr", folder=True) as temp:
    ...     _ = (temp / "zarr.json").write_text("{}")
    >>> sorted(p.name for p in (folder / "b.zarr").iterdir())
    ['zarr.json']
    """
    path = Path(path)
    check_not_special(path)
    if path.is_dir() and not folder:
        raise InvalidRequestError("is a folder; expected a file name", path=path)
    if path.exists() and not path.is_dir() and folder:
        raise InvalidRequestError("is a file; expected a folder name", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = create_temporary(path, folder)
    try:
        yield temp
        if fsync and not folder:
            with open(temp, "rb+") as stream:
                os.fsync(stream.fileno())
        if mode is not None:  # else the umask's, from creation
            os.chmod(temp, mode)
        if not overwrite:
            check_output_file(path)
        _replace(temp, path)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True) if folder else temp.unlink(missing_ok=True)
        raise


def check_not_special(path: Path) -> None:
    """Refuse an output that is a device, pipe or socket (``-o /dev/null --overwrite``): a
    rename would put a file in its place (as root, in place of ``/dev/null``).

    Examples
    --------
    >>> check_not_special(Path("/dev/null"))
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: /dev/null: is a device, pipe or socket, not a file; ...
    """
    if path.exists() and not path.is_file() and not path.is_dir():
        raise InvalidRequestError(
            "is a device, pipe or socket, not a file; give a file name", path=path
        )


def check_output_file(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Refuse ``path`` as a file to write, before any work: a folder, a device or pipe always,
    an existing file unless ``overwrite`` (the command line's ``--overwrite``).

    Examples
    --------
    >>> existing = Path(tempfile.mkdtemp()) / "mine.csv"
    >>> _ = existing.write_text("label\\n1\\n")
    >>> check_output_file(existing, overwrite=True)
    >>> check_output_file(existing)
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: ...mine.csv: output exists; pass --overwrite (overwrite...
    """
    path = Path(path)
    check_not_special(path)
    if path.is_dir():
        raise InvalidRequestError("is a folder; expected a file name", path=path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise InvalidRequestError(
            "output exists; pass --overwrite (overwrite=True) to replace it", path=path
        )
    check_folder_writable(path)


def check_folder_writable(path: Path) -> None:
    """Refuse an output whose folder cannot be made or written in (a file standing where a
    folder is needed, a read-only disk, no permission), before any work: ``segment --measure``
    found out only after the model had run."""
    path = Path(path)
    existing = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise InvalidRequestError("is a file where a folder is needed", path=existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidRequestError("cannot write in this folder (read-only or no permission)",
                                  path=existing)  # fmt: skip


def create_temporary(path: Path, folder: bool = False) -> Path:
    """A new, uniquely named file or folder next to ``path``, created with the permissions
    ``open``/``mkdir`` give (the kernel applies the umask; tempfile's would be 0600/0700, and
    reading the umask means setting it, which races with other threads); its name keeps
    within 255 bytes where ``path``'s does (a long name's temporary one was refused)."""
    for _ in range(100):
        temp = path.parent / f".{path.name[:200]}.{secrets.token_hex(6)}.tmp"  # ≤ 255
        try:
            if folder:
                os.mkdir(temp, 0o777)
            else:
                os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as err:  # said of the folder: the temporary name is none of the user's
            raise InvalidRequestError(
                f"cannot make a file in this folder: {os_problem(err)}", path=path.parent
            ) from err
        return temp
    raise FileExistsError(17, "no unused temporary name", str(path))


def _replace(temp: Path, path: Path) -> None:
    """Rename ``temp`` onto ``path``; a folder at ``path`` is moved aside first, then removed."""
    if not path.is_dir() or path.is_symlink():
        os.replace(temp, path)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.replace(path, trash / path.name)
    try:
        os.replace(temp, path)
    except BaseException:
        os.replace(trash / path.name, path)  # put the old one back
        trash.rmdir()
        raise
    shutil.rmtree(trash, ignore_errors=True)


def write_atomically(
    path: str | os.PathLike[str], data: bytes | str, *, mode: int | None = None
) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; see :func:`atomic_write`.

    Examples
    --------
    >>> target = Path(tempfile.mkdtemp()) / "run.json"
    >>> write_atomically(target, '{"format": 1}').read_text()
    '{"format": 1}'
    """
    with atomic_write(path, mode=mode) as temp:
        temp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def check_replaceable_store(
    path: str | os.PathLike[str], *, inputs: tuple[str | os.PathLike[str] | None, ...] = ()
) -> None:
    """Refuse to replace ``path`` unless it is an existing zarr store that is not an input.

    Raises
    ------
    InvalidRequestError
        ``path`` exists and is a file, a folder that is not a zarr store, or one of ``inputs``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_replaceable_store(folder / "new.ome.zarr")   # nothing there: fine
    >>> check_replaceable_store(folder)
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: ...: refusing to overwrite: it is not a zarr store ...
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    resolved = path.resolve()
    for source in inputs:
        if source is None:
            continue
        source = Path(source).resolve()
        if source == resolved or resolved in source.parents:
            raise InvalidRequestError(
                f"refusing to overwrite: the output holds the input {source}", path=path
            )
    if not is_zarr_store(path) or path.is_symlink():
        kind = "a file" if path.is_file() else "a folder without zarr.json"
        raise InvalidRequestError(
            f"refusing to overwrite: it is not a zarr store ({kind}); remove it yourself "
            "or choose another output",
            path=path,
        )
