"""One progress-and-cancel protocol for every long call.

Every long call (``segment``, training, labelling, measuring, analyses) takes one keyword,
``progress``, and reports to it; the command line draws it with tqdm, the server records it on
the job, the napari plugin shows it. ``progress`` is one of

- ``None`` or ``False``: report nothing;
- ``True``: tqdm bars on stderr, one per stage;
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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from scopeml.errors import Cancelled

__all__ = [
    "Cancelled",
    "Progress",
    "ProgressCallback",
    "ProgressEvent",
    "as_progress",
    "track",
]

T = TypeVar("T")


@dataclass(frozen=True)
class ProgressEvent:
    """How far one stage of a long call has come.

    ``stage`` names the step (``"segment"``, ``"label"``, ``"measure"``, ``"train"`` …),
    ``done`` and ``total`` count its units (``total`` is ``None`` where unknown), ``unit``
    names them (``"tile"``, ``"step"``, ``"image"``).
    """

    stage: str
    done: int
    total: int | None = None
    unit: str = "tile"


ProgressCallback: TypeAlias = Callable[[ProgressEvent], None]
Progress: TypeAlias = ProgressCallback | bool | None


def _silent(event: ProgressEvent) -> None:
    """Report nothing."""


class _Bars:
    """tqdm bars on stderr, one per stage; a new stage closes the previous bar."""

    def __init__(self) -> None:
        self._bar = None
        self._stage: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm.auto import tqdm

        if self._bar is None or event.stage != self._stage or event.done < self._bar.n:
            if self._bar is not None:
                self._bar.close()
            self._stage = event.stage
            self._bar = tqdm(total=event.total, desc=event.stage, unit=event.unit, leave=False)
        if event.total is not None and self._bar.total != event.total:
            self._bar.total = event.total
        self._bar.update(event.done - self._bar.n)
        if event.total is not None and event.done >= event.total:
            self._bar.close()
            self._bar = None


def as_progress(progress: Progress) -> ProgressCallback:
    """The callback for a ``progress`` argument (``None``/``False`` silent, ``True`` tqdm bars)."""
    if progress is None or progress is False:
        return _silent
    if progress is True:
        return _Bars()
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
    """Yield ``items`` while reporting them to ``progress`` (which may cancel between items)."""
    report = as_progress(progress)
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    report(ProgressEvent(stage, 0, total, unit))
    for done, item in enumerate(items, 1):
        yield item
        report(ProgressEvent(stage, done, total, unit))
