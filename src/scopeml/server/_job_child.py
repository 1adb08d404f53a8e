"""One job's run in a child process: a reader or runtime that crashes cannot take the server.

Format libraries are native code (pylibCZIrw, bioio plugins, ONNX Runtime): a corrupt file can
abort the process instead of raising. The server runs each job's engine run here, in a fresh
``spawn`` process under an address-space limit (``RLIMIT_AS``), and reads its progress and its
outcome from a pipe: ``("progress", done, total)`` messages of the engine's tiles,
``("step", name)`` when a step begins (``statistics``, the normalisation's pass over the
image, whose blocks the progress messages then count; ``segment``; the later :data:`STEPS`),
then one ``("done", note)`` or ``("error", type name, problem, path)``. Cancelling a job
terminates the child; a child that dies by a signal fails the job with the signal named
(:func:`run_in_child`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from scopeml import errors
from scopeml.errors import Cancelled, ScopeMLError

POLL_S = 0.2
TERMINATE_WAIT_S = 5.0
#: The job's step by the progress stages of the steps after the engine
#: (:func:`~scopeml.objects.instances.instance_image`, :func:`~scopeml.objects.measure_image`).
STEPS = {"label": "instances", "relabel": "instances", "grow": "instances",
         "find objects": "measure", "measure": "measure"}  # fmt: skip
#: The stages of a segmentation whose progress the job shows as ``done`` of ``total``: the
#: normalisation's statistics pass (blocks read; a huge image spends long there) and the
#: engine's tiles. Each is also the job's step while it runs.
COUNTED = ("statistics", "segment")


class ChildDied(ScopeMLError):
    """The job's process ended without an answer (killed by a signal, or out of memory)."""


def run_in_child(
    task: dict[str, Any],
    on_progress: Callable[[int, int], None],
    stops: tuple[threading.Event, ...],
    memory_limit: int | None,
    on_step: Callable[[str], None] | None = None,
) -> str | None:
    """Run ``task`` (see :func:`_child_main`) in a child process and wait for it.

    ``on_progress(done, total)`` gets the engine's segment progress, ``on_step(name)`` the
    name of each later step as it begins (``instances``, ``measure``); when any of ``stops`` is
    set the child is terminated and :class:`~scopeml.errors.Cancelled` raised. A
    :class:`~scopeml.errors.ScopeMLError` in the child is raised again here with its class,
    problem and path; a child that dies raises :class:`ChildDied` naming the signal. Returns
    the task's note (an analysis's failed images), if any.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main, args=(send, task, memory_limit), name="scopeml-job", daemon=True
    )
    child.start()
    send.close()
    answer: tuple[Any, ...] | None = None
    try:
        while answer is None:
            if any(stop.is_set() for stop in stops):
                raise Cancelled("job stopped")
            if receive.poll(POLL_S):
                try:
                    message = receive.recv()
                except EOFError:  # the child is gone without an answer
                    break
                if message[0] == "progress":
                    on_progress(message[1], message[2])
                elif message[0] == "step":
                    if on_step is not None:
                        on_step(message[1])
                else:
                    answer = message
            elif not child.is_alive() and not receive.poll(0):
                break
    finally:
        if child.is_alive():
            child.terminate()
            child.join(TERMINATE_WAIT_S)
            if child.is_alive():
                child.kill()
        child.join()
        receive.close()
    if answer is None:
        raise ChildDied(_death(child.exitcode, memory_limit))
    if answer[0] == "error":
        _, kind, problem, path = answer
        cls = getattr(errors, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, ScopeMLError)):
            cls = ScopeMLError
        try:
            error = cls(problem, path=path)
        except TypeError:  # an error with more to say (a server's status): its message only
            error = ScopeMLError(problem, path=path)
        raise error
    if answer[0] == "internal":
        raise RuntimeError(answer[1])
    return answer[1]


def _death(exitcode: int | None, memory_limit: int | None) -> str:
    """Why a child ended without an answer, for the job's error.

    Examples
    --------
    >>> _death(-6, None)
    "the job's process was killed by SIGABRT (a reader or the runtime crashed)"
    """
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the job's process was killed by {name} (a reader or the runtime crashed)"
    limit = "" if memory_limit is None else f" (memory limit {memory_limit} bytes?)"
    return f"the job's process ended without an answer (exit {exitcode}){limit}"


def _child_main(send: Connection, task: dict[str, Any], memory_limit: int | None) -> None:
    """The child: limit memory, run the task, report progress and the outcome on ``send``."""
    _die_with_parent()
    if memory_limit is not None and sys.platform != "win32":
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    main = task.get("progress_stage", "segment")
    step = [main]

    def progress(event: Any) -> None:
        if main != "segment":  # an analysis counts images; its images' own stages stay inside
            if event.stage == main:
                send.send(("progress", int(event.done), int(event.total or 0)))
            return
        stage = event.stage if event.stage in COUNTED else STEPS.get(event.stage, step[0])
        if stage != step[0]:
            step[0] = stage
            send.send(("step", stage))
        if event.stage in COUNTED:
            send.send(("progress", int(event.done), int(event.total or 0)))

    try:
        answer: tuple[Any, ...] = ("done", RUNNERS[task["kind"]](task, progress))
    except ScopeMLError as err:
        answer = ("error", type(err).__name__, err.problem, err.path)
    except MemoryError:
        answer = ("error", "ScopeMLError", "the job ran out of memory (server memory limit)", None)
    except BaseException as err:  # reported as an internal error, the details in the log
        import traceback

        traceback.print_exc()
        answer = ("internal", f"internal error ({type(err).__name__})")
    send.send(answer)
    send.close()


def _die_with_parent() -> None:
    """Ask Linux to kill this child when the server dies (even by SIGKILL), so a job the next
    server resumes has one writer; elsewhere a dead server ends the child at its next message
    (the pipe is broken)."""
    if sys.platform != "linux":
        return
    import ctypes
    import os

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the server died before the request took effect
        os._exit(1)


def _segment(task: dict[str, Any], progress: Callable[[Any], None]) -> str | None:
    """Segment one image with one model file through the facade (:func:`scopeml.api.segment`:
    the engine, then instances and their table where asked for), in the job's ``stage``
    folder, resuming the engine from what it already holds; the outputs are moved into place
    when all are made, the table first, the store (the sign of a finished job) last."""
    import contextlib
    import os
    import shutil
    from pathlib import Path

    from scopeml.api import segment
    from scopeml.errors import OutputCompleteError
    from scopeml.io import open_image
    from scopeml.model import load_model
    from scopeml.objects.instances import InstanceOptions
    from scopeml.tiling.options import SegmentOptions

    options = dict(task["options"])
    outputs, instances = options.pop("outputs", None), options.pop("instances", None)
    measure = options.pop("measure", None)
    stage, output = Path(task["stage"]), Path(task["output"])
    staged = stage / output.name
    table = None if measure is None else stage / Path(task["table"]).name
    model = load_model(Path(task["model"]), time_budget=task["time_budget"])
    settings = SegmentOptions(**{**options, "resume": True, "quiet": True})
    # A staged store the engine finished: only the steps after it run again; where every step
    # was done (the attempt stopped before the moves) there is nothing left to run.
    with (
        open_image(task["image"], scene=options.get("scene"), allowed_roots=task["roots"]) as im,
        contextlib.suppress(OutputCompleteError),
    ):
        segment(
            im,
            model,
            staged,
            settings,
            outputs=outputs,
            instances=None if instances is None else InstanceOptions(**instances),
            measure=table,
            progress=progress,
        )
    if table is not None:
        os.replace(table, task["table"])
    os.replace(staged, output)
    shutil.rmtree(stage, ignore_errors=True)
    return None


def _analyze(task: dict[str, Any], progress: Callable[[Any], None]) -> str | None:
    """Run an analysis settings file over images into ``output`` (resuming finished images);
    a note naming the images that failed (the batch goes on past them). The results name each
    image as the client knows it (``public_names``: server path or folder → public name), never
    by where the server keeps it."""
    from pathlib import Path

    from scopeml.analysis import run_analysis

    hidden = [(str(k), str(v)) for k, v in task.get("public_names", {}).items()]
    if task.get("max_pixels"):
        _check_pixels(task["images"], task["roots"], task["max_pixels"], hidden)
    result = run_analysis(
        task["settings"],
        task["images"],
        task["output"],
        resume=True,
        allowed_roots=task["roots"],
        progress=progress,
    )
    if hidden:
        _hide_server_paths(Path(task["output"]), hidden)
    failures = result.failures
    if not failures:
        return None
    listed = "; ".join(
        f"{r['name']}: {_replaced(str(r.get('reason', '')), hidden)}"[:200] for r in failures[:5]
    )
    more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
    return f"{len(failures)} of {len(result.records)} images failed: {listed}{more}"


def _check_pixels(
    images: list[str], roots: list[str], limit: int, public: list[tuple[str, str]]
) -> None:
    """Refuse an analysis with an image over the server's pixel limit before any work, from
    the sizes the images declare (an image that does not open fails on its own later)."""
    from scopeml.errors import InvalidRequestError
    from scopeml.io import open_image
    from scopeml.server.jobs import job_pixels

    for image in images:
        try:
            with open_image(image, allowed_roots=roots) as opened:
                shape = opened.shape
        except Exception:  # the analysis records why
            continue
        pixels = job_pixels(shape)
        if pixels > limit:
            raise InvalidRequestError(
                f"{_replaced(image, public)}: declares {pixels:.1e} pixels; this server takes "
                f"at most {limit:.1e} pixels per image (--max-job-pixels)"
            )


def _replaced(text: str, pairs: list[tuple[str, str]]) -> str:
    """``text`` with each server path of ``pairs`` (longest first) replaced by its public name.

    Examples
    --------
    >>> _replaced("/srv/up/1/a.tif: bad", [("/srv/up/1/a.tif", "a.tif"), ("/srv/up/1/", "")])
    'a.tif: bad'
    """
    for old, new in sorted(pairs, key=lambda pair: -len(pair[0])):
        text = text.replace(old, new)
    return text


def _hide_server_paths(output: Any, pairs: list[tuple[str, str]]) -> None:
    """Rewrite the analysis results that quote an image's path (each image's ``record.json``,
    the summary's CSV tables, ``index.html``) with the public names of ``pairs``."""
    import csv
    import html
    import json

    from scopeml.io.replace import write_atomically

    escaped = pairs + [(html.escape(old), html.escape(new)) for old, new in pairs]
    for record in output.glob("images/*/record.json"):
        data = json.loads(record.read_text())
        fixed = {k: _replaced(v, pairs) if isinstance(v, str) else v for k, v in data.items()}
        if fixed != data:
            write_atomically(record, json.dumps(fixed, indent=2))
    for table in output.glob("summary/*.csv"):
        with table.open(newline="") as file:
            rows = list(csv.reader(file))
        fixed_rows = [[_replaced(cell, pairs) for cell in row] for row in rows]
        if fixed_rows != rows:
            import io

            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(fixed_rows)
            write_atomically(table, buffer.getvalue())
    page = output / "index.html"
    if page.is_file():
        text = page.read_text()
        if _replaced(text, escaped) != text:
            write_atomically(page, _replaced(text, escaped))


RUNNERS: dict[str, Callable[[dict[str, Any], Callable[[Any], None]], str | None]] = {
    "segment": _segment,
    "analyze": _analyze,
}
