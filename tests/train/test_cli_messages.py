"""What ``train unet`` says: the epoch exported and why training ended, the validation images,
a resume that trained nothing, Ctrl-C with a checkpoint, a diverging loss, option errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import scopeml.train.loop as loop
from scopeml.cli import main

TINY = ["--steps-per-epoch", "1", "--depth", "1", "--width", "2", "--patch-size", "16",
        "--batch-size", "2", "-q", "--overwrite"]  # fmt: skip


@pytest.fixture
def args(nuclei_pair, tmp_path) -> list[str]:
    image, labels = nuclei_pair
    np.save(tmp_path / "image.npy", image[0])
    np.save(tmp_path / "labels.npy", labels)
    return [
        "train",
        "unet",
        str(tmp_path / "image.npy"),
        str(tmp_path / "labels.npy"),
        "-o",
        str(tmp_path / "m.czann"),
        "--checkpoint",
        str(tmp_path / "c.pt"),
        *TINY,
    ]


def _scripted(monkeypatch, losses: list[float]) -> None:
    """Epoch ``e`` "trains" to the training loss ``losses[e]`` (no optimiser step)."""

    def epoch(step, train_x, train_y, config, epoch, advance):
        if isinstance(losses[epoch], BaseException):
            raise losses[epoch]
        return losses[epoch]

    monkeypatch.setattr(loop, "_train_epoch", epoch)


def test_the_exported_epoch_is_printed_with_why_training_ended(args, tmp_path, monkeypatch,
                                                               capsys):  # fmt: skip
    _scripted(monkeypatch, [0.5, 0.3, 0.4, 0.6, 0.2, 0.1])
    run = [*args, "--val-fraction", "0", "--epochs", "6", "--patience", "2"]
    assert main(run) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "validation: none (val_fraction 0)",
        f"wrote {tmp_path / 'm.czann'}: best (by training loss) of 4 epochs: epoch 2, loss 0.3",
        "stopped early after epoch 4: no improvement for 2 epochs (--patience 2)",
    ]
    # resumed, the exhausted patience trains nothing: said, with how to continue
    assert main([*run, "--resume", str(tmp_path / "c.pt")]) == 0
    out = capsys.readouterr().out
    assert (
        f"nothing trained: {tmp_path / 'c.pt'} had stopped early at epoch 4 (no "
        "improvement for 2 epochs, --patience 2); a larger --patience continues it"
    ) in out
    assert "best (by training loss) of 4 epochs: epoch 2, loss 0.3" in out
    assert main([*run, "--patience", "9", "--resume", str(tmp_path / "c.pt")]) == 0
    assert "best (by training loss) of 6 epochs: epoch 6, loss 0.1" in capsys.readouterr().out
    assert main([*run, "--patience", "9", "--resume", str(tmp_path / "c.pt")]) == 0
    assert "had trained 6 epochs (--epochs 6); a larger --epochs" in capsys.readouterr().out


def test_validation_images_are_named_and_the_best_epochs_scores_printed(
    nuclei_pair, tmp_path, capsys
):
    image, labels = nuclei_pair
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    for k in range(3):
        np.save(tmp_path / "images" / f"p{k}.npy", np.roll(image[0], 9 * k, 1))
        np.save(tmp_path / "labels" / f"p{k}.npy", np.roll(labels, 9 * k, 1))
    run = [
        "train",
        "unet",
        str(tmp_path / "images"),
        str(tmp_path / "labels"),
        "-o",
        str(tmp_path / "m.czann"),
        "--epochs",
        "2",
        "--checkpoint",
        str(tmp_path / "c.pt"),
        *TINY,
    ]
    assert main(run) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "validation: 1 of 3 images: p2.npy"
    from scopeml.train.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "c.pt")
    best = saved["best_epoch"]
    record = saved["history"][best - 1]
    assert lines[1] == (
        f"wrote {tmp_path / 'm.czann'}: best of 2 epochs: epoch {best}, loss "
        f"{record['loss']:.4g}, val_loss {record['val_loss']:.4g}, val_mean_iou "
        f"{record['val_mean_iou']:.4g}"
    )


def test_ctrl_c_says_the_checkpoint_is_kept_and_how_to_resume(args, tmp_path, monkeypatch,
                                                              capsys):  # fmt: skip
    _scripted(monkeypatch, [0.5, KeyboardInterrupt(), 0.3])
    assert main([*args, "--epochs", "3", "--val-fraction", "0"]) == 130
    err = capsys.readouterr().err
    checkpoint = tmp_path / "c.pt"
    assert err == (
        f"aborted: training stopped; the checkpoint {checkpoint} keeps 1 of 3 epochs: "
        f"continue with the same command and --resume {checkpoint}\n"
    )
    assert not (tmp_path / "m.czann").exists()


def test_a_diverging_loss_stops_training_and_writes_no_model(args, tmp_path, monkeypatch,
                                                             capsys):  # fmt: skip
    real = loop.masked_loss
    monkeypatch.setattr(loop, "masked_loss", lambda *a: real(*a) * torch.tensor(float("nan")))
    assert main([*args, "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "the training loss became nan in epoch 1: training diverged and no model is " in err
    assert err.count("\n") == 1
    assert not (tmp_path / "m.czann").exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--lr", "-1"], "error: lr must be in (0, 1]; got -1.0\n"),
        (["--lr", "1e38"], "error: lr must be in (0, 1]; got 1e+38\n"),
        (["--val-fraction", "1.5"], "error: val_fraction must be in [0, 1); got 1.5\n"),
        (["--classes", "bg"], "error: --classes names 1 class; a classifier needs at least 2\n"),
    ],
)
def test_option_errors_name_no_file(args, tmp_path, capsys, option, expected):
    assert main([*args, "--epochs", "1", *option]) == 2
    assert capsys.readouterr().err == expected
    assert not (tmp_path / "c.pt").exists()
