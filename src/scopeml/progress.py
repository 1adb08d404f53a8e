"""One progress-and-cancel protocol for every long call.

Every long call (``segment``, training, labelling, measuring, analyses) takes one keyword,
``progress``, and reports to it; the command line draws it with tqdm, the server records it on
the job, the napari plugin shows it. ``progress`` is one of

- ``None`` or ``False``: report nothing;
- ``True``: tqdm bars on stderr, one per stage (see :class:`_Bars`: on a terminal a bar appears
  once its stage has run :data:`BAR_DELAY` seconds and is cleared when the stage ends; in a log,
  each stage writes one line with its final count, a quick one nested in another none);
- a callable taking a :class:`ProgressEvent`: called once when a stage starts (``done == 0``)
  and after each unit of work.

To cancel, the callable raises :class:`~scopeml.errors.Cancelled`. The call stops between two
units of work, keeps what it finished (a ``segment`` run can then be resumed) and re-raises it.

Examples
--------
>>> events = []
>>> report = as_progress(events.append)
>>> report(ProgressEvent("label", 0, 2)); report(ProgressEvent("label", 2, 2))
>>> [(e.stage, e.done, e.total) for e in events]
[('label', 0, 2), ('label', 2, 2)]
>>> def stop_after_one(event):
...     if event.done >= 1:
...         raise Cancelled("stopped by the user")
>>> track(range(5), stop_after_one, "measure").__next__()
0
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from scopeml.errors import Cancelled

__all__ = [
    "BAR_DELAY",
    "LOG_INTERVAL",
    "Cancelled",
    "Progress",
    "ProgressCallback",
    "ProgressEvent",
    "as_progress",
    "close_bars",
    "track",
]

#: Seconds a stage runs before its bar is drawn on a terminal: a quicker stage draws nothing, and
#: no bar is ever drawn at 0 before its stage has done any work.
BAR_DELAY = 0.5
#: Seconds between two lines of a stage still running where stderr is not a terminal (a log).
LOG_INTERVAL = 30.0

T = TypeVar("T")


@dataclass(frozen=True)
class ProgressEvent:
    """How far one stage of a long call has come.

    ``stage`` names the step (``"segment"``, ``"label"``, ``"measure"``, ``"train"`` …),
    ``done`` and ``total`` count its units (``total`` is ``None`` where unknown), ``unit``
    names them (``"tile"``, ``"step"``, ``"image"``). ``metrics``, where a stage has them, are
    the latest figures of its work (``"train"``: the last finished epoch's ``loss``,
    ``val_loss``, ``val_mean_iou``); bars show them after the count.
    """

    stage: str
    done: int
    total: int | None = None
    unit: str = "tile"
    metrics: Mapping[str, float] | None = field(default=None, hash=False)


ProgressCallback: TypeAlias = Callable[[ProgressEvent], None]
Progress: TypeAlias = ProgressCallback | bool | None


def _silent(event: ProgressEvent) -> None:
    """Report nothing."""


@dataclass
class _Run:
    """One run of a stage, kept while other stages run, so a stage taken up again reports its
    whole run: when it started, its count then, its last event, the count and time of its last
    log line (its start, before any)."""

    start: float
    first: int
    event: ProgressEvent
    written: int = 0
    line_time: float = 0.0


class _Bars:
    """tqdm bars on stderr, one per stage; a new stage (or a count going back) ends the bar.

    On a terminal a bar is drawn once its stage has run :data:`BAR_DELAY` seconds, starts at the
    stage's count (a stage taken up again does not flash 0 %) and is cleared, not left, when the
    stage ends: finished or replaced bars leave no line behind. Where stderr is not a terminal
    (a log file, a captured stream) carriage-return frames would each become a line, so each
    stage writes one line instead: when it ends (or is replaced, if it moved), and every
    :data:`LOG_INTERVAL` seconds while it runs.

    A stage replaced before its count reached its total is an outer stage, open until it is
    taken up again: the stages run meanwhile are nested in it (an analysis's ``analyze``, at
    2/5 while the image's ``statistics`` … ``classes`` run). In a log a nested stage writes its
    line only once it has run :data:`LOG_INTERVAL` seconds, and an outer stage only every
    :data:`LOG_INTERVAL` seconds and at its end, not at each replacement: the end lines of every
    image's quick stages made 7 lines an image (7,000 for a batch of 1,000). Stages one after
    another (a ``segment`` run) nest in nothing and each writes its line as before.
    """

    def __init__(self) -> None:
        self._stream: Any = sys.stderr
        self._terminal = _is_terminal(self._stream) or _in_notebook(self._stream)
        self._bar: Any = None
        self._stage: str | None = None
        self._event = ProgressEvent("", 0)
        self._runs: dict[str, _Run] = {}
        #: the open outer stages, outermost first
        self._outer: list[str] = []
        #: set by close(): a loop's bars, once closed, are given to no later progress=True
        self.closed = False
        _OPEN.add(self)

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage != self._stage or event.done < self._event.done:
            self._replace(event)
        self._event = self._runs[event.stage].event = event
        if self._bar is not None:
            if event.total is not None and self._bar.total != event.total:
                self._bar.total = event.total
            if event.metrics:
                self._bar.set_postfix_str(_metrics_text(event.metrics), refresh=False)
            self._bar.update(event.done - self._bar.n)
        elif not self._terminal and self._line_due(event):
            self._write_line(event.stage)
        if event.total is not None and event.done >= event.total:
            self._end()

    def _line_due(self, event: ProgressEvent) -> bool:
        """A log line every :data:`LOG_INTERVAL` seconds, if the count moved since the last."""
        run = self._runs[event.stage]
        return time.monotonic() - run.line_time >= LOG_INTERVAL and event.done > run.written

    def _replace(self, event: ProgressEvent) -> None:
        """End the current stage for ``event``'s: an unfinished one becomes an outer stage."""
        current = self._event
        outer = self._stage is not None and event.stage != self._stage
        outer = outer and current.total is not None and current.done < current.total
        if outer:
            self._outer.append(current.stage)
        self._end(outer=outer)
        if event.stage in self._outer:  # taken up again: the stages nested in it have ended
            del self._outer[self._outer.index(event.stage) :]
        self._begin(event)

    def _begin(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        run = self._runs.get(event.stage)
        if run is None or event.done < run.event.done or event.stage == self._event.stage:
            run = _Run(now, event.done, event, line_time=now)  # a new run (its count went back)
        self._runs[event.stage] = run
        self._stage = event.stage
        if self._terminal:
            self._bar = _terminal_bar(event, self._stream)

    def close(self) -> None:
        """End the current stage and the outer stages it is nested in: clear their bars, or
        write the lines they are due (a stopped analysis's log ends with its ``analyze``)."""
        self.closed = True
        self._end()
        while self._outer:
            self._stage = self._outer.pop()
            self._end()

    def _end(self, *, outer: bool = False) -> None:
        """End the current stage: clear its bar, or write its line if it is worth one (not if
        it is an ``outer`` stage replaced, see the class docstring)."""
        if self._stage is None:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self._terminal and not outer and self._worth_a_line(self._runs[self._stage]):
            self._write_line(self._stage)
        self._stage = None
        _flush(self._stream)

    def _worth_a_line(self, run: _Run) -> bool:
        """Whether an ended stage writes its line: it moved since its last, and it is nested in
        no open stage or ran :data:`LOG_INTERVAL` seconds."""
        slow = time.monotonic() - run.start >= LOG_INTERVAL
        return run.event.done > run.written and (slow or not self._outer)

    def _write_line(self, stage: str) -> None:
        from tqdm import tqdm

        run, now = self._runs[stage], time.monotonic()
        event = run.event
        line = tqdm.format_meter(event.done, event.total, now - run.start, prefix=event.stage,
                                 unit=event.unit, initial=run.first,
                                 postfix=_metrics_text(event.metrics) or None)  # fmt: skip
        self._stream.write(line + "\n")
        _flush(self._stream)
        run.written, run.line_time = event.done, now

    def __del__(self) -> None:  # a call that ended without finishing its stage (total unknown)
        with contextlib.suppress(Exception):  # at interpreter exit the stream may be gone
            self.close()


#: The bars a loop :func:`track` drew for ``progress=True`` while its body runs, which
#: ``progress=True`` inside it reports to (nested: a time series' planes around each one's
#: ``label``, ``relabel``, ``grow``: a log gets one line, not three per plane).
_LOOP_BARS: contextvars.ContextVar[_Bars | None] = contextvars.ContextVar("bars", default=None)
#: Every live :class:`_Bars`, for :func:`close_bars`.
_OPEN: weakref.WeakSet[_Bars] = weakref.WeakSet()


def close_bars() -> None:
    """End every open bar: a call that raised leaves its bar drawn, and a message printed next
    would start at the bar's end (the command line calls this before it prints an error).

    Examples
    --------
    >>> report = as_progress(True)  # bars on stderr
    >>> report(ProgressEvent("segment", 3, 10))  # ... and the call raises here
    >>> close_bars()  # the bar is cleared (in a log: its last line is written)
    """
    for bars in list(_OPEN):
        bars.close()


def _metrics_text(metrics: Mapping[str, float] | None) -> str:
    """``"loss=0.123, val_loss=0.145"``: a stage's metrics as a bar shows them."""
    return ", ".join(f"{name}={value:.4g}" for name, value in (metrics or {}).items())


def _terminal_bar(event: ProgressEvent, stream: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=event.total, initial=event.done, desc=event.stage, unit=event.unit,
                leave=False, delay=BAR_DELAY, file=stream)  # fmt: skip


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _in_notebook(stream: Any) -> bool:
    """Whether ``stream`` is a Jupyter kernel's, where tqdm.auto draws widgets (kept as bars)."""
    return type(stream).__module__.split(".")[0] == "ipykernel"


def _flush(stream: Any) -> None:
    """Flush ``stream``: tqdm's last carriage return after a cleared bar is not flushed, and the
    next line on stdout would start where the bar ended."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        stream.flush()


def as_progress(progress: Progress) -> ProgressCallback:
    """The callback for a ``progress`` argument (``None``/``False`` silent, ``True`` tqdm bars)."""
    if progress is None or progress is False:
        return _silent
    if progress is True:  # inside a loop tracked with bars: its bars, so stages nest
        loop = _LOOP_BARS.get()
        return loop if loop is not None and not loop.closed else _Bars()
    if callable(progress):
        return progress
    raise TypeError(f"progress must be a bool, None or a callable; got {type(progress).__name__}")


def track(
    items: Iterable[T],
    progress: Progress,
    stage: str,
    *,
    total: int | None = None,
    unit: str = "tile",
) -> Iterator[T]:
    """Yield ``items`` while reporting them to ``progress`` (which may cancel between items).

    Bars made here (``progress=True``) end with the loop, also when it is left early; a
    ``progress=True`` call in the loop's body reports to them (its stages nest in this one).
    """
    report = as_progress(progress)
    owned = isinstance(report, _Bars) and report is not progress and report is not _LOOP_BARS.get()
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    try:
        report(ProgressEvent(stage, 0, total, unit))
        for done, item in enumerate(items, 1):
            token = _LOOP_BARS.set(report) if owned else None  # the loop body's bars: these
            try:
                yield item
            finally:
                if token is not None:
                    with contextlib.suppress(ValueError):  # closed from another context
                        _LOOP_BARS.reset(token)
            report(ProgressEvent(stage, done, total, unit))
    finally:
        if owned:
            report.close()
