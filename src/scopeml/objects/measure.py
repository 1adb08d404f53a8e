"""Per-object measurements of an instance-label image, vectorised over all objects at once.

One run-length pass over the label image gives area, bounding box, centroid and central moments
(closed-form sums per run, so the cost is per run, not per pixel) and the ellipse and Hu
features derived from them; per-channel intensity statistics are ``np.bincount`` / ufunc ``.at``
over the foreground pixels. In 2-D the shape features are also computed for all objects
together and equal scikit-image's: the perimeter from neighbour patterns at border pixels, the
convex area by counting pixel centres in each hull exactly (integer arithmetic on doubled
coordinates), Feret diameters by batched calipers; only the OpenCV hull call is per object. In
3-D the shape features loop over per-object crops, each hull filled row by row. Names follow
scikit-image, family first (``area``, ``area_convex``, ``intensity_mean_C0``); columns in
physical units carry the unit (``area_um2``, ``feret_diameter_max_um``).

Not in ``regionprops_table``: ``feret_diameter_min``, ``circularity`` (4π·area/perimeter², with
regionprops' ``perimeter_crofton``: the 4-connected ``perimeter`` makes a 10×10 square 0.97 and
a disc of radius 100 0.82)
and ``intensity_{sum,median}_<channel>``; NaN and infinite pixels are left out of the
intensity statistics (regionprops returns NaN).

Differences from ``regionprops_table``, all at rounding level: intensity statistics are
accumulated in float64 (regionprops uses the image's dtype, e.g. float32 sums); where
``moments_central-1-1`` is exactly 0 here but ±1e-15 there, ``orientation`` may read +π/2 for
-π/2 (the same axis).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from scopeml.errors import InvalidImageError, InvalidLabelsError, find_stack_level

SPATIAL = "ZYX"
_STATS = ("mean", "min", "max", "std", "sum", "median")
#: ``DataFrame.attrs`` key under which :func:`_measure` hands on how many of its objects have
#: NaN or infinite intensities (popped by the caller, which warns once per run).
NONFINITE = "scopeml_nonfinite_objects"


def measure_objects(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    *,
    pixel_sizes: Mapping[str, float] | Sequence[float] | None = None,
    channel_names: Sequence[str] | None = None,
    shape_features: bool = True,
) -> pd.DataFrame:
    """Measure every object of an instance-label image; one row per object id.

    Parameters
    ----------
    labels
        ``(Z×)Y×X`` non-negative integer instance labels; 0 = background, each id ≥ 1 one object.
    image
        Intensities for per-channel statistics: ``(Z×)Y×X`` (one channel) or ``C×(Z×)Y×X``.
    pixel_sizes
        Micrometres per pixel, keyed by axis letter (``{"Y": 0.2, "X": 0.2}``) or one value per
        axis of ``labels``; adds physical columns (``area_um2``, ``centroid_um-0``, …). The
        ellipse axes in µm (``axis_major_length_um``) take each axis's size, a Z stack's Z step
        too, as ``regionprops(..., spacing=)``; the perimeters, which need square pixels, are
        given in µm only for those.
    channel_names
        Suffixes of the intensity columns; default ``C0, C1, …``.
    shape_features
        Also compute the shape features (perimeter, circularity, convex area, solidity, Feret
        diameters); off makes 2-D measurement about twice as fast, 3-D (per-object crops)
        much more.

    Returns
    -------
    pandas.DataFrame
        Pixel-unit columns named as in ``skimage.measure.regionprops_table`` (``label``,
        ``area``, ``centroid-0``, ``bbox-0``, ``extent``, ``moments_central-0-2``,
        ``moments_hu-0``, ``eccentricity``, ``orientation``, ``perimeter``, ``solidity``, …),
        plus ``feret_diameter_min``, ``circularity`` (2-D, with the shape features:
        4π·area/``perimeter_crofton``²: about 1 for a disc, π/4 for a square, less for
        elongated or ragged shapes; objects of a few pixels may read above 1) and
        ``intensity_{mean,min,max,std,sum,median}_<channel>``. NaN and infinite pixels are
        left out of the intensity statistics, with one warning naming how many objects have
        them (an object without a finite pixel reads NaN).

    Examples
    --------
    >>> labels = np.zeros((6, 8), np.int32)
    >>> labels[1:3, 1:4] = 1
    >>> labels[4:6, 5:8] = 2
    >>> table = measure_objects(labels, pixel_sizes={"Y": 0.5, "X": 0.5})
    >>> table[["label", "area", "area_um2", "centroid-1"]].to_numpy().tolist()
    [[1.0, 6.0, 1.5, 2.0], [2.0, 6.0, 1.5, 6.0]]
    """
    labels = _check_labels(labels)
    channels = _check_image(image, labels.shape)
    spacing = _parse_spacing(pixel_sizes, labels.ndim)
    table = _measure(labels, channels, spacing, channel_names, shape_features, offset=None)
    warn_nonfinite(table.attrs.pop(NONFINITE), len(table))
    return table


def warn_nonfinite(count: int, total: int, path: Any = None) -> None:
    """One warning for a whole measurement: how many objects have NaN or infinite pixels
    (their intensity statistics leave those pixels out)."""
    if count:
        where = f"{path}: " if path else ""
        warnings.warn(
            f"{where}{count} of {total} objects have NaN or infinite intensities; their "
            "intensity statistics leave those pixels out (NaN where an object has no finite "
            "pixel)",
            UserWarning,
            stacklevel=find_stack_level(),
        )


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise InvalidLabelsError(f"labels must be 2-D or 3-D; got shape {labels.shape}")
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InvalidLabelsError(f"labels must be integers; got dtype {labels.dtype}")
    if np.issubdtype(labels.dtype, np.signedinteger) and labels.size and labels.min() < 0:
        raise InvalidLabelsError(f"labels must be non-negative; found {labels.min()}")
    if labels.dtype == np.uint64 and labels.size and labels.max() > np.iinfo(np.int64).max:
        raise InvalidLabelsError(  # the tables' label column is int64: they read as negative
            f"object ids up to {labels.max()}; ids must be below 2**63 (number the objects "
            "1..n first: scopeml objects label)"
        )
    return labels


def _check_image(image: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """Return the image as ``C×(Z×)Y×X`` or None."""
    if image is None:
        return None
    image = np.asarray(image)
    if image.shape == shape:
        return image[np.newaxis]
    if image.ndim == len(shape) + 1 and image.shape[1:] == shape:
        return image
    raise InvalidImageError(
        f"image has shape {image.shape}; labels have shape {shape} "
        "(image must be (Z×)Y×X or C×(Z×)Y×X of the same size)"
    )


def _parse_spacing(
    pixel_sizes: Mapping[str, float] | Sequence[float] | None, ndim: int
) -> np.ndarray | None:
    if pixel_sizes is None:
        return None
    if isinstance(pixel_sizes, Mapping):
        axes = SPATIAL[-ndim:]
        if not all(pixel_sizes.get(a) for a in axes):
            return None  # physical size unknown along some axis: stay in pixels
        spacing = np.array([float(pixel_sizes[a]) for a in axes])
    else:
        spacing = np.asarray(pixel_sizes, dtype=float)
        if spacing.shape != (ndim,):
            raise InvalidLabelsError(f"{spacing.size} pixel sizes given for {ndim}-D labels")
    if not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise InvalidLabelsError(f"pixel sizes must be positive; got {spacing.tolist()}")
    return spacing


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the object ids present (sorted) and ``labels`` mapped to 0..n (0 = background)."""
    flat = labels.ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= 4 * flat.size + 1024:
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = False
        ids = np.flatnonzero(present)
        lut = np.zeros(top + 1, np.int32 if ids.size < 2**31 - 1 else np.intp)
        lut[ids] = np.arange(1, ids.size + 1)
        index = lut[flat]
    else:
        ids, index = np.unique(flat, return_inverse=True)
        if ids.size and ids[0] == 0:
            ids = ids[1:]
        else:
            index = index + 1
    return ids.astype(np.int64), index.reshape(labels.shape)


def _measure(
    labels: np.ndarray,
    channels: np.ndarray | None,
    spacing: np.ndarray | None,
    channel_names: Sequence[str] | None,
    shape_features: bool,
    offset: Sequence[int] | None,
    keep_ids: np.ndarray | None = None,
) -> pd.DataFrame:
    """Measure all objects of ``labels``; with ``keep_ids``, return only those (and compute the
    per-object crop features only for them)."""
    ids, index = _compact(labels)
    n = ids.size
    keep = np.ones(n, bool) if keep_ids is None else np.isin(ids, keep_ids)
    runs = _runs(index)
    origin = np.zeros(labels.ndim, np.int64) if offset is None else np.asarray(offset, np.int64)
    cols: dict[str, np.ndarray] = {"label": ids}
    found, mu = _run_columns(runs, labels.shape, origin, n)
    cols.update(found)
    nonfinite = np.zeros(n, bool)  # objects with a NaN or infinite intensity in some channel
    if channels is not None:
        found, nonfinite = _intensity_columns(index, runs, cols["area"], channels, channel_names)
        cols.update(found)
    cols = {name: values[keep] for name, values in cols.items()}
    if shape_features:
        cols.update(_shape_columns(index, keep, spacing, cols["area"]))
    if spacing is not None:
        cols.update(_physical_columns(cols, spacing, mu[..., keep]))
    table = pd.DataFrame(cols)
    table.attrs[NONFINITE] = int(np.count_nonzero(nonfinite[keep]))
    return table


def _run_columns(
    runs: _Runs, shape: tuple[int, ...], origin: np.ndarray, n: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Area, bounding box, centroid, extent, ellipse and moment columns of all ``n`` objects,
    from the runs alone (one pass, per run, whatever the object sizes); bounding box and
    centroid are shifted by ``origin`` (a tile's place in the whole image). Also returns the
    central moments, from which :func:`_physical_columns` takes the ellipse in µm."""
    ndim = len(shape)
    lines = np.unravel_index(runs.line, shape[:-1])
    length = (runs.stop - runs.start).astype(np.float64)
    area = np.bincount(runs.obj, length, n + 1)[1:].astype(np.float64)  # int64 when empty
    cols = {"area": area}
    lows, highs = _bounding_boxes(runs, lines, n)
    for d in range(ndim):
        cols[f"bbox-{d}"] = lows[d] + origin[d]
    for d in range(ndim):
        cols[f"bbox-{ndim + d}"] = highs[d] + origin[d]
    mu, centroid = _central_moments(runs, lines, area, n)
    for d in range(ndim):
        cols[f"centroid-{d}"] = centroid[d] + origin[d]
    cols["equivalent_diameter_area"] = (2 * ndim * area / np.pi) ** (1 / ndim)
    box = np.prod([highs[d] - lows[d] for d in range(ndim)], axis=0)
    cols["extent"] = area / np.maximum(box, 1)  # regionprops' extent: area / bounding box
    cols.update(_ellipse_features(mu, ndim))
    for powers in product(range(4), repeat=ndim):
        cols["moments_central-" + "-".join(map(str, powers))] = mu[powers]
    if ndim == 2:
        for i, hu in enumerate(_hu_moments(mu)):
            cols[f"moments_hu-{i}"] = hu
    return cols, mu


def _bounding_boxes(
    runs: _Runs, lines: tuple[np.ndarray, ...], n: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per axis, each object's first and past-the-end coordinate (``bbox``'s two halves): a
    min/max over runs, as each run covers one line of the leading axes and a span of the last."""
    lows, highs = [], []
    for low, high in [(c, c + 1) for c in lines] + [(runs.start, runs.stop)]:
        lows.append(np.full(n + 1, np.iinfo(np.int64).max))
        highs.append(np.full(n + 1, -1))
        np.minimum.at(lows[-1], runs.obj, low)
        np.maximum.at(highs[-1], runs.obj, high)
    return [low[1:] for low in lows], [high[1:] for high in highs]


def _intensity_columns(
    index: np.ndarray,
    runs: _Runs,
    area: np.ndarray,
    channels: np.ndarray,
    channel_names: Sequence[str] | None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``intensity_<stat>_<channel>`` columns of all objects, and which objects have a NaN or
    infinite pixel in some channel (so that the caller can warn once for a whole run).

    The foreground pixels in raster order are the runs' pixels in order, so each channel is
    read once and each run's pixels start at the cumulative run length.
    """
    names = list(channel_names) if channel_names else [f"C{c}" for c in range(len(channels))]
    if len(names) != len(channels):
        raise InvalidImageError(f"{len(names)} channel names for {len(channels)} channels")
    n = area.size
    cols: dict[str, np.ndarray] = {}
    nonfinite = np.zeros(n, bool)
    fg = (index > 0).ravel()
    first = np.r_[0, np.cumsum(runs.stop - runs.start)[:-1]]
    for name, channel in zip(names, channels, strict=True):
        if n:
            values = channel.ravel()[fg]
            found, bad = _intensity_features(values, runs, first, area, name, n)
            cols.update(found)
            nonfinite |= bad > 0
        else:  # no objects: empty columns of the same names, so per-image tables concatenate
            cols.update({f"intensity_{s}_{name}": np.zeros(0) for s in _STATS})
    return cols, nonfinite


def _shape_columns(
    index: np.ndarray, keep: np.ndarray, spacing: np.ndarray | None, area: np.ndarray
) -> dict[str, np.ndarray]:
    """Shape features of the kept objects (``area`` is theirs): in 2-D for all objects at once
    (hulls, Feret diameters, both perimeters and circularity), in 3-D from per-object crops."""
    if index.ndim != 2:
        kept = [s for s, k in zip(ndi.find_objects(index), keep, strict=True) if k]
        return _shape_features_3d(index, kept, np.flatnonzero(keep) + 1, spacing)
    n = keep.size
    cols = _shape_features_2d(_runs(index), keep, spacing)
    cols["perimeter"] = _perimeters(index, n)[keep]
    cols["perimeter_crofton"] = crofton = _perimeters_crofton(index, n)[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["circularity"] = 4 * np.pi * area / crofton**2
    return cols


def _central_moments(
    runs: _Runs, lines: tuple[np.ndarray, ...], area: np.ndarray, n: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Central moments ``mu[p, q(, r)]`` (shape ``(4,)*ndim + (n,)``) and centroids, from runs.

    Sums of coordinate powers over a run have closed forms, so the cost is per run, not per
    pixel. They are taken exactly in integers about each object's rounded centroid, then
    shifted to the centroid (a binomial expansion with offsets ≤ 0.5: no cancellation).
    """
    obj = runs.obj
    total = np.bincount(obj, _power_sum(runs.start, runs.stop, 1).astype(np.float64), n + 1)
    weight = (runs.stop - runs.start).astype(np.float64)
    centroid = [np.bincount(obj, c * weight, n + 1)[1:] / area for c in lines]
    centroid.append(total[1:] / area)
    ref = [np.rint(c).astype(np.int64) for c in centroid]  # integer reference per object
    local = [c - r[obj - 1] for c, r in zip(lines, ref, strict=False)]
    start, stop = runs.start - ref[-1][obj - 1], runs.stop - ref[-1][obj - 1]
    along = [_power_sum(start, stop, q).astype(np.float64) for q in range(4)]
    lead = [[np.ones(len(obj)), *(c.astype(np.float64) ** k for k in (1, 2, 3))] for c in local]
    ndim = len(lines) + 1
    raw = np.empty((4,) * ndim + (n,))
    for exps in product(range(4), repeat=ndim):
        weight = along[exps[-1]]
        for d in range(ndim - 1):
            weight = weight * lead[d][exps[d]]
        raw[exps] = np.bincount(obj, weight, n + 1)[1:]
    binom = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 2, 1, 0], [1, 3, 3, 1]], np.float64)
    mu = raw
    for d in range(ndim):  # shift axis d by its offset: mu_k = sum_i C(k,i) (-shift)^(k-i) m_i
        shift = -(centroid[d] - ref[d])
        powers = shift ** np.maximum(np.arange(4)[:, None] - np.arange(4)[None, :], 0)[..., None]
        matrix = binom[..., None] * np.where(
            (np.arange(4)[:, None] >= np.arange(4)[None, :])[..., None], powers, 0
        )
        mu = np.moveaxis(np.einsum("kin,...in->...kn", matrix, np.moveaxis(mu, d, -2)), -2, d)
    return mu, centroid


def _power_sum(start: np.ndarray, stop: np.ndarray, q: int) -> np.ndarray:
    """``sum(x**q for x in range(start, stop))`` elementwise, exactly, in integers."""

    def upto(m: np.ndarray) -> np.ndarray:  # sum of x**q for 0 <= x < m (Faulhaber)
        m = m.astype(np.int64)
        if q == 0:
            return m
        if q == 1:
            return m * (m - 1) // 2
        if q == 2:
            return (m - 1) * m * (2 * m - 1) // 6
        return (m * (m - 1) // 2) ** 2

    return upto(stop) - upto(start)


def _ellipse_features(mu: np.ndarray, ndim: int) -> dict[str, np.ndarray]:
    """Inertia-tensor features, as ``skimage.measure.regionprops`` defines them."""
    mu0 = mu[(0,) * ndim]
    second = [mu[tuple(2 * np.eye(ndim, dtype=int)[d])] for d in range(ndim)]
    tensor = np.zeros((*mu0.shape, ndim, ndim))
    for d in range(ndim):
        tensor[:, d, d] = (sum(second) - second[d]) / mu0
    for a in range(ndim):
        for b in range(a + 1, ndim):
            pq = np.zeros(ndim, int)
            pq[[a, b]] = 1
            tensor[:, a, b] = tensor[:, b, a] = -mu[tuple(pq)] / mu0
    eig = np.clip(np.linalg.eigvalsh(tensor), 0, None)[:, ::-1]  # descending
    out: dict[str, np.ndarray] = {}
    if ndim == 2:
        l1, l2 = eig[:, 0], eig[:, 1]
        out["axis_major_length"] = 4 * np.sqrt(l1)
        out["axis_minor_length"] = 4 * np.sqrt(l2)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["eccentricity"] = np.where(l1 == 0, 0.0, np.sqrt(1 - l2 / l1))
        a, b, c = tensor[:, 0, 0], tensor[:, 0, 1], tensor[:, 1, 1]
        equal = np.where(b < 0, np.pi / 4, -np.pi / 4)
        out["orientation"] = np.where(a - c == 0, equal, 0.5 * np.arctan2(-2 * b, c - a))
    else:
        out["axis_major_length"] = np.sqrt(np.maximum(0, 10 * (eig[:, 0] + eig[:, 1] - eig[:, 2])))
        out["axis_minor_length"] = np.sqrt(np.maximum(0, 10 * (-eig[:, 0] + eig[:, 1] + eig[:, 2])))
    return out


def _hu_moments(mu: np.ndarray) -> list[np.ndarray]:
    """The seven Hu invariants of 2-D central moments (``skimage.measure.moments_hu``)."""
    mu0 = mu[0, 0]

    def nu(p: int, q: int) -> np.ndarray:
        return mu[p, q] / mu0 ** ((p + q) / 2 + 1)

    n20, n02, n11 = nu(2, 0), nu(0, 2), nu(1, 1)
    n30, n03, n21, n12 = nu(3, 0), nu(0, 3), nu(2, 1), nu(1, 2)
    t0, t1 = n30 + n12, n21 + n03
    q0, q1 = n30 - 3 * n12, 3 * n21 - n03
    return [
        n20 + n02,
        (n20 - n02) ** 2 + 4 * n11**2,
        q0**2 + q1**2,
        t0**2 + t1**2,
        q0 * t0 * (t0**2 - 3 * t1**2) + q1 * t1 * (3 * t0**2 - t1**2),
        (n20 - n02) * (t0**2 - t1**2) + 4 * n11 * t0 * t1,
        q1 * t0 * (t0**2 - 3 * t1**2) - q0 * t1 * (3 * t0**2 - t1**2),
    ]


def _intensity_features(
    values: np.ndarray, runs: _Runs, first: np.ndarray, area: np.ndarray, name: str, n: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Intensity statistics from the foreground ``values`` in raster order (= run order), and
    the number of NaN or infinite values of each object.

    Each run is a contiguous slice of ``values`` starting at ``first``: ``reduceat`` per run,
    then a small reduction of the runs per object. The spread is taken about the object's mean
    (two passes), as ``np.std`` does; the median is the middle of each object's sorted values
    (the mean of the two middle ones for an even count, as ``np.median``). NaN and infinite
    values are left out of every statistic (``np.nanmean``-like, infinities too); an object
    with no finite value gets NaN.
    """
    lengths = runs.stop - runs.start
    finite = np.isfinite(values) if values.dtype.kind == "f" else None
    if finite is not None and finite.all():
        finite = None
    if finite is None:
        bad = np.zeros(n, np.int64)
    else:
        bad = np.bincount(runs.obj, np.add.reduceat(~finite, first), n + 1)[1:].astype(np.int64)
        values = values.astype(np.float64)
    count = area.astype(np.int64) - bad  # finite values per object
    lo_run = np.minimum.reduceat(values if finite is None else np.where(finite, values, np.inf),
                                 first)  # fmt: skip
    hi_run = np.maximum.reduceat(values if finite is None else np.where(finite, values, -np.inf),
                                 first)  # fmt: skip
    summed = values if finite is None else np.where(finite, values, 0.0)
    total = np.bincount(runs.obj, np.add.reduceat(summed, first, dtype=np.float64), n + 1)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
    lo = np.full(n + 1, np.inf)
    hi = np.full(n + 1, -np.inf)
    np.minimum.at(lo, runs.obj, lo_run)
    np.maximum.at(hi, runs.obj, hi_run)
    deviation = values - np.repeat(mean[runs.obj - 1], lengths)
    deviation *= deviation
    if finite is not None:
        deviation[~finite] = 0.0
    spread = np.bincount(runs.obj, np.add.reduceat(deviation, first), n + 1)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(spread / count)
    median = _medians(values, np.repeat(runs.obj, lengths), count, n)
    out = {
        f"intensity_mean_{name}": mean,
        f"intensity_min_{name}": lo[1:],
        f"intensity_max_{name}": hi[1:],
        f"intensity_std_{name}": std,
        f"intensity_sum_{name}": total,
        f"intensity_median_{name}": median,
    }
    if finite is not None:  # an object without a finite value: NaN, not ±inf or 0
        for column in out.values():
            column[count == 0] = np.nan
    return out, bad


def _medians(values: np.ndarray, obj: np.ndarray, count: np.ndarray, n: int) -> np.ndarray:
    """Median of each object's values (``obj`` 1..n per value; ``count`` finite values each).

    The values are sorted by object, then value, through one integer sort of
    ``object × span + value`` (integer images) or ``object × size + rank`` (the rank from one
    sort of the values): about 5× faster than ``np.lexsort``. NaN ranks last and -inf first
    within an object; ``count`` leaves out non-finite values, and the start of each object
    skips its -inf.
    """
    if not values.size:
        return np.full(n, np.nan)
    small_ints = values.dtype.kind in "iu" and values.dtype.itemsize <= 4
    low_value = int(values.min()) if small_ints else 0
    span = int(values.max()) - low_value + 1 if small_ints else 0
    if span > 0 and (n + 1) * span < 2**62:  # integers: sort object × span + value directly
        key = obj.astype(np.int64) * span + (values.astype(np.int64) - low_value)
        key.sort()
        ordered = key % span + low_value
    else:
        by_value = np.argsort(values)
        rank = np.empty(values.size, np.int64)
        rank[by_value] = np.arange(values.size)
        key = obj.astype(np.int64) * values.size + rank
        key.sort()
        ordered = values[by_value[key % values.size]]
    area = np.bincount(obj, minlength=n + 1)[1:]
    start = np.r_[0, np.cumsum(area)[:-1]]
    if ordered.dtype.kind == "f":  # -inf sorts first: skip it
        start = start + np.bincount(obj[np.isneginf(values)], minlength=n + 1)[1:]
    ok = count > 0
    low = np.where(ok, start + (count - 1) // 2, 0)
    high = np.where(ok, start + count // 2, 0)
    median = (ordered[low].astype(np.float64) + ordered[high].astype(np.float64)) / 2
    return np.where(ok, median, np.nan)


def _shape_features_3d(
    index: np.ndarray,
    slices: list[tuple[slice, ...]],
    values: np.ndarray,
    spacing: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The 3-D features that need each object's crop: convex volume, solidity, Feret diameter
    (over the hull's marching-cubes surface, as regionprops takes it)."""
    from skimage.measure import marching_cubes

    n = len(slices)
    out = {name: np.full(n, np.nan) for name in ("area_convex", "solidity", "feret_diameter_max")}
    if spacing is not None:
        out["feret_diameter_max_um"] = np.full(n, np.nan)
    for i, (region, value) in enumerate(zip(slices, values, strict=True)):
        mask = index[region] == value
        convex = _convex_image_3d(mask)
        out["area_convex"][i] = convex.sum()
        out["solidity"][i] = mask.sum() / out["area_convex"][i]
        points = marching_cubes(np.pad(convex, 2), level=0.5)[0]
        out["feret_diameter_max"][i] = _feret_max(points)
        if spacing is not None:
            out["feret_diameter_max_um"][i] = _feret_max(points * spacing)
    return out


#: ``skimage.measure.perimeter_crofton``'s weights (4 directions) of the 16 patterns of a 2×2
#: window: bottom-right pixel 1, top-right 2, bottom-left 4, top-left 8.
_CROFTON_WEIGHTS = np.array([
    0, np.pi / 4 * (1 + 1 / np.sqrt(2)), np.pi / (4 * np.sqrt(2)), np.pi / (2 * np.sqrt(2)),
    0, np.pi / 4 * (1 + 1 / np.sqrt(2)), 0, np.pi / (4 * np.sqrt(2)),
    np.pi / 4, np.pi / 2, np.pi / (4 * np.sqrt(2)), np.pi / (4 * np.sqrt(2)),
    np.pi / 4, np.pi / 2, 0, 0,
])  # fmt: skip


def _perimeters_crofton(index: np.ndarray, n: int) -> np.ndarray:
    """``skimage.measure.perimeter_crofton(object, 4)`` of every object of a 2-D label image.

    Crofton's formula sums a weight per 2×2 window of the zero-padded object mask. Here every
    window of the padded label image is read once; a window holding several objects counts
    once for each, with the pattern of that object's pixels. Windows inside one object or in
    the background weigh 0 and are skipped. The estimate is close to the true length whatever
    the direction of the boundary (a disc of radius 100: 2π·100 within 0.5 %), unlike the
    4-connected ``perimeter``, so it is the one ``circularity`` uses.
    """
    padded = np.pad(index, 1)
    corners = [padded[1:, 1:], padded[:-1, 1:], padded[1:, :-1], padded[:-1, :-1]]
    mixed = ~((corners[0] == corners[1]) & (corners[0] == corners[2]) & (corners[0] == corners[3]))
    corners = [c[mixed] for c in corners]  # bottom-right, top-right, bottom-left, top-left
    total = np.zeros(n + 1)
    for k, value in enumerate(corners):
        first = value > 0  # count each object once per window: at its first corner
        for earlier in corners[:k]:
            first &= earlier != value
        code = sum((c[first] == value[first]) << bit for bit, c in enumerate(corners))
        total += np.bincount(value[first], _CROFTON_WEIGHTS[code], n + 1)
    return total[1:]


_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + np.sqrt(2)) / 2


def _perimeters(index: np.ndarray, n: int) -> np.ndarray:
    """``skimage.measure.perimeter(object, 4)`` of every object of a 2-D label image at once.

    The same rule, evaluated on the whole image: border pixels are object pixels with a
    4-neighbour outside the object; each is weighted by the pattern of same-object border
    pixels around it (edge neighbours 2, corner neighbours 10, itself 1). Only the border
    test touches every pixel; the patterns are gathered at the border pixels alone.
    """
    padded = np.pad(index, 1)
    centre = padded[1:-1, 1:-1]
    rows, cols = index.shape
    inside = centre > 0
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        inside &= padded[1 + dy : 1 + dy + rows, 1 + dx : 1 + dx + cols] == centre
    border = np.pad((centre > 0) & ~inside, 1).ravel()
    flat = padded.ravel()
    pos = np.flatnonzero(border)
    value = flat[pos]
    code = np.ones(pos.size, np.intp)
    for dy, dx in product((-1, 0, 1), repeat=2):
        if dy or dx:
            near = pos + dy * (cols + 2) + dx
            code += (10 if dy and dx else 2) * (border[near] & (flat[near] == value))
    return np.bincount(value, _PERIMETER_WEIGHTS[code], n + 1)[1:].astype(np.float64)


#: The centres of a voxel's six faces, relative to its centre: ``convex_hull_image`` hulls these.
_FACES_3D = np.concatenate([np.eye(3) * 0.5, np.eye(3) * -0.5])


def _convex_image_3d(mask: np.ndarray, tolerance: float = 1e-10) -> np.ndarray:
    """``skimage.morphology.convex_hull_image`` of a 3-D mask, solved row by row.

    The same hull (Qhull over the centres of the voxels' faces) and the same test (a voxel is
    inside when every facet's equation is below ``tolerance`` at its centre), but solved for
    each row's first and last voxel inside instead of evaluated at every voxel: rows × facets
    instead of voxels × facets, about a crop's width times less work (scikit-image's test was
    nine tenths of 3-D measuring). The hull is taken over the ends of each row, which span
    the same hull as all voxels. A flat object (one voxel thick somewhere, or in one plane),
    which Qhull cannot hull, is its own hull.
    """
    if min(mask.shape) < 2:
        return mask
    rows = mask.any(axis=-1)
    width = mask.shape[-1]
    lines = np.argwhere(rows).astype(np.float64)
    first = mask.argmax(axis=-1)[rows]
    last = width - 1 - mask[..., ::-1].argmax(axis=-1)[rows]
    ends = np.concatenate([np.c_[lines, first], np.c_[lines, last]])
    try:
        corners = ends[ConvexHull(ends).vertices]
        faces = np.unique((corners[:, None, :] + _FACES_3D).reshape(-1, 3), axis=0)
        equations = ConvexHull(faces).equations
    except QhullError:  # flat (scikit-image warns and returns an empty image)
        return mask
    normal_x = equations[:, 2]
    grow, shrink, still = normal_x > 0, normal_x < 0, normal_x == 0
    zy = np.indices(mask.shape[:2]).reshape(2, -1).T.astype(np.float64)
    low = np.empty(len(zy))
    high = np.empty(len(zy))
    step = max(1, 2**22 // len(equations))  # rows per block: a few MB of equations at a time
    for start in range(0, len(zy), step):
        block = slice(start, start + step)
        # each facet n·(z, y, x) + d < tolerance, solved for x on every row of the block
        bound = (tolerance - (zy[block] @ equations[:, :2].T + equations[:, 3])) / np.where(
            still, 1.0, normal_x
        )
        high[block] = np.ceil(bound[:, grow]).min(axis=1, initial=width) - 1
        low[block] = np.floor(bound[:, shrink]).max(axis=1, initial=-1) + 1
        blocked = (bound[:, still] <= 0).any(axis=1)  # n_x = 0: the row is in or out whole
        high[block][blocked] = -1
    x = np.arange(width)
    inside = (x >= low[:, None]) & (x <= high[:, None])
    return inside.reshape(mask.shape)


def _feret_max(points: np.ndarray) -> float:
    """The largest distance between two points of a set (between vertices of its hull)."""
    try:
        hull = points[ConvexHull(points).vertices]
    except QhullError:  # in a plane or too few points: all points are the hull
        hull = np.unique(points, axis=0)
    return float(np.sqrt(pdist(hull, "sqeuclidean").max())) if len(hull) > 1 else 0.0


def _physical_columns(
    cols: dict[str, np.ndarray], spacing: np.ndarray, mu: np.ndarray
) -> dict[str, np.ndarray]:
    """The columns in µm. The ellipse's axes come from the central moments ``mu`` taken in
    µm (each ``mu[p, q(, r)]`` times the pixel size to those powers), as ``regionprops(...,
    spacing=)`` takes them: a Z stack's Z step counts, where the pixel-unit axes ignore it.
    Perimeters need square pixels, so only they are left out otherwise."""
    ndim = spacing.size
    out: dict[str, np.ndarray] = {}
    size = cols["area"] * float(np.prod(spacing))
    out["area_um2" if ndim == 2 else "volume_um3"] = size
    if "area_convex" in cols:  # a linear scaling keeps the hull convex: count × pixel size
        voxel = float(np.prod(spacing))
        out["area_convex_um2" if ndim == 2 else "volume_convex_um3"] = cols["area_convex"] * voxel
    for d in range(ndim):
        out[f"centroid_um-{d}"] = cols[f"centroid-{d}"] * spacing[d]
    out["equivalent_diameter_area_um"] = (2 * ndim * size / np.pi) ** (1 / ndim)
    scale = np.ones(mu.shape[:-1])
    for powers in product(range(4), repeat=ndim):
        scale[powers] = np.prod(spacing ** np.array(powers))
    ellipse = _ellipse_features(mu * scale[..., None], ndim)
    for name in ("axis_major_length", "axis_minor_length"):
        out[f"{name}_um"] = ellipse[name]
    if np.allclose(spacing, spacing[0]):
        for name in ("perimeter", "perimeter_crofton"):
            if name in cols:
                out[f"{name}_um"] = cols[name] * spacing[0]
    return out


# --- 2-D shape features for all objects at once --------------------------------------------
# Coordinates are doubled so that pixel centres (even) and pixel-edge midpoints (odd) are
# integers: hull, lattice counts and contour points are then exact integer arithmetic.


def _shape_features_2d(
    runs: _Runs, keep: np.ndarray, spacing: np.ndarray | None
) -> dict[str, np.ndarray]:
    """``area_convex``, ``solidity`` and Feret diameters of the kept objects of a 2-D image.

    Equal to regionprops: the convex image is the set of pixel centres inside or on the hull
    of the pixels' edge midpoints (``convex_hull_image``); Feret diameters are taken over the
    0.5-contour points of that convex image (``find_contours`` on a convex mask gives the row
    and column ends). Only the two hulls per object are a Python loop (OpenCV, microseconds).
    """
    sel = keep[runs.obj - 1]
    rank = np.cumsum(keep) - 1  # object index among the kept ones
    obj, y, x0, x1 = rank[runs.obj[sel] - 1], runs.line[sel], runs.start[sel], runs.stop[sel] - 1
    n = int(keep.sum())
    if n == 0:
        names = ["area_convex", "solidity", "feret_diameter_max", "feret_diameter_min"]
        if spacing is not None:
            names += ["feret_diameter_max_um", "feret_diameter_min_um"]
        return {name: np.zeros(0) for name in names}
    # hull(pixels ⊕ diamond) needs only each run's ends: left/right edge midpoints and the
    # top/bottom midpoints of both end pixels
    y2, a2, b2 = 2 * y, 2 * x0, 2 * x1
    points = np.stack(
        [
            np.stack([y2, a2 - 1], 1), np.stack([y2 - 1, a2], 1), np.stack([y2 + 1, a2], 1),
            np.stack([y2, b2 + 1], 1), np.stack([y2 - 1, b2], 1), np.stack([y2 + 1, b2], 1),
        ],
        1,
    ).reshape(-1, 2)  # fmt: skip
    order = np.argsort(np.repeat(obj, 6), kind="stable")
    hull, group = _hulls(points[order], np.bincount(obj, minlength=n) * 6)
    rows = _lattice_runs(hull, group, axis=0)
    cols = _lattice_runs(hull, group, axis=1)
    area = np.bincount(obj, x1 - x0 + 1, n)
    convex = np.bincount(rows.group, rows.stop - rows.start + 1, n)
    out = {"area_convex": convex, "solidity": area / np.maximum(convex, 1)}
    outline, counts = _outline(rows, cols, n)
    hull, group = _hulls(outline, counts)
    out["feret_diameter_max"], out["feret_diameter_min"] = _feret_2d(hull / 2.0, group)
    if spacing is not None:
        scaled = hull * (spacing / 2.0)
        out["feret_diameter_max_um"], out["feret_diameter_min_um"] = _feret_2d(scaled, group)
    return out


def _hulls(points: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convex hull vertices (in order) of consecutive groups of integer points."""
    import cv2

    points = np.ascontiguousarray(points, np.int32)
    ends = np.cumsum(counts)
    hulls = [cv2.convexHull(points[e - c : e]) for c, e in zip(counts, ends, strict=True)]
    if not hulls:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.intp)
    sizes = np.array([len(h) for h in hulls], np.intp)
    vertices = np.concatenate(hulls).reshape(-1, 2).astype(np.int64)
    return vertices, np.repeat(np.arange(len(hulls)), sizes)


class _Lines:
    """Per object and lattice line (row or column) inside its hull: the first and last pixel."""

    def __init__(self, group: np.ndarray, line: np.ndarray, start: np.ndarray, stop: np.ndarray):
        self.group, self.line, self.start, self.stop = group, line, start, stop


def _lattice_runs(vertices: np.ndarray, group: np.ndarray, axis: int) -> _Lines:
    """The pixel centres inside or on each convex polygon, as one run per lattice line.

    ``vertices`` are doubled ``(y, x)`` polygon vertices in order, ``group`` their polygon;
    ``axis`` 0 gives row runs, 1 column runs. Each polygon edge bounds the lines it spans from
    one side; for a convex polygon the run on a line is the tightest of those bounds.
    """
    v = vertices if axis == 0 else vertices[:, ::-1]
    n = int(group.max(initial=-1)) + 1
    first = np.searchsorted(group, np.arange(n))
    nxt = np.arange(len(v)) + 1
    last = np.r_[first[1:], len(v)] - 1
    nxt[last] = first
    a, b = v, v[nxt]
    # orientation of each polygon (shoelace sign) so that "inside" is one side of every edge
    twice_area = np.bincount(group, a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0], n)
    sign = np.where(twice_area[group] >= 0, 1, -1)
    lo_line = -((-np.minimum.reduceat(v[:, 0], first)) // 2)  # ceil(min / 2)
    hi_line = np.maximum.reduceat(v[:, 0], first) // 2
    n_lines = hi_line - lo_line + 1
    offset = np.r_[0, np.cumsum(n_lines)[:-1]]
    # every non-horizontal edge, once per lattice line it spans
    uy, ux = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    e_lo = -((-np.minimum(a[:, 0], b[:, 0])) // 2)
    e_hi = np.maximum(a[:, 0], b[:, 0]) // 2
    span = np.where(uy != 0, np.maximum(e_hi - e_lo + 1, 0), 0)
    edge = np.repeat(np.arange(len(v)), span)
    line = e_lo[edge] + np.arange(len(edge)) - np.repeat(np.cumsum(span) - span, span)
    # inside: sign * (uy * (px - ax) - ux * (py - ay)) >= 0, with py = 2 * line, px = 2 * pos
    g = sign[edge] * uy[edge]
    num = a[edge, 1] * g + sign[edge] * ux[edge] * (2 * line - a[edge, 0])
    lower = g > 0
    bound = np.where(lower, -((-num) // (2 * g)), num // (2 * g))
    key = offset[group[edge]] + line - lo_line[group[edge]]
    total = int(n_lines.sum())
    big = np.iinfo(np.int64).max // 4
    start = np.full(total, -big)
    stop = np.full(total, big)
    np.maximum.at(start, key[lower], bound[lower])
    np.minimum.at(stop, key[~lower], bound[~lower])
    owner = np.repeat(np.arange(n), n_lines)
    lines = lo_line[owner] + np.arange(total) - offset[owner]
    ok = (start <= stop) & (start > -big) & (stop < big)
    return _Lines(owner[ok], lines[ok], start[ok], stop[ok])


def _outline(rows: _Lines, cols: _Lines, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 0.5-contour points of each convex image (doubled), grouped by object, and counts."""
    row_pts = np.concatenate(
        [
            np.stack([2 * rows.line, 2 * rows.start - 1], 1),
            np.stack([2 * rows.line, 2 * rows.stop + 1], 1),
        ]
    )
    col_pts = np.concatenate(
        [
            np.stack([2 * cols.start - 1, 2 * cols.line], 1),
            np.stack([2 * cols.stop + 1, 2 * cols.line], 1),
        ]
    )
    group = np.concatenate([rows.group, rows.group, cols.group, cols.group])
    order = np.argsort(group, kind="stable")
    return np.concatenate([row_pts, col_pts])[order], np.bincount(group, minlength=n)


def _feret_2d(vertices: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and smallest caliper width of each convex polygon (vertices in order).

    Polygons are padded to a common vertex count (repeating the last vertex) and handled in
    batches of similar size: the largest width is the largest vertex distance, the smallest
    the least, over edges, of the farthest vertex from the edge's line.
    """
    n = int(group.max(initial=-1)) + 1
    sizes = np.bincount(group, minlength=n)
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    fmax, fmin = np.zeros(n), np.zeros(n)
    by_size = np.argsort(sizes, kind="stable")
    budget, b = 1 << 20, 0  # padded elements per batch: bounded memory
    while b < n:
        k = max(1, budget // int(sizes[by_size[b]]) ** 2)
        k = max(1, min(k, budget // int(sizes[by_size[min(b + k, n) - 1]]) ** 2))
        objs, b = by_size[b : b + k], b + k
        m = int(sizes[objs].max())
        j = np.minimum(np.arange(m), sizes[objs, None] - 1)
        py, px = vertices[first[objs, None] + j].transpose(2, 0, 1)  # (k, m) each
        dy = py[:, :, None] - py[:, None, :]  # (k, m, m): v_i - v_j
        dx = px[:, :, None] - px[:, None, :]
        fmax[objs] = np.sqrt((dy * dy + dx * dx).max(axis=(1, 2)))
        ey, ex = np.roll(py, -1, axis=1) - py, np.roll(px, -1, axis=1) - px  # edge i
        length = np.hypot(ey, ex)
        # distance of vertex j from the line of edge i: |edge_i x (v_j - v_i)| / |edge_i|
        cross = np.abs(ex[:, :, None] * dy - ey[:, :, None] * dx)
        with np.errstate(divide="ignore", invalid="ignore"):
            width = cross.max(axis=2) / length
        width[length == 0] = np.inf
        fmin[objs] = np.where(np.isfinite(width.min(axis=1)), width.min(axis=1), 0.0)
    return fmax, fmin


class _Runs(NamedTuple):
    """Foreground runs along the last axis: object (1..n), line (flat index over the leading
    axes), first pixel and stop (exclusive) along the last axis."""

    obj: np.ndarray
    line: np.ndarray
    start: np.ndarray
    stop: np.ndarray


def _runs(index: np.ndarray) -> _Runs:
    """Run-length encode a compact label image along its last axis (one pass)."""
    width = index.shape[-1]
    rows = index.reshape(-1, width)
    change = np.empty(rows.shape, bool)
    change[:, 0] = True
    np.not_equal(rows[:, 1:], rows[:, :-1], out=change[:, 1:])
    starts = np.flatnonzero(change)
    stops = np.r_[starts[1:], rows.size]
    value = rows.ravel()[starts]
    fg = value > 0
    starts, stops, value = starts[fg], stops[fg], value[fg]
    line = starts // width
    return _Runs(value, line, starts - line * width, stops - line * width)
