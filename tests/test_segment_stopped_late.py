"""A ``segment`` stopped after the model's tiles (nu3 findings 1, 4, 7): a stop during the
instances or the table says, as a stop during the tiles does, what is written and that
``--resume`` finishes it without running the model again; a plain re-run says the store is
unfinished and points to ``--resume``; the final line names the scale; messages shown on the
command line name the flag first."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import scopeml as sm
import scopeml.segment_steps
from scopeml.cli import main
from scopeml.errors import (
    Cancelled,
    ImageNotFoundError,
    IncompleteOutputError,
    InvalidRequestError,
)
from scopeml.progress import ProgressEvent

RUN = {"outputs": ("labels", "instances"), "tile_size": 128, "workers": 1}
CLI = ["-m", "nuclei", "--outputs", "labels,instances", "--tile-size", "128", "--workers", "1"]


@pytest.fixture(scope="module")
def image(crowded_nuclei: Path) -> Path:
    """Crowded nuclei over four 128-px tiles (``tests/conftest.py``)."""
    return crowded_nuclei


def _cancel_at(stage: str):
    def report(event: ProgressEvent) -> None:
        if event.stage == stage:
            raise Cancelled(f"stopped at {stage}")

    return report


def _stop_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped;")]


def test_a_cancel_in_the_instances_says_what_is_done_and_how_to_finish(image, tmp_path, caplog):
    out, table = tmp_path / "o.ome.zarr", tmp_path / "t.csv"
    with caplog.at_level(logging.WARNING), pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, measure=table, progress=_cancel_at("grow"), **RUN)
    (line,) = _stop_lines(caplog)
    assert f"tiles are all written to {out}.partial" in line
    assert "the instances and table are missing" in line
    assert "run again with --resume (resume=True) to finish without running the model" in line
    assert not out.exists()  # published only whole: it was, without its instances
    with pytest.raises(IncompleteOutputError) as err:  # a plain re-run: not only --overwrite
        sm.segment(image, "nuclei", out, measure=table, **RUN)
    assert "an interrupted run left this partial output; pass --resume" in str(err.value)
    events: list[ProgressEvent] = []
    seg = sm.segment(image, "nuclei", out, measure=table, resume=True, progress=events.append,
                     **RUN)  # fmt: skip
    assert not [e for e in events if e.stage == "segment" and e.total]  # no tile ran again
    assert seg.outputs == ("labels", "instances") and seg.instances.read().max() > 10
    assert table.exists()


def test_a_cancel_in_the_table_names_only_the_table(image, tmp_path, caplog):
    out, table = tmp_path / "o.ome.zarr", tmp_path / "t.csv"
    with caplog.at_level(logging.WARNING), pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, measure=table, progress=_cancel_at("measure"), **RUN)
    (line,) = _stop_lines(caplog)
    assert "but the table is missing" in line and "instances" not in line
    with pytest.raises(InvalidRequestError, match=r"unfinished \(the table is missing\)"):
        sm.segment(image, "nuclei", out, measure=table, **RUN)
    with pytest.raises(InvalidRequestError, match=r"output exists; pass --overwrite \(overwrite"):
        sm.segment(image, "nuclei", out, **RUN)  # without the table asked for: nothing left


def test_a_cancel_in_the_instances_without_a_table_says_they_are_missing(image, tmp_path, caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(Cancelled):
        sm.segment(image, "nuclei", tmp_path / "o.ome.zarr", progress=_cancel_at("grow"), **RUN)
    (line,) = _stop_lines(caplog)
    assert "but the instances are missing: run again" in line


def test_ctrl_c_in_the_instances_on_the_command_line(image, tmp_path, caplog, capsys,
                                                     monkeypatch):  # fmt: skip
    out = tmp_path / "o.ome.zarr"
    args = ["segment", str(image), *CLI, "-o", str(out), "--measure", str(tmp_path / "t.csv")]
    real = scopeml.segment_steps.write_instances

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(scopeml.segment_steps, "write_instances", interrupted)
    with caplog.at_level(logging.WARNING):
        assert main([*args, "-q"]) == 130
    (line,) = _stop_lines(caplog)
    assert "--resume (resume=True)" in line and "the instances and table are missing" in line
    assert "Task was destroyed" not in capsys.readouterr().err
    monkeypatch.setattr(scopeml.segment_steps, "write_instances", real)
    assert not out.exists()
    capsys.readouterr()
    assert main(["info", str(out)]) == 0  # the partial store: what is left to do
    assert "tiles done (instances not made yet)" in capsys.readouterr().out
    assert main([*args, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}.partial: an interrupted run left"), err
    assert "pass --resume (resume=True) to continue it" in err and err.count("\n") == 1
    assert main([*args, "-q", "--resume"]) == 0
    assert "instances (" in capsys.readouterr().out
    assert main([*args, "-q", "--resume"]) == 0  # complete now: nothing to do
    assert capsys.readouterr().out.startswith("already complete; nothing to do: ")


def test_measuring_a_store_stopped_before_its_instances_says_so(image, tmp_path, capsys):
    """It said "these are class labels, not objects … segment with outputs=('labels',
    'instances')", which the run had been asked for; the store is not published without its
    instances now, and measuring it says where the stopped run is and how to finish it."""
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, progress=_cancel_at("grow"), **RUN)
    with pytest.raises(ImageNotFoundError, match=r"not there yet: a stopped run left "
                       r"o\.ome\.zarr\.partial; run it again with --resume"):  # fmt: skip
        sm.measure_objects(out)
    assert main(["objects", "measure", str(out), "-o", str(tmp_path / "t.csv")]) == 2
    assert "--resume" in capsys.readouterr().err and not (tmp_path / "t.csv").exists()


def test_the_final_line_names_the_scale(image, tmp_path, capsys):
    out = tmp_path / "o.ome.zarr"
    assert main(["segment", str(image), *CLI, "-o", str(out), "--scale", "0.5", "-q"]) == 0
    line = capsys.readouterr().out.strip()
    assert f"→ {out} at scale 0.5;" in line, line
    seg = sm.Segmentation(out)
    assert seg.labels.shape[-2:] == (200, 180)  # on the image's grid
    again = tmp_path / "p.ome.zarr"
    assert main(["segment", str(image), *CLI, "-o", str(again), "--scale", "1", "-q"]) == 0
    assert "scale" not in capsys.readouterr().out  # (nuclei's default, auto, would say it)
    assert not np.array_equal(seg.instances.read(), sm.Segmentation(again).instances.read())
