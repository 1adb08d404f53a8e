"""One job's run in a child process: a reader or runtime that crashes cannot take the server.

Format libraries are native code (pylibCZIrw, bioio plugins, ONNX Runtime): a corrupt file can
abort the process instead of raising. The server runs each job's engine run here, in a fresh
``spawn`` process under an address-space limit (``RLIMIT_AS``), and reads its progress and its
outcome from a pipe: ``("progress", done, total)`` messages of the engine's tiles,
``("step", name)`` when a step begins (``statistics``, the normalisation's pass over the
image, whose blocks the progress messages then count; ``segment``; the later :data:`STEPS`),
``("warning", line)`` for each warning the run gives (written to the server's log too, as
before; the job's record shows them to its client), ``("batch", bytes)`` once a segment job
has counted a batch's memory, then one ``("done", note)`` or ``("error", type name, problem,
path)``; running out of memory, however an allocation failed, is said in the job's words
(:func:`memory_problem`). Cancelling a job, or its time limit, terminates the child; a child
that dies by a signal fails the job with the signal named, or as out of memory where its
stderr's last words say so (:func:`run_in_child`). An analysis's size check at submit runs
here too (``sizes``: each image opened, under the same limits).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from scopeml import errors
from scopeml.errors import Cancelled, ScopeMLError
from scopeml.server.words import in_job_words
from scopeml.tiling.model_inputs import ChannelOption

POLL_S = 0.2
TERMINATE_WAIT_S = 5.0
#: The job's step by the progress stages of the steps after the engine
#: (:func:`~scopeml.objects.instances.instance_image`, :func:`~scopeml.objects.measure_image`).
STEPS = {"label": "instances", "relabel": "instances", "grow": "instances",
         "find objects": "measure", "measure": "measure"}  # fmt: skip
#: The stages of a segmentation whose progress the job shows as ``done`` of ``total``: the
#: normalisation's statistics pass (blocks read; a huge image spends long there), the
#: engine's tiles and the lower resolutions of an output larger than 1024 px (its chunks; a
#: job sat at 100 % of ``segment`` meanwhile). Each is also the job's step while it runs.
COUNTED = ("statistics", "segment", "pyramid")
MB = 1 << 20
#: What a failed allocation says where it raises no MemoryError: a thread whose stack could not
#: be mapped (Python's watchdogs, pools), ONNX Runtime's arena or C++'s ``bad_alloc``, a library
#: that could not be mapped at import, ``ENOMEM``. Under the job's address-space limit each means
#: the job ran out of memory, not a bug.
NO_MEMORY = ("can't start new thread", "failed to allocate memory", "bad_alloc",
             "failed to map segment", "cannot allocate memory")  # fmt: skip
#: Warnings of the server's own running of a job, for its log only: a resumed analysis takes over
#: the results folder's lock its stopped process left (naming that process and host).
SERVER_ONLY = ("the results folder's lock was left by an analysis that is gone",)


class PassCounter:
    """``done``/``total`` of a step after the engine, whose tile passes follow one another
    (``instances``: label, relabel, grow; ``measure``: find objects, measure): the tiles of
    the step's passes so far, those finished and the current one's (``done`` never goes back;
    ``total`` grows as a pass begins).

    Examples
    --------
    >>> count = PassCounter()
    >>> count("label", 0, 4), count("label", 4, 4), count("relabel", 0, 4), count("relabel", 1, 4)
    ((0, 4), (4, 4), (4, 8), (5, 8))
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new step: no tiles counted."""
        self.stage: str | None = None
        self.finished = self.done = self.total = 0

    def __call__(self, stage: str, done: int, total: int) -> tuple[int, int]:
        if stage != self.stage or done < self.done:  # the next pass (or the same pass again)
            self.finished += self.total
            self.stage = stage
        self.done, self.total = done, total
        return self.finished + done, self.finished + total


class ChildDied(ScopeMLError):
    """The job's process ended without an answer (killed by a signal, or out of memory)."""


class InternalJobError(RuntimeError):
    """The child failed by a bug, not by its input: ``internal error (TYPE)``, the exception's
    type in the child (its traceback is in the server's log, written by the child)."""


class TimedOut(Cancelled):
    """The child ran past its time limit and was stopped (as a cancel stops it)."""


def run_in_child(
    task: dict[str, Any],
    on_progress: Callable[[int, int], None],
    stops: tuple[threading.Event, ...],
    memory_limit: int | None,
    on_step: Callable[[str], None] | None = None,
    *,
    time_limit: float | None = None,
    per_unit: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> str | None:
    """Run ``task`` (see :func:`_child_main`) in a child process and wait for it.

    ``on_progress(done, total)`` gets the engine's segment progress, ``on_step(name)`` the
    name of each later step as it begins (``instances``, ``measure``), ``on_warning(line)``
    each warning the run gives, on one line (see :func:`warning_line`); when any of ``stops`` is
    set the child is terminated and :class:`~scopeml.errors.Cancelled` raised; past
    ``time_limit`` seconds (counted from the start, or with ``per_unit`` from the last progress
    message: one image of a check) it is terminated and :class:`TimedOut` raised. A
    :class:`~scopeml.errors.ScopeMLError` in the child is raised again here with its class,
    problem and path; a child that dies raises :class:`ChildDied` naming the signal, or that it
    ran out of memory where its last words say so (:class:`PassedOn`: its stderr goes on to the
    server's). Returns the task's note (an analysis's failed images), if any.
    """
    if memory_limit is not None:  # the child inherits it: pyarrow reads it as it loads, and
        # a spawned child loads it before its own code runs (``scopeml serve`` imports pandas)
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    passed_on = PassedOn(context)
    child = context.Process(
        target=_child_main,
        args=(send, task, memory_limit, passed_on.child_end),
        name="scopeml-job",
        daemon=True,
    )
    child.start()
    send.close()
    passed_on.start()
    answer: tuple[Any, ...] | None = None
    since = time.monotonic()
    try:
        while answer is None:
            if any(stop.is_set() for stop in stops):
                raise Cancelled("job stopped")
            if time_limit is not None and time.monotonic() - since > time_limit:
                raise TimedOut(f"ran past its time limit of {time_limit:g} s")
            if receive.poll(POLL_S):
                try:
                    message = receive.recv()
                except EOFError:  # the child is gone without an answer
                    break
                if message[0] == "progress":
                    since = time.monotonic() if per_unit else since
                    on_progress(message[1], message[2])
                elif message[0] == "warning":
                    if on_warning is not None:
                        on_warning(message[1])
                elif message[0] == "step":
                    task = {**task, "step": message[1]}  # said if the child runs out of memory
                    if on_step is not None:
                        on_step(message[1])
                elif message[0] == "memory":  # each step's memory, said if the child runs out
                    task = {**task, "batch_bytes": message[1].get("segment"),
                            "step_bytes": message[1]}  # fmt: skip
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
        passed_on.wait()
    if answer is None and passed_on.no_memory:  # aborted by a C++ bad_alloc no code caught
        raise ChildDied(task_memory_problem(task, memory_limit))
    if answer is None:
        raise ChildDied(_death(child.exitcode, memory_limit))
    return _outcome(answer)


def _outcome(answer: tuple[Any, ...]) -> str | None:
    """The child's answer as :func:`run_in_child` gives it: its note, or its error raised."""
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
        raise InternalJobError(answer[1])
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


class PassedOn:
    """A job process's stderr (its tracebacks, warnings, a native library's last words),
    passed on to the server's (its log) as it comes, and read for the words of an allocation
    that failed (:func:`out_of_memory`): a C++ ``std::bad_alloc`` that no code catches aborts
    the process (SIGABRT) with nothing else to say that it ran out of memory."""

    def __init__(self, context: Any) -> None:
        self.no_memory = False
        self._thread: threading.Thread | None = None
        self.child_end: Connection | None = None  # the child's fd 2 (none on Windows)
        if sys.platform != "win32":
            self._stderr, self.child_end = context.Pipe(duplex=False)  # raw bytes

    def start(self) -> None:
        """Pass on what the started child writes (its end closed here)."""
        if self.child_end is None:
            return
        self.child_end.close()
        self._thread = threading.Thread(
            target=self._pass_on, args=(self._stderr,), name="scopeml-job-stderr", daemon=True
        )
        self._thread.start()

    def _pass_on(self, stderr: Connection) -> None:
        import os

        tail = ""
        with contextlib.suppress(OSError), stderr:
            while chunk := os.read(stderr.fileno(), 1 << 16):
                text = chunk.decode(errors="replace")
                with contextlib.suppress(OSError, ValueError):  # no log to write to
                    sys.stderr.write(text)
                    sys.stderr.flush()
                self.no_memory = self.no_memory or out_of_memory(tail + text)
                tail = text[-64:]  # words split between two reads

    def wait(self) -> None:
        """Wait for the process's last words (a process it started may hold its stderr
        longer: not past ``TERMINATE_WAIT_S``)."""
        if self._thread is not None:
            self._thread.join(TERMINATE_WAIT_S)


def _child_main(
    send: Connection,
    task: dict[str, Any],
    memory_limit: int | None,
    stderr: Connection | None = None,
) -> None:
    """The child: limit memory, run the task, report progress and the outcome on ``send``,
    write to ``stderr`` (see :class:`PassedOn`)."""
    if stderr is not None:
        import os

        os.dup2(stderr.fileno(), 2)
        stderr.close()
    _die_with_parent()
    if memory_limit is not None and sys.platform != "win32":
        from scopeml.address_space import cap_address_space

        _lean_allocators()
        _load_blas()
        cap_address_space(memory_limit)

    main = task.get("progress_stage", "segment")
    step: list[str | None] = [None]  # the first step is told too: the job starts "starting"
    passes = PassCounter()

    def progress(event: Any) -> None:
        if main != "segment":  # an analysis counts images; its images' own stages stay inside
            if event.stage == main:
                send.send(("progress", int(event.done), int(event.total or 0)))
            return
        if event.stage == "pyramid" and step[0] in AFTER_ENGINE:  # the instances' levels:
            send.send(("progress", *passes(event.stage, int(event.done), int(event.total or 0))))
            return  # a pass of that step (its memory words stay its own)
        stage = event.stage if event.stage in COUNTED else STEPS.get(event.stage, step[0])
        if stage != step[0]:
            step[0] = task["step"] = stage  # for the words if memory runs out
            passes.reset()
            send.send(("step", stage))
        if event.stage in COUNTED:
            send.send(("progress", int(event.done), int(event.total or 0)))
        elif event.stage in STEPS:  # instances, measure: their passes' tiles
            send.send(("progress", *passes(event.stage, int(event.done), int(event.total or 0))))

    task["memory_limit"] = memory_limit  # for the runners' words on running out of it
    task["say"] = send.send  # a runner's word to the parent: ("memory", {step: bytes})
    try:
        with _sending_warnings(send, analysis=task["kind"] == "analyze"):
            answer: tuple[Any, ...] = ("done", RUNNERS[task["kind"]](task, progress))
    except BaseException as err:
        answer = _failure(err, task)
    send.send(answer)
    send.close()


#: glibc's malloc arenas a job process may make (its default, 8 per core, each reserving 64
#: MB of address space as a thread first allocates, took 1.5 GB of a job's limit on a 16-core
#: machine without holding its memory).
MALLOC_ARENAS = 2


def _lean_allocators() -> None:
    """Allocators that map no more address space than they use, before the job's limit:
    Arrow's table writer (the ``measure`` step) on the system allocator, not mimalloc, which
    reserves 1 GB of address space as it starts (a job under ``--job-memory-mb 3000`` ran
    out of memory in step ``measure`` at 1.7 GB resident, 3 GB mapped); glibc's arenas
    bounded (:data:`MALLOC_ARENAS`). An administrator's own ``ARROW_DEFAULT_MEMORY_POOL`` or
    ``MALLOC_ARENA_MAX`` is kept."""
    import os

    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")  # read as pyarrow loads
    if os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system" and "pyarrow" in sys.modules:
        import pyarrow  # loaded already (by the parent's main module, spawned again)

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    if sys.platform == "linux" and "MALLOC_ARENA_MAX" not in os.environ:
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL(None).mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX


def _load_blas() -> None:
    """Load NumPy's and SciPy's OpenBLAS before the job's address-space limit: each maps its
    threads' buffers as it loads, and past the limit it retries the allocation for ever (a job
    under ``--job-memory-mb 400`` hung importing ``scipy.special``; loaded first, it fails
    with its first allocation, in words)."""
    import numpy  # noqa: F401
    import scipy.special  # noqa: F401  (its _ufuncs link SciPy's OpenBLAS)


def _failure(err: BaseException, task: dict[str, Any]) -> tuple[Any, ...]:
    """The child's answer for a run that raised ``err``: out of memory in the job's words
    (however the allocation failed, :func:`out_of_memory`), a :class:`ScopeMLError` with its
    class, problem and path, a file gone, or else an internal error (its traceback to the
    server's log)."""
    if out_of_memory(err):
        return ("error", "ScopeMLError", task_memory_problem(task), None)
    if isinstance(err, ScopeMLError):
        analysis = task.get("kind") == "analyze" or task.get("settings") is not None  # sizes
        words = in_job_words(str(err.problem), analysis=analysis)
        return ("error", type(err).__name__, words, err.path)
    if isinstance(err, OSError):  # a file gone or unreadable (an image deleted since submit)
        return ("error", "ScopeMLError", err.strerror or str(err), err.filename)
    import traceback

    traceback.print_exception(err)
    return ("internal", f"internal error ({type(err).__name__})")


def out_of_memory(err: BaseException | str) -> bool:
    """Whether ``err`` (or an exception it was raised from, or a failure's text) is an
    allocation that failed: a :class:`MemoryError`, ``ENOMEM``, or a library's words for it
    (:data:`NO_MEMORY`), which a job's address-space limit gives as often as ``MemoryError``.
    An error of ours that says it ran out of memory keeps its own words (a corrupt CZI's).

    Examples
    --------
    >>> out_of_memory(RuntimeError("can't start new thread")), out_of_memory(ValueError("x"))
    (True, False)
    """
    seen: set[int] = set()
    chained: BaseException | str | None = err
    while chained is not None and id(chained) not in seen:
        seen.add(id(chained))
        if isinstance(chained, ScopeMLError) and "out of memory" in str(chained.problem):
            return False
        if isinstance(chained, MemoryError):
            return True
        if isinstance(chained, OSError) and chained.errno == errno.ENOMEM:
            return True
        if any(words in str(chained).lower() for words in NO_MEMORY):
            return True
        if isinstance(chained, str):
            return False
        chained = chained.__cause__ or chained.__context__
    return False


def task_memory_problem(task: dict[str, Any], limit: int | None = None) -> str:
    """:func:`memory_problem` of a task that ran out of memory (``limit``: the job's, where
    the task does not hold it): in the step it was in, with what that step was counted."""
    limit = task.get("memory_limit", limit)
    step = task.get("step")
    segment = task.get("kind", "segment") == "segment"
    if not segment or step not in AFTER_ENGINE:
        return memory_problem(limit, task.get("batch_bytes"), tiles=segment)
    counted = (task.get("step_bytes") or {}).get(step)
    limit_text = "" if limit is None else f" (job memory limit {limit / MB:.0f} MB)"
    needs = f": it was counted at about {max(counted, MB) / MB:.0f} MB" if counted else ""
    other = {"instances": "submit with a smaller tile_size (the step reads tiles of it)",
             "measure": "submit without measure (no objects table)"}[step]  # fmt: skip
    return (
        f"ran out of memory in step {step}{limit_text}{needs}, besides the job's libraries "
        f"and threads; ask the administrator for more --job-memory-mb, or {other}"
    )


#: The steps after the engine (:data:`STEPS`), which a job's memory words name.
AFTER_ENGINE = ("instances", "measure")


def memory_problem(limit: int | None, needed: int | None = None, *, tiles: bool = True) -> str:
    """A job that ran out of memory, in its words: the limit and, where counted, what a batch
    of the job needs (:func:`~scopeml.server.limits.job_memory`). The limit is of address
    space, which the job's libraries and threads map too (about 1.5 GB before a small job's
    first tile): where the batch is a small share of it, or the job's ``tiles`` are not what
    ran out (an image's check at submit), smaller tiles would not help.

    Examples
    --------
    >>> memory_problem(900 * MB, 300 * MB)  # doctest: +NORMALIZE_WHITESPACE
    'ran out of memory (job memory limit 900 MB): the model needs about 300 MB per batch;
    ask the administrator for more --job-memory-mb, or submit with a smaller tile_size'
    >>> print(memory_problem(900 * MB, 30 * MB))  # doctest: +NORMALIZE_WHITESPACE
    ran out of memory (job memory limit 900 MB): the model needs about 30 MB per batch, the
    job's libraries and threads the rest; ask the administrator for more --job-memory-mb
    """
    limit_text = "" if limit is None else f" (job memory limit {limit / MB:.0f} MB)"
    batch = f"{max(needed or 0, MB) / MB:.0f}"
    needs = f": the model needs about {batch} MB per batch" if needed else ""
    if needed and limit and needed * 4 < limit:  # the rest is the process's own
        return (
            f"ran out of memory{limit_text}{needs}, the job's libraries and threads the rest; "
            "ask the administrator for more --job-memory-mb"
        )
    if not tiles:
        return f"ran out of memory{limit_text}; ask the administrator for more --job-memory-mb"
    return (
        f"ran out of memory{limit_text}{needs}; ask the administrator for more "
        "--job-memory-mb, or submit with a smaller tile_size"
    )


@contextlib.contextmanager
def _sending_warnings(send: Connection, analysis: bool = False) -> Any:
    """Send each warning the run shows as ``("warning", line)``, and write it on one line to
    the server's log (``job warning: …``, not Python's form naming the source line, here
    multiprocessing's): a client sees what a local run would have told its user. Warnings
    the code silences (``catch_warnings`` with ``"ignore"``) are neither shown nor sent, those
    of the server's own running of the job (:data:`SERVER_ONLY`) only logged. The client gets
    them in its words (job options, not flags: :func:`in_job_words`)."""
    with warnings.catch_warnings():

        def show_and_send(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            with contextlib.suppress(OSError, ValueError):  # no log to write to
                sys.stderr.write(f"job warning: {warning_line(message)}\n")
            if str(message).startswith(SERVER_ONLY):
                return
            with contextlib.suppress(OSError, ValueError):  # the parent gone: the log has it
                send.send(("warning", in_job_words(warning_line(message), analysis=analysis)))

        warnings.showwarning = show_and_send
        yield


def warning_line(message: Warning | str, limit: int = 500) -> str:
    """A warning's message on one line, cut to ``limit`` characters.

    Examples
    --------
    >>> warning_line(UserWarning("left out 2 label images,\\n  such as a_labels.tif"))
    'left out 2 label images, such as a_labels.tif'
    """
    line = " ".join(str(message).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


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
    when all are made, the table first, the store (the sign of a finished job) last. The
    store records the image by the name the client knows it by (``name``), and a model that
    names itself only by the server's file by the user's name for it (``model_name``)."""
    import os
    import shutil
    from pathlib import Path

    from scopeml.api import segment
    from scopeml.io import open_image
    from scopeml.model import load_model
    from scopeml.objects.instances import InstanceOptions
    from scopeml.tiling.identity import RunNames
    from scopeml.tiling.options import SegmentOptions
    from scopeml.tiling.store import rename_inputs

    options = dict(task["options"])
    outputs, instances = options.pop("outputs", None), options.pop("instances", None)
    measure, axes = options.pop("measure", None), options.pop("axes", None)
    shape_features = options.pop("shape_features", True)
    stage, output = Path(task["stage"]), Path(task["output"])
    staged = stage / output.name
    table = None if measure is None else stage / Path(task["table"]).name
    model = load_model(Path(task["model"]), time_budget=task["time_budget"])
    own = Path(task["model"]).stem  # a model named by nothing but the server's file name
    settings = SegmentOptions(**{**options, "resume": True, "quiet": True})
    # recorded instead of the server's paths (also by a run an older server stopped)
    names = RunNames(task.get("name"), task.get("model_name") if model.spec.name == own else None)
    if names.image is not None:
        rename_inputs(staged, task["image"], names)
    # A staged store the engine finished: only the steps after it run again; where every step
    # was done (the attempt stopped before the moves) there is nothing left to run.
    with open_image(
        task["image"], scene=options.get("scene"), allowed_roots=task["roots"], axes=axes
    ) as im:
        # before the engine: the channels in the job's words; auto's factor estimated once,
        # counted against the limits, and handed to segment (which records it)
        chosen = check_job_inputs(im, model, settings, staged, task)
        task["step_bytes"] = _step_bytes(im, model, chosen, task)  # said if memory runs out
        task["batch_bytes"] = task["step_bytes"].get("segment")
        task.get("say", lambda message: None)(("memory", task["step_bytes"]))  # if it aborts
        segment(
            im,
            model,
            staged,
            settings,
            scale=chosen,
            outputs=outputs,
            instances=None if instances is None else InstanceOptions.from_fields(instances),
            measure=table,
            shape_features=shape_features,
            progress=_releasing_model(progress, model),
            public_name=names.image,
            public_model=names.model,
        )
    if table is not None:
        os.replace(table, task["table"])
    os.replace(staged, output)
    shutil.rmtree(stage, ignore_errors=True)
    return None


def _step_bytes(image: Any, model: Any, chosen: Any, task: dict[str, Any]) -> dict[str, int]:
    """Each step's memory as submit counts it (:func:`~scopeml.server.limits.job_step_memory`:
    a batch of ``segment``, ``instances``, ``measure``), at the factor auto ``chosen``, for
    the job's words if it runs out of memory; empty where it cannot be counted."""
    from scopeml.server.limits import job_step_memory

    options = dict(task.get("options", {}))
    if chosen is not None:
        options["scale"] = chosen.scale
    runtime = task.get("runtime_per_pixel") or 0.0
    try:
        return job_step_memory(options, model.spec, runtime, image.shape)
    except Exception:  # only words: the run goes on without them
        return {}


def _releasing_model(progress: Callable[[Any], None], model: Any) -> Callable[[Any], None]:
    """``progress`` that, as the first step after the engine begins (instances, measure),
    gives back what the model's runtime holds from its batches (ONNX Runtime keeps its arena,
    1-2 GB of the job's address space for ``nuclei``, for runs that will not come), so the
    steps after it have the job's memory."""
    released = [False]

    def passed_on(event: Any) -> None:
        if not released[0] and event.stage in STEPS:
            released[0] = True
            if callable(release := getattr(model, "release_memory", None)):
                release()
        progress(event)

    return passed_on


#: How a server job chooses its image's channels: its ``channels`` field (no command line).
JOB_CHANNELS = ChannelOption(
    "the job's channels option", lambda names: f"channels: {json.dumps(list(names))}"
)


def check_job_inputs(
    image: Any, model: Any, settings: Any, output: Path, task: dict[str, Any]
) -> Any:
    """Check, before the engine runs, what a segment job feeds its model, as
    :func:`scopeml.api.segment` prepares it (the job's channels, else those the model's
    training record names, :func:`~scopeml.tiling.model_inputs.fit_model_inputs`): channels
    that do not fit are refused by the engine's own check in the job's words (its
    ``channels`` field, not ``--channels``); and where ``scale`` is ``"auto"`` (given, or the
    model's default), the factor is chosen here, once (the same estimate, a resumed run's
    recorded choice), and returned for ``segment`` to record rather than estimate again; so
    the estimate's warning (no objects found: scale 1) is given here, once for the job.

    A factor that magnifies is counted against the task's limits: the image's pixels
    (``max_job_pixels``, ``--max-job-pixels``; at submit counted ×1, the factor not known
    then) and a batch's memory (``max_tile_memory``, as at submit:
    :func:`~scopeml.server.limits.job_memory` with the factor, the model's runtime bytes per
    pixel ``runtime_per_pixel``; at submit also counted ×1).

    Raises
    ------
    IncompatibleModelError
        The channels do not fit the model (naming the job's ``channels`` field).
    InvalidRequestError
        ``scale auto chose 4 (objects ~5 px): 429,496,729,600 pixels > --max-job-pixels
        17,179,869,184``,
        or a batch's memory at that factor over the server's limit.
    """
    from scopeml.api import _auto_scaled_model
    from scopeml.tiling.engine import check_compatible
    from scopeml.tiling.model_inputs import fit_model_inputs

    if settings.channels is not None:  # as segment's _input_image selects them
        image = image.select_channels(list(settings.channels))
    with warnings.catch_warnings():  # segment warns of the same once it runs
        warnings.simplefilter("ignore")
        image, _, settings = fit_model_inputs(image, None, model, settings)
        check_compatible(image, model, JOB_CHANNELS)
    # auto's estimate is made here only (segment is handed it), so its warning (no objects
    # found: scale 1) is left to reach the job's log, once
    *_, chosen = _auto_scaled_model(image, model, None, settings, output)
    if chosen is not None and chosen.scale > 1:  # at submit it counted ×1
        _check_auto_limits(image, model, chosen, task)
    return chosen


def _check_auto_limits(image: Any, model: Any, chosen: Any, task: dict[str, Any]) -> None:
    """Refuse the factor ``chosen`` where it magnifies ``image`` past the task's pixel limit or
    a batch past its memory limit (see :func:`check_job_inputs`)."""
    from scopeml.errors import InvalidRequestError
    from scopeml.server.limits import job_memory, job_pixels, megabytes

    objects = "no object size found" if chosen.diameter is None else (
        f"objects ~{chosen.diameter:.0f} px"
    )  # fmt: skip
    said = f"scale auto chose {chosen.scale:g} ({objects}, model {chosen.model_diameter:g} px)"
    limit = task.get("max_job_pixels")
    pixels = job_pixels(image.shape, chosen.scale, model.spec.spatial_dims)
    if limit is not None and pixels > limit:
        raise InvalidRequestError(
            f"{said}: {round(pixels):,} pixels > --max-job-pixels {limit:,}; give a smaller scale",
            path=task.get("image"),
        )
    limit = task.get("max_tile_memory")
    if limit is None:
        return
    options = {**task.get("options", {}), "scale": chosen.scale}
    needed = job_memory(options, model.spec, task.get("runtime_per_pixel") or 0.0, image.shape)
    if needed > limit:
        raise InvalidRequestError(
            f"{said}: a batch of this job then needs about {megabytes(needed)} MB of server "
            f"memory; the limit is {megabytes(limit)} MB: give a smaller scale, tile_size, "
            "halo or batch_size",
            path=task.get("image"),
        )


def _analyze(task: dict[str, Any], progress: Callable[[Any], None]) -> str | None:
    """Run an analysis settings file over images into ``output`` (resuming finished images);
    a note naming the images that failed (the batch goes on past them; where every one
    failed, the job fails with it). The analysis records
    each image by the name the client knows it by (``names``: server path → public name; other
    files below ``roots`` by their path there, see :class:`PublicNames`), never by where the
    server keeps it. Its progress counts every image, those an earlier run finished too
    (:func:`_counting_earlier`); an image that ran out of memory says so in the job's words."""
    from scopeml.analysis import run_analysis

    if task.get("max_job_pixels") is not None:  # before any image: auto's factors counted
        check_analysis_auto_pixels(task, task["max_job_pixels"])
    result = run_analysis(
        task["settings"],
        task["images"],
        task["output"],
        resume=True,
        allowed_roots=task["roots"],
        progress=_counting_earlier(progress, task),
        public_name=PublicNames(task["names"], tuple(task["roots"])),
        base=task.get("base"),
    )
    failures = result.failures
    if not failures:
        return None
    shown = failures[:5]
    reasons = [str(r.get("reason", "")) for r in shown]
    reasons = [memory_problem(task.get("memory_limit")) if out_of_memory(why) else why
               for why in reasons]  # fmt: skip
    listed = "; ".join(f"{r['name']}: {why}"[:200] for r, why in zip(shown, reasons, strict=True))
    more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
    note = f"{len(failures)} of {len(result.records)} images failed: {listed}{more}"
    if len(failures) == len(result.records):  # nothing analysed: the job failed
        raise ScopeMLError(note)
    return note


def _counting_earlier(progress: Callable[[Any], None], task: dict[str, Any]) -> Any:
    """``progress`` with the analysis's ``analyze`` count over all its images: a resumed run
    counts only those left (2 of 2), the job those an earlier run finished too (3 of 3)."""
    from dataclasses import replace

    from scopeml.analysis.settings import load_settings

    try:
        everything = len(_analysis_files(task, load_settings(task["settings"])))
    except Exception:  # the run says what is wrong with the settings
        return progress

    def counted(event: Any) -> None:
        total = event.total
        if event.stage == "analyze" and total is not None and total < everything:
            event = replace(event, done=event.done + everything - total, total=everything)
        progress(event)

    return counted


def check_analysis_auto_pixels(task: dict[str, Any], limit: int) -> None:
    """Refuse, before any image is analysed, an analysis whose model classes run at ``scale:
    auto`` (given, or the model's default) when the factors chosen magnify its images past
    ``limit`` pixels in all (``--max-job-pixels``; at submit auto counted ×1). Each image
    counts its scenes × its largest factor², each class's factor chosen as the analysis's
    :func:`~scopeml.api.segment` call chooses it (the class's channels, each scene); an image
    that does not open is left to fail on its own, as at submit.

    Raises
    ------
    InvalidRequestError
        Naming the factor, its estimate and the image it magnifies to the most pixels.
    """
    from scopeml.analysis.check import open_resources
    from scopeml.analysis.image import open_scenes_analysed
    from scopeml.analysis.inputs import shown
    from scopeml.analysis.settings import MODEL_SEGMENTERS, load_settings
    from scopeml.errors import InvalidRequestError
    from scopeml.server.limits import job_pixels, magnification
    from scopeml.tiling.size import auto_scale, default_scale, is_auto

    settings = load_settings(task["settings"])
    models = [c for c in settings.classes if isinstance(c.segmenter, MODEL_SEGMENTERS)]
    if not any(is_auto(c.segmenter.scale) or c.segmenter.scale is None for c in models):
        return  # no auto: counted at submit
    resources = open_resources(
        settings, source=task["settings"], allowed_roots=task["roots"], base=task.get("base")
    )
    wanted = {
        c.name: c.segmenter.scale if c.segmenter.scale is not None
        else default_scale(resources.models[c.name])
        for c in models
    }  # fmt: skip
    if not any(is_auto(scale) for scale in wanted.values()):
        return
    fixed = max((magnification(s) for s in wanted.values() if not is_auto(s)), default=1.0)
    counted: list[tuple[int, float, str, Any]] = []  # pixels, factor, name, auto's choice
    for path in _analysis_files(task, settings):
        name = shown(path, PublicNames(task.get("names", {}), tuple(task["roots"])))
        try:
            with warnings.catch_warnings():  # the analysis warns when it runs
                warnings.simplefilter("ignore")
                with open_scenes_analysed(settings, path, task["roots"]) as scenes:
                    factor, choice = fixed, None
                    for cls, image in itertools.product(models, scenes):
                        if not is_auto(wanted[cls.name]):
                            continue
                        view = image.select_channels(list(cls.segmenter.channels))
                        chosen = auto_scale(view, resources.models[cls.name],
                                            normalize=cls.segmenter.normalize)  # fmt: skip
                        if chosen.scale > factor:
                            factor, choice = chosen.scale, chosen
                    shapes = [image.shape for image in scenes]
        except Exception:  # fails on its own when the analysis runs, with the reason
            continue
        counted.append((sum(job_pixels(s, factor) for s in shapes), factor, name, choice))
    total = sum(entry[0] for entry in counted)
    magnified = [entry for entry in counted if entry[3] is not None]
    if total <= limit or not magnified:
        return  # within the limit, or auto magnified none: as counted at submit
    _, factor, name, choice = max(magnified, key=lambda entry: entry[0])
    objects = "no object size found" if choice.diameter is None else (
        f"objects ~{choice.diameter:.0f} px"
    )  # fmt: skip
    raise InvalidRequestError(
        f"scale auto chose {factor:g} for {name} ({objects}, model {choice.model_diameter:g} "
        f"px): the analysis's {len(task['images'])} images come to {round(total):,} pixels > "
        f"--max-job-pixels {limit:,}; give the class a smaller scale"
    )


def _analysis_files(task: dict[str, Any], settings: Any) -> list[Any]:
    """An analysis's images (files, or fields of channel files): its folders and patterns
    expanded as the analysis expands them (the settings' ``inputs``); as named where they do
    not expand (the analysis fails on its own, saying why)."""
    from scopeml.analysis.inputs import find_images

    inputs = settings.inputs
    try:
        found = find_images(
            task["images"], recursive=inputs.recursive, include=inputs.include,
            exclude=inputs.exclude, skip_labels=inputs.skip_labels, ignore=[task["output"]],
            warn=False, channel_files=inputs.channel_files,
        )  # fmt: skip
    except Exception:
        return [Path(image) for image in task["images"]]
    return found.paths


@dataclass(frozen=True)
class PublicNames:
    """The name an analysis records for a server file: an image's public name from ``names``
    (server path → name), else the path below the longest of ``roots`` that holds it (an
    upload's folder, the allowed root), else the file's name alone.

    Examples
    --------
    >>> public = PublicNames({"/srv/up/1/a.tif": "a.tif"}, ("/srv/up/1", "/data"))
    >>> public(Path("/srv/up/1/a.tif")), public(Path("/data/m/x.czann")), public(Path("/etc/x"))
    ('a.tif', 'm/x.czann', 'x')
    """

    names: dict[str, str]
    roots: tuple[str, ...] = ()

    def __call__(self, path: Path) -> str:
        if str(path) in self.names:
            return self.names[str(path)]
        for root in sorted(self.roots, key=len, reverse=True):
            if Path(path).is_relative_to(root):
                return Path(path).relative_to(root).as_posix()
        return Path(path).name


def _sizes(task: dict[str, Any], progress: Callable[[Any], None]) -> str | None:
    """The 6-D shape of each scene each of ``images`` declares, read with its ``axes`` (the
    analysis's, one per image) (all scenes, also of different sizes, or the settings'
    ``scene``, a name as each file numbers it; ``null`` where it does not open or lacks that
    scene: the analysis records why), as JSON, after opening the models and classifiers of the
    analysis ``settings``, where given, as its run opens them (their errors name the settings
    line). Counts the images as progress before opening each, so the parent knows which one a
    crashing or hanging reader was opening. The first image that opens is checked against the
    settings as the run checks it before any image (:func:`_check_first`)."""
    import json

    from scopeml.analysis.check import open_resources
    from scopeml.analysis.settings import load_settings
    from scopeml.io.registry import ChannelFiles, open_scenes, scene_numbered
    from scopeml.progress import ProgressEvent

    shapes: list[list[list[int]] | None] = []
    settings = None if task.get("settings") is None else load_settings(task["settings"])
    resources, checked = None, False
    if settings is not None:  # its models' classes and channels, as the job's run checks them
        resources = open_resources(settings, source=task["settings"], model_threads=1,
                                   allowed_roots=task["roots"], base=task.get("base"))  # fmt: skip
    images = [ChannelFiles.from_json(i) if isinstance(i, dict) else i for i in task["images"]]
    axes = task.get("axes") or [None] * len(images)
    names = task.get("names") or images
    for index, (image, image_axes) in enumerate(zip(images, axes, strict=True)):
        progress(ProgressEvent("sizes", index, len(images), "image"))
        try:  # a scene's name: this file's number for it (lacking it, the image fails alone)
            options = {"allowed_roots": task["roots"], "axes": image_axes}
            number = scene_numbered(image, task.get("scene"), **options)
            with open_scenes(image, number, **options) as scenes:
                shapes.append([[int(n) for n in scene.shape] for scene in scenes])
        except Exception:  # fails on its own when the analysis runs, with the reason
            shapes.append(None)
            continue
        if settings is not None and not checked:  # the first that opens
            checked = _check_first(settings, image, names[index], task, resources)
    return json.dumps(shapes)


def _check_first(
    settings: Any, image: Any, name: str, task: dict[str, Any], resources: Any
) -> bool:
    """The first image that opens checked as the analysis's run checks it before reading any
    (:func:`~scopeml.analysis.check.check_image_channels`: its channels, the pixel size rules
    and classifiers in µm need, Z for 2-D or 3-D rules), so a submit is refused with the
    settings error that would fail the job (a rule in µm on an image with no pixel size was
    accepted, and the job failed). Its warnings are the run's to give. Whether it was checked:
    one that fails otherwise fails on its own in the run, and the next is checked instead."""
    from scopeml.analysis.check import check_image_channels
    from scopeml.analysis.settings import InvalidSettingsError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_image_channels(
                settings, image, source=task["settings"], allowed_roots=task["roots"],
                name=name, classifiers=resources.classifiers,
            )  # fmt: skip
    except InvalidSettingsError:
        raise
    except Exception:  # as the run's first check: this image's own failure
        return False
    return True


RUNNERS: dict[str, Callable[[dict[str, Any], Callable[[Any], None]], str | None]] = {
    "segment": _segment,
    "analyze": _analyze,
    "sizes": _sizes,
}
