"""One analysis at a time in a results folder (stop 18 item 3): a second run into the folder
while one runs removed the first one's unfinished image folders. A run holds
``RESULTS/.scopeml-lock`` (pid, host, start time) while it runs; a second refuses naming the
holder; a lock whose process is gone is taken over with a warning."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scopeml.analysis import run_analysis
from scopeml.analysis.results_lock import LOCK
from scopeml.cli import main
from scopeml.errors import Cancelled, InvalidRequestError
from tests.analysis.conftest import nuclei_tiffs
from tests.analysis.test_worker_models import SETTINGS
from tests.tiling.engine_doubles import write_model_file


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Settings running the model ``m.czann`` (so the engine reports tiles mid-image) and two
    images."""
    write_model_file(tmp_path / "m.czann", n_classes=3, seed=0)
    images = nuclei_tiffs(tmp_path)
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    return settings, images


def write_lock(folder: Path, **holder) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    lock.write_text(json.dumps({"host": socket.gethostname(), "started": "then", **holder}))
    return lock


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_run_while_one_runs_is_refused_and_leaves_its_images_alone(batch, tmp_path):
    settings, images = batch
    out = tmp_path / "out"
    seen: dict[str, object] = {}

    def second_run_mid_image(event):
        partials = list(out.glob("images/.*.partial"))
        if event.stage != "analyze" and partials and "second" not in seen:
            seen["partials"] = partials
            try:
                seen["second"] = run_analysis(settings, images[1:], out)
            except InvalidRequestError as err:
                seen["second"] = err

    first = run_analysis(settings, images[:1], out, progress=second_run_mid_image)
    refused = seen["second"]
    assert isinstance(refused, InvalidRequestError), refused
    assert "another analysis is writing this results folder now" in str(refused)
    assert f"process {os.getpid()} on {socket.gethostname()}" in str(refused)
    assert [r["status"] for r in first.records] == ["done"], first.records
    assert not (out / "images" / "cells6").exists()
    assert not (out / LOCK).exists()


def test_a_lock_of_a_live_process_is_refused_in_one_line(batch, tmp_path, capsys):
    settings, images = batch
    lock = write_lock(tmp_path / "out", pid=os.getpid(), started_s=time.time())
    before = lock.read_text()
    args = ["analyze", str(settings), str(images[0]), "-o", str(tmp_path / "out"), "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(tmp_path / "out") in err and f"process {os.getpid()}" in err
    assert lock.read_text() == before  # not ours to remove
    assert not (tmp_path / "out" / "images").exists()


def test_a_lock_from_another_host_is_refused(batch, tmp_path):
    settings, images = batch
    write_lock(tmp_path / "out", pid=dead_pid(), host="elsewhere.example")
    with pytest.raises(InvalidRequestError, match=r"on elsewhere\.example"):
        run_analysis(settings, images[:1], tmp_path / "out")


def test_a_lock_of_a_dead_process_is_taken_over_with_a_warning(batch, tmp_path):
    settings, images = batch
    out = tmp_path / "out"
    pid = dead_pid()
    write_lock(out, pid=pid)
    with pytest.warns(UserWarning, match=f"gone \\(process {pid} on .*taking it over"):
        result = run_analysis(settings, images[:1], out)
    assert [r["status"] for r in result.records] == ["done"]
    assert not (out / LOCK).exists() and not list(out.glob(f"{LOCK}*"))


def test_a_lock_whose_process_id_was_reused_since_is_taken_over(batch, tmp_path):
    pytest.importorskip("psutil")
    settings, images = batch
    out = tmp_path / "out"
    write_lock(out, pid=os.getpid(), started_s=1.0)  # taken long before this process started
    with pytest.warns(UserWarning, match="taking it over"):
        run_analysis(settings, images[:1], out)
    assert not (out / LOCK).exists()


def test_a_half_written_lock_is_waited_for_unless_old(batch, tmp_path):
    settings, images = batch
    out = tmp_path / "out"
    (out).mkdir()
    (out / LOCK).write_bytes(b"")  # a run between creating it and writing it
    with pytest.raises(InvalidRequestError, match="being written"):
        run_analysis(settings, images[:1], out)
    os.utime(out / LOCK, (0, 0))  # left so by a run killed at that moment
    with pytest.warns(UserWarning, match="taking it over"):
        run_analysis(settings, images[:1], out)
    assert not (out / LOCK).exists()


def test_no_lock_is_left_behind_by_a_run_that_ends_finished_failed_or_interrupted(batch, tmp_path):
    settings, images = batch
    run_analysis(settings, images, tmp_path / "done")
    assert (tmp_path / "done" / "summary").is_dir() and not (tmp_path / "done" / LOCK).exists()

    def interrupt(event):
        if event.stage != "analyze":
            raise KeyboardInterrupt

    def cancel(event):
        if event.stage != "analyze":
            raise Cancelled("stopped")

    for name, stop, error in (("ctrl-c", interrupt, KeyboardInterrupt),
                              ("cancelled", cancel, Cancelled)):  # fmt: skip
        out = tmp_path / name
        with pytest.raises(error):
            run_analysis(settings, images, out, progress=stop)
        assert out.is_dir() and not (out / LOCK).exists()
        # and the folder takes a resume at once
        assert len(run_analysis(settings, images, out, resume=True).records) == 2
    with pytest.raises(InvalidRequestError):  # an error before any work: nothing left at all
        run_analysis(settings, images, tmp_path / "axes", axes="QYX")
    assert not (tmp_path / "axes").exists()
