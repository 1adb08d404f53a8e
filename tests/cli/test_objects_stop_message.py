"""Ctrl-C during ``scopeml objects label`` / ``objects measure`` says in one line what it left,
as ``segment`` and ``analyze`` do, and leaves nothing half-written: no output, no scratch
beside it, or the output there before as it was (user test: exit 130 and no word at all)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

TIMEOUT = 120.0


def interrupted(command: list[str], cwd: Path, bar: bytes) -> tuple[int, str]:
    """Run ``scopeml COMMAND``, send SIGINT (Ctrl-C) once its ``bar`` is drawn (the tiles are
    being worked on), and return its exit code and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "scopeml", *command],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    said, deadline = b"", time.monotonic() + TIMEOUT
    while bar not in said and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 1.0)
        chunk = os.read(process.stderr.fileno(), 4096) if ready else b""
        if ready and not chunk:
            break  # it ended before its bar showed
        said += chunk
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=TIMEOUT)[1]
    return process.returncode, (said + rest).decode(errors="replace")


def stop_lines(stderr: str) -> list[str]:
    """The lines saying what a stop left (after the bars, which end with a carriage return)."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if "stopped" in line]


def test_a_stopped_label_says_nothing_was_written(tmp_path):
    mask = np.random.default_rng(0).random((3072, 3072)) > 0.5
    tifffile.imwrite(tmp_path / "mask.tif", mask.astype(np.uint8))
    command = ["objects", "label", "mask.tif", "-o", "objects.ome.zarr", "--tile-size", "256"]
    code, stderr = interrupted(command, tmp_path, b"label:")
    assert code == 130
    assert stop_lines(stderr) == ["stopped; nothing was written to objects.ome.zarr"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif"]  # no scratch either


def test_a_stopped_measure_says_nothing_was_written_or_the_old_table_is_kept(tmp_path):
    y, x = np.mgrid[:2048, :2048]
    tifffile.imwrite(tmp_path / "objects.tif", ((y // 8) * 256 + x // 8 + 1).astype(np.uint32))
    command = ["objects", "measure", "objects.tif", "-o", "t.csv", "--tile-size", "256"]
    code, stderr = interrupted(command, tmp_path, b"objects:")
    assert code == 130
    assert stop_lines(stderr) == ["stopped; nothing was written to t.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects.tif"]

    (tmp_path / "t.csv").write_text("label\n1\n")  # an earlier table, replaced only when done
    code, stderr = interrupted([*command, "--overwrite"], tmp_path, b"objects:")
    assert code == 130
    assert stop_lines(stderr) == ["stopped; t.csv is as it was"]
    assert (tmp_path / "t.csv").read_text() == "label\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects.tif", "t.csv"]
