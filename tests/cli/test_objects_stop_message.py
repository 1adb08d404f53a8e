"""Ctrl-C during ``scopeml objects label`` / ``objects measure`` says in one line what it left,
as ``segment`` and ``analyze`` do, and leaves nothing half-written: no output, no scratch
beside it, or the output there before as it was (user test: exit 130 and no word at all).

The Ctrl-C comes from the run's own progress (its third report), so it always lands while the
tiles are being worked on, however fast the machine."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml.api
from scopeml.cli import main


def interrupted_at_third_report(monkeypatch, name: str) -> None:
    """Make ``scopeml.api.NAME`` (as the command imports it) raise KeyboardInterrupt, as a
    Ctrl-C would, at its third progress report."""
    real = getattr(scopeml.api, name)

    def run(*args, **kwargs):
        reports = []

        def progress(event):
            reports.append(event)
            if len(reports) == 3:
                raise KeyboardInterrupt

        return real(*args, **{**kwargs, "progress": progress})

    monkeypatch.setattr(scopeml.api, name, run)


def stop_lines(stderr: str) -> list[str]:
    """The lines saying what a stop left."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if "stopped" in line]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_stopped_label_says_nothing_was_written(here, monkeypatch, capsys):
    mask = np.random.default_rng(0).random((512, 512)) > 0.5
    tifffile.imwrite(here / "mask.tif", mask.astype(np.uint8))
    interrupted_at_third_report(monkeypatch, "label_objects")
    code = main(["objects", "label", "mask.tif", "-o", "objects.ome.zarr", "--tile-size", "64"])
    assert code == 130
    assert stop_lines(capsys.readouterr().err) == [
        "stopped; nothing was written to objects.ome.zarr"
    ]
    assert sorted(p.name for p in here.iterdir()) == ["mask.tif"]  # no scratch either


def test_a_stopped_measure_says_nothing_was_written_or_the_old_table_is_kept(
    here, monkeypatch, capsys
):
    y, x = np.mgrid[:512, :512]
    tifffile.imwrite(here / "objects.tif", ((y // 8) * 64 + x // 8 + 1).astype(np.uint32))
    interrupted_at_third_report(monkeypatch, "measure_objects")
    command = ["objects", "measure", "objects.tif", "-o", "t.csv", "--tile-size", "64"]
    assert main(command) == 130
    assert stop_lines(capsys.readouterr().err) == ["stopped; nothing was written to t.csv"]
    assert sorted(p.name for p in here.iterdir()) == ["objects.tif"]

    (here / "t.csv").write_text("label\n1\n")  # an earlier table, replaced only when done
    assert main([*command, "--overwrite"]) == 130
    assert stop_lines(capsys.readouterr().err) == ["stopped; t.csv is as it was"]
    assert (here / "t.csv").read_text() == "label\n1\n"
    assert sorted(p.name for p in here.iterdir()) == ["objects.tif", "t.csv"]
