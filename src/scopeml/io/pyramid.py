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

METHODS = ("mean", "mode", "nearest")


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
        counts = (values[..., :, None] == values[..., None, :]).sum(axis=-1)
        pick = np.argmax(counts, axis=-1)[..., None]
        out = np.take_along_axis(values, pick, axis=-1)[..., 0]
    return np.moveaxis(out, (-2, -1), axes)


def write_pyramid(
    path: str | Path, levels: int = 4, *, method: str = "mean", factor: int = 2
) -> int:
    """Build levels ``1 … levels-1`` of the NGFF image group at ``path`` from level 0.

    Stops early once Y and X are both 1. Returns the number of levels the group then has.

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
    previous = base
    paths = [meta.paths[0]]
    for level in range(1, levels):
        if previous.shape[iy] == 1 and previous.shape[ix] == 1:
            break
        shape = list(previous.shape)
        shape[iy] = math.ceil(shape[iy] / factor)
        shape[ix] = math.ceil(shape[ix] / factor)
        chunks = tuple(min(c, max(n, 1)) for c, n in zip(base.chunks, shape, strict=True))
        array = group.create_array(
            str(level),
            shape=tuple(shape),
            dtype=base.dtype,
            chunks=chunks,
            fill_value=base.fill_value,
            dimension_names=base.metadata.dimension_names,
            overwrite=True,
        )
        for region, _ in iter_regions(tuple(shape), chunks):
            source = list(region)
            for axis in (iy, ix):
                stop = min(region[axis].stop * factor, previous.shape[axis])
                source[axis] = slice(region[axis].start * factor, stop)
            array[region] = downsample(previous[tuple(source)], (iy, ix), factor, method)
        previous = array
        paths.append(str(level))
    _set_datasets(group, attrs, paths, factor, meta.axes)
    return len(paths)


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
