"""Fair sharing between users: of the predict workers, and of the job workers.

Every user's requests (tile batches, jobs) wait in a queue of their own; a free slot goes to
the waiting users in turn (round-robin: the one served longest ago first), and no user holds
more than ``per_user`` slots at once. With ``per_user`` below the number of slots, one user's
slow (or stuck) model, or long queue of jobs, can never take every worker: another user's tile
or job finds a free one at once, or the next one that frees. :class:`FairQueue` is the policy
(no locking, no waiting); :class:`FairScheduler` runs it for ``asyncio`` tasks (the predict
workers), :class:`~scopeml.server.jobs.JobRunner` for its job threads.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Items waiting per user, handed out round-robin between users with a per-user cap on
    the items running at once. Not thread-safe: its caller holds a lock.

    Examples
    --------
    >>> queue = FairQueue(slots=1, per_user=1)
    >>> for item in ("a1", "a2", "a3"):
    ...     queue.put("a", item)
    >>> queue.put("b", "b1")
    >>> order = []
    >>> while (taken := queue.take()) is not None:
    ...     order.append(taken[1])
    ...     queue.release(taken[0])
    >>> order
    ['a1', 'b1', 'a2', 'a3']
    """

    def __init__(self, slots: int, per_user: int) -> None:
        if not 1 <= per_user <= slots:
            raise ValueError(f"need 1 <= per_user <= slots; got per_user={per_user}, {slots=}")
        self.slots = slots
        self.per_user = per_user
        self.running: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self._waiting: dict[str, deque[T]] = {}
        self._turn: dict[str, int] = {}  # when each user was last given a slot
        self._clock = 0

    @property
    def busy(self) -> int:
        """Slots held now (items taken and not released)."""
        return sum(self.running.values())

    @property
    def waiting(self) -> int:
        """Items waiting for a slot."""
        return sum(len(queue) for queue in self._waiting.values())

    def items(self) -> Iterator[tuple[str, T]]:
        """The waiting items with their users."""
        for user, queue in self._waiting.items():
            for item in queue:
                yield user, item

    def put(self, user: str, item: T) -> None:
        """Queue ``item`` of ``user`` (behind that user's earlier ones)."""
        self._waiting.setdefault(user, deque()).append(item)

    def remove(self, user: str, item: T) -> bool:
        """Take a waiting item out of the queue; whether it was waiting."""
        queue = self._waiting.get(user)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        if not queue:
            del self._waiting[user]
        return True

    def take(self, skip: Callable[[T], bool] | None = None) -> tuple[str, T] | None:
        """The next item to run and its user, counted as holding a slot until
        :meth:`release`; ``None`` when every slot is held or every waiting user is at the cap.
        The user served longest ago goes first; items for which ``skip`` is true are dropped."""
        while self.busy < self.slots:
            ready = [u for u in self._waiting if self.running[u] < self.per_user]
            if not ready:
                return None
            user = min(ready, key=lambda u: self._turn.get(u, -1))  # longest since served
            queue = self._waiting[user]
            item = queue.popleft()
            if not queue:
                del self._waiting[user]
            if skip is not None and skip(item):
                continue
            self._clock += 1
            self._turn[user] = self._clock
            self.running[user] += 1
            self.served[user] += 1
            return user, item
        return None

    def release(self, user: str) -> None:
        """Give back a slot :meth:`take` gave ``user``."""
        self.running[user] -= 1
        if self.running[user] <= 0:
            del self.running[user]


class FairScheduler:
    """Slots for ``predict`` calls, shared round-robin between users with a per-user cap
    (a :class:`FairQueue` of waiting tasks).

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
        self._queue: FairQueue[asyncio.Future[None]] = FairQueue(slots, per_user)
        self.slots = slots
        self.per_user = per_user

    @property
    def busy(self) -> int:
        return self._queue.busy

    @property
    def served(self) -> Counter[str]:
        return self._queue.served

    @asynccontextmanager
    async def slot(self, user: str) -> AsyncIterator[None]:
        """Hold one slot for ``user`` while the block runs (waiting for its turn first)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put(user, future)
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled: give back
                self._release(user)
            else:
                self._queue.remove(user, future)
            raise
        try:
            yield
        finally:
            self._release(user)

    def _release(self, user: str) -> None:
        self._queue.release(user)
        self._dispatch()

    def _dispatch(self) -> None:
        """Give free slots to waiting users in turn, skipping those at their cap."""
        while (taken := self._queue.take(skip=lambda future: future.cancelled())) is not None:
            taken[1].set_result(None)
