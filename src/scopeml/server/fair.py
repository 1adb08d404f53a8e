"""Fair sharing of the predict workers between users.

Every user's tile batches queue for a slot; a free slot goes to the waiting users in turn
(round-robin), and no user holds more than ``per_user`` slots at once. With ``per_user`` below
the number of slots, one user's slow (or stuck) model can never take every worker: another
user's tile finds a free one at once.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairScheduler:
    """Slots for ``predict`` calls, shared round-robin between users with a per-user cap.

    Examples
    --------
    >>> async def main():
    ...     scheduler, order = FairScheduler(slots=1, per_user=1), []
    ...     async def call(user, i):
    ...         async with scheduler.slot(user):
    ...             order.append(f"{user}{i}")
    ...             await asyncio.sleep(0)
    ...     await asyncio.gather(*(call("a", i) for i in range(3)), call("b", 0))
    ...     return order
    >>> asyncio.run(main())
    ['a0', 'b0', 'a1', 'a2']
    """

    def __init__(self, slots: int, per_user: int) -> None:
        if not 1 <= per_user <= slots:
            raise ValueError(f"need 1 <= per_user <= slots; got per_user={per_user}, {slots=}")
        self.slots = slots
        self.per_user = per_user
        self._running: Counter[str] = Counter()
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self.served: Counter[str] = Counter()
        self._turn: dict[str, int] = {}  # when each user was last given a slot
        self._clock = 0

    @property
    def busy(self) -> int:
        return sum(self._running.values())

    @asynccontextmanager
    async def slot(self, user: str) -> AsyncIterator[None]:
        """Hold one slot for ``user`` while the block runs (waiting for its turn first)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(user, deque()).append(future)
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled: give back
                self._release(user)
            else:
                self._forget(user, future)
            raise
        try:
            yield
        finally:
            self._release(user)

    def _release(self, user: str) -> None:
        self._running[user] -= 1
        if self._running[user] <= 0:
            del self._running[user]
        self._dispatch()

    def _forget(self, user: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(user)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._waiting[user]

    def _dispatch(self) -> None:
        """Give free slots to waiting users in turn, skipping those at their cap."""
        while self.busy < self.slots:
            ready = [u for u in self._waiting if self._running[u] < self.per_user]
            if not ready:
                return
            user = min(ready, key=lambda u: self._turn.get(u, -1))  # longest since served
            queue = self._waiting[user]
            future = queue.popleft()
            if not queue:
                del self._waiting[user]
            if future.cancelled():
                continue
            self._clock += 1
            self._turn[user] = self._clock
            self._running[user] += 1
            self.served[user] += 1
            future.set_result(None)
