"""The dense CRF as a post-processing step: a segment store's probabilities and the image in,
class labels out, tile by tile.

Each tile is read with :func:`~scopeml.post.crf.crf_halo` more pixels on each side and refined
at its place in the image (``origin``), so the result equals :func:`~scopeml.post.crf.dense_crf`
on the whole image exactly; memory depends on the tile size, never on the image size. The
bilateral kernel's intensity scale is a fraction (``contrast``) of the image's range, found by
one streaming pass over the whole image, never per tile. Non-finite pixels count as the
image's minimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io.image import Image
from scopeml.io.regions import core_region, iter_regions
from scopeml.post.crf import MAX_GRID_CELLS, crf_halo, dense_crf
from scopeml.progress import Progress, track
from scopeml.tiling.outputs import probability_scale

#: Intensity scale of the bilateral kernel, as a fraction of the image's range.
DEFAULT_CONTRAST = 0.05
#: Mean-field iterations of ``crf`` without a number (the halo grows with them: 40 px each).
DEFAULT_ITERATIONS = 5
#: Most iterations ``crf:N`` takes (each adds 40 pixels of halo on every side).
MAX_ITERATIONS = 20


@dataclass(frozen=True)
class CrfStep:
    """The ``crf[:ITERATIONS]`` step: dense CRF refinement of the probabilities into labels.

    Examples
    --------
    >>> CrfStep.parse("crf"), CrfStep.parse("crf:3").halo
    (CrfStep(iterations=5), 120)
    """

    iterations: int = DEFAULT_ITERATIONS

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise InvalidRequestError(
                f"step crf: iterations must be 1..{MAX_ITERATIONS}; got {self.iterations}"
            )

    @classmethod
    def parse(cls, text: str) -> CrfStep:
        """``crf`` or ``crf:ITERATIONS``."""
        _, _, size = text.strip().partition(":")
        if not size:
            return cls()
        try:
            iterations = int(size)
        except ValueError as err:
            problem = f"step {text!r}: iterations {size!r} is not a whole number"
            raise InvalidRequestError(problem) from err
        return cls(iterations)  # out of range is refused there, saying so

    @property
    def halo(self) -> int:
        """Pixels of context a tile needs on each side (default kernels)."""
        return crf_halo(iterations=self.iterations)

    def __str__(self) -> str:
        return "crf" if self.iterations == DEFAULT_ITERATIONS else f"crf:{self.iterations}"


def is_crf(step: Any) -> bool:
    """Whether a step (text or value) is the CRF step."""
    if isinstance(step, CrfStep):
        return True
    return isinstance(step, str) and step.strip().partition(":")[0] == "crf"


def intensity_range(image: Image, *, tile_size: int) -> tuple[float, float]:
    """The smallest and largest finite value of ``image``, one tile at a time."""
    low, high = math.inf, -math.inf
    z, y, x = image.spatial_shape
    for s, t in np.ndindex(image.sizes["S"], image.sizes["T"]):
        for read, _ in iter_regions((z, y, x), tile_size):
            named = dict(zip("ZYX", read, strict=True))
            tile = np.asarray(image.read(S=s, T=t, **named), np.float64)
            finite = tile[np.isfinite(tile)]
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    return (low, high) if low <= high else (0.0, 0.0)


def crf_tiled(
    probabilities: Image,
    image: Image,
    out: Any,
    step: CrfStep,
    *,
    contrast: float = DEFAULT_CONTRAST,
    tile_size: int,
    progress: Progress = None,
) -> None:
    """Dense CRF labels of every scene and time point into the 6-D ``out`` (one channel):
    ``probabilities`` ``K`` channels (float, or ``uint8`` as 0..255), ``image`` at most 3
    channels of the same ``T×Z×Y×X``; label ``k + 1`` is channel ``k``, as in ``segment``.

    Examples
    --------
    >>> image = np.zeros((1, 1, 1, 1, 12, 20), np.float32); image[..., 10:] = 1
    >>> coin = np.where(np.arange(20) < 6, 0.2, np.where(np.arange(20) >= 14, 0.8, 0.5))
    >>> prob = np.stack([1 - coin, coin]).reshape(1, 1, 2, 1, 1, 20).repeat(12, axis=4)
    >>> out = np.zeros((1, 1, 1, 1, 12, 20), np.uint8)
    >>> crf_tiled(Image(prob.astype(np.float32)), Image(image), out, CrfStep(), tile_size=8)
    >>> out[0, 0, 0, 0, 0].tolist()  # the boundary moves to the image edge at x = 10
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    """
    where = image.path
    if any(probabilities.sizes[a] != image.sizes[a] for a in "STZYX"):
        shape = "×".join(str(image.sizes[a]) for a in "TZYX")
        expected = "×".join(str(probabilities.sizes[a]) for a in "TZYX")
        raise InvalidImageError(
            f"image is T×Z×Y×X {shape}; the probabilities are {expected}", path=where
        )
    if image.sizes["C"] > 3:
        raise InvalidImageError(
            f"image has {image.sizes['C']} channels; the CRF's bilateral kernel takes at most 3",
            path=where,
        )
    if not (math.isfinite(contrast) and contrast > 0):
        raise InvalidRequestError(f"CRF contrast must be positive; got {contrast}")
    z, y, x = image.spatial_shape
    spatial = (y, x) if z == 1 else (z, y, x)
    work = [
        (s, t, read, core)
        for s, t in np.ndindex(image.sizes["S"], image.sizes["T"])
        for read, core in iter_regions(spatial, tile_size, step.halo)
    ]
    sizes = max(([r.stop - r.start for r in read] for _, _, read, _ in work), key=math.prod)
    cells = grid_cells(sizes, image.sizes["C"], contrast)
    if cells > MAX_GRID_CELLS:
        raise InvalidRequestError(
            f"the CRF's bilateral grid for a tile of {'×'.join(map(str, sizes))} pixels (with "
            f"its halo of {step.halo}) and {image.sizes['C']} channel(s) would have about "
            f"{cells:,} cells, more than {MAX_GRID_CELLS:,}: use smaller tiles (--tile-size), "
            "a larger --crf-contrast or fewer channels",
            path=where,
        )
    low, high = intensity_range(image, tile_size=tile_size)  # the whole image's, not a tile's
    sigma = contrast * (high - low) if high > low else 1.0
    scale = probability_scale(probabilities.dtype)
    for s, t, read, core in track(work, progress, "crf", unit="tile"):
        named = dict(zip("ZYX"[-len(spatial) :], read, strict=True))
        prob = np.asarray(probabilities.read(S=s, T=t, **named)[0, 0], np.float32) / scale
        guide = np.asarray(image.read(S=s, T=t, **named)[0, 0], np.float32)
        guide[~np.isfinite(guide)] = low
        if len(spatial) == 2:  # C×1×Y×X → C×Y×X: a plane, not a volume one pixel deep
            prob, guide = prob[:, 0], guide[:, 0]
        unknown = np.isnan(prob).any(axis=0)  # unclassified in segment: stays unclassified
        prob[:, unknown] = 1.0 / len(prob)
        labels = dense_crf(
            prob,
            guide,
            intensity_sigma=sigma,
            iterations=step.iterations,
            origin=[r.start for r in read],
        )
        labels[unknown] = 0
        block = labels[core]
        where_in = core_region(read, core)
        zyx = where_in if len(spatial) == 3 else (slice(0, 1), *where_in)
        out[(slice(s, s + 1), slice(t, t + 1), slice(0, 1), *zyx)] = block.reshape(
            (1, 1, 1, *tuple(k.stop - k.start for k in zyx))
        )


def grid_cells(read_shape: Sequence[int], n_channels: int, contrast: float) -> int:
    """At most how many cells the bilateral grid of a tile has (default spatial sigma): one per
    8 pixels along each axis and per ``contrast`` of the image's range along each channel, plus
    the border cells.

    Examples
    --------
    >>> grid_cells([1424, 1424], 1, 0.05)
    704902
    """
    spatial = math.prod((n - 1) // 8 + 2 for n in read_shape)
    return spatial * (math.floor(1 / contrast) + 2) ** n_channels


def split_crf(steps: Sequence[Any]) -> tuple[CrfStep | None, list[Any]]:
    """The CRF step (it must come first: it makes the labels the others work on) and the rest."""
    found = [n for n, step in enumerate(steps) if is_crf(step)]
    if not found:
        return None, list(steps)
    if found != [0]:
        raise InvalidRequestError(
            "crf must be the first step, and only once: it makes the labels from the "
            "probabilities that the other steps then work on"
        )
    first = steps[0]
    return (first if isinstance(first, CrfStep) else CrfStep.parse(first)), list(steps[1:])
