"""The live preview: class labels of one region, predicted by the engine's own tile code.

The region's tiles come from the engine's plan (:func:`~scopeml.tiling.engine.build_plan`) and
run through its kernel (:func:`~scopeml.tiling.kernel.process_batch`) with the whole image's
normalisation, writing into an in-memory window instead of a store. So the preview of a region
*is* what ``sm.segment`` writes there, bit for bit, and never runs a model on a region cut
without its halo. (The engine has no public "predict a region" call; this module is that piece.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from scopeml.io.image import Image
from scopeml.model.spec import Model, recorded_normalize
from scopeml.tiling.engine import build_plan, check_compatible, output_layout, spatial_axes
from scopeml.tiling.kernel import TileContext, process_batch
from scopeml.tiling.normalize import Normalization, compute_normalization
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.outputs import needs_probabilities, output_specs

Region = Mapping[str, tuple[int, int]]
#: Largest preview tile edge (pixels, 2-D): a 1024² view plus halo runs as one tile.
MAX_PREVIEW_TILE = 2048


def region_normalization(image: Image, model: Model, *, scene: int = 0) -> Normalization | None:
    """The whole-image normalisation ``segment`` would use for this model (computed once per
    model and image, then reused by every preview)."""
    return compute_normalization(image, recorded_normalize(model), scene=scene)


class _Window:
    """Output arrays indexed in image coordinates that keep only the part inside ``region``."""

    def __init__(self, axes: str, region: Region, dtype: np.dtype) -> None:
        self.axes = axes
        self.origin = {a: region[a][0] for a in axes}
        self.stop = {a: region[a][1] for a in axes}
        self.array = np.zeros([region[a][1] - region[a][0] for a in axes], dtype)

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        source, target = [], []
        for axis, span in zip(self.axes, key, strict=True):
            lo, hi = max(span.start, self.origin[axis]), min(span.stop, self.stop[axis])
            if lo >= hi:
                return
            source.append(slice(lo - span.start, hi - span.start))
            target.append(slice(lo - self.origin[axis], hi - self.origin[axis]))
        self.array[tuple(target)] = value[tuple(source)]


def predict_region(
    image: Image,
    model: Model,
    region: Region,
    *,
    options: SegmentOptions | None = None,
    normalization: Normalization | None = None,
    scene: int = 0,
) -> np.ndarray:
    """Class labels (class ``k`` as ``k + 1``) of ``region`` exactly as ``segment`` writes them.

    Parameters
    ----------
    image, model
        As for ``sm.segment``.
    region
        ``{axis: (start, stop)}`` over ``Y``, ``X`` and, where the image has them, ``T`` and
        ``Z``; axes left out are taken whole.
    options
        Segment options (``tile_size`` only changes the speed: tiling is exact).
    normalization
        From :func:`region_normalization` (computed here when not given).

    Returns
    -------
    numpy.ndarray
        Labels of shape ``[T×][Z×]Y×X`` of the region (axes of length one in the image dropped).

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
    options = options or SegmentOptions(workers=1)
    check_compatible(image, model)
    if normalization is None:
        normalization = region_normalization(image, model, scene=scene)
    axes = output_layout(image)["without_c"]
    full = {a: (0, image.sizes[a]) for a in "TZYX"}
    bounds = {a: _clip(region.get(a, full[a]), image.sizes[a], a) for a in "TZYX"}
    # The engine runs on the region plus the model's halo (start on its step grid): every
    # pixel of the region sees the same context as in a whole-image run, and nothing more is
    # predicted than the region needs (the whole image's tile grid would add partial tiles).
    tiled = spatial_axes(model)
    halo = dict(zip(tiled, model.spec.halo, strict=True))
    step = dict(zip(tiled, model.spec.tile_step, strict=True))
    crop = dict(bounds)
    for a in tiled:
        reach = -(-halo[a] // step[a]) * step[a]
        crop[a] = (max(0, bounds[a][0] - reach) // step[a] * step[a],
                   min(image.sizes[a], bounds[a][1] + reach))  # fmt: skip
    view = Image(
        _Crop(image.data, crop),
        pixel_sizes=image.pixel_sizes,
        channel_names=image.channel_names,
        path=image.path,
    )
    inside = {a: (lo - crop[a][0], hi - crop[a][0]) for a, (lo, hi) in bounds.items()}
    specs = tuple(output_specs(model.spec.classes, ("labels",)))
    window = _Window(axes, inside, specs[0].dtype)
    if options.tile_size is None and len(tiled) == 2:  # one tile when the view is small
        extent = max(crop[a][1] - crop[a][0] for a in tiled)
        options = dataclasses.replace(options, tile_size=min(extent, MAX_PREVIEW_TILE))
    plan = build_plan(view, model, options)
    ctx = TileContext(
        scene=scene,
        spatial_axes=tiled,
        output_axes={"labels": axes},
        specs=specs,
        batch_size=options.batch_size,
        normalization=normalization,
        step=step,
        fixed_input=model.spec.tile_shape is not None,
        index_only=hasattr(model, "predict_index") and not needs_probabilities(specs, None),
        check_finite=np.dtype(image.dtype).kind == "f",
    )
    tiles = [tile for tile in plan if _overlaps(tile.core, inside)]
    for start in range(0, len(tiles), options.batch_size):
        process_batch(
            model, view, {"labels": window}, tiles[start : start + options.batch_size], ctx
        )
    return window.array


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


def _clip(span: tuple[int, int], size: int, axis: str) -> tuple[int, int]:
    from scopeml.errors import InvalidRequestError

    lo, hi = max(0, int(span[0])), min(size, int(span[1]))
    if lo >= hi:
        raise InvalidRequestError(f"region {axis} {tuple(span)} lies outside the image (0, {size})")
    return lo, hi


def _overlaps(core: Mapping[str, tuple[int, int]], bounds: Mapping[str, tuple[int, int]]) -> bool:
    return all(lo < bounds[a][1] and hi > bounds[a][0] for a, (lo, hi) in core.items())


def visible_region(layer: Any) -> dict[str, tuple[int, int]]:
    """The ``Y``/``X`` span of a napari layer that is on screen (the whole layer when napari
    has not drawn it yet), in the layer's data coordinates (full resolution)."""
    shape = layer.data[0].shape if getattr(layer, "multiscale", False) else layer.data.shape
    corners = np.asarray(getattr(layer, "corner_pixels", np.zeros((2, 0))), dtype=float)
    if getattr(layer, "multiscale", False):
        corners = corners * np.asarray(layer.downsample_factors[layer.data_level])
    ny, nx = shape[-2], shape[-1]
    if corners.shape != (2, len(shape)) or np.any(corners[1, -2:] - corners[0, -2:] < 1):
        return {"Y": (0, ny), "X": (0, nx)}
    (y0, x0), (y1, x1) = corners[0, -2:], corners[1, -2:]
    return {
        "Y": (max(0, int(y0)), min(ny, int(np.ceil(y1)) + 1)),
        "X": (max(0, int(x0)), min(nx, int(np.ceil(x1)) + 1)),
    }
