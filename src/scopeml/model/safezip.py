"""The one safe container module: untrusted zip archives of JSON and plain ``.npy`` arrays.

Every scopeml container (czann and legacy czseg/czmodel models, pixel classifiers, object
classifiers, training checkpoints) is a zip file from someone else. Nothing in it is extracted to
disk and no member name is ever used as a path; members are streamed into memory while counting,
so a member that claims to be small but inflates to gigabytes (a zip bomb) is stopped at the
limit, not after. One set of limits (:class:`ZipLimits`) holds for every kind of container; the
per-member limit is what keeps the peak memory of opening any container bounded, because each
member read is held in memory once (no join of chunks, no second copy).

Writing goes through :func:`write_zip`: a temporary file next to the target, renamed when
complete, so a reader never sees half a container.
"""

from __future__ import annotations

import io
import json
import lzma
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import InvalidContainerError
from scopeml.io.replace import atomic_write

_CHUNK = 1 << 20
_READ_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,  # an encrypted member without a password
    zlib.error,
    lzma.LZMAError,
)


@dataclass(frozen=True)
class ZipLimits:
    """How much an untrusted archive may unpack to.

    Attributes
    ----------
    max_members
        Most entries (files and folders) in the archive.
    max_member_bytes
        Largest uncompressed size of one member. Members are held in memory; checking an ONNX
        graph needs one more copy and ONNX Runtime two while it builds a session, so 400 MiB
        keeps opening (and loading) any container under 1.5 GB of memory.
    max_total_bytes
        Largest uncompressed size of all members read from one archive together.
    max_ratio
        Largest uncompressed/compressed ratio of a member bigger than ``ratio_floor_bytes``; model
        weights compress poorly, a bomb compresses ~1000:1.
    ratio_floor_bytes
        Members smaller than this are exempt from the ratio check (small JSON compresses well).
    max_json_bytes
        Largest JSON member (metadata); parsed JSON takes several times its size in memory.
    """

    max_members: int = 64
    max_member_bytes: int = 400 * 2**20
    max_total_bytes: int = 512 * 2**20
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1 << 20
    max_json_bytes: int = 4 * 2**20


DEFAULT_LIMITS = ZipLimits()


def check_member_name(name: str) -> None:
    """Reject a member name that could mean a path outside the archive.

    Raises
    ------
    ValueError
        For absolute names, drive letters, backslashes, ``..`` parts, control characters.

    Examples
    --------
    >>> check_member_name("model.json")
    >>> check_member_name("../evil")
    Traceback (most recent call last):
    ...
    ValueError: unsafe member name '../evil'
    """
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or ".." in parts
        or any(ord(char) < 32 for char in name)
    ):
        raise ValueError(f"unsafe member name {name!r}")


#: How an archive that :mod:`zipfile` cannot open is said (truncated, damaged, not a zip).
NOT_A_ZIP = "not a valid zip archive"


class SafeZip:
    """An untrusted archive opened for bounded reads of its members by name.

    Opening checks the member count, every name (unsafe, duplicate, encrypted); reads are
    bounded by :class:`ZipLimits` whatever the headers claim. Use it as a context manager.

    Examples
    --------
    >>> buffer = io.BytesIO()
    >>> write_zip(buffer, [("meta.json", json_bytes({"a": 1})), ("x.npy", npy_bytes(np.arange(3)))])
    >>> with SafeZip(buffer.getvalue()) as archive:
    ...     archive.names, archive.read_json("meta.json"), archive.read_array("x.npy").tolist()
    (['meta.json', 'x.npy'], {'a': 1}, [0, 1, 2])
    """

    def __init__(
        self, source: str | PathLike[str] | bytes, *, limits: ZipLimits = DEFAULT_LIMITS
    ) -> None:
        self.path = None if isinstance(source, bytes | bytearray) else Path(source)
        self.limits = limits
        self._total = 0
        try:
            self._archive = zipfile.ZipFile(io.BytesIO(source) if self.path is None else self.path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
            raise self._error(f"{NOT_A_ZIP} ({err})") from err
        except OSError as err:
            if isinstance(err, FileNotFoundError | IsADirectoryError | PermissionError):
                raise
            raise self._error(f"cannot read the zip archive ({err})") from err
        try:
            self._infos = self._check_infos()
        except BaseException:
            self._archive.close()
            raise

    def _error(self, problem: str) -> InvalidContainerError:
        return InvalidContainerError(problem, path=self.path)

    def _check_infos(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._archive.infolist()
        if len(infos) > self.limits.max_members:
            raise self._error(
                f"archive has {len(infos)} members; at most {self.limits.max_members} are allowed"
            )
        files: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            try:
                check_member_name(info.filename)
            except ValueError as err:
                raise self._error(str(err)) from err
            if info.is_dir():
                continue
            if info.filename in files:
                raise self._error(f"duplicate member {info.filename!r}")
            if info.flag_bits & 0x1:
                raise self._error(f"member {info.filename!r} is encrypted")
            files[info.filename] = info
        return files

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._archive.close()

    @property
    def names(self) -> list[str]:
        """File members in archive order (folders left out)."""
        return list(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._infos

    def size(self, name: str) -> int:
        """The uncompressed size the archive declares for ``name`` (not trusted for reads)."""
        return self._info(name).file_size

    def _info(self, name: str) -> zipfile.ZipInfo:
        try:
            return self._infos[name]
        except KeyError as err:
            raise self._error(f"member {name!r} is missing") from err

    def read(self, name: str, *, max_bytes: int | None = None) -> bytes:
        """The content of member ``name``, streamed within the limits and held once.

        ``max_bytes`` lowers the per-member limit (e.g. for JSON). The content goes into one
        growing buffer whose bytes are returned without a copy, so the peak is the member's
        size plus one chunk.
        """
        info = self._info(name)
        limits = self.limits
        budget = min(
            limits.max_member_bytes if max_bytes is None else max_bytes,
            limits.max_total_bytes - self._total,
        )
        if info.file_size > budget:
            raise self._error(
                f"member {name!r} unpacks to {info.file_size} bytes: larger than {budget} bytes "
                "(the limit)"
            )
        buffer = io.BytesIO()
        size = 0
        try:
            with self._archive.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > budget:
                        raise self._error(
                            f"member {name!r} unpacks to larger than {budget} bytes (the limit)"
                        )
                    ratio = size / max(info.compress_size, 1)
                    if size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
                        raise self._error(
                            f"member {name!r} has a compression ratio above "
                            f"{limits.max_ratio:g} (a zip bomb?)"
                        )
                    buffer.write(chunk)
                    del chunk
        except InvalidContainerError:
            raise
        except _READ_ERRORS as err:
            raise self._error(f"member {name!r} is unreadable ({err})") from err
        self._total += size
        data = buffer.getvalue()  # shares the buffer's bytes: no copy
        del buffer
        return data

    def read_json(self, name: str) -> Any:
        """Member ``name`` parsed as UTF-8 JSON (at most ``max_json_bytes``)."""
        data = self.read(name, max_bytes=self.limits.max_json_bytes)
        try:
            return json.loads(data.decode("utf-8"))
        except RecursionError as err:
            raise self._error(f"{name} is nested too deep to be metadata") from err
        except ValueError as err:  # bad JSON, UTF-8, a 5,000-digit number
            raise self._error(f"{name} is not valid JSON ({err})") from err

    def read_array(
        self,
        name: str,
        *,
        dtype: Any = None,
        max_ndim: int | None = None,
        max_bytes: int | None = None,
    ) -> np.ndarray:
        """Member ``name`` as a plain ``.npy`` array: no pickle, header checked before the data.

        ``dtype`` (when given) must match exactly; object, structured and Fortran-order arrays
        are refused, and the data must be exactly as long as the header says.
        """
        data = self.read(name, max_bytes=max_bytes)
        return parse_npy(data, name, dtype=dtype, max_ndim=max_ndim, path=self.path)


def parse_npy(
    data: bytes,
    name: str,
    *,
    dtype: Any = None,
    max_ndim: int | None = None,
    path: str | PathLike[str] | None = None,
) -> np.ndarray:
    """Turn the bytes of a ``.npy`` into a read-only array after checking header and size.

    Examples
    --------
    >>> parse_npy(npy_bytes(np.eye(2)), "eye.npy", dtype="float64").tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    buffer = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buffer)
        reader = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }[version]
        shape, fortran, found = reader(buffer, max_header_size=10_000)
    except (ValueError, KeyError, SyntaxError, TypeError, OSError) as err:
        raise InvalidContainerError(f"{name}: bad .npy header ({err})", path=path) from err
    wanted = None if dtype is None else np.dtype(dtype)
    plain = found.kind in "biuf" and found.fields is None and not found.hasobject
    if (
        not plain
        or (wanted is not None and found != wanted)
        or fortran
        or (max_ndim is not None and len(shape) > max_ndim)
        or any(n < 0 for n in shape)
    ):
        expected = f"{wanted} " if wanted is not None else "numbers "
        rank = f", ≤ {max_ndim}-D" if max_ndim is not None else ""
        raise InvalidContainerError(
            f"{name} holds {found} {shape}; expected {expected}in C order{rank}", path=path
        )
    count = int(np.prod(shape, dtype=np.int64))
    have = len(data) - buffer.tell()
    if have != count * found.itemsize:
        raise InvalidContainerError(
            f"{name} has {have} data bytes; its header says {count * found.itemsize}", path=path
        )
    return np.frombuffer(data, found, count, offset=buffer.tell()).reshape(shape)


def read_zip_members(
    source: str | PathLike[str] | bytes, *, limits: ZipLimits = DEFAULT_LIMITS
) -> dict[str, bytes]:
    """Read every file member of a zip archive into memory.

    Parameters
    ----------
    source
        Path of the archive, or its bytes.
    limits
        Size, count and ratio limits (see :class:`ZipLimits`).

    Returns
    -------
    dict[str, bytes]
        Member name → content, folders left out, in archive order.

    Raises
    ------
    InvalidContainerError
        Not a zip, truncated, encrypted, a duplicate or unsafe member name, a limit exceeded,
        a CRC mismatch. The message names the archive (when given as a path) and the member.

    Examples
    --------
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as archive:
    ...     archive.writestr("model.json", "{}")
    >>> read_zip_members(buffer.getvalue())
    {'model.json': b'{}'}
    """
    with SafeZip(source, limits=limits) as archive:
        return {name: archive.read(name) for name in archive.names}


def peek_json(source: str | PathLike[str] | bytes, name: str, *, max_bytes: int = 1 << 20) -> Any:
    """Member ``name`` parsed as JSON, or ``None`` when anything is odd; for format sniffing.

    Never raises for a bad archive: a sniff asks "is this mine?", the loader reports what is
    wrong. The same checks and limits as every read apply.

    Examples
    --------
    >>> buffer = io.BytesIO()
    >>> write_zip(buffer, [("model.json", json_bytes({"Format": "x"}))])
    >>> peek_json(buffer.getvalue(), "model.json"), peek_json(b"not a zip", "model.json")
    ({'Format': 'x'}, None)
    """
    limits = ZipLimits(max_json_bytes=max_bytes)
    try:
        with SafeZip(source, limits=limits) as archive:
            return archive.read_json(name) if name in archive else None
    except (InvalidContainerError, OSError):
        return None


def json_bytes(data: Any) -> bytes:
    """``data`` as indented UTF-8 JSON, the form every container stores metadata in."""
    return json.dumps(data, indent=2).encode("utf-8")


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as a plain C-order ``.npy`` (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_zip(
    target: str | PathLike[str] | io.BytesIO,
    members: Iterable[tuple[str, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    overwrite: bool = True,
) -> None:
    """Write ``(name, content)`` members as a zip, atomically when ``target`` is a path.

    A path is written through :func:`~scopeml.io.replace.atomic_write` (with the permissions
    ``open`` gives, 0644 under the usual umask); on any error the target is untouched, and an
    existing file is replaced only if ``overwrite``. Member names are checked as on reading.
    """
    if isinstance(target, io.BytesIO):
        _write_members(target, members, compression)
        return
    with atomic_write(Path(target), overwrite=overwrite) as temp, open(temp, "wb") as raw:
        _write_members(raw, members, compression)


def _write_members(raw: Any, members: Iterable[tuple[str, bytes]], compression: int) -> None:
    with zipfile.ZipFile(raw, "w", compression=compression) as archive:
        for name, data in _checked(members):
            # a fixed timestamp: the same content always gives the same bytes
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            archive.writestr(info, data)


def _checked(members: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
    seen: set[str] = set()
    for name, data in members:
        check_member_name(name)
        if name in seen:
            raise ValueError(f"duplicate member {name!r}")
        seen.add(name)
        yield name, data
