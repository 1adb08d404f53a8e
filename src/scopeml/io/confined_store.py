"""A zarr store that reads only files whose real path lies below the allowed roots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from zarr.storage import LocalStore

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

    def _checked(self, key: str) -> None:
        self.confinement.check(self.root / key)

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        await asyncio.to_thread(self._checked, key)
        return await super().get(key, prototype, byte_range)

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
        self._checked(key)
        return super().get_sync(key, prototype=prototype, byte_range=byte_range)

    async def get_partial_values(
        self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]
    ) -> list[Any]:
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            await asyncio.to_thread(self._checked, key)
        return await super().get_partial_values(prototype, key_ranges)

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
