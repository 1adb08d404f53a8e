"""A small U-Net whose tiled output equals its whole-image output, and its receptive halo.

Only layers that look at a fixed neighbourhood: zero-padded 3×3 convolutions, ReLU, 2×2 max
pooling, nearest upsampling, skip connections, and optionally BatchNorm, which at inference is a
fixed per-channel affine map (its running statistics; ONNX export folds it into the convolution).
No GroupNorm or InstanceNorm: a layer that computes statistics over its input at inference sees
one tile and breaks exact tiling. Input normalisation is a fixed affine map (:class:`Normalize`)
whose mean and std come from the training set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def receptive_halo(depth: int) -> int:
    """Pixels per side that a tile needs for its core to equal the whole-image result.

    Counts, at each scale ``s = 2**level``, two 3×3 convolutions on the way down (``2s``), the
    2×2 pooling window (``s``), two at the bottom (``2 * 2**depth``) and two on the way up
    (``2s``); nearest upsampling adds nothing on a grid aligned to ``2**depth``. The sum is
    rounded up to the tile step ``2**depth``.

    Examples
    --------
    >>> receptive_halo(2), receptive_halo(3)
    (24, 56)
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0; got {depth}")
    scales = [2**level for level in range(depth)]
    reach = 4 * sum(scales) + sum(scales) + 2 * 2**depth
    step = 2**depth
    return -(-reach // step) * step


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel with fixed values (from the training set), ``N×C×…``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], spatial_dims: int = 2) -> None:
        super().__init__()
        shape = (1, len(mean)) + (1,) * spatial_dims
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _block(
    conv: type[nn.Module], norm: type[nn.Module] | None, c_in: int, c_out: int
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in (c_in, c_out):
        layers.append(conv(channels, c_out, 3, padding=1, bias=norm is None))
        if norm is not None:
            layers.append(norm(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net: ``N×C×[Z×]Y×X`` normalised input → ``N×K×[Z×]Y×X`` logits.

    Parameters
    ----------
    in_channels, n_classes
        ``C`` and ``K``.
    depth
        Number of poolings; spatial sizes must be multiples of ``2**depth``.
    width
        Channels at the first level; doubled at each level down.
    spatial_dims
        2 (``Y×X``) or 3 (``Z×Y×X``).
    batch_norm
        BatchNorm after each 3×3 convolution: steadier training; still exact when tiled, since
        in eval mode it uses fixed running statistics.

    Examples
    --------
    >>> net = UNet(1, 3, depth=2, width=4)
    >>> tuple(net(torch.zeros(1, 1, 16, 16)).shape)
    (1, 3, 16, 16)
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        *,
        depth: int = 2,
        width: int = 8,
        spatial_dims: int = 2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3; got {spatial_dims}")
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1; got {depth} and {width}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        pool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        norm = (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d) if batch_norm else None
        self.depth, self.spatial_dims = depth, spatial_dims
        widths = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        channels = in_channels
        for level in range(depth):
            self.down.append(_block(conv, norm, channels, widths[level]))
            channels = widths[level]
        self.pool = pool(2)
        self.bottom = _block(conv, norm, channels, widths[depth])
        self.up = nn.ModuleList(
            _block(conv, norm, widths[level + 1] + widths[level], widths[level])
            for level in reversed(range(depth))
        )
        self.head = conv(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def he_init(net: UNet) -> None:
    """Draw ``net``'s 3×3 convolutions for the ReLU after them (Kaiming normal over fan-in,
    biases 0), so the signal keeps its scale down to the bottom level; the 1×1 head keeps
    torch's default."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)) and module is not net.head:
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class ChannelsLastClassifier(nn.Module):
    """The exported graph: raw ``N×[Z×]Y×X×C`` pixels → ``N×[Z×]Y×X×K`` probabilities.

    Wraps a trained :class:`UNet` with its fixed :class:`Normalize` and a softmax, channels last
    at both ends like a czann container.
    """

    def __init__(self, net: UNet, normalize: Normalize) -> None:
        super().__init__()
        self.net, self.normalize = net, normalize
        dims = net.spatial_dims
        self.to_first = (0, dims + 1, *range(1, dims + 1))
        self.to_last = (0, *range(2, dims + 2), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x.permute(*self.to_first))
        # channels last first: ONNX Runtime's softmax is fastest over the last axis
        return torch.softmax(self.net(x).permute(*self.to_last), dim=-1)
