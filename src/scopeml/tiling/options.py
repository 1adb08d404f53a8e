"""The options of a segmentation run: one frozen dataclass for the API, the CLI and servers."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from scopeml.errors import InvalidRequestError, summarize

OUTPUT_NAMES = ("labels", "probabilities", "confidence", "mask", "image")
PROBABILITY_DTYPES = ("float32", "float16", "uint8")

# Options that change the pixels written; a resumed run must agree on all of them.
_RESULT_OPTIONS = (
    "outputs",
    "tile_size",
    "halo",
    "min_confidence",
    "extract_class",
    "blend",
    "normalize",
    "probability_dtype",
    "scene",
    "channels",
    "scale",
)


@dataclass(frozen=True)
class SegmentOptions:
    """How to run a model over an image.

    Attributes
    ----------
    outputs
        Any of ``labels`` (class k as k + 1, 0 = unclassified), ``probabilities`` (one channel per
        class), ``confidence`` (max probability), ``mask`` (binary mask of ``extract_class``),
        ``image`` (the output image of a ``Regression`` model: denoised, virtually stained; a
        regression model writes only this, and its default ``labels`` becomes ``image``).
    tile_size
        Core (written block) size per tiled axis: one int for all, or one per spatial axis.
        ``None``: :func:`~scopeml.tiling.engine.default_tile` (2-D: 512, or eight halos where
        that is more, up to 2048: 896 for the shipped nuclei model; 3-D: 128). Ignored for
        models with a fixed input.
    halo
        Context on each side of a core; ``None`` takes the model's own. Smaller than the
        model's need gives a warning (tiles will then differ from a whole-image run).
    batch_size
        Tiles of equal shape sent to the runtime together; on CPU 1 is fastest and needs the
        least memory (measured: 4 tiles of 624² took 1.3× the time and 3.2× the memory).
    workers
        Threads of the local executor (one shared model session); -1: one per core.
    scheduler
        A dask.distributed scheduler address; runs the plan there instead of locally.
    min_confidence
        Pixels whose maximum probability is below this become unclassified (label 0).
    extract_class
        Class name written as a 0/1 ``mask`` output.
    blend
        Fuse overlapping Gaussian-weighted windows instead of cropping halos (models with
        global context).
    normalize
        ``None``: the policy the model records (else raw values); ``"none"``: raw values as
        float32; ``"percentile:LOW,HIGH"`` maps the global per-channel percentiles to 0 and 1;
        ``"meanstd"`` standardises with the global per-channel mean and standard deviation.
        Followed by ``per time point`` (or that alone: the model's policy), each time point
        gets its own statistics.
    probability_dtype
        ``float32``, ``float16`` or ``uint8`` (probability × 255, rounded); the dtype of the
        ``image`` output too (``float32`` or ``float16`` only).
    scene
        Scene index of a multi-scene image.
    channels
        Image channels fed to the model, by index or name, in the model's order (``None``:
        all channels, which must then match the model's input channels).
    scale
        Magnify the image by this factor for the model and resample its probabilities back
        (2: the objects are half the size the model was trained on); every output keeps the
        image's grid. Run as the nearest fraction ``p/q`` with ``q <= 8``, from 1/8 to 8;
        ``None`` or 1: the image as it is. See :mod:`scopeml.tiling.scale`. ``"auto"``:
        chosen per image from its object size (:mod:`scopeml.tiling.size`).
    resume, overwrite
        Continue an interrupted run from its partial store; replace an earlier output that
        scopeml wrote (never another file or folder).
    quiet
        Older switch for the progress bar, used only when ``segment_image`` gets no
        ``progress``; it never changes the result (not part of a run's identity).
    ome_tiff
        Also write each output as ``OUT.<name>.ome.tiff``.
    """

    outputs: tuple[str, ...] = ("labels",)
    tile_size: int | tuple[int, ...] | None = None
    halo: int | tuple[int, ...] | None = None
    batch_size: int = 1
    workers: int = 2
    scheduler: str | None = None
    min_confidence: float | None = None
    extract_class: str | None = None
    blend: bool = False
    normalize: str | None = None
    probability_dtype: str = "float32"
    scene: int | None = None
    channels: tuple[int | str, ...] | None = None
    scale: float | str | None = None
    resume: bool = False
    overwrite: bool = False
    quiet: bool = False
    ome_tiff: bool = False

    def __post_init__(self) -> None:
        outputs = tuple(self.outputs)
        if self.extract_class is not None and "mask" not in outputs:
            outputs = (*outputs, "mask")
        object.__setattr__(self, "outputs", outputs)
        unknown = [name for name in outputs if name not in OUTPUT_NAMES]
        if unknown or not outputs:
            raise InvalidRequestError(
                f"unknown outputs {summarize(map(repr, unknown)) if unknown else 'none'}; "
                f"choose from {', '.join(OUTPUT_NAMES)}"
            )
        if "mask" in outputs and self.extract_class is None:
            raise InvalidRequestError("the mask output needs extract_class (a class name)")
        if self.probability_dtype not in PROBABILITY_DTYPES:
            raise InvalidRequestError(
                f"probability dtype {self.probability_dtype!r} is not one of "
                f"{', '.join(PROBABILITY_DTYPES)}"
            )
        if self.ome_tiff and self.probability_dtype == "float16":
            raise InvalidRequestError(
                "OME-TIFF has no float16 pixel type; write float32 (or no OME-TIFF copy)"
            )
        if self.workers == -1:  # every core, as train_pixel_classifier(workers=-1)
            object.__setattr__(self, "workers", os.cpu_count() or 1)
        if self.batch_size < 1 or self.workers < 1:
            raise InvalidRequestError(
                f"batch_size and workers must be >= 1 (workers: -1 for every core); got "
                f"{self.batch_size}, {self.workers}"
            )
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise InvalidRequestError(
                f"min_confidence must be in [0, 1]; got {self.min_confidence}"
            )
        if self.normalize is not None:
            from scopeml.tiling.normalize import canonical_normalize

            # raises InvalidRequestError if bad; "Per  Time point" resumes "per time point"
            object.__setattr__(self, "normalize", canonical_normalize(self.normalize))
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(self.channels))
        if self.scale is not None:
            from scopeml.tiling.scale import run_factor
            from scopeml.tiling.size import is_auto

            if not is_auto(self.scale):  # "auto" is chosen per image (scopeml.tiling.size)
                factor = run_factor(_number(self.scale))  # raises InvalidRequestError if bad
                if factor != _number(self.scale):  # recorded as run: 0.13 runs as 0.125
                    object.__setattr__(self, "scale", factor)
        for name in ("tile_size", "halo"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
                value = tuple(value)
            values = value if isinstance(value, tuple) else (value,)
            if value is not None and any(
                int(v) < (1 if name == "tile_size" else 0) for v in values
            ):
                raise InvalidRequestError(f"{name} must be positive; got {value}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples as lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentOptions:
        """Inverse of :meth:`to_dict`; unknown keys are an error.

        Examples
        --------
        >>> SegmentOptions.from_dict(SegmentOptions(halo=8).to_dict()).halo
        8
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidRequestError(
                f"unknown options {summarize(unknown)}; known are {', '.join(sorted(known))}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def result_dict(self) -> dict[str, Any]:
        """The options that change the result (recorded in the output for resume checks)."""
        full = self.to_dict()
        result = {key: full[key] for key in _RESULT_OPTIONS}
        if result["scale"] is None:  # not recorded by runs from before the option existed
            del result["scale"]
        return result


def _number(scale: object) -> float:
    try:
        return float(scale)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise InvalidRequestError(f"scale must be a number or auto; got {scale!r}") from err
