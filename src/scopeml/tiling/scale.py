"""Run a model at another scale: the image resampled by a factor, the probabilities resampled back.

A network trained on nuclei of some size over-splits nuclei much larger than it knows and merges
or misses much smaller ones (the shipped ``nuclei`` model on a real image magnified 3× finds 195
objects for 125 nuclei). ``scale`` — stardist's ``predict_instances(scale=)``, cellpose's
diameter ratio — magnifies the image by a factor before the model (2: the objects are half the
size the model expects) and resamples its class probabilities back onto the image's grid, so
every output keeps the image's shape and pixel size.

Exact under tiling: both resamplings are local and the same wherever a tile starts. Pixel ``j``
of the scaled image samples the image at ``(j + 0.5) / f - 0.5`` (linear interpolation between
pixel centres, as ``scipy.ndimage.zoom(..., grid_mode=True)`` does); when shrinking, a Gaussian
of sigma ``(1/f - 1) / 2`` first removes what the coarser grid cannot hold (as
``skimage.transform.rescale`` anti-aliases). A tile therefore equals the whole image's result
where it starts on a pixel of both grids — its offsets are multiples of the factor's denominator
and land on the model's own step — and its halo covers the model's halo at the model's scale
plus the resamplings' reach. :class:`ScaledModel` states both in its spec; the engine's plan
does the rest.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any

import numpy as np

from scopeml.errors import IncompatibleModelError, InvalidRequestError
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


class ScaledModel:
    """A model that sees the image magnified by ``scale``; see the module docstring.

    Attributes are the wrapped model's (its ``info``, ``metadata``, ``path``), except its
    ``spec`` (halo and step in the image's pixels) and ``predict_index`` (the probabilities are
    resampled, so the winner is taken after that, by the engine).
    """

    def __init__(self, model: Model, scale: float) -> None:
        factor = scale_fraction(float(scale))
        if abs(float(factor) - float(scale)) > 5e-3 * float(scale):  # 0.333 is 1/3
            warnings.warn(
                f"scale {scale} runs as {factor.numerator}/{factor.denominator} = "
                f"{float(factor):.6g} (a tile must start on a pixel of both grids)",
                UserWarning,
                stacklevel=2,
            )
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
            name=f"{inner.name} at scale {_text(factor)}",
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
        up = float(self.factor)
        probabilities = np.asarray(self.model.predict(_zoom(batch, up, self._sigma)), np.float32)
        back = _zoom(probabilities, 1 / up, 0.0)
        if back.shape[2:] != batch.shape[2:]:  # a tile size off the step grid
            raise IncompatibleModelError(
                f"tile {batch.shape[2:]} does not map to whole pixels at scale {_text(self.factor)}"
            )
        return back

    def __repr__(self) -> str:
        return f"ScaledModel({self.model!r}, {_text(self.factor)})"


def _zoom(batch: np.ndarray, factor: float, sigma: float) -> np.ndarray:
    """Each ``N×C`` plane or volume of ``batch`` resampled by ``factor`` on every spatial axis
    (pixel centres onto pixel centres), after a Gaussian of ``sigma`` where one is given."""
    from scipy import ndimage

    spatial = batch.shape[2:]
    size = tuple(round(n * factor) for n in spatial)
    out = np.empty(batch.shape[:2] + size, np.float32)
    for index in np.ndindex(*batch.shape[:2]):
        plane = batch[index]
        if sigma:
            plane = ndimage.gaussian_filter(plane, sigma, mode="nearest", truncate=TRUNCATE)
        out[index] = ndimage.zoom(plane, factor, order=1, mode="nearest", grid_mode=True)
    return out


def _sigma(factor: Fraction) -> float:
    """Anti-aliasing sigma in the image's pixels: none when magnifying."""
    return (1 / float(factor) - 1) / 2 if factor < 1 else 0.0


def _text(factor: Fraction) -> str:
    return str(factor.numerator) if factor.denominator == 1 else f"{float(factor):g}"


def open_scaled_model(path: str, scale: float) -> ScaledModel:
    """A model file run at ``scale``: how engine workers (dask) reopen a scaled model."""
    from scopeml.model.registry import open_model

    return ScaledModel(open_model(path), scale)
