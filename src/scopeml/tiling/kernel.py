"""The work on one batch of tiles: read, normalise, pad, predict, crop (or blend), write.

Pure functions of their arguments, so a thread of the local pool and a dask worker run the
same code. Only a tile's core is written; padding and halo never reach the output.

NaN and infinite input pixels (float images) reach the model as 0 and are written as
unclassified: label 0, and 0 in every other output. The substitution is per pixel, so a tiled
run still equals a whole-image run bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scopeml.errors import IncompatibleModelError
from scopeml.io.image import Image
from scopeml.io.nonfinite import replace_nonfinite
from scopeml.model.spec import Model
from scopeml.tiling.normalize import Normalization
from scopeml.tiling.outputs import OutputSpec, compute_outputs, index_outputs
from scopeml.tiling.plan import Region, Tile


@dataclass(frozen=True)
class TileContext:
    """Everything a worker needs besides the model, the image and the output arrays."""

    scene: int
    spatial_axes: tuple[str, ...]
    output_axes: dict[str, str]
    specs: tuple[OutputSpec, ...]
    batch_size: int = 4
    normalization: Normalization | None = None
    min_confidence: float | None = None
    extract_index: int | None = None
    step: dict[str, int] = field(default_factory=dict)
    window: dict[str, int] = field(default_factory=dict)
    fixed_input: bool = False
    #: Only the most probable class is written (labels, mask; no threshold, no blending) and
    #: the model has ``predict_index``: tiles carry class indices, not probabilities.
    index_only: bool = False
    #: The image has float pixels, which may be NaN or infinite (integers never are).
    check_finite: bool = False


def read_block(image: Image, region: Region, ctx: TileContext) -> np.ndarray:
    """Read a region as a normalised float32 ``C×[Z×]Y×X`` block (no padding)."""
    block = image.read(S=ctx.scene, **{axis: slice(*span) for axis, span in region.items()})
    block = block[0, 0]  # S, T → C×Z×Y×X
    if len(ctx.spatial_axes) == 2:
        block = block[:, 0]
    if ctx.normalization is not None:  # the block's time point's, where they are per time point
        return ctx.normalization.at(region.get("T", (0, 1))[0]).apply(block)
    return block.astype(np.float32, copy=False)


def mask_invalid(block: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Replace pixels with a NaN or infinite value in any channel by 0 in every channel
    (:func:`scopeml.io.nonfinite.replace_nonfinite`, the rule the pixel classifier follows too),
    as float32 where any was replaced.

    Returns the block and the ``[Z×]Y×X`` mask of those pixels (``None`` when there are none).

    Examples
    --------
    >>> block, invalid = mask_invalid(np.array([[1.0, np.nan], [2.0, 3.0]], np.float32))
    >>> block.tolist(), invalid.tolist()
    ([[1.0, 0.0], [2.0, 0.0]], [False, True])
    """
    replaced, invalid = replace_nonfinite(block)
    if invalid is None:
        return block, None
    return replaced.astype(np.float32, copy=False), invalid


def pad_to(block: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Zero-pad a ``C×…`` block at the far end of each spatial axis to ``shape``."""
    widths = [(0, 0)] + [(0, int(n) - s) for n, s in zip(shape, block.shape[1:], strict=True)]
    if any(w[1] < 0 for w in widths):
        raise ValueError(f"block {block.shape[1:]} is larger than the input shape {tuple(shape)}")
    if not any(w[1] for w in widths):
        return block
    return np.pad(block, widths)


def run_model(
    model: Model,
    inputs: list[np.ndarray],
    n_classes: int,
    planes: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """Predict equal-shaped ``C×…`` inputs as one batch; check the model's answer.
    ``planes``: only those Z planes (a model with :func:`predicts_planes`)."""
    batch = stack_batch(inputs)
    kwargs = {} if planes is None else {"planes": planes}
    result = np.asarray(model.predict(batch, **kwargs))
    expected = (len(inputs), n_classes, *_answer_shape(batch.shape[2:], planes))
    if result.shape != expected:
        raise IncompatibleModelError(
            f"model returned shape {result.shape} for input {batch.shape}; expected {expected}"
        )
    return list(result.astype(np.float32, copy=False))


def run_model_index(
    model: Model, inputs: list[np.ndarray], planes: tuple[int, int] | None = None
) -> list[np.ndarray]:
    """The most probable class index of equal-shaped ``C×…`` inputs, as one batch;
    ``planes`` as in :func:`run_model`."""
    batch = stack_batch(inputs)
    kwargs = {} if planes is None else {"planes": planes}
    result = np.asarray(model.predict_index(batch, **kwargs))  # type: ignore[attr-defined]
    expected = (len(inputs), *_answer_shape(batch.shape[2:], planes))
    if result.shape != expected or result.dtype.kind not in "iu":
        raise IncompatibleModelError(
            f"model returned class indices {result.dtype} {result.shape} for input "
            f"{batch.shape}; expected integers of shape {expected}"
        )
    return list(result)


def stack_batch(inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Equal-shaped ``C×…`` inputs as one float32 ``N×C×…`` batch. Inputs of several shapes
    are refused in one line: a caller groups tiles by input shape first, as the engine's
    batches do (``np.stack`` would only say that the shapes differ).

    Examples
    --------
    >>> stack_batch([np.zeros((1, 4, 4)), np.zeros((1, 4, 2))])
    Traceback (most recent call last):
    ...
    ValueError: a batch holds inputs of shapes [(1, 4, 2), (1, 4, 4)]; a model takes one shape \
per batch: group tiles by input shape (scopeml.tiling.engine._batches)
    """
    shapes = sorted({block.shape for block in inputs})
    if len(shapes) > 1:
        raise ValueError(
            f"a batch holds inputs of shapes {shapes}; a model takes one shape per batch: "
            "group tiles by input shape (scopeml.tiling.engine._batches)"
        )
    return np.ascontiguousarray(np.stack(inputs), dtype=np.float32)


def predicts_planes(model: Model) -> bool:
    """Whether ``model`` answers for a few Z planes of its input (``predict(batch, planes=)``),
    looked up on its class: a wrapper that forwards attributes (a scaled model) does not."""
    return bool(getattr(type(model), "predicts_planes", False))


def _answer_shape(spatial: tuple[int, ...], planes: tuple[int, int] | None) -> tuple[int, ...]:
    return tuple(spatial) if planes is None else (planes[1] - planes[0], *spatial[1:])


def _core_planes(tiles: Sequence[Tile], ctx: TileContext) -> tuple[int, int] | None:
    """The planes of a 3-D group's inputs that hold a tile's core: all the engine keeps."""
    if ctx.spatial_axes[0] != "Z" or len(ctx.spatial_axes) != 3:
        return None
    lo = min(t.core_offset["Z"] for t in tiles)
    hi = max(t.core_offset["Z"] + t.core["Z"][1] - t.core["Z"][0] for t in tiles)
    return lo, hi


def predict_tiles(
    model: Model, image: Image, tiles: Sequence[Tile], ctx: TileContext
) -> list[np.ndarray]:
    """Class probabilities ``K×[Z×]Y×X`` over each tile's core; with ``ctx.index_only``, the
    model's most probable class index ``[Z×]Y×X`` instead."""
    return [prediction for prediction, _ in _predict(model, image, tiles, ctx)]


def _predict(
    model: Model, image: Image, tiles: Sequence[Tile], ctx: TileContext
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """:func:`predict_tiles`, each with the mask of its core's NaN/infinite input pixels."""
    n_classes = len(model.spec.classes)
    if any(tile.windows for tile in tiles):
        return [_blend_tile(model, image, tile, ctx, n_classes) for tile in tiles]
    results: list[tuple[np.ndarray, np.ndarray | None]] = []
    for start in range(0, len(tiles), ctx.batch_size):
        group = tiles[start : start + ctx.batch_size]
        inputs, invalid = _tile_inputs(image, group, ctx)
        planes = _core_planes(group, ctx) if predicts_planes(model) else None
        if ctx.index_only:
            answers = run_model_index(model, inputs, planes)
        else:
            answers = run_model(model, inputs, n_classes, planes)
        for tile, answer, mask in zip(group, answers, invalid, strict=True):
            offset = tile.core_offset
            crop = tuple(
                slice(offset[a], offset[a] + tile.core[a][1] - tile.core[a][0])
                for a in ctx.spatial_axes
            )
            held = crop if planes is None else _shift_z(crop, planes[0])
            core = answer[held] if ctx.index_only else answer[(slice(None), *held)]
            results.append((core, None if mask is None else mask[crop]))
    return results


def _shift_z(crop: tuple[slice, ...], lo: int) -> tuple[slice, ...]:
    """A crop of the input's planes as a crop of an answer holding planes ``lo:`` only."""
    return (slice(crop[0].start - lo, crop[0].stop - lo), *crop[1:])


def _tile_inputs(
    image: Image, tiles: Sequence[Tile], ctx: TileContext
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Model inputs of a group of tiles, read as one region when they are neighbours.

    Neighbouring tiles share image chunks; one read of their union decodes each chunk once
    instead of once per tile. Tiles far apart are read one by one.
    """
    union = {
        a: (min(t.read[a][0] for t in tiles), max(t.read[a][1] for t in tiles))
        for a in tiles[0].read
    }
    area = np.prod([hi - lo for lo, hi in union.values()], dtype=np.float64)
    separate = sum(
        np.prod([hi - lo for lo, hi in t.read.values()], dtype=np.float64) for t in tiles
    )
    same_plane = all(
        t.read[a] == tiles[0].read[a] for t in tiles for a in t.read if a not in ctx.spatial_axes
    )
    use_union = len(tiles) > 1 and same_plane and area <= 1.5 * separate
    shared = read_block(image, union, ctx) if use_union else None
    inputs, masks = [], []
    for tile in tiles:
        if shared is None:
            block = read_block(image, tile.read, ctx)
        else:
            offsets = [
                slice(tile.read[a][0] - union[a][0], tile.read[a][1] - union[a][0])
                for a in ctx.spatial_axes
            ]
            block = shared[(slice(None), *offsets)]
        invalid = None
        if ctx.check_finite:
            block, invalid = mask_invalid(block)
        inputs.append(pad_to(block, [tile.input_shape[a] for a in ctx.spatial_axes]))
        masks.append(invalid)
    return inputs, masks


def gaussian_weights(shape: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian importance map for a window, peak 1 at the centre, never 0.

    Examples
    --------
    >>> w = gaussian_weights((5,))
    >>> float(w[2]), bool(w[0] > 0)
    (1.0, True)
    """
    weights = np.ones((), np.float32)
    for n in shape:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2
        g = np.exp(-0.5 * (x / max(n * sigma_scale, 1e-6)) ** 2)
        weights = np.multiply.outer(weights, np.maximum(g, 1e-3).astype(np.float32))
    return weights.astype(np.float32)


def _blend_tile(
    model: Model, image: Image, tile: Tile, ctx: TileContext, n_classes: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fuse the Gaussian-weighted windows that touch a tile's core (windows in plan order)."""
    axes = ctx.spatial_axes
    block = read_block(image, tile.read, ctx)
    invalid = None
    if ctx.check_finite:
        block, invalid = mask_invalid(block)
        if invalid is not None:
            invalid = invalid[
                tuple(
                    slice(tile.core[a][0] - tile.read[a][0], tile.core[a][1] - tile.read[a][0])
                    for a in axes
                )
            ]
    core_shape = [tile.core[a][1] - tile.core[a][0] for a in axes]
    total = np.zeros((n_classes, *core_shape), np.float32)
    weight_sum = np.zeros(core_shape, np.float32)
    nominal = [ctx.window[a] for a in axes]
    weights = gaussian_weights(nominal)
    pending: list[Region] = []

    def flush() -> None:
        inputs = []
        for window in pending:
            part = block[
                (
                    slice(None),
                    *tuple(
                        slice(window[a][0] - tile.read[a][0], window[a][1] - tile.read[a][0])
                        for a in axes
                    ),
                )
            ]
            inputs.append(pad_to(part, _window_input_shape(window, ctx)))
        for window, probabilities in zip(pending, run_model(model, inputs, n_classes), strict=True):
            lo = [max(window[a][0], tile.core[a][0]) for a in axes]
            hi = [min(window[a][1], tile.core[a][1]) for a in axes]
            src = tuple(
                slice(start - window[a][0], stop - window[a][0])
                for a, start, stop in zip(axes, lo, hi, strict=True)
            )
            dst = tuple(
                slice(start - tile.core[a][0], stop - tile.core[a][0])
                for a, start, stop in zip(axes, lo, hi, strict=True)
            )
            w = weights[src]
            total[(slice(None), *dst)] += probabilities[(slice(None), *src)] * w
            weight_sum[dst] += w
        pending.clear()

    for window in tile.windows:
        shape = _window_input_shape(window, ctx)
        if pending and (
            len(pending) == ctx.batch_size or _window_input_shape(pending[0], ctx) != shape
        ):
            flush()
        pending.append(window)
    if pending:
        flush()
    return total / weight_sum, invalid


def _window_input_shape(window: Region, ctx: TileContext) -> list[int]:
    if ctx.fixed_input:
        return [ctx.window[a] for a in ctx.spatial_axes]
    return [
        -(-(window[a][1] - window[a][0]) // ctx.step.get(a, 1)) * ctx.step.get(a, 1)
        for a in ctx.spatial_axes
    ]


def write_tile(
    arrays: Mapping[str, Any],
    tile: Tile,
    prediction: np.ndarray,
    ctx: TileContext,
    invalid: np.ndarray | None = None,
) -> None:
    """Compute the outputs of one tile core (probabilities, or class indices with
    ``ctx.index_only``) and write them into their arrays; pixels of the ``invalid`` mask
    (NaN/infinite input) are written as 0 in every output."""
    if ctx.index_only:
        outputs = index_outputs(prediction, ctx.specs, extract_index=ctx.extract_index)
    else:
        outputs = compute_outputs(
            prediction,
            ctx.specs,
            min_confidence=ctx.min_confidence,
            extract_index=ctx.extract_index,
        )
    for name, data in outputs.items():
        if invalid is not None:
            data[..., invalid] = 0  # the mask covers the trailing (spatial) axes
        axes = ctx.output_axes[name]
        region = tuple(slice(None) if a == "C" else slice(*tile.core[a]) for a in axes)
        shape = tuple(
            data.shape[0] if a == "C" else tile.core[a][1] - tile.core[a][0] for a in axes
        )
        arrays[name][region] = data.reshape(shape)


def process_batch(
    model: Model,
    image: Image,
    arrays: Mapping[str, Any],
    tiles: Sequence[Tile],
    ctx: TileContext,
    on_done: Callable[[Sequence[Tile], Sequence[int]], None] | None = None,
) -> int:
    """Run and write a batch of tiles, then report them done with the count of each one's
    NaN/infinite input pixels; returns the number of tiles."""
    counts = []
    for tile, (prediction, invalid) in zip(tiles, _predict(model, image, tiles, ctx), strict=True):
        write_tile(arrays, tile, prediction, ctx, invalid)
        counts.append(0 if invalid is None else int(invalid.sum()))
    if on_done is not None:
        on_done(tiles, counts)
    return len(tiles)
