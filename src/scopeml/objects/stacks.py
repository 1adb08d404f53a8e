"""One ``(Z×)Y×X`` stack of a 6-D :class:`~scopeml.io.image.Image`: the objects' only adaptor
from the six axes to the arrays that labelling and measuring work on."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from scopeml.io.image import Image
from scopeml.progress import Progress, track

__all__ = ["StackView", "iter_stacks"]


class StackView:
    """One ``(Z×)Y×X`` stack (a scene, a time point, a channel) of an Image, read lazily.

    ``Z`` is kept only when the image has several planes, so a 2-D image gives a 2-D stack.

    Examples
    --------
    >>> image = Image(np.arange(24).reshape(1, 2, 1, 1, 3, 4))
    >>> stack = StackView(image, scene=0, time=1)
    >>> stack.shape, stack[1:2, :2].tolist()
    ((3, 4), [[16, 17]])
    """

    def __init__(self, image: Image, *, scene: int, time: int, channel: int | None = 0) -> None:
        self.image, self.scene, self.time, self.channel = image, scene, time, channel
        z, y, x = image.spatial_shape
        self.ndim = 2 if z == 1 else 3
        spatial = (y, x) if self.ndim == 2 else (z, y, x)
        channels = () if channel is not None else (image.sizes["C"],)
        self.shape = (*channels, *spatial)
        self.dtype = image.dtype
        self.chunks = None

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        if self.channel is None:
            key = key[1:]
        named = dict(zip("ZYX"[-self.ndim :], key, strict=True))
        channel = slice(None) if self.channel is None else self.channel
        data = self.image.read(S=self.scene, T=self.time, C=channel, **named)[0, 0]
        data = data if self.channel is None else data[0]  # (C×)Z×Y×X
        return data[..., 0, :, :] if self.ndim == 2 else data


def iter_stacks(
    image: Image, *, channel: int | None = 0, progress: Progress = None, stage: str = "planes"
) -> Iterator[tuple[int, int, StackView]]:
    """``(scene, time point, stack)`` for every scene and time point of ``image``; where there
    are several, each reported to ``progress`` as ``stage`` (unit ``plane``), in which the
    stages of each stack's work nest (a log's one line, not one per stage per plane).

    Examples
    --------
    >>> image = Image(np.zeros((2, 3, 1, 1, 4, 4), np.uint8))
    >>> [(s, t) for s, t, _ in iter_stacks(image)]
    [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    """
    planes = [(s, t) for s in range(image.sizes["S"]) for t in range(image.sizes["T"])]
    tracked = track(planes, progress, stage, unit="plane") if len(planes) > 1 else planes
    for scene, time in tracked:
        yield scene, time, StackView(image, scene=scene, time=time, channel=channel)
