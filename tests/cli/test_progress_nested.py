"""Progress lines in a log for stages nested in an unfinished stage (an analysis's per-image
stages inside ``analyze``): a line only for a slow one; the outer stage every
``LOG_INTERVAL`` seconds and at its end. Time is a fake clock, so no test waits; stderr is
captured, so not a terminal."""

from __future__ import annotations

import re

import pytest

from scopeml import progress as progress_module
from scopeml.analysis import save_settings
from scopeml.cli import main
from scopeml.progress import LOG_INTERVAL, ProgressEvent, as_progress, close_bars, track
from tests.analysis.conftest import cell_image, three_level_settings, write_image


class Clock:
    """``time`` as the progress module reads it, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(progress_module, "time", clock)
    return clock


def counts(text: str) -> list[tuple[str, str]]:
    """(stage, "done/total", or "done" where the total is unknown) of each line."""
    line_count = re.compile(r"^(.+?): .*?(\d+(?:/\d+)?)[a-z]* \[")
    return [line_count.search(line).groups() for line in text.splitlines()]


def image(report, clock: Clock, seconds: dict[str, float]) -> None:
    """One image's stages, one after another, each taking ``seconds`` (1 s unless named)."""
    for stage in ("statistics", "segment", "label"):
        for _ in track(range(2), report, stage):
            clock.now += seconds.get(stage, 1.0) / 2


def test_only_a_slow_nested_stage_and_the_outer_stage_now_and_then_write(clock, capsys):
    report = as_progress(True)
    slow = {"segment": LOG_INTERVAL + 10}
    for done, seconds in enumerate([slow, {}, {}, {}]):
        report(ProgressEvent("analyze", done, 4, "image"))
        image(report, clock, seconds)
    report(ProgressEvent("analyze", 4, 4, "image"))
    # segment of image 0 ran 40 s; analyze was due at image 1 (42 s), not again till its end
    assert counts(capsys.readouterr().err) == [
        ("segment", "2/2"),
        ("analyze", "1/4"),
        ("analyze", "4/4"),
    ]


def test_stages_one_after_another_each_write_their_line(clock, capsys):
    """As a ``segment`` run: nothing is nested, however quick (a count of unknown total, ended
    by the next stage, is not an outer stage either)."""
    report = as_progress(True)
    image(report, clock, {})
    report(ProgressEvent("classify", 3, None, "plane"))
    for _ in track(range(2), report, "measure"):
        pass
    assert counts(capsys.readouterr().err) == [
        ("statistics", "2/2"), ("segment", "2/2"), ("label", "2/2"), ("classify", "3"),
        ("measure", "2/2")]  # fmt: skip


def test_a_stopped_batch_ends_its_log_with_the_outer_stage(clock, capsys):
    """Ended by an error (the command line closes the bars before its message), the quick
    nested stages (``segment`` in ``plane`` in ``analyze``) write nothing and the outermost
    writes where it was."""
    report = as_progress(True)
    report(ProgressEvent("analyze", 0, 3, "image"))
    image(report, clock, {})
    report(ProgressEvent("analyze", 1, 3, "image"))
    report(ProgressEvent("plane", 1, 2, "plane"))
    report(ProgressEvent("segment", 0, 4, "tile"))
    report(ProgressEvent("segment", 1, 4, "tile"))
    close_bars()
    assert counts(capsys.readouterr().err) == [("analyze", "1/3")]


def test_an_analysis_in_a_log_writes_one_line(tmp_path, capsys, monkeypatch):
    """The command line on two images: 4 lines before (each image's ``classes`` and ``analyze``)."""
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 1e9, raising=False)  # none is slow
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        write_image(folder / f"img{i}.ome.tif", cell_image(seed=i))
    settings = save_settings(three_level_settings(), tmp_path / "s.yaml")
    assert main(["analyze", str(settings), str(folder), "-o", str(tmp_path / "out")]) == 0
    assert counts(capsys.readouterr().err) == [("analyze", "2/2")]


def test_stages_run_in_a_tracked_loop_with_bars_nest_in_it_and_no_further(clock, capsys):
    for _ in track(range(3), True, "planes", unit="plane"):
        for _ in track(range(2), True, "label"):  # progress=True inside: the loop's bars
            clock.now += 1
    assert counts(capsys.readouterr().err) == [("planes", "3/3")]  # not three label lines
    assert progress_module._LOOP_BARS.get() is None
    with pytest.raises(KeyError):
        for _ in track(range(3), True, "planes", unit="plane"):
            raise KeyError("stopped in the loop body")
    assert progress_module._LOOP_BARS.get() is None  # left by an error: nothing inherits it
    for _ in track(range(2), True, "label"):  # a loop after them writes its own line
        pass
    assert [stage for stage, _ in counts(capsys.readouterr().err)][-1] == "label"
