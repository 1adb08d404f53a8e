"""Read the members of an untrusted zip archive into memory, within limits.

A model container is a zip file from someone else. Nothing in it is extracted to disk and no member
name is ever used as a path; members are read into ``bytes`` while counting, so a member that
claims to be small but inflates to gigabytes (a zip bomb) is stopped at the limit, not after.
"""

from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from scopeml.errors import InvalidContainerError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    """How much an untrusted archive may unpack to.

    Attributes
    ----------
    max_members
        Most entries (files and folders) in the archive.
    max_member_bytes
        Largest uncompressed size of one member (ONNX protobufs stop at 2 GiB anyway).
    max_total_bytes
        Largest uncompressed size of all members read together.
    max_ratio
        Largest uncompressed/compressed ratio of a member bigger than ``ratio_floor_bytes``; model
        weights compress poorly, a bomb compresses ~1000:1.
    ratio_floor_bytes
        Members smaller than this are exempt from the ratio check (small JSON compresses well).
    """

    max_members: int = 64
    max_member_bytes: int = 2**31
    max_total_bytes: int = 2**31 + 2**24
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1 << 20


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
    >>> import io, zipfile
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as archive:
    ...     archive.writestr("model.json", "{}")
    >>> read_zip_members(buffer.getvalue())
    {'model.json': b'{}'}
    """
    path = None if isinstance(source, bytes | bytearray) else Path(source)
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if path is None else path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise InvalidContainerError(f"not a valid zip archive ({err})", path=path) from err
    except OSError as err:
        if isinstance(err, FileNotFoundError | IsADirectoryError | PermissionError):
            raise
        raise InvalidContainerError(f"cannot read the zip archive ({err})", path=path) from err
    with archive:
        return _read_all(archive, limits, path)


def _read_all(archive: zipfile.ZipFile, limits: ZipLimits, path: Path | None) -> dict[str, bytes]:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise InvalidContainerError(
            f"archive has {len(infos)} members; at most {limits.max_members} are allowed",
            path=path,
        )
    members: dict[str, bytes] = {}
    total = 0
    for info in infos:
        try:
            check_member_name(info.filename)
        except ValueError as err:
            raise InvalidContainerError(str(err), path=path) from err
        if info.is_dir():
            continue
        if info.filename in members:
            raise InvalidContainerError(f"duplicate member {info.filename!r}", path=path)
        if info.flag_bits & 0x1:
            raise InvalidContainerError(f"member {info.filename!r} is encrypted", path=path)
        budget = min(limits.max_member_bytes, limits.max_total_bytes - total)
        data = _read_member(archive, info, budget, limits, path)
        total += len(data)
        members[info.filename] = data
    return members


def _read_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    budget: int,
    limits: ZipLimits,
    path: Path | None,
) -> bytes:
    name = info.filename
    if info.file_size > budget:
        raise InvalidContainerError(
            f"member {name!r} unpacks to {info.file_size} bytes; the limit is {budget}", path=path
        )
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > budget:
                    raise InvalidContainerError(
                        f"member {name!r} unpacks to more than {budget} bytes (the limit)",
                        path=path,
                    )
                ratio = size / max(info.compress_size, 1)
                if size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
                    raise InvalidContainerError(
                        f"member {name!r} has a compression ratio above {limits.max_ratio:g} "
                        "(a zip bomb?)",
                        path=path,
                    )
                chunks.append(chunk)
    except InvalidContainerError:
        raise
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
        zlib.error,
        lzma.LZMAError,
    ) as err:
        raise InvalidContainerError(f"member {name!r} is unreadable ({err})", path=path) from err
    return b"".join(chunks)
