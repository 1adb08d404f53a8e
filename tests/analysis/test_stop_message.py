"""A stopped analysis says what it kept and how to go on, in its own words: not the message of
the segmentation it runs inside, which named a scratch ``.partial`` store that the stop removes
(new-user trial on BBBC007: Ctrl-C after 3 images)."""

from __future__ import annotations

import logging

import pytest

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


def stop_in_second_image(error: BaseException):
    seen = {"analyze": 0}

    def progress(event):
        if event.stage == "analyze":
            seen["analyze"] = event.done
        elif event.stage == "segment" and seen["analyze"] >= 1:
            raise error

    return progress


@pytest.mark.parametrize("error", [KeyboardInterrupt(), Cancelled("stopped by the user")])
def test_a_stop_says_the_images_kept_and_the_resume_not_a_partial_store(tmp_path, caplog, error):
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    images = nuclei_tiffs(tmp_path, seeds=(5, 6, 7))
    out = tmp_path / "res"
    with caplog.at_level(logging.WARNING), pytest.raises(type(error)) as stopped:
        run_analysis(settings, images, out, progress=stop_in_second_image(error))
    note = f"analysis stopped: 1 of 3 images finished, in {out / 'images'}; run again with "
    assert stopped.value.__notes__ == [f"{note}--resume (resume=True) to analyse the other 2"]
    assert not any(".partial" in r.getMessage() for r in caplog.records)
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
