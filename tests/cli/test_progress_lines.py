"""Progress bars leave no stale "0%" line: not in a log, not on a terminal, not when replaced.

What a terminal shows is reconstructed from the bytes written (carriage return, line feed);
what a log shows is every frame between them.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from scopeml import progress as progress_module
from scopeml.cli import main
from scopeml.progress import ProgressEvent, as_progress, track

ZERO = re.compile(r"(?<![\d.])0%")  # "label:   0%|…", never "100%" or "50%"


def frames(text: str) -> list[str]:
    """Every frame written: what a log viewer shows as lines."""
    return [frame.strip() for frame in re.split(r"[\r\n]", text) if frame.strip()]


def screen(text: str) -> list[str]:
    """The lines a terminal is left showing after ``text`` (carriage returns overwrite)."""
    lines, row, col = [""], 0, 0
    for char in text:
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + char + line[col + 1 :]
            col += 1
    return [line.rstrip() for line in lines if line.strip()]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def mask_file(tmp_path):
    mask = np.zeros((100, 100), np.uint8)
    mask[10:30, 10:30] = mask[50:90, 40:45] = mask[60:70, 70:95] = 1
    return tifffile.imwrite(tmp_path / "mask.tif", mask) or tmp_path / "mask.tif"


def test_a_captured_run_writes_one_line_per_stage_and_no_zero_line(tmp_path, capsys):
    labels = ["objects", "label", str(mask_file(tmp_path)), "-o", str(tmp_path / "o.ome.zarr")]
    assert main([*labels, "--tile-size", "20"]) == 0
    out, err = capsys.readouterr()
    assert out == f"3 objects (2-D) → {tmp_path / 'o.ome.zarr'}\n"
    assert [f for f in frames(err) if ZERO.search(f)] == []
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["label", "relabel"]
    assert all("100%" in line and "| 25/25 [" in line for line in lines)

    measure = ["objects", "measure", str(tmp_path / "o.ome.zarr"), "-o", str(tmp_path / "t.csv")]
    assert main([*measure, "--tile-size", "20"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("3 objects measured (2-D; shapes only, no --image) → ")
    assert [line.split(":")[0] for line in err.splitlines()] == ["find objects", "measure"]
    assert not [f for f in frames(err) if ZERO.search(f)]


def test_a_time_series_logs_one_line_per_stage_not_one_per_time_point(tmp_path, capsys):
    frames_ = np.zeros((12, 100, 100), np.uint8)
    frames_[:, 10:30, 10:30] = frames_[::2, 50:90, 40:45] = 1
    tifffile.imwrite(tmp_path / "movie.tif", frames_)
    out = tmp_path / "o.ome.zarr"
    args = ["objects", "label", str(tmp_path / "movie.tif"), "--axes", "TYX", "-o", str(out)]
    assert main([*args, "--tile-size", "20"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["objects (planes)"]  # not 24 lines
    assert "| 12/12 [" in lines[0]
    measure = ["objects", "measure", str(out), "-o", str(tmp_path / "t.csv")]
    assert main([*measure, "--tile-size", "20"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().err.splitlines()] == [
        "measure (planes)"
    ]


@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
def test_on_a_terminal_quick_stages_draw_nothing_and_leave_a_clean_screen(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    mask = mask_file(tmp_path)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    command = [sys.executable, "-m", "scopeml", "objects", "label", str(mask),
               "-o", str(tmp_path / "o.ome.zarr"), "--tile-size", "20"]  # fmt: skip
    env = {**os.environ, "TERM": "xterm"}
    env.pop("COLUMNS", None)
    run = subprocess.Popen(command, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    written = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        written += chunk
    os.close(leader)
    assert run.wait(timeout=120) == 0
    text = written.decode()
    assert screen(text) == [f"3 objects (2-D) → {tmp_path / 'o.ome.zarr'}"], text
    assert not [f for f in frames(text) if ZERO.search(f)], text


def test_a_slow_stage_is_drawn_from_its_first_units_and_cleared(monkeypatch):
    monkeypatch.setattr(progress_module, "BAR_DELAY", 0.05, raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    for _ in track(range(4), True, "label"):
        time.sleep(0.15)
    text = terminal.getvalue()
    drawn = frames(text)
    assert any("label:" in f and "/4 [" in f for f in drawn), text  # a bar was drawn
    assert not [f for f in drawn if ZERO.search(f)], text
    assert screen(text) == []  # and cleared


def test_a_stage_taken_up_again_shows_its_count_not_zero(monkeypatch):
    """As the analysis runner does: one callback, its "analyze" stage replaced by each image's
    stages and taken up again after each image."""
    monkeypatch.setattr(progress_module, "BAR_DELAY", 0.05, raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    report = as_progress(True)
    for image in range(3):
        report(ProgressEvent("analyze", image, 3, "image"))
        time.sleep(0.15)  # the analyze bar is due to be drawn at its next update
        for _ in track(range(2), report, "classes", unit="class"):
            time.sleep(0.15)
    report(ProgressEvent("analyze", 3, 3, "image"))
    text = terminal.getvalue()
    assert not [f for f in frames(text) if ZERO.search(f)], text
    assert screen(text) == []


def test_a_log_gets_the_outer_stage_not_each_quick_nested_stage(monkeypatch):
    """Each image's quick stages, nested in ``analyze``, wrote a line each and ``analyze`` one
    at each image (7 lines an image in a real analysis); now one line for the batch."""
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 1e9, raising=False)  # none is slow
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    report = as_progress(True)
    for image in range(2):
        report(ProgressEvent("analyze", image, 2, "image"))
        for _ in track(range(3), report, "classes", unit="class"):
            pass
    report(ProgressEvent("analyze", 2, 2, "image"))
    lines = log.getvalue().splitlines()
    counts = [re.search(r"(\w+):.*\| (\d/\d) \[", line).groups() for line in lines]
    assert counts == [("analyze", "2/2")]


def test_a_bar_cut_short_by_an_error_is_cleared_before_the_message(tmp_path, monkeypatch):
    """The engine's bar is still open when the error reaches the command line (its callback
    lives in a frame of the traceback); it used to stay drawn, the message glued to its end."""
    from scopeml.io.omezarr import create_ome_zarr
    from tests.tiling.engine_doubles import write_model_file

    model = write_model_file(tmp_path / "m.czann")
    source = tmp_path / "img.ome.zarr"
    array = create_ome_zarr(source, shape=(64, 64), dtype="uint16", axes="YX", chunks=(16, 16))
    array[:] = 5
    (source / "0" / "c" / "2" / "2").write_bytes(b"not a zstd frame")  # one bad chunk
    monkeypatch.setattr(progress_module, "BAR_DELAY", 0, raising=False)  # drawn at once
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    args = ["segment", str(source), "-m", str(model), "-o", str(tmp_path / "o.ome.zarr")]
    assert main([*args, "--tile-size", "32"]) == 2
    shown = screen(terminal.getvalue())
    assert len(shown) == 1 and shown[0].startswith(f"error: {source}: "), terminal.getvalue()


def test_a_long_stage_in_a_log_writes_a_line_now_and_then_never_at_zero(monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0, raising=False)  # every event due
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    for _ in track(range(3), True, "segment"):
        pass
    lines = log.getvalue().splitlines()
    assert [re.search(r"\| (\d/\d) \[", line).group(1) for line in lines] == ["1/3", "2/3", "3/3"]
