"""A byte budget for the tile requests a server holds at once.

Each tile request is checked against ``max_tile_memory`` on its own, but requests arriving
together were all held at once: eight concurrent 1504² tiles of the built-in model took the
server to 7.3 GB. A request now reserves the memory it will hold (its
:func:`~scopeml.server.tiles.tile_memory`) before it is decoded into a batch, and waits, in
arrival order, while the others hold the budget: first its user's share, then the server's,
so one user's many tiles cannot keep another's waiting behind them all. What a request holds
before (its body, at most ``max_tile_bytes``) is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ByteBudget:
    """At most ``total`` bytes reserved at once; a larger request waits until it is alone.

    Examples
    --------
    >>> async def main():
    ...     budget, order = ByteBudget(10), []
    ...     async def hold(name, n):
    ...         async with budget.reserve(n):
    ...             order.append(name)
    ...             await asyncio.sleep(0.01)
    ...     await asyncio.gather(hold("a", 6), hold("b", 6), hold("c", 4))
    ...     return order, budget.used
    >>> asyncio.run(main())
    (['a', 'b', 'c'], 0)
    """

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a byte budget must be at least 1, got {total}")
        self.total = int(total)
        self.used = 0
        self._turns: asyncio.Condition | None = None
        self._queue: list[object] = []  # arrival order: a large request is not overtaken

    @contextlib.asynccontextmanager
    async def reserve(self, nbytes: int) -> AsyncIterator[None]:
        """Hold ``nbytes`` (at most the whole budget) for the block."""
        nbytes = min(int(nbytes), self.total)
        if self._turns is None:
            self._turns = asyncio.Condition()
        turn = object()
        async with self._turns:
            self._queue.append(turn)
            try:
                await self._turns.wait_for(
                    lambda: self._queue[0] is turn and self.used + nbytes <= self.total
                )
            finally:
                self._queue.remove(turn)
                self._turns.notify_all()
            self.used += nbytes
        try:
            yield
        finally:  # freed at once: a second cancel while waiting for the lock lost the bytes
            self.used -= nbytes
            await asyncio.shield(self._notify())

    async def _notify(self) -> None:
        assert self._turns is not None
        async with self._turns:
            self._turns.notify_all()
