"""Tiles worked on side by side in threads, their results taken in order.

numpy, scipy and the zarr codecs let go of the GIL for most of a tile's work, so on several
cores a few threads go faster than one, and handing the results back in order keeps every
output what one thread makes (rows in tile order, writes one at a time).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["map_ordered", "thread_count"]

T = TypeVar("T")
R = TypeVar("R")


def map_ordered(function: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``function(item)`` for each item, in the items' order, ``workers`` at a time.

    At most ``2 × workers`` results are made ahead of the caller, so memory holds that many
    at most. The work runs in pool threads, one worker too: the caller's thread only waits, so
    a Ctrl-C (or SIGTERM made one) never stops a tile halfway through its writes. When the
    caller stops early (an error, Ctrl-C, a cancel raised by its progress callback), what has
    not started is dropped and what is running finishes before the caller goes on; close the
    iterator (``contextlib.closing``) so that this happens before the error travels up.

    Examples
    --------
    >>> list(map_ordered(lambda n: n * n, range(6), workers=3))
    [0, 1, 4, 9, 16, 25]
    """
    with ThreadPoolExecutor(max(workers, 1), thread_name_prefix="scopeml") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def thread_count(workers: int | None) -> int:
    """The threads ``workers`` asks for: -1 or ``None``, every core this process may use (its
    CPU affinity and container limits heeded, as joblib counts them); else at least one.
    Threads, not joblib's processes: a daemonic process (a server's job) counts every core
    too, where joblib's ``effective_n_jobs`` gave 1 and warned of its process pool.

    >>> thread_count(3), thread_count(0), thread_count(-1) >= 1
    (3, 1, True)
    """
    if workers in (-1, None):
        from joblib import cpu_count

        return int(cpu_count())
    return max(1, int(workers))
