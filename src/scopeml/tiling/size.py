"""How large the objects of an image are, and the ``scale`` that brings them to a model's size.

``scale="auto"`` (``segment --scale auto``; cellpose's ``diameter=None``): estimate the typical
object diameter ``d`` of the image, then run the model at ``scale = D / d``, where ``D`` is the
diameter the model prefers, recorded in its container's ``model.json`` under scopeml's own key
:data:`DIAMETER_KEY` (czmodel ignores it). A model trained on a range of sizes also records the
range of estimated diameters it takes as they are (:data:`RANGE_KEY`): there ``auto`` runs at
scale 1, since resampling costs what it does not win back (the shipped ``nuclei``: ``D`` = 20,
range 10–40, chosen on synthetic validation scenes, see the README). The factor is clipped to
the scale module's limits and rounded to a whole factor or its inverse (:func:`auto_factor`).

The estimate (:func:`estimate_diameter`) is classical and cheap, and it is the same measure on
which ``D`` is chosen, so its bias cancels: the image's sampled pixels are normalised (1st–99.8th
percentiles), smoothed (a Gaussian of 1 pixel) and thresholded at Otsu's level with holes
filled; each connected component's *inscribed* diameter (twice its largest distance-transform
value) is taken, and ``d`` is their median weighted by component area. Inscribed diameters keep
a clump of touching nuclei at one nucleus's size (a clump's largest inscribed circle is one
nucleus's) and area weights keep noise specks from counting. On 16 synthetic validation scenes
magnified 2× it recovers the factor within 6 % (median 1 %), 3× within 43 % (median 3 %);
on shrunk copies, whose small nuclei blur into one another, less well (median 4–10 %, up to
2.4× off).

The estimate reads fixed sample windows of the image (:func:`sample_windows`: the whole plane
up to :data:`SAMPLE_PIXELS`, else a centred grid of windows of :data:`WINDOW` pixels), from the
middle Z plane of up to three time points (first, middle, last), so its memory and cost are
bounded whatever the image's size, and it never depends on how the engine tiles: the engine
then runs at one fixed factor, exactly as with a number. A 3-D model is scaled on every axis
by the factor estimated in those XY planes.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from scopeml.errors import IncompatibleModelError, find_stack_level
from scopeml.io.image import Image
from scopeml.model.metadata import DEFAULT_KEY, DIAMETER_KEY, RANGE_KEY
from scopeml.tiling.scale import LIMITS

#: ``scale`` that asks for the factor to be estimated.
AUTO = "auto"
#: Side of a sample window, and the most pixels read per image for the estimate.
WINDOW = 1024
SAMPLE_PIXELS = 2048 * 2048
#: Smallest plane side, and the smallest component (pixels) the estimate looks at.
MIN_SIDE = 16
MIN_AREA = 9
#: The key of a run record (a store's ``scopeml`` attributes) that says ``auto`` chose its scale.
AUTO_RECORD = "scale_auto"


@dataclass(frozen=True)
class AutoScale:
    """What ``scale="auto"`` chose: the ``scale`` run, the image's estimated object
    ``diameter`` (``None``: no estimate, the factor fell back to 1) and the model's
    ``model_diameter``, both in pixels."""

    scale: float
    diameter: float | None
    model_diameter: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "diameter": None if self.diameter is None else round(self.diameter, 2),
            "model_diameter": self.model_diameter,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AutoScale | None:
        """Inverse of :meth:`to_dict`; ``None`` for anything else."""
        try:
            diameter = data["diameter"]
            return cls(
                float(data["scale"]),
                None if diameter is None else float(diameter),
                float(data["model_diameter"]),
            )
        except (TypeError, KeyError, ValueError):
            return None

    def text(self) -> str:
        """``auto: objects ~48 px, model 24 px`` for the summary line."""
        if self.diameter is None:
            return "auto: no object size found"
        return f"auto: objects ~{self.diameter:.0f} px, model {self.model_diameter:g} px"


def is_auto(scale: object) -> bool:
    """Whether ``scale`` asks for an estimate (``"auto"``, any case)."""
    return isinstance(scale, str) and scale.strip().lower() == AUTO


def scale_value(value: Any) -> float | str | None:
    """A scale as analysis settings and server jobs take it: ``None``, ``"auto"`` (any case)
    or a factor within the scale module's limits; anything else is one ``ValueError``.

    >>> scale_value("Auto"), scale_value(2)
    ('auto', 2.0)
    """
    if value is None or is_auto(value):
        return None if value is None else AUTO
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not LIMITS[0] <= number <= LIMITS[1]:
        raise ValueError(
            f"scale must be a number from {LIMITS[0]:g} to {LIMITS[1]:g} or 'auto', not {value!r}"
        )
    return float(number)


def model_diameter(model: Any) -> float | None:
    """The object diameter a model records (:data:`DIAMETER_KEY` in its ``model.json``), or
    ``None``; a :class:`~scopeml.tiling.scale.ScaledModel` answers for the model it wraps."""
    value = _recorded(model).get(DIAMETER_KEY)
    return float(value) if _positive(value) else None


def default_scale(model: Any) -> str | None:
    """``"auto"`` when the model records it as its default scale (:data:`DEFAULT_KEY`: the
    shipped ``nuclei`` does), else ``None`` (scale 1)."""
    return AUTO if is_auto(_recorded(model).get(DEFAULT_KEY)) else None


def model_diameter_range(model: Any) -> tuple[float, float] | None:
    """The estimated diameters a model takes as they are (:data:`RANGE_KEY`, ``[low,
    high]``), or ``None`` (then ``auto`` always brings objects to :func:`model_diameter`)."""
    value = _recorded(model).get(RANGE_KEY)
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(map(_positive, value)):
        return None
    low, high = float(value[0]), float(value[1])
    return (low, high) if low <= high else None


def _recorded(model: Any) -> dict[str, Any]:
    """The keys of a model's ``model.json`` that its metadata does not know (scopeml's own),
    from the metadata or, for a model known by its spec alone (a server's ``RemoteModel``),
    from the spec's ``extra``, where a czann's spec carries them."""
    model = getattr(model, "model", model) if hasattr(model, "factor") else model
    extra = getattr(getattr(model, "metadata", None), "model_extra", None)
    if not isinstance(extra, dict) or not extra:
        extra = getattr(getattr(model, "spec", None), "extra", None)
    return extra if isinstance(extra, dict) else {}


def _positive(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value > 0
    )


def auto_factor(
    model_diameter: float, diameter: float, within: tuple[float, float] | None = None
) -> Fraction:
    """The factor for objects of ``diameter`` (pixels, estimated): 1 when the diameter lies
    ``within`` the range the model takes as it is, else ``model_diameter / diameter`` clipped
    to the scale limits and rounded (in log space) to the nearest whole factor or unit
    fraction (2, 3, 1/2, 1/3 …).

    Examples
    --------
    >>> auto_factor(24, 48), auto_factor(24, 10), auto_factor(24, 25), auto_factor(24, 1)
    (Fraction(1, 2), Fraction(2, 1), Fraction(1, 1), Fraction(8, 1))
    >>> auto_factor(20, 30, within=(10, 40)), auto_factor(20, 60, within=(10, 40))
    (Fraction(1, 1), Fraction(1, 3))
    """
    if within is not None and within[0] <= diameter <= within[1]:
        return Fraction(1)
    wanted = min(max(model_diameter / diameter, LIMITS[0]), LIMITS[1])
    return min(_CANDIDATES, key=lambda f: (abs(math.log(f) - math.log(wanted)), f))


def _candidates() -> tuple[Fraction, ...]:
    """Whole factors and their inverses within the limits: the coarse set ``auto`` rounds to,
    as chosen on the validation scenes (every accepted factor, 3/4 too, runs bit-exact tiled;
    :mod:`scopeml.tiling.scale`)."""
    low, high = Fraction(LIMITS[0]), Fraction(LIMITS[1])
    found = {Fraction(n) for n in range(1, int(high) + 1)} | {
        Fraction(1, n) for n in range(1, int(1 / low) + 1)
    }
    return tuple(sorted(f for f in found if low <= f <= high))


_CANDIDATES = _candidates()


def sample_windows(
    height: int, width: int, budget: int = SAMPLE_PIXELS
) -> list[tuple[slice, slice]]:
    """The fixed ``(Y, X)`` windows of a plane that the estimate reads: the whole plane when
    it has at most ``budget`` pixels, else a centred ``g × g`` grid of ``WINDOW``-sided
    windows, ``g`` as many as the budget holds (at least one).

    Examples
    --------
    >>> sample_windows(100, 200)
    [(slice(0, 100, None), slice(0, 200, None))]
    >>> [(y.start, x.start) for y, x in sample_windows(8192, 8192)]
    [(1536, 1536), (1536, 5632), (5632, 1536), (5632, 5632)]
    """
    if height * width <= budget:
        return [(slice(0, height), slice(0, width))]
    side_y, side_x = min(WINDOW, height), min(WINDOW, width)
    grid = max(1, math.isqrt(budget // (side_y * side_x)))
    starts_y = _starts(height, side_y, grid)
    starts_x = _starts(width, side_x, grid)
    return [(slice(y, y + side_y), slice(x, x + side_x)) for y in starts_y for x in starts_x]


def _starts(size: int, side: int, grid: int) -> list[int]:
    """Starts of ``grid`` windows of ``side`` centred in equal parts of ``size`` (distinct)."""
    starts = [
        min(max(0, round((i + 0.5) * size / grid - side / 2)), size - side) for i in range(grid)
    ]
    return sorted(set(starts))


def sample_planes(image: Image, scene: int = 0) -> list[tuple[int, int, int]]:
    """``(S, T, Z)`` indices of the planes the estimate reads: the middle Z plane of the
    first, middle and last time points (those that differ)."""
    sizes = image.sizes
    z = sizes["Z"] // 2
    times = sorted({0, sizes["T"] // 2, sizes["T"] - 1})
    return [(scene, t, z) for t in times]


def estimate_diameter(image: Image, *, scene: int = 0, per_time: bool = False) -> float | None:
    """The typical object diameter of ``image`` in pixels (see the module docstring), from
    fixed sample windows of a few planes; every channel counts (the mean of the channels,
    each normalised: over all the samples, or with ``per_time`` over each time point's, as a
    run normalising ``per time point`` sees them; a bleaching series' bright first frame, taken
    with its dim last one, was one ~900 px blob). ``None`` when there is nothing to measure: a
    plane smaller than :data:`MIN_SIDE`, no finite or no varying pixels, no component of
    :data:`MIN_AREA`.
    Pixels that are not numbers to measure (complex) raise :class:`InvalidImageError`, as the
    engine does.

    Examples
    --------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> disc = ((yy % 32 - 16) ** 2 + (xx % 32 - 16) ** 2 < 10**2).astype(np.float32)
    >>> round(estimate_diameter(Image(disc[None, None, None, None])))
    20
    >>> estimate_diameter(Image(np.ones((1, 1, 1, 1, 64, 64), np.float32))) is None
    True
    """
    found = _estimate(image, scene, per_time)
    return None if found is None else found[0]


def _estimate(image: Image, scene: int, per_time: bool) -> tuple[float, float] | None:
    """:func:`estimate_diameter`, and the share of the measured components' area that the
    largest one holds where it stands out (:func:`_dominant_share`; over a half: the estimate
    is that one object's size)."""
    from scopeml.tiling.engine import check_pixel_values

    check_pixel_values(image)  # before a cast warns (complex)
    height, width = image.sizes["Y"], image.sizes["X"]
    if min(height, width) < MIN_SIDE:
        return None
    planes = sample_planes(image, scene)
    windows = sample_windows(height, width, SAMPLE_PIXELS // len(planes))
    groups = [
        [np.asarray(image.read(S=s, T=t, Z=z, Y=y, X=x)[0, 0, :, 0], np.float32)
         for y, x in windows]
        for s, t, z in planes
    ]  # fmt: skip
    found = _components(groups if per_time else [[s for g in groups for s in g]])
    if found is None:
        return None
    diameters, areas = found
    return _weighted_median(diameters, areas), _dominant_share(diameters, areas)


def _dominant_share(diameters: np.ndarray, areas: np.ndarray) -> float:
    """The share of the area its largest component holds where that one stands out: at least
    two others, and three times their (area-weighted median) size; else 0. Two nuclei of 22
    and 18 px are no clump; a glowing embryo of 150 px among nuclei of 14 px is.

    >>> _dominant_share(np.array([150.0, 14, 12, 15]), np.array([9000.0, 150, 120, 160]))
    0.95
    >>> _dominant_share(np.array([22.0, 18]), np.array([380.0, 250]))
    0.0
    """
    largest = int(np.argmax(areas))
    others = np.delete(np.arange(len(areas)), largest)
    if len(others) < 2:
        return 0.0
    typical = _weighted_median(diameters[others], areas[others])
    if diameters[largest] < 3 * typical:
        return 0.0
    return round(float(areas[largest] / areas.sum()), 2)


def diameter_of(groups: list[list[np.ndarray]]) -> float | None:
    """The area-weighted median inscribed diameter of the bright components of the samples
    (``C×Y×X`` arrays, each group normalised on its own, all thresholded together); ``None``
    if there are none."""
    found = _components(groups)
    return None if found is None else _weighted_median(*found)


def _components(groups: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray] | None:
    """The inscribed diameters and areas of the samples' bright components (at least
    :data:`MIN_AREA`), as :func:`diameter_of` weighs them; ``None``: none."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    planes = [plane for group in groups for plane in _normalised(group) or []]
    if not planes:
        return None
    smooth = [ndimage.gaussian_filter(p, 1.0, mode="nearest") for p in planes]
    values = np.concatenate([s.ravel() for s in smooth])
    if float(values.max()) <= float(values.min()):
        return None
    level = threshold_otsu(values)
    diameters, areas = [], []
    for plane in smooth:
        mask = ndimage.binary_fill_holes(plane > level)
        labels, n = ndimage.label(mask)
        if n == 0:
            continue
        area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        inscribed = np.zeros(n + 1)  # each component's largest distance (ndimage.maximum sorts)
        np.maximum.at(inscribed, labels.ravel(), ndimage.distance_transform_edt(mask).ravel())
        keep = area >= MIN_AREA
        diameters.append(2.0 * inscribed[1:][keep])
        areas.append(area[keep])
    if not diameters or not sum(len(a) for a in areas):
        return None
    return np.concatenate(diameters), np.concatenate(areas).astype(float)


def _normalised(samples: list[np.ndarray]) -> list[np.ndarray] | None:
    """Each sample as one plane: the mean over channels of each channel mapped from its 1st
    and 99.8th percentiles (over all samples) to 0 and 1; non-finite pixels as 0."""
    n_channels = samples[0].shape[0]
    total = [np.zeros(s.shape[1:], np.float32) for s in samples]
    for c in range(n_channels):
        finite = np.concatenate([s[c][np.isfinite(s[c])] for s in samples])
        if finite.size == 0:
            continue
        low, high = np.percentile(finite, (1.0, 99.8))
        if not high > low:
            continue
        for plane, s in zip(total, samples, strict=True):
            x = np.clip((s[c] - low) / (high - low), 0.0, 1.0)  # clips +inf to a finite 1
            plane += np.where(np.isfinite(s[c]), x, 0.0).astype(np.float32)
    if not any(float(p.max()) > 0 for p in total):
        return None  # constant or non-finite everywhere
    return total


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def auto_scale(
    image: Image,
    model: Any,
    *,
    scene: int = 0,
    name: str | None = None,
    normalize: str | None = None,
) -> AutoScale:
    """The factor ``scale="auto"`` runs ``model`` at over ``image``; one for a time series,
    from frames each normalised on its own where the run's ``normalize`` (else the model's
    policy) is ``per time point``.

    Raises
    ------
    IncompatibleModelError
        The model records no object diameter (:data:`DIAMETER_KEY`): pass a number.
    InvalidImageError
        The pixels are not numbers to measure (complex).

    Without an estimate (a constant, non-finite or tiny image, nothing found) the factor is 1,
    with one warning.
    """
    preferred = model_diameter(model)
    if preferred is None:
        label = name or getattr(getattr(model, "spec", None), "name", None) or "the model"
        raise IncompatibleModelError(
            f"model {label!r} records no object diameter ({DIAMETER_KEY} in its model.json), "
            "so scale auto cannot be used with it; pass a number instead (--scale 0.5)"
        )
    from scopeml.model.spec import recorded_normalize
    from scopeml.tiling.normalize import chosen_policy, per_time_point

    per_time = per_time_point(chosen_policy(normalize, recorded_normalize(model)))
    found = _estimate(image, scene, per_time)
    if found is None:
        where = f"{image.path}: " if image.path else ""
        warnings.warn(
            f"{where}scale auto found no objects to measure (a constant, non-finite or tiny "
            "image); running at scale 1",
            UserWarning,
            stacklevel=find_stack_level(),
        )
        return AutoScale(1.0, None, preferred)
    diameter, share = found
    within = model_diameter_range(model)
    factor = auto_factor(preferred, diameter, within)
    resized = factor != 1 and share > 0.5  # at 1 the model sees the image as it is anyway
    if not _warn_out_of_reach(image, diameter, factor, preferred, within) and resized:
        where = f"{image.path}: " if image.path else ""
        warnings.warn(
            f"{where}scale auto: one object of ~{diameter:.0f} px holds {share:.0%} of the "
            "bright area measured (a clump, a whole cell or embryo, uneven background?), so "
            f"the scale ({factor}) fits it, not a typical object: check the result, or give "
            "the scale (--scale)", UserWarning, stacklevel=find_stack_level(),
        )  # fmt: skip
    return AutoScale(float(factor), diameter, preferred)


def _warn_out_of_reach(
    image: Image,
    diameter: float,
    factor: Fraction,
    preferred: float,
    within: tuple[float, float] | None,
) -> bool:
    """Warn (and say so) when the factor chosen, at a scale limit, still leaves the objects
    outside the sizes the model takes (the range it records, else half to twice its
    diameter): the scale is then no answer (giant blobs of phase contrast, a tissue section's
    nuclei of 5 px), and the result says little."""
    scaled = diameter * factor
    low, high = within or (preferred / 2, preferred * 2)
    if factor not in (_CANDIDATES[0], _CANDIDATES[-1]) or low <= scaled <= high:
        return False
    takes = (
        f"outside the {low:g}–{high:g} px the model takes"
        if within
        else f"far from the model's {preferred:g} px"
    )
    where = f"{image.path}: " if image.path else ""
    warnings.warn(
        f"{where}scale auto: objects ~{diameter:.0f} px are ~{scaled:.0f} px even at the "
        f"{'smallest' if factor < 1 else 'largest'} scale ({factor}), {takes}: are these the "
        "objects it is for?",
        UserWarning,
        stacklevel=find_stack_level(),
    )
    return True


def write_model_diameter(
    path: str | os.PathLike[str],
    diameter: float,
    within: tuple[float, float] | None = None,
    *,
    default_auto: bool = False,
    output: str | os.PathLike[str] | None = None,
) -> os.PathLike[str]:
    """Record ``diameter`` (:data:`DIAMETER_KEY`), the range ``within`` (:data:`RANGE_KEY`)
    and, with ``default_auto``, ``"auto"`` as the model's default scale (:data:`DEFAULT_KEY`)
    in a czann container's ``model.json``, rewritten with the project's container code (the
    same graph bytes and other keys) to ``output`` (default: in place)."""
    from pathlib import Path

    from scopeml.model import ModelMetadata, read_container, write_container

    container = read_container(path)
    if container.legacy:
        raise IncompatibleModelError(
            "a legacy container has no model.json to record a diameter in", path=path
        )
    fields = {**container.metadata.to_json_dict(), DIAMETER_KEY: float(diameter)}
    for key in (RANGE_KEY, DEFAULT_KEY):
        fields.pop(key, None)
    if within is not None:
        fields[RANGE_KEY] = [float(within[0]), float(within[1])]
    if default_auto:
        fields[DEFAULT_KEY] = AUTO
    metadata = ModelMetadata.from_json_dict(fields, path=path)
    return write_container(Path(output or path), container.onnx_bytes, metadata, overwrite=True)


def recorded_auto_scale(output: str | os.PathLike[str]) -> AutoScale | None:
    """What ``scale="auto"`` chose for the run recorded at ``output``
    (:func:`~scopeml.tiling.store.recorded_run`); ``None`` when it records no automatic scale."""
    from scopeml.tiling.store import recorded_run

    record = recorded_run(output)
    return AutoScale.from_dict(record[AUTO_RECORD]) if record and AUTO_RECORD in record else None
