"""Global intensity normalisation: one streaming statistics pass, the same values for every tile.

Per-tile statistics would make each tile's input depend on its neighbourhood and break exact
tiling; so the statistics come from the whole image (per channel; with ``per time point``, from
each time point's planes for that time point's tiles), read block by block (a
``statistics`` progress stage counts the blocks read; a callback may cancel between them).
Integer images of up to 16 bits get an exact histogram (percentiles equal ``np.percentile``);
wider integers and floats a 65,536-bin histogram over their min–max range. NaN and infinite
pixels are left out of the statistics (the engine writes them as unclassified).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image
from scopeml.progress import Progress, ProgressCallback, ProgressEvent, as_progress

_BINS = 65536
_BLOCK = 2048


#: The ``normalize`` suffix that gives each time point its own statistics.
PER_TIME_POINT = "per time point"


@dataclass(frozen=True)
class Normalization:
    """``(x - offset[c]) * scale[c]`` per channel ``c``, computed in float32; with
    ``per_time``, each time point's own (:meth:`at`)."""

    offset: tuple[float, ...]
    scale: tuple[float, ...]
    per_time: tuple[Normalization, ...] = field(default=(), repr=False)

    def at(self, t: int) -> Normalization:
        """The values of time point ``t``: its own where statistics are per time point."""
        return self.per_time[t] if self.per_time else self

    def from_time(self, start: int) -> Normalization:
        """These values for a view of the image that begins at time point ``start`` (whose
        time point 0 is the image's ``start``)."""
        return replace(self, per_time=self.per_time[start:]) if self.per_time else self

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Normalise a ``C×…`` block; returns float32.

        Examples
        --------
        >>> Normalization((10.0,), (0.5,)).apply(np.array([[10, 14]], np.uint16)).tolist()
        [[0.0, 2.0]]
        """
        shape = (-1,) + (1,) * (data.ndim - 1)
        offset = np.asarray(self.offset, np.float32).reshape(shape)
        scale = np.asarray(self.scale, np.float32).reshape(shape)
        return (data.astype(np.float32) - offset) * scale

    def to_dict(self) -> dict[str, Any]:
        if self.per_time:
            return {"per_time_point": [n.to_dict() for n in self.per_time]}
        return {"offset": list(self.offset), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        """The values :meth:`to_dict` wrote (a run's record).

        >>> n = Normalization((), (), (Normalization((1.0,), (2.0,)),))
        >>> Normalization.from_dict(n.to_dict()) == n
        True
        """
        if "per_time_point" in data:
            return cls((), (), tuple(cls.from_dict(d) for d in data["per_time_point"]))
        return cls(tuple(map(float, data["offset"])), tuple(map(float, data["scale"])))


def parse_normalize(text: str | None) -> tuple[str, tuple[float, ...]]:
    """Parse ``None``/``"none"``, ``"meanstd"`` or ``"percentile:LOW,HIGH"``, each optionally
    followed by ``per time point`` (:func:`per_time_point`).

    Examples
    --------
    >>> parse_normalize("percentile:1,99.8"), parse_normalize("meanstd per time point")
    (('percentile', (1.0, 99.8)), ('meanstd', ()))
    """
    if text is not None and not text.strip():  # an unset shell variable, say: not raw values
        raise InvalidRequestError(
            "normalize is empty; give none for raw values, or a policy such as percentile:1,99.8"
        )
    given, text = text, _without_scope(text)
    if text is None or text.strip().lower() == "none":  # "per time point" alone: the model's
        if given is not text and " ".join(given.lower().split()) != PER_TIME_POINT:
            raise InvalidRequestError(
                f"normalize {given!r}: there are no statistics to compute per time point; give "
                f"a policy: percentile:1,99.8 {PER_TIME_POINT}"
            )
        return "none", ()
    method, _, args = text.strip().lower().partition(":")
    if method == "meanstd" and not args:
        return "meanstd", ()
    if method == "percentile":
        try:
            low, high = (float(v) for v in args.split(","))
        except ValueError as err:
            raise InvalidRequestError(
                f"normalize {text!r}: expected percentile:LOW,HIGH such as percentile:1,99.8"
            ) from err
        if not 0.0 <= low < high <= 100.0:
            raise InvalidRequestError(f"normalize {text!r}: need 0 <= LOW < HIGH <= 100")
        return "percentile", (low, high)
    raise InvalidRequestError(
        f"unknown normalisation {text!r}; use none, meanstd or percentile:LOW,HIGH, the last "
        f"two optionally followed by '{PER_TIME_POINT}'"
    )


def canonical_normalize(text: str) -> str:
    """``text`` checked (:func:`parse_normalize`) and written one way, lower case with single
    spaces, so a resume compares what a policy does, not how it was typed.

    >>> canonical_normalize(" Percentile:1,99.8  Per Time point")
    'percentile:1,99.8 per time point'
    """
    parse_normalize(text)
    return " ".join(text.lower().split())


def per_time_point(text: str | None) -> bool:
    """Whether ``normalize`` asks for each time point's own statistics (``percentile:1,99.8
    per time point``): a time series' frames then do not depend on one another (a bleaching
    series' late frames, normalised with its bright first ones, lost nuclei), and a frame
    segmented alone gives what it gives in its series.

    >>> per_time_point("percentile:1,99.8 per time point"), per_time_point("meanstd")
    (True, False)
    """
    return _without_scope(text) != text


def check_recordable(text: str | None) -> None:
    """Refuse a policy a model cannot record: a bad one, or one ``per time point`` (which
    frames share statistics is a run's choice, given when segmenting)."""
    parse_normalize(text)
    if per_time_point(text):
        raise InvalidRequestError(
            f"normalize {text!r}: a model records how to normalise (such as percentile:1,99.8), "
            f"not '{PER_TIME_POINT}': give that when segmenting"
        )


def chosen_policy(given: str | None, recorded: str | None) -> str | None:
    """The policy a run applies: the one ``given`` (``normalize=``), else the model's
    ``recorded`` one; ``per time point`` alone is the model's own, per time point.

    >>> chosen_policy(None, "meanstd"), chosen_policy("per time point", "percentile:1,99.8")
    ('meanstd', 'percentile:1,99.8 per time point')
    """
    if given is None:
        return recorded
    if " ".join(given.lower().split()) != PER_TIME_POINT:
        return given
    if parse_normalize(recorded)[0] == "none":
        raise InvalidRequestError(
            f"normalize {given!r}: the model records no normalisation to compute per time "
            f"point; give one: percentile:1,99.8 {PER_TIME_POINT}"
        )
    return f"{recorded} {PER_TIME_POINT}"


def _without_scope(text: str | None) -> str | None:
    """``text`` without its ``per time point`` (any case and spacing), else ``text`` itself."""
    words = text.split() if text is not None else []
    if " ".join(words[-3:]).lower() == PER_TIME_POINT:
        return " ".join(words[:-3]) or "none"
    return text


def compute_normalization(
    image: Image, method: str | None, *, scene: int = 0, progress: Progress = None
) -> Normalization | None:
    """Compute per-channel normalisation values over the whole image (one scene); ``progress``
    gets stage ``statistics`` in blocks (two passes for a float or wide integer percentile).

    Returns ``None`` for raw values. Memory is bounded by one block of ``2048×2048`` pixels
    per channel and a 65,536-bin histogram per channel.

    Examples
    --------
    >>> data = np.arange(100, dtype=np.uint8).reshape(1, 1, 1, 1, 10, 10)
    >>> compute_normalization(Image(data), "percentile:0,100")
    Normalization(offset=(0.0,), scale=(0.010101010101010102,))
    """
    kind, args = parse_normalize(method)
    if kind == "none":
        return None
    passes = 1 if kind == "meanstd" or _exact(image.dtype) else 2
    count = _Count(as_progress(progress), passes * _Blocks.number(image))
    count.report(ProgressEvent("statistics", 0, count.total, "block"))
    if not per_time_point(method):
        return _statistics(_Blocks(image, scene, count), kind, args)
    found = [
        _statistics(_Blocks(image, scene, count, t), kind, args) for t in range(image.sizes["T"])
    ]
    return Normalization((), (), tuple(found))


def _statistics(blocks: _Blocks, kind: str, args: tuple[float, ...]) -> Normalization:
    """The ``kind`` statistics of ``blocks`` (per channel)."""
    n_channels = blocks.image.sizes["C"]
    if kind == "meanstd":
        total = np.zeros(n_channels)
        squares = np.zeros(n_channels)
        count = np.zeros(n_channels)
        for block in blocks.read():
            flat = block.reshape(n_channels, -1).astype(np.float64)
            if block.dtype.kind == "f":
                finite = np.isfinite(flat)
                flat = np.where(finite, flat, 0.0)
                count += finite.sum(axis=1)
            else:
                count += flat.shape[1]
            total += flat.sum(axis=1)
            squares += (flat * flat).sum(axis=1)
        count = np.maximum(count, 1)
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
        return Normalization(tuple(mean), tuple(1.0 / s if s > 0 else 1.0 for s in std))
    counts, lo, width = _histograms(blocks)
    offsets, scales = [], []
    for c in range(n_channels):
        low, high = (_percentile(counts[c], lo[c], width[c], p) for p in args)
        offsets.append(low)
        scales.append(1.0 / (high - low) if high > low else 1.0)
    return Normalization(tuple(offsets), tuple(scales))


def _exact(dtype: np.dtype) -> bool:
    """Whether a dtype's histogram has a bin per value (one pass; else min–max first)."""
    return dtype.kind in "ui" and dtype.itemsize <= 2


@dataclass
class _Count:
    """The ``statistics`` stage: the blocks read so far of ``total``, reported as each is."""

    report: ProgressCallback
    total: int
    done: int = 0

    def step(self) -> None:
        self.done += 1
        self.report(ProgressEvent("statistics", self.done, self.total, "block"))


class _Blocks:
    """The ``C×y×x`` blocks covering one scene (of time point ``t`` only, where given), each
    block read counted in ``count``."""

    def __init__(self, image: Image, scene: int, count: _Count, t: int | None = None) -> None:
        sizes = image.sizes
        self.image, self.scene, self.count = image, scene, count
        self.starts = list(
            itertools.product(
                range(sizes["T"]) if t is None else [t],
                range(sizes["Z"]),
                range(0, sizes["Y"], _BLOCK),
                range(0, sizes["X"], _BLOCK),
            )
        )

    @staticmethod
    def number(image: Image) -> int:
        """How many blocks cover a whole scene of ``image``."""
        sizes = image.sizes
        return sizes["T"] * sizes["Z"] * -(-sizes["Y"] // _BLOCK) * -(-sizes["X"] // _BLOCK)

    def read(self) -> Iterator[np.ndarray]:
        """One pass over the blocks."""
        for t, z, y, x in self.starts:
            region = self.image.read(
                S=self.scene, T=t, Z=z, Y=slice(y, y + _BLOCK), X=slice(x, x + _BLOCK)
            )
            yield region[0, 0, :, 0]
            self.count.step()


def _histograms(blocks: _Blocks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel counts, the value of bin 0 and the bin width."""
    n_channels = blocks.image.sizes["C"]
    dtype = blocks.image.dtype
    if _exact(dtype):
        lo = np.full(n_channels, float(np.iinfo(dtype).min))
        width = np.ones(n_channels)
        n_bins = 2 ** (8 * dtype.itemsize)
        counts = np.zeros((n_channels, n_bins), np.int64)
        for block in blocks.read():
            for c in range(n_channels):
                values = block[c].ravel().astype(np.int64) - int(lo[c])
                counts[c] += np.bincount(values, minlength=n_bins)
        return counts, lo, width
    lo = np.full(n_channels, np.inf)
    hi = np.full(n_channels, -np.inf)
    for block in blocks.read():
        flat = block.reshape(n_channels, -1).astype(np.float64)
        finite = np.isfinite(flat)
        lo = np.minimum(lo, np.where(finite, flat, np.inf).min(axis=1, initial=np.inf))
        hi = np.maximum(hi, np.where(finite, flat, -np.inf).max(axis=1, initial=-np.inf))
    lo = np.where(np.isfinite(lo), lo, 0.0)  # a channel with no finite pixel
    hi = np.where(np.isfinite(hi), hi, lo)
    if dtype.kind in "ui":  # integer bins must hold whole values
        width = np.maximum(np.ceil((hi - lo + 1) / _BINS), 1.0)
    else:
        width = np.where(hi > lo, (hi - lo) / (_BINS - 1), 1.0)
    counts = np.zeros((n_channels, _BINS), np.int64)
    for block in blocks.read():
        for c in range(n_channels):
            values = block[c].ravel().astype(np.float64)
            values = values[np.isfinite(values)]
            index = np.clip(np.floor((values - lo[c]) / width[c]), 0, _BINS - 1).astype(np.int64)
            counts[c] += np.bincount(index, minlength=_BINS)
    return counts, lo, width


def _percentile(counts: np.ndarray, lo: float, width: float, percent: float) -> float:
    """``np.percentile`` (linear method) from a histogram whose bin ``i`` holds ``lo + i*width``."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    if n == 0:
        return 0.0
    rank = percent / 100.0 * (n - 1)
    below = int(np.floor(rank))
    frac = rank - below
    first = int(np.searchsorted(cumulative, below, side="right"))
    second = int(np.searchsorted(cumulative, min(below + 1, n - 1), side="right"))
    v1, v2 = lo + first * width, lo + second * width
    return float(v1 + frac * (v2 - v1))
