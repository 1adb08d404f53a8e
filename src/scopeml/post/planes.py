"""Whole-plane passes over a mask too large for memory, tile by tile: what a step needs when its
result at a pixel may depend on pixels any distance away.

Hole filling is one: a hole is a background component that does not touch the plane's border,
however far it reaches. :func:`fill_holes_tiled` labels the background with the exact tiled
connected components (:func:`~scopeml.objects.label.label_instances_tiled`) and fills every
component that does not touch the border; memory is a few tiles plus one flag per component.
``scopeml post --step fill_holes`` (:mod:`scopeml.post.tiled`) and the analysis runner's
out-of-core planes (:mod:`scopeml.analysis.tiled`) both run it.

An ``output`` of ``None`` keeps the result in memory (a numpy array) instead of a zarr store:
the same tiles are visited, and the background is labelled at once, which gives the same
components as the tiled labelling.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.objects.label import iter_tiles, label_instances, label_instances_tiled, tile_sizes

__all__ = ["fill_holes_tiled", "open_plane_store", "plane_tiles"]


def plane_tiles(
    shape: Sequence[int], tile_size: int | Sequence[int] | None
) -> Iterator[tuple[slice, ...]]:
    """The tiles of a plane (or volume), ``tile_size`` along every axis (or one per axis;
    ``None``: the objects' default), in raster order; :func:`~scopeml.objects.label.tile_sizes`.

    Examples
    --------
    >>> list(plane_tiles((3, 2), 2))
    [(slice(0, 2, None), slice(0, 2, None)), (slice(2, 3, None), slice(0, 2, None))]
    """
    return iter_tiles(tuple(shape), tile_sizes(tile_size, shape))


def open_plane_store(
    path: str | os.PathLike[str] | None,
    shape: Sequence[int],
    dtype: Any,
    tile_size: int | Sequence[int] | None,
) -> Any:
    """A new zarr array chunked by tiles (clipped to ``shape``) at ``path`` (replacing one
    there), or a numpy array when ``path`` is ``None`` (a plane that fits in memory);
    zero-filled either way.

    Examples
    --------
    >>> open_plane_store(None, (2, 3), bool, 2).tolist()
    [[False, False, False], [False, False, False]]
    """
    if path is None:
        return np.zeros(tuple(shape), dtype)
    import zarr

    chunks = tile_sizes(tile_size, shape)  # a chunk past the array would be allocated whole
    return zarr.open_array(str(path), mode="w", shape=tuple(shape), chunks=chunks, dtype=dtype,
                           fill_value=0)  # fmt: skip


class _Not:
    """A lazy ``~mask``: the background as a mask, read a tile at a time."""

    def __init__(self, mask: Any) -> None:
        self.mask, self.shape, self.dtype = mask, tuple(mask.shape), np.dtype(bool)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        return ~np.asarray(self.mask[key], bool)


def fill_holes_tiled(
    mask: Any, output: str | os.PathLike[str] | None, *, tile_size: int | Sequence[int] | None
) -> Any:
    """:func:`~scopeml.post.morphology.fill_holes` tile by tile: the background is labelled with
    the exact tiled connected components; components touching the plane's border stay
    background, every other one (a hole) is filled.

    ``mask`` is any array-like (numpy, zarr, a lazy view) that gives tiles by slicing; the
    labelled background is kept in a scratch store beside ``output`` while it runs.

    Examples
    --------
    >>> import tempfile
    >>> ring = np.zeros((7, 7), bool); ring[1:6, 1:6] = True; ring[3, 3] = False
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     int(fill_holes_tiled(ring, f"{tmp}/f.zarr", tile_size=3)[...].sum())
    25
    """
    shape = tuple(mask.shape)
    if output is None:  # in memory: the whole background labelled at once
        background = label_instances(~np.asarray(mask[tuple(slice(0, n) for n in shape)], bool))
        return _fill_inner(mask, background, int(background.max(initial=0)), None, tile_size)
    output = Path(output)
    scratch = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.background")
    try:
        background = label_instances_tiled(_Not(mask), scratch, tile_size=tile_size)
        n_objects = int(background.attrs["n_objects"])
        return _fill_inner(mask, background, n_objects, output, tile_size)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fill_inner(mask: Any, background: Any, n_objects: int, output: Path | None,
                tile_size: int | Sequence[int] | None) -> Any:  # fmt: skip
    """``mask`` with every background component that does not touch the border filled."""
    shape = tuple(mask.shape)
    outside = np.zeros(n_objects + 1, bool)
    for axis, n in enumerate(shape):
        for edge in (0, n - 1):
            for tile in plane_tiles(shape, tile_size):
                if tile[axis].start <= edge < tile[axis].stop:
                    cut = list(tile)
                    cut[axis] = slice(edge, edge + 1)
                    outside[np.asarray(background[tuple(cut)]).astype(np.intp)] = True
    outside[0] = True
    out = open_plane_store(output, shape, bool, tile_size)
    for tile in plane_tiles(shape, tile_size):
        ids = np.asarray(background[tile]).astype(np.intp)
        out[tile] = np.asarray(mask[tile], bool) | ~outside[ids]
    return out
