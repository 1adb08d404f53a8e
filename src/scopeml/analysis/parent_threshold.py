"""Automatic thresholds per parent object (a threshold segmenter's ``scope: per_parent``).

With ``scope: pooled`` (the default) a child class's Otsu, Li or triangle level is computed once
from the pixels of all its parent's objects together (:func:`scopeml.analysis.tiled.threshold_tiled`
with a region); with ``per_parent`` each parent object gets its own level from its own pixels,
as CellProfiler's per-object thresholding does, so a dim nucleus is thresholded on its own
histogram rather than a bright neighbour's.

The statistics are accumulated per parent id over tiles, so a parent that spans tiles gets the
level it gets on the whole plane: one pass finds each parent's pixel range, a second fills its
histogram with the bins the pooled threshold uses (one per grey value for integer planes, 256
between the parent's minimum and maximum for float planes, with the edges numpy makes in the
plane's float type and each pixel placed as :func:`numpy.histogram` places it), and the level
is the pooled method's on that histogram (:func:`~scopeml.analysis.tiled.histogram_threshold`):
scikit-image's on the parent's pixels, bit for bit. Li on float planes iterates as
:func:`~scopeml.analysis.tiled.li_tiled` does, all parents together, one pass over the tiles per
step. Memory: the plane's tiles plus the histograms, which grow with the number of parents
(4 KiB per parent for float planes, 8 bytes per grey value in a parent's range for integer
ones; integer planes whose parents' ranges add up past :data:`MAX_INT_BINS` are binned as
float). A parent without pixels or with one grey value only gets no level (no child pixels),
as an empty or flat region does for the pooled threshold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from scopeml.analysis.tiled import (
    FLOAT_BINS,
    above_level,
    float_bin_edges,
    histogram_threshold,
)
from scopeml.post.planes import open_plane_store, plane_tiles

__all__ = ["MAX_INT_BINS", "parent_levels", "threshold_per_parent", "threshold_per_parent_tiled"]

#: Most one-per-grey-value bins of all parents together (128 MiB of counts) for an integer plane.
MAX_INT_BINS = 1 << 24

_Pairs = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]


def parent_levels(source: Any, parent: Any, method: str, *, tile_size: int) -> np.ndarray:
    """The automatic threshold of each parent object from its own pixels, tile by tile.

    Parameters
    ----------
    source
        The (smoothed) channel, an array-like ``(Z×)Y×X`` read a tile at a time.
    parent
        The parent class's labels (ids ≥ 1; 0 background), the same shape.
    method
        ``otsu``, ``li`` or ``triangle``.

    Returns
    -------
    ``float64`` levels indexed by parent id (index 0 and every id without a level: NaN).

    Examples
    --------
    >>> plane = np.array([[1, 1, 5, 5, 0, 20, 20, 60, 60]], np.uint16)
    >>> parent = np.array([[1, 1, 1, 1, 0, 2, 2, 2, 2]])
    >>> parent_levels(plane, parent, "otsu", tile_size=4).tolist()
    [nan, 1.0, 20.0]
    """
    pairs = _pairs(source, parent, tile_size)
    n, count, low, high = _ranges(pairs, np.dtype(source.dtype))
    levels = np.full(n, np.nan)
    has = (count > 0) & (low < high)
    if not has.any():
        return levels
    if method == "li" and np.dtype(source.dtype).kind == "f":
        levels[has] = _li_float(pairs, n, has, low)[has]
        return levels
    integer = np.dtype(source.dtype).kind in "iub"
    widths = np.where(has, high, 0) - np.where(has, low, 0) + has if integer else None
    if widths is not None and int(widths.sum()) <= MAX_INT_BINS:
        counts, offsets = _int_histograms(pairs, widths, low)
        for p in np.flatnonzero(has):
            lo, w = int(low[p]), int(widths[p])
            hist = counts[offsets[p] : offsets[p] + w]
            levels[p] = histogram_threshold(hist, np.arange(lo, lo + w), method)
        return levels
    counts, edges, types, row = _float_histograms(pairs, has, low.astype(np.float64),
                                           high.astype(np.float64), source.dtype)  # fmt: skip
    for p in np.flatnonzero(has):
        e = edges[row[p]].astype(types[row[p]])  # the edges as numpy made them
        levels[p] = histogram_threshold(counts[row[p]], (e[:-1] + e[1:]) / 2, method)
    return levels


def threshold_per_parent(
    values: np.ndarray, parent: np.ndarray, levels: np.ndarray, *, dark: bool = False
) -> np.ndarray:
    """Pixels above (``dark``: below) their parent's level; outside the parents, in a parent
    without a level, or NaN or infinite (:func:`~scopeml.analysis.tiled.above_level`), ``False``.

    Examples
    --------
    >>> threshold_per_parent(np.array([3, 9, 3, 9]), np.array([1, 1, 0, 2]),
    ...                      np.array([np.nan, 5.0, np.nan])).tolist()
    [False, True, False, False]
    """
    ids = np.asarray(parent).astype(np.intp, copy=False)
    level = np.full(ids.shape, np.nan)
    inside = (ids > 0) & (ids < levels.size)
    level[inside] = levels[ids[inside]]
    return above_level(values, level, dark=dark)


def threshold_per_parent_tiled(
    source: Any,
    output: str | os.PathLike[str] | None,
    method: str,
    *,
    tile_size: int,
    parent: Any,
    dark: bool = False,
    adjust: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[Any, np.ndarray]:
    """Threshold a plane tile by tile with one level per parent object (:func:`parent_levels`,
    then ``adjust``: a settings' factor and bounds) into a boolean zarr mask (numpy when
    ``output`` is ``None``); return it and the levels.

    Examples
    --------
    >>> plane = np.array([[1, 1, 5, 5, 0, 20, 20, 60, 60]], np.uint16)
    >>> parent = np.array([[1, 1, 1, 1, 0, 2, 2, 2, 2]])
    >>> mask, _ = threshold_per_parent_tiled(plane, None, "otsu", tile_size=4, parent=parent)
    >>> mask.astype(int).tolist()
    [[0, 0, 1, 1, 0, 0, 0, 1, 1]]
    """
    levels = parent_levels(source, parent, method, tile_size=tile_size)
    levels = levels if adjust is None else adjust(levels)
    out = open_plane_store(output, source.shape, bool, tile_size)
    for tile in plane_tiles(source.shape, tile_size):
        out[tile] = threshold_per_parent(source[tile], parent[tile], levels, dark=dark)
    return out, levels


def _pairs(source: Any, parent: Any, tile_size: int) -> _Pairs:
    """A function yielding, per tile, the parent ids and values of the pixels inside parents
    (finite values only); an in-memory plane's are gathered once."""

    def pixels() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for tile in plane_tiles(source.shape, tile_size):
            ids = np.asarray(parent[tile]).ravel()
            inside = ids > 0
            if not inside.any():
                continue
            values = np.asarray(source[tile]).ravel()[inside]
            ids = ids[inside].astype(np.intp)
            yield ids, values

    if isinstance(source, np.ndarray) and isinstance(parent, np.ndarray):
        gathered = list(pixels())
        return lambda: iter(gathered)
    return pixels


def _ranges(pairs: _Pairs, dtype: np.dtype) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Number of ids (max id + 1), and per id the count, minimum and maximum of finite pixels."""
    n = 1
    for ids, _ in pairs():
        n = max(n, int(ids.max()) + 1)
    if dtype.kind in "iub":
        work = np.int64
        low = np.full(n, np.iinfo(np.int64).max, work)
        high = np.full(n, np.iinfo(np.int64).min, work)
    else:
        work = np.float64
        low, high = np.full(n, np.inf), np.full(n, -np.inf)
    count = np.zeros(n, np.int64)
    for ids, values in pairs():
        if dtype.kind == "f":
            finite = np.isfinite(values)
            ids, values = ids[finite], values[finite]
        values = values.astype(work, copy=False)
        count += np.bincount(ids, minlength=n)
        np.minimum.at(low, ids, values)
        np.maximum.at(high, ids, values)
    return n, count, low, high


def _int_histograms(
    pairs: _Pairs, widths: np.ndarray, low: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One bin per grey value of each parent's range, all parents in one flat array."""
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])
    counts = np.zeros(int(widths.sum()), np.int64)
    for ids, values in pairs():
        keep = widths[ids] > 0
        ids = ids[keep]
        keys = offsets[ids] + (values[keep].astype(np.int64) - low[ids])
        if keys.size:
            first = int(keys.min())
            found = np.bincount(keys - first)
            counts[first : first + found.size] += found
    return counts, offsets


def _float_histograms(
    pairs: _Pairs, has: np.ndarray, low: np.ndarray, high: np.ndarray, dtype: Any
) -> tuple[np.ndarray, np.ndarray, list[np.dtype], np.ndarray]:
    """``FLOAT_BINS`` equal bins between each parent's minimum and maximum, each pixel in the
    bin :func:`numpy.histogram` puts it in on the parent's pixels (their edges:
    :func:`~scopeml.analysis.tiled.float_bin_edges`, in the plane's float type): rows of counts
    and edges (``float64``, exact) per parent with a level, the type numpy made each row's
    edges in, and the row of each id (-1: none)."""
    row = np.full(has.size, -1, np.intp)
    row[has] = np.arange(int(has.sum()))
    edges = np.zeros((int(has.sum()), FLOAT_BINS + 1))
    types = []
    for i, (lo, hi) in enumerate(zip(low[has], high[has], strict=True)):
        found = float_bin_edges(lo, hi, dtype)
        edges[i] = found  # float32 edges are exact in float64
        types.append(found.dtype)
    counts = np.zeros((int(has.sum()), FLOAT_BINS), np.int64)
    for ids, values in pairs():
        values = values.astype(np.float64)
        keep = np.isfinite(values) & has[ids]
        ids, values = ids[keep], values[keep]
        if not ids.size:
            continue
        r = row[ids]
        index = ((values - low[ids]) / (high[ids] - low[ids]) * FLOAT_BINS).astype(np.intp)
        index[index == FLOAT_BINS] -= 1
        index[values < edges[r, index]] -= 1
        index[(values >= edges[r, index + 1]) & (index != FLOAT_BINS - 1)] += 1
        keys = r * FLOAT_BINS + index
        first = int(keys.min())
        found = np.bincount(keys - first)
        counts.reshape(-1)[first : first + found.size] += found
    return counts, edges, types, row


def _li_float(pairs: _Pairs, n: int, has: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Li's level of each parent with a level, iterated as
    :func:`~scopeml.analysis.tiled.li_tiled` iterates one region (stops per parent when its
    split no longer changes), all parents in one pass over the tiles per step."""

    def finite() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for ids, values in pairs():
            values = values.astype(np.float64)
            keep = np.isfinite(values) & has[ids]
            yield ids[keep], values[keep] - low[ids[keep]]

    total, count = np.zeros(n), np.zeros(n, np.int64)
    for ids, shifted in finite():
        total += np.bincount(ids, weights=shifted, minlength=n)
        count += np.bincount(ids, minlength=n)
    t_next = np.where(has, total / np.maximum(count, 1), np.nan)
    split = np.full(n, -1, np.int64)
    active = has.copy()
    for _ in range(1000):
        if not active.any():
            break
        t_curr = t_next.copy()
        sums, counts = np.zeros((2, n)), np.zeros((2, n), np.int64)
        for ids, shifted in finite():
            keep = active[ids]  # converged parents' pixels are not read again
            ids, shifted = ids[keep], shifted[keep]
            fore = shifted > t_curr[ids]
            sums[0] += np.bincount(ids[fore], weights=shifted[fore], minlength=n)
            sums[1] += np.bincount(ids[~fore], weights=shifted[~fore], minlength=n)
            counts[0] += np.bincount(ids[fore], minlength=n)
            counts[1] += np.bincount(ids[~fore], minlength=n)
        mean_fore, mean_back = sums / np.maximum(counts, 1)
        done = active & ((mean_back == 0) | (counts[0] == split))
        active &= ~done
        split[active] = counts[0][active]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
        t_next[active] = step[active]
    return t_next + low
