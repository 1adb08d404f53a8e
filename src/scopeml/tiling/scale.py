"""Run a model at another scale: the image resampled by a factor, the probabilities resampled back.

A network trained on nuclei of some size over-splits nuclei much larger than it knows and merges
or misses much smaller ones (the shipped ``nuclei`` model on a real image magnified 3× finds 195
objects for 125 nuclei). ``scale`` — stardist's ``predict_instances(scale=)``, cellpose's
diameter ratio — magnifies the image by a factor before the model (2: the objects are half the
size the model expects) and resamples its class probabilities back onto the image's grid, so
every output keeps the image's shape and pixel size.

Exact under tiling, at every accepted factor ``p/q`` (``q <= 8``): both resamplings are local
and computed the same wherever a tile starts. Pixel ``j`` of a grid magnified by ``p/q`` samples
its input at ``(j + 0.5)·q/p − 0.5`` (linear interpolation between pixel centres, the nearest
pixel beyond an edge, as ``scipy.ndimage.zoom(..., grid_mode=True, mode="nearest")`` does); that
position is taken as the exact fraction ``((2j + 1)·q − p) / 2p`` of integers, whose quotient is
the first of the two pixels and whose remainder alone picks the weight from a table of ``2p``,
so a pixel's weights do not depend on its tile's origin (floating-point positions counted from
each tile's origin round differently from the whole image's). When shrinking, a Gaussian of
sigma ``(1/f - 1) / 2`` first removes what the coarser grid cannot hold (as
``skimage.transform.rescale`` anti-aliases); it is the same kernel at every pixel. A tile
therefore equals the whole image's result where it starts on a pixel of both grids — its
offsets are multiples of the factor's denominator and land on the model's own step — and its
halo covers the model's halo at the model's scale plus the resamplings' reach.
:class:`ScaledModel` states both in its spec; the engine's plan does the rest. The tests check
a tile's resampling against the whole row's at every accepted factor, both ways, and tiled runs
against the whole image, bit for bit, at 13 factors from 1/3 to 5/2 (3/4, 4/3, 2/3, 5/4, 3/5,
7/8, 8/7 among them) and several tile sizes.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any

import numpy as np

from scopeml.errors import IncompatibleModelError, InvalidRequestError, find_stack_level
from scopeml.model.spec import Model, ModelSpec, recorded_normalize

#: Largest denominator of a scale factor (a factor is run as the nearest ``p/q``, ``q <=`` this).
MAX_DENOMINATOR = 8
#: Accepted factors: beyond them a tile grows past any useful size or shrinks to nothing.
LIMITS = (0.125, 8.0)
#: Gaussian pre-filter reach in sigmas (scipy's default truncate).
TRUNCATE = 4.0


def scale_fraction(scale: float) -> Fraction:
    """The factor a run uses: ``scale`` as the nearest fraction with a small denominator.

    Examples
    --------
    >>> scale_fraction(2), scale_fraction(0.5), scale_fraction(1.5)
    (Fraction(2, 1), Fraction(1, 2), Fraction(3, 2))
    """
    if not math.isfinite(scale) or not LIMITS[0] <= scale <= LIMITS[1]:
        raise InvalidRequestError(f"scale must be between {LIMITS[0]} and {LIMITS[1]}; got {scale}")
    return Fraction(scale).limit_denominator(MAX_DENOMINATOR)


def run_factor(scale: float) -> float:
    """The factor a run of ``scale`` uses (:func:`scale_fraction`), as it is recorded; one
    warning where that is not ``scale`` itself (0.13 runs as 1/8).

    Examples
    --------
    >>> run_factor(0.5), run_factor(1 / 3)
    (0.5, 0.3333333333333333)
    """
    factor = scale_fraction(float(scale))
    if abs(float(factor) - float(scale)) > 5e-3 * float(scale):  # 0.333 is 1/3
        warnings.warn(
            f"scale {scale} runs as {factor.numerator}/{factor.denominator} = "
            f"{float(factor):.6g} (a tile must start on a pixel of both grids)",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    return scale if float(factor) == float(scale) else float(factor)


def with_scale(model: Model, scale: float | str | None) -> Model:
    """``model`` run at ``scale`` (a :class:`ScaledModel`); the model itself for none or 1, or
    when it already runs at that scale (a facade opened it so for the same options)."""
    if isinstance(scale, str) and scale.strip().lower() == "auto":
        raise InvalidRequestError(
            "scale auto is chosen from the whole image by segment (scopeml.tiling.size); "
            "pass the number it chose (scopeml info shows it)"
        )
    if scale is None or float(scale) == 1.0:
        return model
    if isinstance(model, ScaledModel) and model.factor == scale_fraction(float(scale)):
        return model
    return ScaledModel(model, scale)


#: What a :class:`ScaledModel`'s spec name adds to its model's (``nuclei at scale 0.5``).
SCALED = " at scale "


def unscaled_name(name: str) -> str:
    """A model name as a store records it, without the `` at scale …`` of a scaled run.

    >>> unscaled_name("nuclei at scale 0.5"), unscaled_name("nuclei")
    ('nuclei', 'nuclei')
    """
    return name.split(SCALED)[0]


def model_name(model: Model) -> str:
    """The model's name as the user chose it: a :class:`ScaledModel`'s without the
    `` at scale …`` its spec's name ends in (the store records that; messages name the model).

    Examples
    --------
    >>> from scopeml.model.spec import ModelSpec
    >>> class Nuclei:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0),
    ...                      name="nuclei")
    >>> scaled = ScaledModel(Nuclei(), 0.5)
    >>> scaled.spec.name, model_name(scaled)
    ('nuclei at scale 0.5', 'nuclei')
    """
    while isinstance(model, ScaledModel):
        model = model.model
    return model.spec.name


class ScaledModel:
    """A model that sees the image magnified by ``scale``; see the module docstring.

    Attributes are the wrapped model's (its ``info``, ``metadata``, ``path``), except its
    ``spec`` (halo and step in the image's pixels) and ``predict_index`` (the probabilities are
    resampled, so the winner is taken after that, by the engine).
    """

    def __init__(self, model: Model, scale: float) -> None:
        factor = scale_fraction(run_factor(scale))
        inner = model.spec
        if inner.tile_shape is not None:
            raise IncompatibleModelError(
                f"model {inner.name!r} takes a fixed input of {inner.tile_shape}; "
                "scale needs a model that takes any tile size"
            )
        self.model = model
        self.factor = factor
        p, q = factor.numerator, factor.denominator
        sigma = _sigma(factor)
        reach = math.ceil(TRUNCATE * sigma) if sigma else 0
        self._sigma = sigma
        self.spec = ModelSpec(
            spatial_dims=inner.spatial_dims,
            in_channels=inner.in_channels,
            classes=inner.classes,
            # the model's halo at its scale, plus a pixel each way for both interpolations
            # and the pre-filter's reach
            halo=tuple(math.ceil((h + 2) * q / p) + reach + 2 for h in inner.halo),
            # a tile's start and size in pixels of both grids, landing on the model's step
            tile_step=tuple(q * s // math.gcd(p, s) for s in inner.tile_step),
            name=f"{inner.name}{SCALED}{_text(factor)}",
            pixel_size=(
                tuple(size * q / p for size in inner.pixel_size) if inner.pixel_size else None
            ),
            normalize=recorded_normalize(model),
            extra=dict(inner.extra),
        )

    def __getattr__(self, name: str) -> Any:
        if name == "predict_index" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities over ``batch``'s grid, the model run on it magnified."""
        batch = np.asarray(batch, np.float32)
        magnified = _zoom(batch, self.factor, self._sigma)
        probabilities = np.asarray(self.model.predict(magnified), np.float32)
        back = _zoom(probabilities, 1 / self.factor, 0.0)
        if back.shape[2:] != batch.shape[2:]:  # a tile size off the step grid
            raise IncompatibleModelError(
                f"tile {batch.shape[2:]} does not map to whole pixels at scale {_text(self.factor)}"
            )
        return back

    def __repr__(self) -> str:
        return f"ScaledModel({self.model!r}, {_text(self.factor)})"


def _zoom(batch: np.ndarray, factor: Fraction, sigma: float) -> np.ndarray:
    """Each ``N×C`` plane or volume of ``batch`` resampled by ``factor`` on every spatial axis
    (pixel centres onto pixel centres, linear), after a Gaussian of ``sigma`` where one is given.

    Separable: one axis after the other, each output pixel from the two input pixels and the
    weight :func:`_taps` gives it (the nearest pixel beyond an edge), in float32.
    """
    from scipy import ndimage

    spatial = batch.shape[2:]
    taps = [_taps(round(n * factor), factor) for n in spatial]
    out = np.empty(batch.shape[:2] + tuple(len(first) for first, _ in taps), np.float32)
    for index in np.ndindex(*batch.shape[:2]):
        plane = batch[index]
        if sigma:
            plane = ndimage.gaussian_filter(plane, sigma, mode="nearest", truncate=TRUNCATE)
        for axis, (first, weight) in enumerate(taps):
            n = plane.shape[axis]
            low = plane.take(np.clip(first, 0, n - 1), axis)
            high = plane.take(np.clip(first + 1, 0, n - 1), axis)
            shape = [1] * plane.ndim
            shape[axis] = len(first)
            high -= low  # in place: low + (high - low) * weight, two arrays of the output's size
            high *= weight.reshape(shape)
            high += low
            plane = high
        out[index] = plane
    return out


def _taps(size: int, factor: Fraction) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``size`` output pixels of a grid magnified by ``factor = p/q`` samples its
    input: the first of two input pixels and the second's float32 weight.

    Pixel ``j`` sits at ``(j + 0.5)·q/p − 0.5 = ((2j + 1)·q − p) / 2p`` input pixels: the integer
    quotient is the first pixel, the remainder over ``2p`` the weight. Both come from integers
    and the weight from the remainder alone, so a pixel's taps do not depend on where its tile
    starts, only on its position (a tile shifted by a multiple of ``p`` output pixels shifts its
    first pixels by the same multiple of ``q``; the remainders repeat with period ``p``).

    Examples
    --------
    >>> first, weight = _taps(4, Fraction(2))
    >>> first.tolist(), weight.tolist()
    ([-1, 0, 0, 1], [0.75, 0.25, 0.75, 0.25])
    >>> _taps(3, Fraction(2, 3))[0].tolist()  # at 0.25, 1.75, 3.25
    [0, 1, 3]
    """
    p, q = factor.numerator, factor.denominator
    numerator = (2 * np.arange(size, dtype=np.int64) + 1) * q - p
    first, remainder = np.divmod(numerator, 2 * p)
    table = np.array([r / (2 * p) for r in range(2 * p)], np.float32)  # one weight per phase
    return first, table[remainder]


def _sigma(factor: Fraction) -> float:
    """Anti-aliasing sigma in the image's pixels: none when magnifying."""
    return (1 / float(factor) - 1) / 2 if factor < 1 else 0.0


def _text(factor: Fraction) -> str:
    return str(factor.numerator) if factor.denominator == 1 else f"{float(factor):g}"


def open_scaled_model(path: str, scale: float) -> ScaledModel:
    """A model file run at ``scale``: how engine workers (dask) reopen a scaled model."""
    from scopeml.model.registry import open_model

    return ScaledModel(open_model(path), scale)
