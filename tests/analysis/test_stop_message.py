"""A stopped analysis says what it kept and how to go on, in its own words: not the message of
the segmentation it runs inside, which named a scratch ``.partial`` store that the stop removes
(new-user trial on BBBC007: Ctrl-C after 3 images). The analysis asks ``segment`` not to say it
(``log_stop=False``); a plain ``segment`` stop still says it."""

from __future__ import annotations

import logging

import pytest

import scopeml as sm
from scopeml.analysis import run_analysis
from scopeml.cli import main
from scopeml.errors import Cancelled
from tests.analysis.conftest import nuclei_tiffs

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: nucleus
    segmenter: {kind: instances, model: nuclei, class: nucleus, channels: [C0]}
"""


def stop_in_second_image(error: BaseException, stage: str = "segment"):
    seen = {"analyze": 0}

    def progress(event):
        if event.stage == "analyze":
            seen["analyze"] = event.done
        elif event.stage == stage and seen["analyze"] >= 1:
            raise error

    return progress


def stop_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped;")]


# a stop among the model's tiles (the engine's message) and one while the instances are made
# from them (segment's own message, after the engine)
@pytest.mark.parametrize("stage", ["segment", "grow"])
@pytest.mark.parametrize("kind", [KeyboardInterrupt, Cancelled])
def test_a_stop_says_the_images_kept_and_the_resume_not_a_partial_store(
    tmp_path, caplog, kind, stage
):
    error = kind("stopped by the user")  # its own: a raised one keeps the notes added to it
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    images = nuclei_tiffs(tmp_path, seeds=(5, 6, 7))
    out = tmp_path / "res"
    with caplog.at_level(logging.WARNING), pytest.raises(type(error)) as stopped:
        run_analysis(settings, images, out, progress=stop_in_second_image(error, stage))
    note = f"analysis stopped: 1 of 3 images finished, in {out / 'images'}; run again with "
    assert stopped.value.__notes__ == [f"{note}--resume (resume=True) to analyse the other 2"]
    assert not any(".partial" in r.getMessage() for r in caplog.records)
    assert stop_lines(caplog) == []
    assert not list((out / "images").glob(".*.partial"))  # so naming one misled
    assert len(run_analysis(settings, images, out, resume=True).records) == 3


def test_the_command_line_prints_the_note_and_exits_130(tmp_path, monkeypatch, capsys):
    import scopeml.analysis

    def stopped(*args, **kwargs):
        err = KeyboardInterrupt()
        err.add_note("analysis stopped: 2 of 5 images finished")
        raise err

    monkeypatch.setattr(scopeml.analysis, "run_analysis", stopped)
    (tmp_path / "s.yaml").write_text(SETTINGS)
    assert main(["analyze", str(tmp_path / "s.yaml"), str(tmp_path), "-o", "r", "-q"]) == 130
    assert "analysis stopped: 2 of 5 images finished" in capsys.readouterr().err


def test_a_stop_while_writing_the_summary_says_so(tmp_path, monkeypatch):
    from scopeml.analysis import report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    images = nuclei_tiffs(tmp_path, seeds=(5, 6))
    with pytest.raises(KeyboardInterrupt) as stopped:
        run_analysis(settings, images, tmp_path / "res")
    assert stopped.value.__notes__ == [
        f"analysis stopped: all 2 images finished, in {tmp_path / 'res' / 'images'}, but not "
        "the summary; run again with --resume (resume=True) to write it"
    ]


def test_workers_leave_ctrl_c_to_the_parent(tmp_path):
    """A terminal's Ctrl-C reaches every process of the run; a worker interrupted while it
    read its next job left the pool's queue unreadable and the run hung (1 in 3 stops with
    --workers 2). Workers now ignore it: signalled alone, they go on."""
    import multiprocessing
    import os
    import signal

    from tests.analysis.conftest import cell_image, three_level_settings, write_image

    folder = tmp_path / "in"
    folder.mkdir()
    images = [write_image(folder / f"img{i}.ome.tif", cell_image(seed=i)) for i in range(4)]
    signalled = []

    def progress(event):
        if event.stage == "analyze" and event.done == 1 and not signalled:
            for worker in multiprocessing.active_children():
                os.kill(worker.pid, signal.SIGINT)
                signalled.append(worker.pid)

    try:
        result = run_analysis(three_level_settings(), images, tmp_path / "res", workers=2,
                              progress=progress)  # fmt: skip
    except KeyboardInterrupt:  # not raised on: pytest would take it for the user's
        pytest.fail("a worker's Ctrl-C stopped the run")
    assert len(signalled) == 2
    assert len(result.records) == 4 and not result.failures


def cancel_at(stage: str):
    def progress(event):
        if event.stage == stage:
            raise Cancelled(f"stopped at {stage}")

    return progress


@pytest.mark.parametrize(
    ("stage", "says"),
    [("segment", "0 of 1 tiles are written to {out}.partial: run again with --resume"),
     ("grow", "the model's tiles are all written to {out}.partial, but the instances")],
)  # fmt: skip
def test_a_plain_segment_stop_still_says_how_to_resume(tmp_path, caplog, stage, says):
    (image,) = nuclei_tiffs(tmp_path, seeds=(5,))
    out = tmp_path / "o.ome.zarr"
    run = {"outputs": ("labels", "instances"), "workers": 1, "progress": cancel_at(stage)}
    with caplog.at_level(logging.WARNING), pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, **run)
    (line,) = stop_lines(caplog)
    assert says.format(out=out) in line, line
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(Cancelled):  # as an analysis asks
        sm.segment(image, "nuclei", tmp_path / "quiet.ome.zarr", log_stop=False, **run)
    assert stop_lines(caplog) == []
