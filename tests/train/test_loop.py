from __future__ import annotations

import numpy as np
import pytest
import torch

from scopeml.errors import InvalidContainerError, InvalidLabelsError, InvalidRequestError
from scopeml.train.checkpoint import load_checkpoint
from scopeml.train.loop import TrainConfig, masked_loss, train_unet

TINY = TrainConfig(depth=1, width=4, patch_size=32, batch_size=4, epochs=4, steps_per_epoch=6,
                   lr=1e-2, val_fraction=0.25, patience=10)  # fmt: skip


def test_loss_falls(nuclei_pair) -> None:
    image, labels = nuclei_pair
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 6, "val_fraction": 0.0})
    result = train_unet([image], [labels], config, progress=False)
    losses = [record["loss"] for record in result.history]
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0]


def test_validation_scores_every_epoch(nuclei_pair) -> None:
    image, labels = nuclei_pair
    result = train_unet([image] * 4, [labels] * 4, TINY, progress=False)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    for record in result.history:
        assert {"val_loss", "val_iou_0", "val_iou_1", "val_f1_1", "val_mean_iou"} <= set(record)
        assert 0 <= record["val_mean_f1"] <= 1
    # the network learned something: nucleus IoU beats predicting nothing (IoU 0)
    assert result.history[-1]["val_iou_1"] > 0.3


def test_sparse_loss_ignores_unlabelled_pixels() -> None:
    rng = np.random.default_rng(0)
    targets = torch.from_numpy(rng.integers(-1, 3, (2, 8, 8)))
    logits = torch.from_numpy(rng.normal(size=(2, 3, 8, 8)).astype(np.float32))
    changed = logits.clone()
    unlabelled = (targets < 0).unsqueeze(1).expand_as(logits)
    changed[unlabelled] = torch.from_numpy(rng.normal(size=int(unlabelled.sum())) * 5).float()
    changed.requires_grad_(True)
    loss = masked_loss(changed, targets)
    loss.backward()
    torch.testing.assert_close(loss, masked_loss(logits, targets), rtol=0, atol=0)
    assert torch.all(changed.grad[unlabelled] == 0)
    assert torch.any(changed.grad[~unlabelled] != 0)


def test_sparse_labels_train_on_labelled_pixels_only(nuclei_pair) -> None:
    image, labels = nuclei_pair
    scribbles = np.zeros_like(labels)
    scribbles[::7] = labels[::7] + 1  # every 7th row labelled: 1 = background, 2 = nucleus
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 1, "val_fraction": 0.0})
    sparse = train_unet([image], [scribbles], config, sparse=True, progress=False)
    assert sparse.classes == ("background", "class 1")
    dense = train_unet([image], [labels], config, progress=False)
    assert dense.classes == sparse.classes
    assert dense.history != sparse.history  # the ignored rows made a difference


def test_resume_continues_exactly(nuclei_pair, tmp_path) -> None:
    image, labels = nuclei_pair
    whole = train_unet([image] * 4, [labels] * 4, TINY, progress=False)
    checkpoint = tmp_path / "run.pt"
    half = TrainConfig(**{**TINY.to_dict(), "epochs": 2})
    train_unet([image] * 4, [labels] * 4, half, checkpoint=checkpoint, progress=False)
    resumed = train_unet([image] * 4, [labels] * 4, TINY, resume=checkpoint, progress=False)
    assert resumed.history == whole.history
    for a, b in zip(resumed.net.parameters(), whole.net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_resume_on_other_images_keeps_the_best_of_its_own_epochs(nuclei_pair, tmp_path):
    """The checkpoint's best validation loss was measured on its own validation images: a run
    resumed on others (a new mix of scenes) must not keep its old best weights for it."""
    image, labels = nuclei_pair
    checkpoint = tmp_path / "run.pt"
    first = TrainConfig(**{**TINY.to_dict(), "epochs": 2})
    train_unet([image] * 4, [labels] * 4, first, checkpoint=checkpoint, progress=False)
    earlier = load_checkpoint(checkpoint)["best"]
    shifted = [np.roll(labels, 5, axis=1)] * 4  # other images: the labels no longer fit
    with pytest.warns(UserWarning, match=r"run\.pt: the checkpoint was validated on other"):
        resumed = train_unet([image] * 4, shifted, TINY, resume=checkpoint,
                             checkpoint=checkpoint, progress=False)  # fmt: skip
    saved = load_checkpoint(checkpoint)
    own = [r["val_loss"] for r in resumed.history[2:]]
    assert min(own) > earlier  # the old best would have won
    assert saved["best"] == min(own)
    for key, value in resumed.net.state_dict().items():  # exported: this run's best epoch
        torch.testing.assert_close(value, saved["best_net"][key], rtol=0, atol=0)


def test_a_resume_with_validation_of_a_run_without_says_so(
    nuclei_pair, tmp_path, monkeypatch
) -> None:
    """A checkpoint trained without validation images kept its best by training loss, which a
    validation loss cannot be compared with: the warning says which case it is, and the
    restored weights are not validated first to find that out (one pass per epoch only)."""
    import scopeml.train.loop as loop

    passes = []
    validate = loop._validate
    monkeypatch.setattr(loop, "_validate", lambda *a: passes.append(1) or validate(*a))
    image, labels = nuclei_pair
    checkpoint = tmp_path / "run.pt"
    plain = TrainConfig(**{**TINY.to_dict(), "epochs": 2, "val_fraction": 0.0})
    train_unet([image] * 4, [labels] * 4, plain, checkpoint=checkpoint, progress=False)
    with pytest.warns(UserWarning, match=r"run\.pt: the checkpoint was trained without valid"):
        resumed = train_unet([image] * 4, [labels] * 4, TINY, resume=checkpoint,
                             checkpoint=checkpoint, progress=False)  # fmt: skip
    own = [r["val_loss"] for r in resumed.history[2:]]
    assert load_checkpoint(checkpoint)["best"] == min(own)  # not the old training loss
    assert len(passes) == len(own) == TINY.epochs - 2


def test_resume_rejects_other_network(nuclei_pair, tmp_path) -> None:
    image, labels = nuclei_pair
    checkpoint = tmp_path / "run.pt"
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 1})
    train_unet([image] * 2, [labels] * 2, config, checkpoint=checkpoint, progress=False)
    wider = TrainConfig(**{**config.to_dict(), "width": 8})
    with pytest.raises(InvalidRequestError, match=r"width 4"):
        train_unet([image] * 2, [labels] * 2, wider, resume=checkpoint, progress=False)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidContainerError, match=r"garbage\.pt"):
        train_unet([image] * 2, [labels] * 2, config, resume=garbage, progress=False)


def test_early_stopping(nuclei_pair) -> None:
    image, labels = nuclei_pair
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 30, "patience": 1, "lr": 1.0})
    result = train_unet([image] * 4, [labels] * 4, config, progress=False)
    assert len(result.history) < 30  # a diverging learning rate stops improving at once


def test_config_round_trip() -> None:
    config = TrainConfig(class_weights=(1.0, 2.0), depth=3, patch_size=64)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InvalidRequestError, match="multiple of 2\\*\\*depth"):
        TrainConfig(depth=3, patch_size=20)
    with pytest.raises(InvalidRequestError, match=r"unknown training options"):
        TrainConfig.from_dict({"depht": 2})


def test_bad_labels(nuclei_pair) -> None:
    image, labels = nuclei_pair
    with pytest.raises(InvalidLabelsError, match=r"labels range 0\.\.2; 2 classes"):
        train_unet([image], [labels * 2], TINY, classes=("a", "b"), progress=False)
    with pytest.raises(InvalidLabelsError, match=r"shape"):
        train_unet([image], [labels[:10]], TINY, progress=False)
    with pytest.raises(InvalidLabelsError, match=r"no labelled pixels"):
        train_unet([image], [labels * 0], TINY, sparse=True, classes=("a", "b"), progress=False)
    with pytest.raises(InvalidRequestError, match=r"smaller than the patch"):
        train_unet([image[:, :16, :16]], [np.tri(16, dtype=np.int64)], TINY, progress=False)


def test_cosine_schedule(nuclei_pair, tmp_path) -> None:
    image, labels = nuclei_pair
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 3, "steps_per_epoch": 1, "cosine": True})
    train_unet([image] * 4, [labels] * 4, config, checkpoint=tmp_path / "c.pt", progress=False)
    saved = load_checkpoint(tmp_path / "c.pt")
    lr = saved["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(TINY.lr * 0.5 * (1 + np.cos(np.pi * 2 / 3)))


def test_warmup_ramps_the_learning_rate_up(nuclei_pair, tmp_path) -> None:
    """Epoch ``e`` of a ``warmup`` runs at ``(e + 1) / (warmup + 1)`` of the schedule's rate; the
    rate a checkpoint ends with is the last epoch's."""
    image, labels = nuclei_pair
    base = {**TINY.to_dict(), "steps_per_epoch": 1, "cosine": True, "patience": 99}
    for epochs, warmup, factor in ((2, 3, 2 / 4), (4, 3, 1.0)):
        config = TrainConfig(**{**base, "epochs": epochs, "warmup": warmup})
        path = tmp_path / f"{epochs}.pt"
        train_unet([image] * 4, [labels] * 4, config, checkpoint=path, progress=False)
        lr = load_checkpoint(path)["optimizer"]["param_groups"][0]["lr"]
        cosine = 0.5 * (1 + np.cos(np.pi * (epochs - 1) / epochs))
        assert lr == pytest.approx(TINY.lr * cosine * factor)


def test_he_init_trains_and_starts_otherwise(nuclei_pair) -> None:
    image, labels = nuclei_pair
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 6, "val_fraction": 0.0, "init": "he"})
    result = train_unet([image], [labels], config, progress=False)
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < 0.7 * losses[0]
    first = {**TINY.to_dict(), "epochs": 1, "steps_per_epoch": 1, "lr": 1e-9, "val_fraction": 0}
    spread = {}
    for init in ("he", "torch"):
        net = train_unet(
            [image], [labels], TrainConfig(**{**first, "init": init}), progress=False
        ).net
        spread[init] = float(net.down[0][0].weight.std())
    assert spread["he"] > 2 * spread["torch"]  # He's draw is sqrt(6) times wider
    with pytest.raises(InvalidRequestError, match="init must be"):
        TrainConfig(init="xavier")
    with pytest.raises(InvalidRequestError, match="warmup must be"):
        TrainConfig(warmup=-1)


def test_weight_average(nuclei_pair, tmp_path) -> None:
    """``ema``: the kept weights are the moving average of the raw ones, step by step; a
    resumed run equals an uninterrupted one, and a checkpoint without an average starts one."""
    image, labels = nuclei_pair
    config = TrainConfig(**{**TINY.to_dict(), "ema": 0.9, "val_fraction": 0.0, "patience": 99})
    checkpoint = tmp_path / "run.pt"
    whole = train_unet([image] * 4, [labels] * 4, config, checkpoint=checkpoint, progress=False)
    saved = load_checkpoint(checkpoint)
    raw, average = saved["net"], saved["average"]
    assert int(average["n_averaged"]) == config.epochs * config.steps_per_epoch
    name = next(iter(raw))
    assert not torch.equal(raw[name], average[f"module.{name}"])  # the average lags the raw
    kept = dict(whole.net.state_dict())  # no validation images: the last average
    for key, value in kept.items():
        torch.testing.assert_close(value, average[f"module.{key}"], rtol=0, atol=0)

    half = TrainConfig(**{**config.to_dict(), "epochs": 2})
    train_unet([image] * 4, [labels] * 4, half, checkpoint=tmp_path / "h.pt", progress=False)
    resumed = train_unet(
        [image] * 4, [labels] * 4, config, resume=tmp_path / "h.pt", progress=False
    )
    assert resumed.history == whole.history
    for key, value in resumed.net.state_dict().items():
        torch.testing.assert_close(value, kept[key], rtol=0, atol=0)

    plain = TrainConfig(**{**half.to_dict(), "ema": 0.0})
    train_unet([image] * 4, [labels] * 4, plain, checkpoint=tmp_path / "p.pt", progress=False)
    started = train_unet(
        [image] * 4, [labels] * 4, config, resume=tmp_path / "p.pt", progress=False
    )
    assert len(started.history) == config.epochs
    for other in (0.0, 0.5):  # the average's decay is part of the run: refused, not dropped
        changed = TrainConfig(**{**config.to_dict(), "ema": other})
        with pytest.raises(InvalidRequestError, match=rf"checkpoint has ema 0\.9.* {other}"):
            train_unet([image] * 4, [labels] * 4, changed, resume=tmp_path / "h.pt")
    with pytest.raises(InvalidRequestError, match=r"ema must be in \[0, 1\)"):
        TrainConfig(ema=1.0)


def test_a_plane_trains_as_one_channel_and_wrong_shapes_say_what_is_expected(nuclei_pair, tmp_path):
    """A ``Y×X`` array is one channel, as ``segment`` reads it: the same run as ``1×Y×X``; other
    shapes are named with what was expected, and a missing checkpoint is a missing input."""
    from scopeml.errors import InputNotFoundError, InvalidImageError

    image, labels = nuclei_pair
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 1, "val_fraction": 0.0})
    plane = train_unet([image[0]], [labels], config, progress=False)
    stacked = train_unet([image], [labels], config, progress=False)
    assert plane.history == stacked.history
    with pytest.raises(InvalidImageError, match=r"image 1 has shape \(2, 64, 64\); expected C×Y×X "
                       r"with C = 1, as image 0 \(or Y×X for one channel\)"):  # fmt: skip
        train_unet([image, np.stack([image[0]] * 2)], [labels] * 2, config, progress=False)
    with pytest.raises(InvalidImageError, match=r"image 0 has shape \(1, 1, 64, 64\); expected "
                       r"C×Y×X \(or Y×X for one channel\)"):  # fmt: skip
        train_unet([image[None]], [labels], config, progress=False)
    with pytest.raises(InputNotFoundError, match=r"gone.pt: no such checkpoint file"):
        train_unet([image], [labels], config, resume=tmp_path / "gone.pt", progress=False)
