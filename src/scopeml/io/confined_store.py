"""A zarr store that reads only files whose real path lies below the allowed roots."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import stat
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore

from scopeml.errors import OutsideRootError
from scopeml.io.confine import Confinement


class ConfinedStore(LocalStore):
    """A read-only zarr ``LocalStore`` that checks each key's real path before touching it.

    zarr opens metadata, array folders and chunk (or shard) files by key, lazily and from any
    thread; a key whose file or any folder above it is a symlink leading outside the roots
    raises :class:`OutsideRootError` instead of being read, listed or tested for existence.

    Examples
    --------
    >>> import tempfile, zarr, numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> zarr.create_array(str(root / "a.zarr"), data=np.arange(4, dtype="u1"))[:].tolist()
    [0, 1, 2, 3]
    >>> store = ConfinedStore(root / "a.zarr", confinement=Confinement.of([root]))
    >>> zarr.open_array(store=store, mode="r")[1:3].tolist()
    [1, 2]
    """

    def __init__(self, root: Path | str, *, confinement: Confinement) -> None:
        super().__init__(root, read_only=True)
        self.confinement = confinement
        confinement.check(self.root)

    def with_read_only(self, read_only: bool = False) -> ConfinedStore:
        if not read_only:
            raise PermissionError("a ConfinedStore is read-only")
        return ConfinedStore(self.root, confinement=self.confinement)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ConfinedStore)
            and self.root == other.root
            and self.confinement == other.confinement
        )

    def _checked(self, key: str) -> str:
        return self.confinement.check(self.root / key)

    def _read(self, key: str, prototype: Any, byte_range: Any) -> Any:
        """Read ``key`` from its checked real path; ``None`` if absent (the fill value).

        The file is opened by that real path without following a final symlink, so a chunk
        swapped for a symlink between the check and the read is refused too.
        """
        real = self._checked(key)
        prototype = default_buffer_prototype() if prototype is None else prototype
        try:
            descriptor = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise OutsideRootError(
                    "became a symlink after its path was checked", path=self.root / key
                ) from err
            raise
        with os.fdopen(descriptor, "rb") as file:
            if stat.S_ISDIR(os.fstat(file.fileno()).st_mode):
                return None
            size = file.seek(0, io.SEEK_END)
            start, stop = 0, size
            if isinstance(byte_range, RangeByteRequest):
                start, stop = byte_range.start, byte_range.end
            elif isinstance(byte_range, OffsetByteRequest):
                start = byte_range.offset
            elif isinstance(byte_range, SuffixByteRequest):
                start = max(0, size - byte_range.suffix)
            elif byte_range is not None:
                raise TypeError(f"unexpected byte_range {byte_range!r}")
            file.seek(start)
            return prototype.buffer.from_bytes(file.read(max(0, stop - start)))

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        return await asyncio.to_thread(self._read, key, prototype, byte_range)

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
        return self._read(key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]
    ) -> list[Any]:
        return list(
            await asyncio.gather(
                *(
                    asyncio.to_thread(self._read, key, prototype, byte_range)
                    for key, byte_range in key_ranges
                )
            )
        )

    async def exists(self, key: str) -> bool:
        await asyncio.to_thread(self._checked, key)
        return await super().exists(key)

    async def getsize(self, key: str) -> int:
        self._checked(key)
        return await super().getsize(key)

    async def list(self) -> AsyncIterator[str]:
        async for key in self.list_prefix(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        self._checked(prefix)
        async for key in super().list_prefix(prefix):
            self._checked(key)
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        self._checked(prefix)
        async for key in super().list_dir(prefix):
            yield key
