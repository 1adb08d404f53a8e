"""Out-of-core building blocks for one plane: each reads and writes tile by tile, so the memory
is a few tiles (plus one histogram, or one integer per object), not the plane.

Every function here equals its whole-plane counterpart exactly (tests/analysis/test_tiled_steps.py):

* thresholds come from a histogram accumulated over tiles: one bin per grey value for integer
  images, and for float images scikit-image's own 256 bins between the minimum and the maximum
  (edges and centres in the plane's float type, as numpy makes them), so Otsu and triangle
  equal scikit-image's on the whole plane bit for bit. Li on integer images is scikit-image's
  histogram algorithm (equal too); on float images it iterates with one pass over the tiles
  per step (means summed in float64) and stops when the split no longer changes (scikit-image
  stops when the step is below half the smallest gap between grey values, which needs every
  distinct value). That is scikit-image's level computed in float64 (``threshold_li(plane.
  astype(float64))``) to rounding: at most 3e-15 relative over 2,000 random planes, no pixel
  on the other side. scikit-image iterates a ``float32`` plane (every smoothed plane) in
  ``float32`` arithmetic, which stalls short of that fixed point: up to 1.03e-4 relative
  (1,000 random planes; 3 of them had 1 to 3 pixels on the other side);
* neighbourhood filters (Gaussian smoothing, opening, closing) run on each tile plus a halo
  as wide as the filter reaches (``4 σ`` for the Gaussian, ``2 r`` for opening and closing, an
  erosion then a dilation), so the tile's core equals the whole-plane result;
* object areas are summed over tiles; hole filling is post-processing's whole-plane pass
  (:func:`scopeml.post.planes.fill_holes_tiled`, re-exported here), which labels the background
  tile by tile and fills the background components that do not touch the plane's border.

Watershed splitting and the dense CRF are not here: they stay whole-plane (their result
depends on the whole object), the documented exception.

An ``output`` of ``None`` keeps the result in memory (a numpy array) instead of a zarr store:
the in-memory path of a plane that fits the memory budget. It visits the same tiles in the
same order (so every sum is the same), and labels connected components on the whole array
at once, which gives the same components as the tiled labelling.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scopeml.post.planes import fill_holes_tiled  # re-exported: the one home is scopeml.post
from scopeml.post.planes import open_plane_store as _open_store
from scopeml.post.planes import plane_tiles as _tiles

__all__ = [
    "FLOAT_BINS",
    "above_level",
    "close_tiled",
    "fill_holes_tiled",
    "float_bin_edges",
    "gaussian_tiled",
    "histogram_threshold",
    "levels_found",
    "li_tiled",
    "map_tiles",
    "object_areas_tiled",
    "open_tiled",
    "plane_histogram",
    "remove_by_area_tiled",
    "smooth_finite",
    "threshold_tiled",
]

#: Bins of the histogram of a float plane, as scikit-image's (integer planes: one per value).
FLOAT_BINS = 256
#: Widest integer range given one bin per grey value; wider ranges are binned as floats.
_MAX_INT_BINS = 1 << 24


def map_tiles(
    source: Any,
    output: str | os.PathLike[str] | None,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    halo: int,
    tile_size: int,
    dtype: Any,
) -> Any:
    """Apply a neighbourhood function tile by tile with a halo; write a zarr array.

    ``fn`` gets each tile grown by ``halo`` pixels on every side (cut at the plane's border,
    where it sees what the whole-plane call sees) and the tile's core of its result is kept:
    equal to ``fn(source)`` whenever ``fn`` reaches no further than ``halo`` pixels.

    Examples
    --------
    >>> import tempfile
    >>> plane = np.arange(36.0).reshape(6, 6)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = map_tiles(plane, f"{tmp}/m.zarr", lambda a: ndi.uniform_filter(a, 3),
    ...                     halo=1, tile_size=4, dtype=np.float64)
    ...     bool(np.allclose(out[...], ndi.uniform_filter(plane, 3)))
    True
    """
    shape = tuple(int(s) for s in source.shape)
    out = _open_store(output, shape, dtype, tile_size)
    for region in _tiles(shape, tile_size):
        grown = tuple(
            slice(max(r.start - halo, 0), min(r.stop + halo, n))
            for r, n in zip(region, shape, strict=True)
        )
        result = fn(np.asarray(source[grown]))
        core = tuple(
            slice(r.start - g.start, r.stop - g.start) for r, g in zip(region, grown, strict=True)
        )
        out[region] = result[core].astype(dtype, copy=False)
    return out


def smooth_finite(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (``float32``) in which NaN and infinite pixels stay where they are: a
    pixel whose kernel reaches one is the weighted mean of its finite neighbours (normalised
    convolution), the non-finite pixels stay NaN (no object, as with ``sigma`` 0), and every
    other pixel is :func:`scipy.ndimage.gaussian_filter`'s value bit for bit. Without this, one
    NaN plane of a Z stack made every plane within ``4 σ`` NaN (0 objects in the stack).

    Examples
    --------
    >>> stack = np.ones((3, 4, 4), np.float32)
    >>> stack[1] = np.nan
    >>> smoothed = smooth_finite(stack, 1.0)
    >>> bool(np.isnan(smoothed[1]).all()), bool(np.allclose(smoothed[[0, 2]], 1.0))
    (True, True)
    """
    from scopeml.io.nonfinite import replace_nonfinite

    values = np.asarray(values, np.float32)
    filled, invalid = replace_nonfinite(values[None])  # the one rule: non-finite pixels → 0
    if invalid is None:
        return ndi.gaussian_filter(values, sigma)
    smoothed = ndi.gaussian_filter(filled[0], sigma)
    weight = ndi.gaussian_filter((~invalid).astype(np.float32), sigma)
    reach = 2 * int(4.0 * float(sigma) + 0.5) + 1  # scipy's kernel at truncate=4
    near = ndi.maximum_filter(invalid, size=reach)  # elsewhere the plain filter's own value
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(near, smoothed / weight, smoothed).astype(np.float32, copy=False)
    out[invalid] = np.nan
    return out


def gaussian_tiled(
    source: Any, output: str | os.PathLike[str] | None, sigma: float, *, tile_size: int
) -> Any:
    """Gaussian smoothing (``float32``, as :func:`scipy.ndimage.gaussian_filter` on the plane;
    NaN and infinite pixels kept local, :func:`smooth_finite`) tile by tile with a halo of the
    kernel's radius (``4 σ``).

    Examples
    --------
    >>> import tempfile
    >>> plane = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = gaussian_tiled(plane, f"{tmp}/g.zarr", 1.5, tile_size=16)
    ...     bool(np.allclose(out[...], ndi.gaussian_filter(plane, 1.5)))
    True
    """
    halo = int(4.0 * float(sigma) + 0.5)  # scipy's kernel radius at truncate=4

    def smooth(tile: np.ndarray) -> np.ndarray:
        return smooth_finite(tile, sigma)

    return map_tiles(source, output, smooth, halo=halo, tile_size=tile_size, dtype=np.float32)


def open_tiled(
    mask: Any, output: str | os.PathLike[str] | None, radius: int, *, tile_size: int
) -> Any:
    """:func:`~scopeml.post.morphology.binary_open` tile by tile (halo ``2 r``); exact.

    Examples
    --------
    >>> import tempfile
    >>> from scopeml.post.morphology import binary_open
    >>> m = np.random.default_rng(1).random((30, 30)) > 0.3
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     bool((open_tiled(m, f"{tmp}/o.zarr", 1, tile_size=8)[...] == binary_open(m, 1)).all())
    True
    """
    from scopeml.post.morphology import binary_open

    return map_tiles(mask, output, lambda t: binary_open(t, radius), halo=2 * int(radius),
                     tile_size=tile_size, dtype=bool)  # fmt: skip


def close_tiled(
    mask: Any, output: str | os.PathLike[str] | None, radius: int, *, tile_size: int
) -> Any:
    """:func:`~scopeml.post.morphology.binary_close` tile by tile (halo ``2 r``); exact.

    Examples
    --------
    >>> import tempfile
    >>> from scopeml.post.morphology import binary_close
    >>> m = np.random.default_rng(1).random((30, 30)) > 0.6
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     bool((close_tiled(m, f"{tmp}/c.zarr", 1, tile_size=8)[...] == binary_close(m, 1)).all())
    True
    """
    from scopeml.post.morphology import binary_close

    return map_tiles(mask, output, lambda t: binary_close(t, radius), halo=2 * int(radius),
                     tile_size=tile_size, dtype=bool)  # fmt: skip


def plane_histogram(
    source: Any, *, tile_size: int, region: Any = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The histogram of a plane (of the pixels inside ``region`` when given), read tile by tile.

    Returns ``(counts, bin_centers)``, or ``None`` when there are no pixels or all are equal.
    Integer planes get one bin per grey value (``bin_centers`` are the values), float planes
    ``FLOAT_BINS`` bins between the minimum and the maximum, in the plane's float type: the
    counts and centres :func:`skimage.exposure.histogram` finds on the whole plane, exactly.

    Examples
    --------
    >>> counts, centers = plane_histogram(np.array([[3, 3, 5], [4, 3, 5]]), tile_size=2)
    >>> counts.tolist(), centers.tolist()
    ([3, 1, 2], [3, 4, 5])
    """
    parts = _parts(source, tile_size, region)
    found = _value_range(parts)
    if found is None:
        return None
    low, high = found
    dtype = np.dtype(getattr(source, "dtype", np.float64))
    if dtype.kind in "iub" and int(high) - int(low) < _MAX_INT_BINS:
        n = int(high) - int(low) + 1
        counts = np.zeros(n, np.int64)
        for values in parts():
            counts += np.bincount((values.astype(np.int64) - int(low)).ravel(), minlength=n)
        return counts, np.arange(int(low), int(high) + 1)
    # equal bins by count and range: numpy's fast path puts each pixel in the bin it puts it
    # in on the whole plane, given the same edges (and the same type)
    edges = float_bin_edges(low, high, dtype)
    limits = (edges[0], edges[-1])
    counts = np.zeros(FLOAT_BINS, np.int64)
    for values in parts():
        found, _ = np.histogram(values.astype(edges.dtype, copy=False), bins=FLOAT_BINS,
                                range=limits)  # fmt: skip
        counts += found
    return counts, (edges[:-1] + edges[1:]) / 2


def float_bin_edges(low: Any, high: Any, dtype: Any) -> np.ndarray:
    """The ``FLOAT_BINS + 1`` edges numpy (and so :func:`skimage.exposure.histogram`) gives a
    plane of ``dtype`` whose minimum is ``low`` and maximum ``high``: in the plane's own float
    type (``float64`` for integers too wide for one bin per value, and for a range too narrow
    for distinct edges in that type, which numpy and scikit-image refuse).

    Examples
    --------
    >>> e = float_bin_edges(1.0, 2.0, np.float32)
    >>> e.dtype.name, e.size, float(e[128])
    ('float32', 257, 1.5)
    """
    dtype = np.dtype(dtype)
    work = dtype if dtype.kind == "f" else np.dtype(np.float64)
    try:
        return np.histogram_bin_edges(np.empty(0, work), bins=FLOAT_BINS,
                                      range=(work.type(low), work.type(high)))  # fmt: skip
    except ValueError:  # "too many bins for data range"
        if work == np.float64:
            raise
        return float_bin_edges(low, high, np.float64)


def _value_range(parts: Callable[[], Iterator[np.ndarray]]) -> tuple[Any, Any] | None:
    """The minimum and maximum pixel, or ``None`` when there are none or all are equal."""
    low, high = None, None
    for values in parts():
        lo, hi = values.min(), values.max()
        low = lo if low is None else min(low, lo)
        high = hi if high is None else max(high, hi)
    return None if low is None or low == high else (low, high)


def _parts(source: Any, tile_size: int, region: Any) -> Callable[[], Iterator[np.ndarray]]:
    """A function that yields :func:`_pixels` again on each call; an in-memory plane's pixels
    are gathered once (the same arrays in the same order, so the same sums)."""
    if isinstance(source, np.ndarray):
        gathered = list(_pixels(source, tile_size, region))
        return lambda: iter(gathered)
    return lambda: _pixels(source, tile_size, region)


def _pixels(source: Any, tile_size: int, region: Any) -> Iterator[np.ndarray]:
    """The finite pixels of each tile (inside ``region`` when given)."""
    for tile in _tiles(source.shape, tile_size):
        values = np.asarray(source[tile])
        if region is not None:
            values = values[np.asarray(region[tile], bool)]
        if values.dtype.kind == "f":
            values = values[np.isfinite(values)]
        if values.size:
            yield values


def li_tiled(source: Any, *, tile_size: int, region: Any = None, max_iter: int = 1000) -> float:
    """Li's threshold of a float plane, iterating with one pass over the tiles per step:
    :func:`skimage.filters.threshold_li` of the plane as ``float64`` to rounding (module notes).

    Examples
    --------
    >>> from skimage.filters import threshold_li
    >>> plane = np.random.default_rng(0).gamma(2.0, size=(50, 40)).astype(np.float32)
    >>> bool(np.isclose(li_tiled(plane, tile_size=16), threshold_li(plane), rtol=1e-4))
    True
    """
    parts = _parts(source, tile_size, region)
    total, n, low = 0.0, 0, np.inf
    for values in parts():
        total += float(values.sum(dtype=np.float64))
        n += values.size
        low = min(low, float(values.min()))
    t_next, split = total / n - low, -1
    for _ in range(max_iter):
        t_curr = t_next
        sums, counts = np.zeros(2), np.zeros(2, np.int64)
        for values in parts():
            shifted = values.astype(np.float64) - low
            fore = shifted > t_curr
            sums += (shifted[fore].sum(), shifted[~fore].sum())
            counts += (int(fore.sum()), int((~fore).sum()))
        mean_fore, mean_back = sums / np.maximum(counts, 1)
        if mean_back == 0 or counts[0] == split:
            break
        split = counts[0]
        t_next = float((mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore)))
    return float(t_next + low)


def histogram_threshold(counts: np.ndarray, centers: np.ndarray, method: str) -> float:
    """Otsu, Li or triangle threshold of a histogram, as scikit-image computes them from the
    image's histogram (Otsu through ``threshold_otsu(hist=...)``; Li and triangle are
    scikit-image's histogram algorithms, which take no histogram argument).

    Examples
    --------
    >>> counts, centers = np.array([5, 1, 0, 1, 5]), np.arange(10, 15)
    >>> histogram_threshold(counts, centers, "otsu")
    11.0
    """
    counts = np.asarray(counts)
    centers = np.asarray(centers)
    if method == "otsu":
        from skimage.filters import threshold_otsu

        return float(threshold_otsu(hist=(counts, centers)))
    if method == "li":
        return _li(counts.astype(np.float32), centers)
    if method == "triangle":
        return _triangle(counts, centers)
    raise ValueError(f"unknown threshold method {method!r}")


def _li(hist: np.ndarray, centers: np.ndarray) -> float:
    """scikit-image's ``threshold_li`` for integer images (histogram path)."""
    low = centers[0]
    values = centers - low
    tolerance = 0.5 if centers.dtype.kind in "iu" else float(np.min(np.diff(values))) / 2
    t_next = float(np.average(values, weights=hist))
    t_curr = -2 * tolerance
    while abs(t_next - t_curr) > tolerance:
        t_curr = t_next
        fore = values > t_curr
        mean_fore = np.average(values[fore], weights=hist[fore])
        mean_back = np.average(values[~fore], weights=hist[~fore])
        if mean_back == 0:
            break
        t_next = float((mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore)))
    return float(t_next + low)


def _triangle(hist: np.ndarray, centers: np.ndarray) -> float:
    """scikit-image's ``threshold_triangle`` on a histogram."""
    hist = np.asarray(hist, np.float64)
    nbins = len(hist)
    arg_peak = int(np.argmax(hist))
    peak = hist[arg_peak]
    arg_low, arg_high = np.flatnonzero(hist)[[0, -1]]
    flip = arg_peak - arg_low < arg_high - arg_peak
    if flip:
        hist = hist[::-1]
        arg_low = nbins - arg_high - 1
        arg_peak = nbins - arg_peak - 1
    width = arg_peak - arg_low
    x1 = np.arange(width)
    y1 = hist[x1 + arg_low]
    norm = np.sqrt(peak**2 + width**2)
    length = (peak / norm) * x1 - (width / norm) * y1
    arg_level = int(np.argmax(length)) + arg_low
    if flip:
        arg_level = nbins - arg_level - 1
    return float(centers[arg_level])


def above_level(values: np.ndarray, level: Any, *, dark: bool = False) -> np.ndarray:
    """``values > level`` (``dark``: ``<``) with NaN and infinite pixels never foreground:
    the README writes them as label 0, as model classes do, and an inf pixel passes every
    level (a row of +inf joined the objects it touched). ``level`` may be an array (NaN: none).

    Examples
    --------
    >>> above_level(np.array([1.0, 9.0, np.inf, np.nan]), 5.0).tolist()
    [False, True, False, False]
    >>> above_level(np.array([1.0, 9.0, -np.inf]), 5.0, dark=True).tolist()
    [True, False, False]
    """
    values = np.asarray(values)
    with np.errstate(invalid="ignore"):
        mask = values < level if dark else values > level
    if values.dtype.kind in "fc":
        mask &= np.isfinite(values)
    return mask


class _Compare:
    """A lazy :func:`above_level` mask, cut to ``region``: read a tile at a time."""

    def __init__(self, values: Any, level: float, dark: bool, region: Any) -> None:
        self.values, self.level, self.dark, self.region = values, level, dark, region
        self.shape, self.dtype = tuple(values.shape), np.dtype(bool)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        mask = above_level(np.asarray(self.values[key]), self.level, dark=self.dark)
        return mask if self.region is None else mask & np.asarray(self.region[key], bool)


#: The automatic levels :func:`threshold_tiled` computes inside :func:`levels_found`.
_LEVELS: ContextVar[list[float | None] | None] = ContextVar("scopeml_levels", default=None)


@contextmanager
def levels_found() -> Iterator[list[float | None]]:
    """The automatic threshold levels computed inside the block, in order (``None``: a region
    without a level), so an analysis records the level each class's objects were cut at
    (CellProfiler's FinalThreshold) without every segmenter passing it up."""
    found: list[float | None] = []
    token = _LEVELS.set(found)
    try:
        yield found
    finally:
        _LEVELS.reset(token)


def threshold_tiled(
    source: Any,
    output: str | os.PathLike[str] | None,
    method: str,
    *,
    tile_size: int,
    value: float | None = None,
    dark: bool = False,
    region: Any = None,
    adjust: Callable[[float], Any] | None = None,
) -> tuple[Any, float | None]:
    """Threshold a plane tile by tile into a boolean zarr mask; return it and the level.

    An automatic level (``otsu``, ``li``, ``triangle``) comes from :func:`plane_histogram`
    of the pixels inside ``region`` (a boolean array-like, the parent's objects), then
    ``adjust`` (a settings' factor and bounds); a region without pixels, or with one grey
    value only, gives an empty mask and level ``None``.

    Examples
    --------
    >>> import tempfile
    >>> plane = np.array([[0, 0, 10, 10], [0, 0, 10, 12]], np.uint16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     mask, level = threshold_tiled(plane, f"{tmp}/t.zarr", "otsu", tile_size=2)
    ...     mask[...].astype(int).tolist(), level
    ([[0, 0, 1, 1], [0, 0, 1, 1]], 0.0)
    """
    if method == "fixed":
        level: float | None = float(value)  # type: ignore[arg-type]
    elif method == "li" and np.dtype(source.dtype).kind == "f":
        plain = _value_range(_parts(source, tile_size, region)) is None
        level = None if plain else li_tiled(source, tile_size=tile_size, region=region)
    else:
        found = plane_histogram(source, tile_size=tile_size, region=region)
        level = None if found is None else histogram_threshold(*found, method)
    if method != "fixed" and level is not None and adjust is not None:
        level = float(adjust(level))
    if method != "fixed" and (found := _LEVELS.get()) is not None:
        found.append(None if level is None else float(level))
    out = _open_store(output, source.shape, bool, tile_size)
    if level is None:
        return out, None
    lazy = _Compare(source, level, dark, region)
    for tile in _tiles(source.shape, tile_size):
        out[tile] = lazy[tile]
    return out, level


def object_areas_tiled(labels: Any, *, tile_size: int) -> np.ndarray:
    """Pixel count per object id (index = id; index 0 = background), summed over tiles.

    Examples
    --------
    >>> object_areas_tiled(np.array([[1, 1, 0], [2, 0, 1]]), tile_size=2).tolist()
    [2, 3, 1]
    """
    areas = np.zeros(1, np.int64)
    for tile in _tiles(labels.shape, tile_size):
        found = np.bincount(np.asarray(labels[tile]).ravel().astype(np.intp))
        if found.size > areas.size:
            areas = np.concatenate([areas, np.zeros(found.size - areas.size, np.int64)])
        areas[: found.size] += found
    return areas


def remove_border_tiled(
    labels: Any, output: str | os.PathLike[str] | None, *, tile_size: int
) -> Any:
    """Drop whole objects touching the plane's edge (ids kept), as ``remove_border`` on the
    whole plane; the edge read a strip at a time.

    Examples
    --------
    >>> labels = np.array([[0, 0, 0, 2], [0, 1, 0, 0], [0, 0, 0, 0]], np.int32)
    >>> remove_border_tiled(labels, None, tile_size=2)[...].tolist()
    [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    """
    from scopeml.analysis.segment import border_ids

    edge = border_ids(labels)
    out = _open_store(output, labels.shape, labels.dtype, tile_size)
    for tile in _tiles(labels.shape, tile_size):
        values = np.asarray(labels[tile])
        out[tile] = np.where(np.isin(values, edge), 0, values)
    return out


def remove_by_area_tiled(
    labels: Any,
    output: str | os.PathLike[str] | None,
    *,
    tile_size: int,
    min_size: int | None = None,
    max_size: int | None = None,
) -> Any:
    """Drop whole objects smaller than ``min_size`` / larger than ``max_size`` pixels (ids kept),
    as ``remove_small`` / ``remove_large`` on the whole plane; areas summed over tiles.

    Examples
    --------
    >>> import tempfile
    >>> labels = np.array([[1, 1, 0, 2], [1, 0, 0, 0]], np.int32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     remove_by_area_tiled(labels, f"{tmp}/r.zarr", tile_size=2, min_size=2)[...].tolist()
    [[1, 1, 0, 0], [1, 0, 0, 0]]
    """
    areas = object_areas_tiled(labels, tile_size=tile_size)
    drop = np.zeros(areas.size, bool)
    if min_size is not None:
        drop |= areas < min_size
    if max_size is not None:
        drop |= areas > max_size
    drop[0] = False
    out = _open_store(output, labels.shape, labels.dtype, tile_size)
    for tile in _tiles(labels.shape, tile_size):
        values = np.asarray(labels[tile])
        out[tile] = np.where(drop[values.astype(np.intp)], 0, values)
    return out
