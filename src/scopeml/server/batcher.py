"""A micro-batcher: tile requests that wait together become one ``predict`` call.

Requests for one model queue up; the batcher takes the first, collects what else is queued or
arrives within a few milliseconds (up to a maximum number of tiles), stacks tiles of equal shape
and runs one ``predict`` in a worker thread. It waits for company only while the model is busy,
so a lone request is not delayed; while all call slots are busy the next batch fills, so under
load batches grow by themselves and the runtime sees few, large calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import numpy as np


@dataclass
class _Request:
    batch: np.ndarray
    future: asyncio.Future[np.ndarray]


class MicroBatcher:
    """Batch concurrent ``predict`` requests of one model.

    Parameters
    ----------
    predict
        ``N×C×[Z×]Y×X`` float32 → ``N×K×[Z×]Y×X`` float32 (a model's ``predict``).
    max_batch
        Most tiles in one call (a single request larger than this runs alone).
    concurrency
        Calls that may run at once (on CPU, two calls of a small model use the cores better
        than one; on a GPU, one is usually right).
    wait_s
        How long the first request of a batch waits for company while another batch of the
        model is running (an idle model runs a request at once: no added latency).
    executor
        Where ``predict`` runs (``None``: the event loop's default thread pool).
    on_batch
        Called with the number of tiles after each successful call (for metrics).
    gate
        Entered around each call (``None``: none); the server passes a slot of its
        :class:`~scopeml.server.fair.FairScheduler`, so users share the workers fairly.

    Examples
    --------
    >>> calls = []
    >>> def predict(batch):
    ...     calls.append(len(batch))
    ...     return batch * 2
    >>> async def main():
    ...     batcher = MicroBatcher(predict, max_batch=4, wait_s=0.05)
    ...     tiles = [np.full((1, 1, 2, 2), i, np.float32) for i in range(3)]
    ...     out = await asyncio.gather(*(batcher.predict(t) for t in tiles))
    ...     await batcher.close()
    ...     return [float(o.max()) for o in out]
    >>> asyncio.run(main()), calls
    ([0.0, 2.0, 4.0], [3])
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int = 8,
        wait_s: float = 0.005,
        concurrency: int = 1,
        executor: Executor | None = None,
        on_batch: Callable[[int], None] | None = None,
        gate: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError(
                f"max_batch and concurrency must be at least 1, got {max_batch}, {concurrency}"
            )
        self._predict = predict
        self.max_batch = max_batch
        self.wait_s = max(0.0, wait_s)
        self._executor = executor
        self._on_batch = on_batch
        self._gate = gate or contextlib.nullcontext
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()

    async def predict(self, batch: np.ndarray) -> np.ndarray:
        """Queue an ``N×C×…`` batch; return its ``N×K×…`` probabilities when its turn came."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(batch, future))
        return await future

    async def close(self) -> None:
        """Stop collecting; requests still queued fail with ``CancelledError``."""
        tasks = [*self._running, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()

    async def _run(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # while all slots are busy, the next batch fills up
            try:
                pending = [await queue.get()]
            except BaseException:
                self._slots.release()
                raise
            n_tiles = len(pending[0].batch)
            # an idle model runs at once; a busy one lets the next batch wait for company
            deadline = loop.time() + (self.wait_s if self._running else 0.0)
            while n_tiles < self.max_batch:
                try:
                    if queue.empty():
                        timeout = deadline - loop.time()
                        if timeout <= 0:
                            break
                        request = await asyncio.wait_for(queue.get(), timeout)
                    else:
                        request = queue.get_nowait()
                except TimeoutError:
                    break
                pending.append(request)
                n_tiles += len(request.batch)
            task = loop.create_task(self._run_groups(_groups(pending, self.max_batch)))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_groups(self, groups: list[list[_Request]]) -> None:
        try:
            for group in groups:
                await self._run_group(group)
        finally:
            self._slots.release()

    async def _run_group(self, group: list[_Request]) -> None:
        group = [request for request in group if not request.future.done()]
        if not group:
            return
        stacked = group[0].batch if len(group) == 1 else np.concatenate([r.batch for r in group])
        loop = asyncio.get_running_loop()
        try:
            async with self._gate():
                result = await loop.run_in_executor(self._executor, self._predict, stacked)
        except Exception as err:
            for request in group:
                if not request.future.done():
                    request.future.set_exception(err)
            return
        if self._on_batch is not None:
            self._on_batch(len(stacked))
        start = 0
        for request in group:
            stop = start + len(request.batch)
            if not request.future.done():
                request.future.set_result(result[start:stop])
            start = stop


def _groups(requests: list[_Request], max_batch: int) -> list[list[_Request]]:
    """Split requests into stackable groups: equal tile shape, at most ``max_batch`` tiles."""
    by_shape: dict[tuple[int, ...], list[list[_Request]]] = {}
    for request in requests:
        chunks = by_shape.setdefault(request.batch.shape[1:], [[]])
        size = sum(len(r.batch) for r in chunks[-1])
        if chunks[-1] and size + len(request.batch) > max_batch:
            chunks.append([])
        chunks[-1].append(request)
    return [chunk for chunks in by_shape.values() for chunk in chunks]
