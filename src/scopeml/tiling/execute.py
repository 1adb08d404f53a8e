"""Executors: run batches of tiles on a local thread pool or on a dask.distributed cluster.

Local: one model object shared by all threads (an onnxruntime session is thread-safe and
releases the GIL, so reading, predicting and writing of different batches overlap).
Distributed: one future per batch; each worker loads the model and opens the image from their
paths once (a per-process cache), writes whole chunks and the batch's done records itself. A path
is not an identity: a dask worker outlives a run, so the cache also keys each file by its
fingerprint (size, modification time, content hash) taken when the run began, and a file
replaced at the same path is loaded again, never served from an earlier run's copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scopeml.errors import InvalidRequestError
from scopeml.threads import map_ordered
from scopeml.tiling.kernel import TileContext, process_batch
from scopeml.tiling.plan import Tile
from scopeml.tiling.store import mark_done


@dataclass(frozen=True)
class LoadRef:
    """How a worker gets a model or image: ``loader(*args)``, cached per worker process.

    ``args[0]`` is the file's path (as every loader here takes it). ``identity``: that file's
    :func:`source_fingerprint` when the run began (:func:`run_dask` sets it), as sorted
    ``(key, value)`` pairs; a worker loads the file again when it differs from the cached
    copy's and refuses a file that no longer has it. ``None``: the path alone (no check).
    """

    loader: Callable[..., Any]
    args: tuple[Any, ...]
    identity: tuple[tuple[str, Any], ...] | None = None


#: (loader, args) → (the file's identity when loaded, the object): one entry per path, so a
#: replaced file's object is dropped when the new one is loaded.
_cache: dict[tuple[str, str, tuple[Any, ...]], tuple[Any, Any]] = {}
_cache_lock = threading.Lock()


def source_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`~scopeml.tiling.identity.fingerprint` of what a model or image is read from: the
    file or folder, and for a bioimage.io description (``.yaml``/``.yml``) its folder, whose
    files (the weights) make the model."""
    from scopeml.tiling.identity import fingerprint

    path = Path(path)
    return fingerprint(path.parent if path.suffix.lower() in (".yaml", ".yml") else path)


def with_identity(ref: Any) -> Any:
    """``ref`` with its file's fingerprint as it is now (a :class:`LoadRef` whose first
    argument names an existing file or folder); anything else unchanged."""
    if not isinstance(ref, LoadRef) or not ref.args:
        return ref
    source = ref.args[0]
    if not isinstance(source, (str, os.PathLike)) or not Path(source).exists():
        return ref
    try:
        identity = tuple(sorted(source_fingerprint(source).items()))
    except OSError:  # gone meanwhile: the loader says so
        return ref
    return dataclasses.replace(ref, identity=identity)


def resolve(ref: Any) -> Any:
    """The object behind a :class:`LoadRef` (loaded once per process and file version), or
    ``ref`` itself.

    Raises
    ------
    InvalidRequestError
        The file is no longer the one the run began with (``ref.identity``): replaced while
        the run goes on, its tiles would mix two files.
    """
    if not isinstance(ref, LoadRef):
        return ref
    key = (ref.loader.__module__, ref.loader.__qualname__, ref.args)
    with _cache_lock:
        held = _cache.get(key)
        if held is not None and held[0] == ref.identity:
            return held[1]
        if ref.identity is not None and with_identity(ref).identity != ref.identity:
            raise InvalidRequestError(
                "the file changed since the run began (replaced while it ran: its tiles would "
                "mix two files); run again",
                path=ref.args[0],
            )
        _cache.pop(key, None)  # an earlier file's object, if any, goes before the new one loads
        loaded = ref.loader(*ref.args)
        _cache[key] = (ref.identity, loaded)
        return loaded


def run_local(
    batches: Sequence[Sequence[Tile]],
    work: Callable[[Sequence[Tile]], int],
    *,
    workers: int,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Run ``work`` over the batches with ``workers`` threads, at most ``2 × workers`` ahead
    (:func:`~scopeml.threads.map_ordered`).

    The first error (or Ctrl-C) cancels what has not started and is re-raised once the
    running batches have finished, so no chunk is left half-written by a live thread.
    """
    with closing(map_ordered(work, batches, workers)) as done:
        for count in done:
            if on_progress is not None:
                on_progress(count)


def remote_batch(
    model_ref: Any,
    image_ref: Any,
    array_paths: Mapping[str, str],
    partial: str,
    tiles: Sequence[Tile],
    ctx: TileContext,
) -> int:
    """A dask task: run one batch on a worker and record it done."""
    from scopeml.io import open_ome_zarr_array

    model, image = resolve(model_ref), resolve(image_ref)
    arrays = {name: open_ome_zarr_array(path, mode="r+") for name, path in array_paths.items()}
    return process_batch(
        model,
        image,
        arrays,
        tiles,
        ctx,
        on_done=lambda done, invalid: mark_done(partial, (t.index for t in done), invalid),
    )


def _share(client: Any, obj: Any, what: str) -> Any:
    """A :class:`LoadRef` as it is; anything else scattered to all workers once."""
    if isinstance(obj, LoadRef):
        return obj
    try:
        return client.scatter(obj, broadcast=True, hash=False)
    except Exception as err:  # an open session or file handle cannot travel
        raise InvalidRequestError(
            f"this {what} object cannot be sent to dask workers ({err}); "
            f"pass the {what} as a file path so that workers open it themselves"
        ) from err


def _connect(client_class: Any, address: str) -> Any:
    """A client of the scheduler at ``address``; an unreachable one is a request error.

    The wait is dask's ``distributed.comm.timeouts.connect`` (30 s unless configured).
    """
    try:
        return client_class(address)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        raise InvalidRequestError(f"cannot reach the dask scheduler {address!r} ({err})") from err


def check_scheduler(address: str) -> None:
    """Connect to the scheduler at ``address`` once and close again: a run checks it before
    any work, so an unreachable one leaves no statistics pass run and no partial output."""
    from distributed import Client

    _connect(Client, address).close()


def run_dask(
    batches: Sequence[Sequence[Tile]],
    *,
    scheduler: str | Any,
    model: Any,
    image: Any,
    array_paths: Mapping[str, str],
    partial: str,
    ctx: TileContext,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Run the batches as futures on a dask.distributed cluster.

    ``model`` and ``image`` are :class:`LoadRef` s (workers load them from their paths, checked
    against the files' fingerprints taken here, :func:`with_identity`) or plain objects,
    which are scattered to every worker once. On an error or a cancel the
    futures are cancelled; a batch already running on a worker cannot be interrupted and may
    still finish (and record itself done) afterwards, which a resumed run takes into account.
    """
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else _connect(Client, scheduler)
    try:
        refs = [
            _share(client, with_identity(obj), what)
            for obj, what in ((model, "model"), (image, "image"))
        ]
        futures = [
            client.submit(
                remote_batch, *refs, dict(array_paths), partial, list(batch), ctx, pure=False
            )
            for batch in batches
        ]
        try:
            with watching_workers(client, scheduler):
                for future in as_completed(futures):
                    count = future.result()
                    if on_progress is not None:
                        on_progress(count)
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if client is not scheduler:
            client.close()


#: Seconds a cluster may have no workers before a run says so (its futures wait for workers
#: without a word: every worker killed, the run waited until it was stopped by hand), and how
#: often it is looked at.
NO_WORKERS_S, WORKERS_POLL_S = 60.0, 5.0


@contextlib.contextmanager
def watching_workers(client: Any, scheduler: Any) -> Iterator[None]:
    """Warn once when the cluster has had no workers for :data:`NO_WORKERS_S` while the run
    waits (it waits on: an autoscaling cluster adds workers later, and Ctrl-C keeps what is
    written for a resume)."""
    stop = threading.Event()

    def watch() -> None:
        since = None
        while not stop.wait(WORKERS_POLL_S):
            try:
                workers = len(client.scheduler_info().get("workers", {}))
            except Exception:  # the client closing as the run ends
                return
            if workers:
                since = None
                continue
            since = time.monotonic() if since is None else since
            if time.monotonic() - since >= NO_WORKERS_S:
                where = scheduler if isinstance(scheduler, str) else "the dask cluster"
                warnings.warn(
                    f"{where} has had no workers for {NO_WORKERS_S:g} s: the run waits for "
                    "some (start dask workers, or stop it with Ctrl-C and resume later)",
                    UserWarning,
                    stacklevel=1,
                )
                return

    thread = threading.Thread(target=watch, name="scopeml-workers", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(WORKERS_POLL_S)
