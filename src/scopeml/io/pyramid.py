"""Downsampled pyramid levels for an OME-Zarr image group, built chunk by chunk.

Each level halves (``factor``) Y and X of the level before it and is computed one output chunk
at a time, so memory stays at a few chunks. ``"mean"`` suits intensities and probabilities;
``"mode"`` (the most frequent value of each block) or ``"nearest"`` suit labels, where a mean
would invent classes. The ``multiscales`` metadata is updated after the levels are complete,
so a reader never sees a level that is still being written.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import zarr

from scopeml.errors import InvalidRequestError
from scopeml.io.omezarr import _Multiscale
from scopeml.io.regions import iter_regions
from scopeml.progress import Progress, track

METHODS = ("mean", "mode", "nearest")
#: Written outputs get levels until Y and X both fit in this many pixels
#: (:func:`add_levels`): a viewer then shows a whole huge image from a small level.
SMALLEST_LEVEL = 1024


def downsample(block: np.ndarray, axes: tuple[int, int], factor: int, method: str) -> np.ndarray:
    """Reduce ``block`` by ``factor`` along the two ``axes``; partial edge blocks are kept.

    Examples
    --------
    >>> a = np.array([[1, 1, 2], [3, 1, 2]], np.uint8)
    >>> downsample(a, (0, 1), 2, "mode").tolist(), downsample(a, (0, 1), 2, "mean").tolist()
    ([[1, 2]], [[2, 2]])
    """
    if method not in METHODS:
        raise InvalidRequestError(f"unknown downsampling method {method!r}; known: {METHODS}")
    moved = np.moveaxis(block, axes, (-2, -1))
    if method == "nearest":
        out = moved[..., ::factor, ::factor]
        return np.moveaxis(out, (-2, -1), axes)
    h, w = moved.shape[-2:]
    ph, pw = (-h) % factor, (-w) % factor
    pad = [(0, 0)] * (moved.ndim - 2) + [(0, ph), (0, pw)]
    lead = moved.shape[:-2]
    if method == "mean":
        padded = np.pad(moved, pad) if ph or pw else moved
        blocks = padded.reshape(*lead, (h + ph) // factor, factor, (w + pw) // factor, factor)
        sums = blocks.sum(axis=(-3, -1), dtype=np.float64)
        # pixels per block: factor² inside, fewer in the partial blocks at the far edges
        rows = np.minimum(factor, h - np.arange(0, h, factor))
        cols = np.minimum(factor, w - np.arange(0, w, factor))
        out = sums / np.multiply.outer(rows, cols)
        if np.dtype(block.dtype).kind in "uib":
            out = np.rint(out)
        out = out.astype(block.dtype)
    else:
        padded = np.pad(moved, pad, mode="edge")
        blocks = padded.reshape(*lead, (h + ph) // factor, factor, (w + pw) // factor, factor)
        values = np.moveaxis(blocks, -3, -2).reshape(*lead, blocks.shape[-4], blocks.shape[-2], -1)
        out = _mode_of_four(values) if factor == 2 else _mode(values)
    return np.moveaxis(out, (-2, -1), axes)


def _mode(values: np.ndarray) -> np.ndarray:
    """The most frequent of the values along the last axis, the first of them on a tie."""
    counts = (values[..., :, None] == values[..., None, :]).sum(axis=-1)
    pick = np.argmax(counts, axis=-1)[..., None]
    return np.take_along_axis(values, pick, axis=-1)[..., 0]


def _mode_of_four(values: np.ndarray) -> np.ndarray:
    """:func:`_mode` of four values by comparisons, a few times faster (labels of a huge
    output): the first value unless it is alone and another is not."""
    a, b, c, d = (values[..., i] for i in range(4))
    first_kept = (a == b) | (a == c) | (a == d)
    return np.where(first_kept, a, np.where((b == c) | (b == d), b, np.where(c == d, c, a)))


def levels_for(height: int, width: int, smallest: int = SMALLEST_LEVEL, factor: int = 2) -> int:
    """How many levels, level 0 included, halve ``height × width`` to at most ``smallest``.

    Examples
    --------
    >>> levels_for(1024, 800), levels_for(1025, 10), levels_for(100_000, 60_000)
    (1, 2, 8)
    """
    levels = 1
    while max(height, width) > smallest:
        height, width = math.ceil(height / factor), math.ceil(width / factor)
        levels += 1
    return levels


def add_levels(path: str | Path, method: str, progress: Progress = None) -> int:
    """Give a written output (the NGFF image group at ``path``) the levels a viewer needs to
    show it whole without reading its full resolution (:func:`levels_for`); none where it is
    small already. Returns the number of levels it then has."""
    group = zarr.open_group(str(path), mode="r")
    meta = _Multiscale(group.attrs.asdict(), path=str(path))
    shape = group[meta.paths[0]].shape
    levels = levels_for(shape[meta.axes.index("Y")], shape[meta.axes.index("X")])
    if levels == 1:
        return 1
    return write_pyramid(path, levels, method=method, progress=progress)


def lower_levels(path: str | Path) -> list[zarr.Array]:
    """The arrays of an image group's lower resolutions, opened to read (for a pyramidal copy,
    :func:`~scopeml.io.ometiff.write_ome_tiff`'s ``levels``)."""
    from scopeml.io.omezarr import level_count, open_ome_zarr_array

    return [open_ome_zarr_array(path, k, mode="r") for k in range(1, level_count(path))]


def write_pyramid(
    path: str | Path,
    levels: int = 4,
    *,
    method: str = "mean",
    factor: int = 2,
    progress: Progress = None,
) -> int:
    """Build levels ``1 … levels-1`` of the NGFF image group at ``path`` from level 0.

    Stops early once Y and X are both 1. Returns the number of levels the group then has.
    ``progress`` gets stage ``pyramid``, one unit per chunk written, and may cancel between
    chunks (the metadata is then left as it was).

    Examples
    --------
    >>> import tempfile
    >>> from scopeml.io.omezarr import create_ome_zarr
    >>> out = Path(tempfile.mkdtemp()) / "img.ome.zarr"
    >>> a = create_ome_zarr(out, shape=(4, 6), dtype="uint8", axes="YX", chunks=(2, 2))
    >>> a[:] = 8
    >>> write_pyramid(out, levels=3)
    3
    >>> zarr.open_array(out / "2", mode="r").shape
    (1, 2)
    """
    if method not in METHODS:
        raise InvalidRequestError(f"unknown downsampling method {method!r}; known: {METHODS}")
    if levels < 1 or factor < 2:
        raise InvalidRequestError(f"levels must be ≥ 1 and factor ≥ 2; got {levels}, {factor}")
    group = zarr.open_group(str(path), mode="r+")
    attrs = group.attrs.asdict()
    meta = _Multiscale(attrs, path=str(path))
    iy, ix = meta.axes.index("Y"), meta.axes.index("X")
    base = group[meta.paths[0]]
    shapes = _level_shapes(base.shape, (iy, ix), levels, factor)
    chunks = [tuple(min(c, max(n, 1)) for c, n in zip(base.chunks, s, strict=True)) for s in shapes]
    total = sum(math.prod(math.ceil(n / c) for n, c in zip(s, k, strict=True))
                for s, k in zip(shapes, chunks, strict=True))  # fmt: skip
    units = track(range(total), progress, "pyramid", unit="chunk")
    previous = base
    paths = [meta.paths[0]]
    for level, (shape, chunk) in enumerate(zip(shapes, chunks, strict=True), start=1):
        array = group.create_array(
            str(level),
            shape=shape,
            dtype=base.dtype,
            chunks=chunk,
            fill_value=base.fill_value,
            dimension_names=base.metadata.dimension_names,
            overwrite=True,
        )
        for (region, _), _unit in zip(iter_regions(shape, chunk), units, strict=False):
            source = list(region)
            for axis in (iy, ix):
                stop = min(region[axis].stop * factor, previous.shape[axis])
                source[axis] = slice(region[axis].start * factor, stop)
            array[region] = downsample(previous[tuple(source)], (iy, ix), factor, method)
        previous = array
        paths.append(str(level))
    next(units, None)  # the last chunk's report
    _set_datasets(group, attrs, paths, factor, meta.axes)
    return len(paths)


def _level_shapes(
    shape: tuple[int, ...], axes: tuple[int, int], levels: int, factor: int
) -> list[tuple[int, ...]]:
    """The shapes of levels ``1 … levels-1``, Y and X divided by ``factor`` each time, up to
    the first whose Y and X are both 1."""
    shapes: list[tuple[int, ...]] = []
    previous = list(shape)
    for _ in range(1, levels):
        if all(previous[axis] == 1 for axis in axes):
            break
        for axis in axes:
            previous[axis] = math.ceil(previous[axis] / factor)
        shapes.append(tuple(previous))
    return shapes


def _set_datasets(group, attrs: dict, paths: list[str], factor: int, axes: str) -> None:
    ome = attrs.get("ome")
    source = ome if isinstance(ome, dict) and "multiscales" in ome else attrs
    multiscale = source["multiscales"][0]
    first = multiscale["datasets"][0]
    base_scale = [1.0] * len(axes)
    for transform in first.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            base_scale = [float(v) for v in transform["scale"]]
    datasets = [first]
    for level, level_path in enumerate(paths[1:], start=1):
        scale = [
            s * (factor**level if a in "YX" else 1) for s, a in zip(base_scale, axes, strict=True)
        ]
        datasets.append(
            {"path": level_path, "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    multiscale["datasets"] = datasets
    group.attrs.update(attrs)
