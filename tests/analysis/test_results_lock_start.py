"""The results lock tells a reused process id without psutil (stop 19 task L item 3: psutil is
no dependency of scopeml, only of dask, and without it a live id was taken at its word): on
Linux the lock records its process's start time (``/proc/<pid>/stat``) and boot."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from scopeml.analysis import results_lock as lock_module
from scopeml.analysis.results_lock import LOCK, results_lock
from scopeml.errors import InvalidRequestError

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists() or not lock_module._BOOT_ID.exists(),
    reason="process start times are read from Linux's /proc",
)


@pytest.fixture(autouse=True)
def no_psutil(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError


def my_start() -> int:
    """This process's start (field 22 of /proc/self/stat; python's name holds no space)."""
    return int(Path(f"/proc/{os.getpid()}/stat").read_text().split()[21])


def write_lock(folder: Path, **holder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": "then"}
    (folder / LOCK).write_text(json.dumps({**mine, "started_s": time.time(), **holder}))


def take(folder: Path) -> None:
    with results_lock(folder):
        pass


def boot() -> str:
    return lock_module._BOOT_ID.read_text().strip()


def test_the_lock_records_its_process_start_and_a_second_taker_is_refused(tmp_path):
    with results_lock(tmp_path / "out") as path:
        holder = json.loads(path.read_text())
        assert holder["proc_start"] == my_start() and holder["boot_id"] == boot()
        with pytest.raises(InvalidRequestError, match="another analysis is writing"):
            take(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_live_id_started_at_another_time_is_taken_over(tmp_path):
    out = tmp_path / "out"
    write_lock(out, proc_start=my_start() + 1, boot_id=boot())  # the id, another process
    with pytest.warns(UserWarning, match="gone .*taking it over"), results_lock(out) as path:
        assert json.loads(path.read_text())["proc_start"] == my_start()
    write_lock(out, proc_start=my_start(), boot_id=boot())  # the same process: alive
    with pytest.raises(InvalidRequestError, match=f"process {os.getpid()}"):
        take(out)


def test_a_lock_from_an_earlier_boot_is_taken_over(tmp_path):
    write_lock(tmp_path / "out", proc_start=my_start(), boot_id="an-earlier-boot")
    with pytest.warns(UserWarning, match="taking it over"), results_lock(tmp_path / "out"):
        pass


def test_without_proc_a_live_id_is_taken_at_its_word(tmp_path, monkeypatch):
    # elsewhere (no /proc, no psutil) as before: the id's process may be the lock's
    write_lock(tmp_path / "out", proc_start=my_start() + 1, boot_id=boot())
    monkeypatch.setattr(lock_module, "_BOOT_ID", tmp_path / "no-proc" / "boot_id")
    with pytest.raises(InvalidRequestError, match="another analysis is writing"):
        take(tmp_path / "out")
