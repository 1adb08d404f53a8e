"""A run's warnings are said with its result; a warning raised meanwhile elsewhere (napari's
own, on the GUI thread) is not said as the run's."""

from __future__ import annotations

import threading
import warnings


def test_only_the_runs_own_warnings_are_said_as_its_own(display, qtbot, capsys):
    from scopeml.napari._qt import run_in_thread
    from scopeml.threads import map_ordered

    said, done, errors = [], [], []
    started, go_on = threading.Event(), threading.Event()

    def tile(index: int) -> int:  # the run's tiles run on threads of their own
        warnings.warn(f"tile {index}'s", UserWarning, stacklevel=1)
        return index

    def work() -> int:
        started.set()
        go_on.wait(30)
        warnings.warn("the run's own", UserWarning, stacklevel=1)
        return sum(map_ordered(tile, range(2), workers=2))

    run_in_thread(work, on_done=done.append, on_error=errors.append, on_warning=said.append)
    assert started.wait(30)
    warnings.warn("napari's theme", UserWarning, stacklevel=1)  # the GUI thread, meanwhile
    go_on.set()
    qtbot.waitUntil(lambda: bool(done or errors), timeout=30_000)
    qtbot.wait(50)  # the worker's queued signals
    assert (done, errors) == ([1], [])
    assert sorted(said) == ["the run's own", "tile 0's", "tile 1's"]
    assert "napari's theme" in capsys.readouterr().err  # printed, as Python prints it
