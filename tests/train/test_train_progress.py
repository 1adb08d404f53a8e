"""``train_unet`` speaks the progress-and-cancel protocol of :mod:`scopeml.progress`."""

from __future__ import annotations

import io
import re
import sys
import time

import numpy as np
import pytest
import torch

from scopeml import progress as progress_module
from scopeml.cli import main
from scopeml.errors import Cancelled
from scopeml.progress import ProgressEvent, as_progress
from scopeml.train.checkpoint import load_checkpoint
from scopeml.train.loop import TrainConfig, train_unet

STEPS = 2
TINY = TrainConfig(depth=1, width=2, patch_size=16, batch_size=2, epochs=4,
                   steps_per_epoch=STEPS, lr=1e-2, val_fraction=0.25, patience=10)  # fmt: skip
SHOWN = ("loss", "val_loss", "val_mean_iou")


def pairs(nuclei_pair):
    image, labels = nuclei_pair
    return [image] * 4, [labels] * 4


def test_events_count_every_step_and_carry_each_finished_epochs_figures(nuclei_pair):
    events: list[ProgressEvent] = []
    result = train_unet(*pairs(nuclei_pair), TINY, progress=events.append)
    total = TINY.epochs * STEPS
    assert {(e.stage, e.unit, e.total) for e in events} == {("train", "step", total)}
    assert [e.done for e in events] == list(range(total + 1))
    assert events[0].metrics is None  # nothing finished yet
    for done, event in enumerate(events[1:], 1):
        finished = result.history[: done // STEPS]  # the epochs recorded when it was sent
        expected = {k: finished[-1][k] for k in SHOWN} if finished else None
        assert event.metrics == expected, done


@pytest.mark.parametrize(("cancel_at", "finished"), [(5, 2), (4, 2), (3, 1)])
def test_a_cancelled_run_keeps_its_last_epoch_and_resumes_to_the_same_end(
    nuclei_pair, tmp_path, cancel_at, finished
):
    """Cancelling mid-epoch loses that epoch only; at an epoch's last step (reported once the
    epoch is checkpointed) nothing is lost. Resuming ends as an uninterrupted run does."""
    images, labels = pairs(nuclei_pair)
    whole = train_unet(images, labels, TINY, progress=False)
    checkpoint = tmp_path / "run.ckpt"
    seen: list[int] = []

    def stop(event: ProgressEvent) -> None:
        seen.append(event.done)
        if event.done >= cancel_at:
            raise Cancelled("stopped by the test")

    with pytest.raises(Cancelled, match="stopped by the test"):
        train_unet(images, labels, TINY, checkpoint=checkpoint, progress=stop)
    assert seen[-1] == cancel_at  # no step ran after the callback cancelled
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temporary left behind
    saved = load_checkpoint(checkpoint)
    assert saved["epoch"] == finished
    assert saved["history"] == whole.history[:finished]

    events: list[ProgressEvent] = []
    resumed = train_unet(images, labels, TINY, resume=checkpoint, progress=events.append)
    assert [e.done for e in events] == list(range(finished * STEPS, TINY.epochs * STEPS + 1))
    assert events[0].metrics == {k: whole.history[finished - 1][k] for k in SHOWN}
    assert len(resumed.history) == len(whole.history) == TINY.epochs
    assert resumed.history == whole.history
    for a, b in zip(resumed.net.parameters(), whole.net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_early_stopping_ends_the_stage_at_the_steps_run(nuclei_pair, tmp_path):
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 30, "patience": 1, "lr": 1.0})
    events: list[ProgressEvent] = []
    checkpoint = tmp_path / "run.ckpt"
    result = train_unet(*pairs(nuclei_pair), config, checkpoint=checkpoint, progress=events.append)
    run = len(result.history) * STEPS
    assert run < config.epochs * STEPS  # it did stop early
    assert [e.done for e in events] == list(range(run + 1))
    assert events[-1].total == run and all(e.total == 30 * STEPS for e in events[:-1])
    events.clear()  # resuming the stopped run trains nothing and says it is done
    train_unet(*pairs(nuclei_pair), config, resume=checkpoint, progress=events.append)
    assert [(e.done, e.total) for e in events] == [(run, run)]


def test_training_is_silent_by_default_like_every_long_call(nuclei_pair, monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    result = train_unet(*pairs(nuclei_pair), TINY)
    assert len(result.history) == TINY.epochs  # it trained, and said nothing
    assert log.getvalue() == ""


def test_bars_in_a_log_write_the_train_line_with_the_last_epochs_figures(nuclei_pair, monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    result = train_unet(*pairs(nuclei_pair), TINY, progress=True)
    (line,) = log.getvalue().splitlines()
    assert re.search(rf"^train: .*\| {TINY.epochs * STEPS}/{TINY.epochs * STEPS} \[", line), line
    figures = dict(re.findall(r"(\w+)=([-\d.e+]+)", line))
    assert list(figures) == list(SHOWN)
    for name in SHOWN:
        assert float(figures[name]) == pytest.approx(result.history[-1][name], rel=1e-3)


def test_bars_on_a_terminal_show_the_figures_and_are_cleared(nuclei_pair, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(progress_module, "BAR_DELAY", 0, raising=False)  # drawn at once
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bars = as_progress(True)

    def slow_bars(event: ProgressEvent) -> None:  # tqdm redraws at most every 0.1 s
        time.sleep(0.11)
        bars(event)

    train_unet(*pairs(nuclei_pair), TINY, progress=slow_bars)
    frames = [f for f in re.split(r"[\r\n]", terminal.getvalue()) if f.strip()]
    assert any(f.startswith("train:") and "loss=" in f for f in frames), frames
    assert terminal.getvalue().endswith("\r")  # the last frame is erased (leave=False)


def test_progress_must_be_a_bool_none_or_callable(nuclei_pair):
    with pytest.raises(TypeError, match="progress must be"):
        train_unet(*pairs(nuclei_pair), TINY, progress="yes")


def test_the_command_line_draws_training_and_quiet_silences_it(nuclei_pair, tmp_path, capsys):
    image, labels = nuclei_pair
    np.save(tmp_path / "image.npy", image[0])
    np.save(tmp_path / "labels.npy", labels)
    args = ["train", "unet", str(tmp_path / "image.npy"), str(tmp_path / "labels.npy"), "-o",
            str(tmp_path / "m.czann"), "--epochs", "1", "--steps-per-epoch", "2", "--depth",
            "1", "--width", "2", "--patch-size", "16", "--batch-size", "2"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert re.search(r"^train: .*\| 2/2 \[.*loss=", err, re.M), err
    assert main([*args, "--quiet", "--overwrite"]) == 0
    assert "train:" not in capsys.readouterr().err
