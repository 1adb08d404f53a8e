from __future__ import annotations

import numpy as np
import pytest
import torch

from scopeml.train.export import measure_halo
from scopeml.train.unet import ChannelsLastClassifier, Normalize, UNet, he_init, receptive_halo


def _classifier(depth: int, spatial_dims: int = 2, channels: int = 1) -> ChannelsLastClassifier:
    torch.manual_seed(depth)
    net = UNet(channels, 3, depth=depth, width=4, spatial_dims=spatial_dims)
    return ChannelsLastClassifier(net, Normalize([10.0] * channels, [2.0] * channels, spatial_dims))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shapes(spatial_dims: int) -> None:
    classifier = _classifier(2, spatial_dims, channels=2)
    x = torch.rand((2, *(8,) * (spatial_dims - 2), 16, 24, 2))
    y = classifier(x)
    assert y.shape == (*x.shape[:-1], 3)
    torch.testing.assert_close(y.sum(-1), torch.ones(y.shape[:-1]))


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_measured_field_within_halo(depth: int) -> None:
    # the analytic halo must cover what one pixel actually reaches (and not be far too large)
    measured = measure_halo(_classifier(depth))
    assert 0 < measured <= receptive_halo(depth)
    assert receptive_halo(depth) - measured < 2 ** (depth + 1)


def _tiled(
    classifier: ChannelsLastClassifier, x: torch.Tensor, core: int, halo: int
) -> torch.Tensor:
    """Clip-not-pad tiling over Y and X: each tile's core cropped from a tile with its halo."""
    out = torch.zeros((*x.shape[:-1], 3))
    size_y, size_x = x.shape[-3], x.shape[-2]
    for y0 in range(0, size_y, core):
        for x0 in range(0, size_x, core):
            a, b = max(y0 - halo, 0), max(x0 - halo, 0)
            c, d = min(y0 + core + halo, size_y), min(x0 + core + halo, size_x)
            tile = classifier(x[..., a:c, b:d, :])
            y1, x1 = min(y0 + core, size_y), min(x0 + core, size_x)
            out[..., y0:y1, x0:x1, :] = tile[..., y0 - a : y1 - a, x0 - b : x1 - b, :]
    return out


@pytest.mark.parametrize(("depth", "spatial_dims"), [(2, 2), (3, 2), (1, 3)])
def test_tiled_equals_whole(depth: int, spatial_dims: int) -> None:
    classifier = _classifier(depth, spatial_dims).eval()
    step = 2**depth
    rng = np.random.default_rng(0)
    shape = (1, *(2 * step,) * (spatial_dims - 2), 12 * step, 10 * step, 1)
    x = torch.from_numpy(rng.normal(10, 2, shape).astype(np.float32))
    with torch.no_grad():
        whole = classifier(x)
        tiled = _tiled(classifier, x, core=3 * step, halo=receptive_halo(depth))
        no_halo = _tiled(classifier, x, core=3 * step, halo=0)
    # equal up to float summation order (convolutions of other sizes block differently)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)
    # the check can fail: without a halo, zero padding at tile borders changes the result
    assert (no_halo - whole).abs().max() > 1e-5


def test_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="spatial_dims"):
        UNet(1, 2, spatial_dims=4)
    with pytest.raises(ValueError, match="depth"):
        UNet(1, 2, depth=0)


def test_he_init_keeps_the_signal_scale() -> None:
    """He's draw keeps a normalised input's spread down to the bottom level of a deep U-Net;
    torch's default shrinks it about a hundredfold, and leaves the head as it was."""
    x = torch.randn(2, 1, 64, 64)
    spreads = {}
    for init in ("torch", "he"):
        torch.manual_seed(0)
        net = UNet(1, 3, depth=4, width=8)
        head = net.head.weight.detach().clone()
        if init == "he":
            he_init(net)
        torch.testing.assert_close(net.head.weight, head, rtol=0, atol=0)
        h = x
        for block in net.down:
            h = net.pool(block(h))
        spreads[init] = float(net.bottom(h).std())
    assert spreads["torch"] < 0.05 < 0.5 < spreads["he"]
    convolutions = [m for m in net.down[0] if isinstance(m, torch.nn.Conv2d)]
    assert all(float(m.bias.abs().max()) == 0 for m in convolutions)
