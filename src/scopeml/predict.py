"""Predict one region of an image exactly as :func:`scopeml.segment` writes it there.

The region's tiles come from the engine's plan (:func:`~scopeml.tiling.engine.build_plan`)
over the region grown by the model's halo, and run through its kernel
(:func:`~scopeml.tiling.kernel.process_batch`, in the engine's batches of tiles of one input
shape) with the whole image's normalisation, writing into an in-memory window instead of a
store. A model never sees a region cut without its halo, so the result equals the
whole-image run there, bit for bit (the napari preview uses it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import operator
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scopeml.errors import InvalidRequestError, find_stack_level
from scopeml.io.image import Image, axis_keys
from scopeml.model.spec import Model, recorded_normalize
from scopeml.progress import Progress, track
from scopeml.tiling.engine import (
    _batches,
    _warn_invalid,
    build_plan,
    check_compatible,
    output_layout,
    spatial_axes,
)
from scopeml.tiling.kernel import TileContext, process_batch
from scopeml.tiling.normalize import Normalization, chosen_policy, compute_normalization
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.outputs import model_outputs, needs_probabilities, output_specs
from scopeml.tiling.scale import with_scale

Region = Mapping[str, tuple[int, int]]
#: Largest tile edge (pixels, 2-D) when the options set none: a 1024² view plus halo is one.
MAX_REGION_TILE = 2048
#: What :func:`predict_region` can return (the blended and the instance outputs need more
#: than one region's tiles).
REGION_OUTPUTS = ("labels", "probabilities", "confidence", "mask", "image")


def region_normalization(
    image: Image,
    model: Model,
    *,
    scene: int = 0,
    normalize: str | None = None,
    progress: Progress = None,
) -> Normalization | None:
    """The whole-image normalisation ``segment`` uses for this model: compute it once per
    model and image and pass it to every :func:`predict_region` call. ``progress`` gets
    stage ``statistics`` (the streaming pass over the whole image: the slow part on a large
    one).

    Examples
    --------
    >>> from scopeml.model.spec import ModelSpec
    >>> class Same:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("a", "b"), halo=(0, 0))
    >>> region_normalization(Image(np.zeros((1, 1, 1, 1, 4, 4), np.uint8)), Same()) is None
    True
    """
    policy = chosen_policy(normalize, recorded_normalize(model))
    return compute_normalization(image, policy, scene=scene, progress=progress)


def predict_region(
    image: Image,
    model: Model,
    region: Region | None = None,
    *,
    outputs: str | Sequence[str] = "labels",
    options: SegmentOptions | None = None,
    normalization: Normalization | None = None,
    output: str | None = None,
    progress: Progress = None,
) -> np.ndarray:
    """One output of ``segment`` over ``region`` only, equal to what it writes there.

    Parameters
    ----------
    image, model
        An opened image and model (see :func:`scopeml.segment`).
    region
        ``{axis: (start, stop)}`` over ``Y``, ``X`` and, where the image has them, ``T`` and
        ``Z`` (any case: ``"y"`` is ``Y``); axes left out, or ``None``, are taken whole. Any
        other key, and a span not inside the image (``0 <= start < stop <= size``), is
        refused: a region is never clipped or ignored without a word.
    outputs
        The output kind, named as in ``segment``'s ``outputs=`` (one of them: one array comes
        back): ``"labels"`` (class ``k`` as ``k + 1``), ``"probabilities"`` (one channel per
        class), ``"confidence"`` or ``"mask"`` (with ``options.extract_class``); a
        ``Regression`` model's is ``"image"`` (its default too: ``"labels"`` becomes it).
    options
        The segment options whose result to reproduce (``scene``, ``min_confidence``,
        ``extract_class``, ``normalize``, ``probability_dtype``, ``scale``); ``tile_size``
        only changes the speed. ``blend`` is refused: a blended pixel depends on its
        neighbours' tiles.
    normalization
        From :func:`region_normalization` (computed here, over the whole image, when not given).
    output
        Deprecated (a :class:`DeprecationWarning`; it goes in the next release): ``outputs``.
        (``output=`` is a store's or a table's path everywhere else.)
    progress
        As ``segment``'s (:mod:`scopeml.progress`): stage ``statistics`` while the
        normalisation is computed here, then ``segment`` in batches of tiles; the callable
        may raise :class:`~scopeml.errors.Cancelled` between two.

    Returns
    -------
    numpy.ndarray
        ``[T×][C×][Z×]Y×X`` over the region (axes of length one in the image dropped; ``C``
        for probabilities and a Regression model's image only), as in the output store.

    Examples
    --------
    >>> from scopeml.model.spec import ModelSpec
    >>> class Threshold:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))
    ...     def predict(self, batch):
    ...         fg = (batch > 5).astype(np.float32)
    ...         return np.concatenate([1 - fg, fg], axis=1)
    >>> image = Image(np.arange(100, dtype=np.uint8).reshape(1, 1, 1, 1, 10, 10) % 10)
    >>> predict_region(image, Threshold(), {"Y": (2, 4), "X": (4, 8)}).tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    output = one_output(outputs, output)
    options = options or SegmentOptions(workers=1)
    if output in REGION_OUTPUTS:  # a Regression model's image, as segment writes it
        kind = model.spec.extra.get("model_type")
        output = model_outputs(kind, (output,), options.min_confidence)[0]
    model = with_scale(model, options.scale)
    _check_request(output, options)
    check_compatible(image, model)
    scene = _scene(image, options)
    if normalization is None:
        normalization = region_normalization(
            image, model, scene=scene, normalize=options.normalize, progress=progress
        )
    elif len(normalization.offset) != image.sizes["C"]:
        raise InvalidRequestError(
            f"normalization= is of {len(normalization.offset)} channels; the model reads "
            f"{image.sizes['C']} ({', '.join(image.channel_names)}): compute it with "
            "region_normalization on those channels (image.select_channels)",
            path=image.path,
        )
    layout = output_layout(image)
    specs = tuple(output_specs(model.spec.classes, (output,), options.probability_dtype))
    axes = layout["with_c" if specs[0].channel_names else "without_c"]
    bounds = _bounds(region or {}, image)
    crop = _grown(image, model, bounds)
    view = Image(
        _Crop(image.data, crop),
        pixel_sizes=image.pixel_sizes,
        channel_names=image.channel_names,
        path=image.path,
    )
    inside = {a: (lo - crop[a][0], hi - crop[a][0]) for a, (lo, hi) in bounds.items()}
    inside["C"] = (0, len(model.spec.classes))
    window = _Window(axes, inside, specs[0].dtype)
    tiled = spatial_axes(model)
    if options.tile_size is None and len(tiled) == 2:  # one tile when the view is small
        extent = max(crop[a][1] - crop[a][0] for a in tiled)
        options = dataclasses.replace(options, tile_size=min(extent, MAX_REGION_TILE))
    if normalization is not None:  # the view's time point 0 is the image's crop["T"][0]
        normalization = normalization.from_time(crop["T"][0])
    ctx = _context(image, model, options, specs, axes, normalization)
    tiles = (tile for tile in build_plan(view, model, options) if _overlaps(tile.core, inside))
    # the engine's batches: tiles of one input shape (a model takes one N×C×… array)
    batches = list(_batches(tiles, options.batch_size, blend=False))
    for batch in track(batches, progress, "segment", unit="batch"):
        process_batch(model, view, {output: window}, batch, ctx)
    _warn_invalid(_nonfinite(image, scene, bounds), image)  # as segment warns of them
    return window.array


def _nonfinite(image: Image, scene: int, bounds: Mapping[str, tuple[int, int]]) -> int:
    """The pixels of ``bounds`` with a NaN or infinite value in any channel (none in an
    integer image), read a time point at a time."""
    if not np.issubdtype(np.dtype(image.dtype), np.floating):
        return 0
    space = {a: slice(*bounds[a]) for a in "ZYX"}
    return sum(
        int(np.count_nonzero(~np.isfinite(image.read(S=scene, T=t, **space)).all(axis=2)))
        for t in range(*bounds["T"])
    )


def one_output(outputs: str | Sequence[str], output: str | None = None) -> str:
    """The one output kind :func:`predict_region` is asked for: ``outputs`` (a name, or one
    name in a sequence, as ``segment`` takes them), or the deprecated ``output`` keyword (with
    a :class:`DeprecationWarning` naming ``outputs``).

    Examples
    --------
    >>> one_output("instances"), one_output(["probabilities"])
    ('instances', 'probabilities')
    """
    if output is not None:
        if outputs != "labels":
            raise InvalidRequestError("give outputs= only (output= is its old name)")
        warnings.warn(
            "predict_region: 'output' is renamed 'outputs' (the kind, as in segment's outputs=; "
            "output= is a path elsewhere); the old name goes in the next release",
            DeprecationWarning,
            stacklevel=find_stack_level(),
        )
        outputs = output
    names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    if len(names) != 1 or not isinstance(names[0], str):
        raise InvalidRequestError(
            f"predict_region returns one array: give one output kind as outputs=; got {outputs!r}"
        )
    return names[0]


def _check_request(output: str, options: SegmentOptions) -> None:
    if output not in REGION_OUTPUTS:
        raise InvalidRequestError(
            f"predict_region makes one of {', '.join(REGION_OUTPUTS)}; got {output!r}"
        )
    if options.blend:
        raise InvalidRequestError(
            "predict_region cannot blend: a blended pixel depends on the tiles around it; "
            "segment the image with blend=True instead"
        )
    if output == "mask" and not options.extract_class:
        raise InvalidRequestError("the mask output needs extract_class (the class to extract)")


def _scene(image: Image, options: SegmentOptions) -> int:
    """The scene ``segment`` reads: ``options.scene`` of a multi-scene image, else the one."""
    n = image.sizes["S"]
    if n == 1:
        return 0
    if options.scene is None or not 0 <= options.scene < n:
        raise InvalidRequestError(
            f"image has {n} scenes (0–{n - 1}); choose one with scene=", path=image.path
        )
    return options.scene


def _grown(image: Image, model: Model, bounds: Region) -> dict[str, tuple[int, int]]:
    """``bounds`` grown by the model's halo, starting on its step grid: every pixel of the
    region sees the context it has in a whole-image run, and no more is predicted."""
    tiled = spatial_axes(model)
    halo = dict(zip(tiled, model.spec.halo, strict=True))
    step = dict(zip(tiled, model.spec.tile_step, strict=True))
    crop = dict(bounds)
    for a in tiled:
        reach = -(-halo[a] // step[a]) * step[a]
        crop[a] = (max(0, bounds[a][0] - reach) // step[a] * step[a],
                   min(image.sizes[a], bounds[a][1] + reach))  # fmt: skip
    return crop


def _context(
    image: Image,
    model: Model,
    options: SegmentOptions,
    specs: tuple[Any, ...],
    axes: str,
    normalization: Normalization | None,
) -> TileContext:
    """The kernel's context, as the engine builds it for an unblended run."""
    from scopeml.tiling.outputs import class_index

    tiled = spatial_axes(model)
    extract = options.extract_class
    return TileContext(
        scene=_scene(image, options),
        spatial_axes=tiled,
        output_axes={specs[0].name: axes},
        specs=specs,
        batch_size=options.batch_size,
        normalization=normalization,
        min_confidence=options.min_confidence,
        extract_index=class_index(model.spec.classes, extract) if extract else None,
        step=dict(zip(tiled, model.spec.tile_step, strict=True)),
        fixed_input=model.spec.tile_shape is not None,
        index_only=hasattr(model, "predict_index")
        and not needs_probabilities(specs, options.min_confidence),
        check_finite=np.dtype(image.dtype).kind == "f",
    )


class _Window:
    """Output arrays indexed in image coordinates that keep only the part inside ``region``."""

    def __init__(self, axes: str, region: Region, dtype: np.dtype) -> None:
        self.axes = axes
        self.origin = {a: region[a][0] for a in axes}
        self.stop = {a: region[a][1] for a in axes}
        self.array = np.zeros([region[a][1] - region[a][0] for a in axes], dtype)

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        source, target = [], []
        for axis, span, n in zip(self.axes, key, value.shape, strict=True):
            start = span.start or 0  # the kernel writes whole channel axes as ``:``
            stop = start + n if span.stop is None else span.stop
            lo, hi = max(start, self.origin[axis]), min(stop, self.stop[axis])
            if lo >= hi:
                return
            source.append(slice(lo - start, hi - start))
            target.append(slice(lo - self.origin[axis], hi - self.origin[axis]))
        self.array[tuple(target)] = value[tuple(source)]


class _Crop:
    """A ``T``/``Z``/``Y``/``X`` window of a 6-D array-like, itself a 6-D array-like."""

    def __init__(self, data: Any, crop: Region) -> None:
        self.data = data
        self.origin = {a: crop[a][0] for a in "TZYX"}
        self.dtype = data.dtype
        self.shape = tuple(
            crop[a][1] - crop[a][0] if a in crop else n
            for a, n in zip("STCZYX", data.shape, strict=True)
        )

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        moved = tuple(
            slice(k.start + self.origin[a], k.stop + self.origin[a]) if a in self.origin else k
            for a, k in zip("STCZYX", key, strict=True)
        )
        return np.asarray(self.data[moved])


def _bounds(region: Region, image: Image) -> dict[str, tuple[int, int]]:
    """``region`` over every ``T``/``Z``/``Y``/``X`` axis (whole where not named), each span
    checked to lie inside the image.

    Examples
    --------
    >>> image = Image(np.zeros((1, 1, 1, 1, 4, 5)))
    >>> _bounds({"y": (1, 3)}, image)
    {'T': (0, 1), 'Z': (0, 1), 'Y': (1, 3), 'X': (0, 5)}
    >>> _bounds({"Y": (0, 10)}, image)
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: region Y (0, 10) is empty or reaches outside the image \
(Y is 0 to 4; a region is never clipped)
    """
    letters = axis_keys(region, "TZYX", "region", path=image.path)
    spans = {letters[key]: span for key, span in region.items()}
    bounds = {}
    for axis in "TZYX":
        size = image.sizes[axis]
        span = spans.get(axis, (0, size))
        if isinstance(span, slice) and span.step in (None, 1):  # as Image.read takes them
            with contextlib.suppress(TypeError):  # not integers: refused below
                span = span.indices(size)[:2]  # numpy's: -10 counts from the end
        try:
            lo, hi = (operator.index(value) for value in span)  # 50.9 was cut to 50, unsaid
        except (TypeError, ValueError) as err:
            raise InvalidRequestError(
                f"region {axis} {span!r}: give (start, stop) as two integers"
            ) from err
        if not 0 <= lo < hi <= size:
            raise InvalidRequestError(
                f"region {axis} {(lo, hi)} is empty or reaches outside the image ({axis} is "
                f"0 to {size}; a region is never clipped)"
            )
        bounds[axis] = (lo, hi)
    return bounds


def _overlaps(core: Mapping[str, tuple[int, int]], bounds: Mapping[str, tuple[int, int]]) -> bool:
    return all(lo < bounds[a][1] and hi > bounds[a][0] for a, (lo, hi) in core.items())
