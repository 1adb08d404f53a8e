"""Tiles side by side in threads: results in order, bounded ahead, nothing left running."""

from __future__ import annotations

import threading
import time

from scopeml.threads import map_ordered


def test_results_come_in_order_at_most_twice_the_workers_ahead_and_stop_with_the_caller():
    started = []
    lock = threading.Lock()

    def work(n):
        with lock:
            started.append(n)
        time.sleep(0.01 * (n % 3))  # out of order if taken as they finish
        return n * 10

    results = map_ordered(work, range(100), workers=3)
    assert [next(results) for _ in range(5)] == [0, 10, 20, 30, 40]
    time.sleep(0.2)  # the threads run ahead of a caller that waits, but only so far
    assert len(started) <= 5 + 2 * 3
    results.close()  # a caller that stops: what has not started never runs
    ran = len(started)
    time.sleep(0.2)
    assert len(started) == ran < 100
    assert list(map_ordered(work, range(4), workers=1)) == [0, 10, 20, 30]


def test_one_worker_runs_in_a_pool_thread_so_the_caller_only_waits():
    # a Ctrl-C reaches the caller's (main) thread: it must never stop a tile mid-write
    threads = list(map_ordered(lambda _: threading.current_thread(), range(3), workers=1))
    assert threading.main_thread() not in threads and len(set(threads)) == 1


def _count_in_a_daemon(queue) -> None:
    import warnings

    from scopeml.threads import thread_count

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        queue.put((thread_count(-1), [str(w.message) for w in caught]))


def test_a_daemonic_process_counts_every_core_without_joblibs_warning():
    """A server's job runs in a daemonic process: joblib's ``effective_n_jobs`` gave 1 thread
    there and warned "Loky-backed parallel loops cannot be called in a multiprocessing", a
    warning every image of a server analysis recorded as its own."""
    import multiprocessing

    from joblib import cpu_count

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_count_in_a_daemon, args=(queue,), daemon=True)
    child.start()
    count, said = queue.get(timeout=60)
    child.join()
    assert count == cpu_count() and said == []
