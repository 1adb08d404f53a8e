"""A ``segment`` stopped by its progress callback says, in the ``Cancelled`` the caller gets
(not only in the log), what it kept and how to finish: the callback's reason first, then the
tiles written and ``resume=True``; ``.path`` is the partial store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import scopeml as sm
from scopeml.errors import Cancelled
from scopeml.progress import ProgressEvent

RUN = {"outputs": ("labels", "instances"), "tile_size": 128, "workers": 1, "batch_size": 1}


def _stop(stage: str, after: int = 0):
    def report(event: ProgressEvent) -> None:
        if event.stage == stage and event.done >= after:
            raise Cancelled("stopped by the user")

    return report


def test_a_stop_among_the_tiles_says_how_many_are_kept(crowded_nuclei: Path, tmp_path):
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled) as stopped:
        sm.segment(crowded_nuclei, "nuclei", out, progress=_stop("segment", 2), **RUN)
    partial = f"{out}.partial"
    said = re.fullmatch(
        rf"stopped by the user; ([23]) of 4 tiles are written to {re.escape(partial)}: run "
        r"again with --resume \(resume=True\) to finish",
        str(stopped.value),
    )  # the tile in flight when it stopped is written too
    assert said, str(stopped.value)
    assert stopped.value.reason == "stopped by the user" and stopped.value.path == partial
    assert Path(partial).is_dir()
    assert sm.segment(crowded_nuclei, "nuclei", out, resume=True, **RUN).labels.read().any()


def test_a_stop_after_the_tiles_and_a_quiet_stop(crowded_nuclei: Path, tmp_path):
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled) as stopped:
        sm.segment(crowded_nuclei, "nuclei", out, progress=_stop("grow"), **RUN)
    assert str(stopped.value).startswith(
        f"stopped by the user; the model's tiles are all written to {out}.partial, but "
    )
    assert "run again with --resume (resume=True) to finish without running" in str(stopped.value)
    assert stopped.value.path == f"{out}.partial"
    with pytest.raises(Cancelled) as quiet:  # a caller that removes the store says nothing
        sm.segment(crowded_nuclei, "nuclei", tmp_path / "q.ome.zarr", log_stop=False,
                   progress=_stop("segment", 1), **RUN)  # fmt: skip
    assert str(quiet.value) == "stopped by the user" and quiet.value.path is None
