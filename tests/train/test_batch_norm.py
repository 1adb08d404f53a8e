"""BatchNorm in the U-Net: folded into the convolutions on export, so tiling stays exact."""

from __future__ import annotations

import zipfile

import numpy as np
import onnx
import pytest
import torch

from scopeml.errors import InvalidRequestError
from scopeml.model import load_model
from scopeml.train.checkpoint import load_checkpoint
from scopeml.train.export import save_czann
from scopeml.train.loop import TrainConfig, train_unet

BN = TrainConfig(depth=2, width=4, patch_size=32, batch_size=4, epochs=3, steps_per_epoch=4,
                 lr=1e-2, val_fraction=0.25, patience=10, batch_norm=True)  # fmt: skip


def _running_means(net: torch.nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_export_folds_batch_norm_and_tiles_exactly(nuclei_pair, tmp_path) -> None:
    image, labels = nuclei_pair
    result = train_unet([image] * 4, [labels] * 4, BN, progress=False)
    assert all(m.abs().sum() > 0 for m in _running_means(result.net))  # statistics were learnt
    path = save_czann(result.classifier(), tmp_path / "bn.czann", classes=result.classes)
    with zipfile.ZipFile(path) as archive:
        graph = onnx.load_from_string(archive.read("model.model")).graph
    assert "BatchNormalization" not in {node.op_type for node in graph.node}
    model = load_model(path)
    expected = result.classifier()(torch.from_numpy(np.moveaxis(image, 0, -1)[None]))
    np.testing.assert_allclose(
        model.predict(image[None]), np.moveaxis(expected.detach().numpy(), -1, 1), atol=1e-4
    )
    (halo, _), (step, _) = model.spec.halo, model.spec.tile_step
    big = np.random.default_rng(5).normal(0.3, 0.2, (1, 1, 120, 136)).astype(np.float32)
    whole, tiled, core = model.predict(big), np.zeros((1, 2, 120, 136), np.float32), 5 * step
    for y0 in range(0, 120, core):
        for x0 in range(0, 136, core):
            a, b = max(y0 - halo, 0), max(x0 - halo, 0)
            out = model.predict(big[..., a : y0 + core + halo, b : x0 + core + halo])
            y1, x1 = min(y0 + core, 120), min(x0 + core, 136)
            tiled[..., y0:y1, x0:x1] = out[..., y0 - a : y1 - a, x0 - b : x1 - b]
    np.testing.assert_array_equal(tiled, whole)


def test_resume_keeps_running_statistics(nuclei_pair, tmp_path) -> None:
    image, labels = nuclei_pair
    whole = train_unet([image] * 4, [labels] * 4, BN, progress=False)
    checkpoint = tmp_path / "bn.pt"
    first = TrainConfig(**{**BN.to_dict(), "epochs": 1})
    train_unet([image] * 4, [labels] * 4, first, checkpoint=checkpoint, progress=False)
    resumed = train_unet([image] * 4, [labels] * 4, BN, resume=checkpoint, progress=False)
    assert resumed.history == whole.history
    for key, value in whole.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[key], value, rtol=0, atol=0)
    plain = TrainConfig(**{**BN.to_dict(), "batch_norm": False})
    with pytest.raises(InvalidRequestError, match=r"batch_norm True; this run asks for False"):
        train_unet([image] * 4, [labels] * 4, plain, resume=checkpoint, progress=False)


def _statistics(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    return {
        key[len(prefix) :]: value.double()
        for key, value in state.items()
        if key.startswith(prefix) and key.endswith(("running_mean", "running_var"))
    }


def test_weight_average_averages_the_running_statistics(nuclei_pair, tmp_path) -> None:
    """The averaged weights are exported with BatchNorm statistics averaged alike (step by
    step, as the weights), not with the live network's, which belong to other weights."""
    image, labels = nuclei_pair
    config = TrainConfig(**{**BN.to_dict(), "ema": 0.8, "val_fraction": 0.0, "epochs": 5,
                            "steps_per_epoch": 1})  # fmt: skip
    checkpoint, live = tmp_path / "ema.pt", []

    def after_step(event) -> None:  # one step an epoch: every checkpoint is one step's
        if event.done:
            live.append(_statistics(load_checkpoint(checkpoint)["net"]))

    result = train_unet([image] * 4, [labels] * 4, config, checkpoint=checkpoint,
                        progress=after_step)  # fmt: skip
    assert len(live) == config.epochs
    expected = live[0]  # the average starts at the first step's network
    for step in live[1:]:
        expected = {k: config.ema * v + (1 - config.ema) * step[k] for k, v in expected.items()}
    exported = _statistics(result.net.state_dict())  # no validation images: the last average
    assert set(exported) == set(expected) and expected
    for key, value in exported.items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(value, live[-1][key], rtol=1e-3, atol=1e-5)
    average = _statistics(load_checkpoint(checkpoint)["average"], "module.")
    for key, value in average.items():  # and resuming continues this average
        torch.testing.assert_close(value, exported[key], rtol=0, atol=0)


def test_halo_is_measured_as_exported() -> None:
    """A fresh network is in training mode, where BatchNorm's batch statistics carry every
    pixel everywhere: the halo is measured in eval mode, and the caller's mode kept."""
    from scopeml.train.export import measure_halo
    from scopeml.train.unet import ChannelsLastClassifier, Normalize, UNet, receptive_halo

    torch.manual_seed(0)
    net = ChannelsLastClassifier(UNet(1, 2, depth=2, width=4, batch_norm=True), Normalize([0], [1]))
    assert 0 < measure_halo(net) <= receptive_halo(2) and net.training


def test_a_batch_of_one_value_is_refused_in_one_line() -> None:
    """BatchNorm needs two values per channel: batch 1 of patches of 2**depth is 1×1 at the
    bottom (torch's error came from the first step)."""
    with pytest.raises(InvalidRequestError, match="batch_norm needs batch_size 2"):
        TrainConfig(depth=2, patch_size=4, batch_size=1, batch_norm=True)
    TrainConfig(depth=2, patch_size=8, batch_size=1, batch_norm=True)  # 2×2 at the bottom
