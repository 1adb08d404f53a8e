"""Touching objects split by a distance-transform watershed, one object at a time, out of core.

Each object of a connected-component labelling is split on its own by
:func:`~scopeml.post.morphology.split_touching`, in a crop of its bounding box grown by one
pixel. That crop holds everything the split depends on: a pixel's nearest background pixel
lies inside it (walking from the pixel along a row or column to the box's edge meets one),
and another object's pixels in the crop, taken as background there, are never nearer than
the background around this object. So the pieces do not depend on the tiling, and tiled
equals whole-image. Pieces are numbered, as the labelling numbers objects, in the raster
order of their first pixels; ``min_size``, ``max_size`` and ``remove_border`` then apply to
the pieces (a clump is split before it is judged too large). An object whose box holds more
than :data:`MAX_OBJECT_PIXELS` is kept whole, with a warning: the split needs its box in
memory.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import InvalidLabelsError, InvalidRequestError, find_stack_level
from scopeml.io.regions import iter_regions
from scopeml.objects.measure import _check_labels
from scopeml.post.steps import MAX_DISTANCE, size_problem
from scopeml.progress import Progress, track

#: Most pixels (voxels) of an object's bounding box that the split holds in memory.
MAX_OBJECT_PIXELS = 2**26


@dataclass(frozen=True)
class Split:
    """How touching objects are split (as the analysis settings' ``watershed_split``): seeds
    at distance maxima at least ``min_distance`` pixels apart, or, with ``h``, at maxima at
    least ``h`` pixels above the neck to their neighbour."""

    min_distance: int = 5
    h: float | None = None

    def __post_init__(self) -> None:
        distance, h = self.min_distance, self.h
        whole = isinstance(distance, numbers.Real) and float(distance).is_integer()
        if not whole or isinstance(distance, bool) or distance < 1:
            raise InvalidRequestError(
                f"the split distance must be a whole number >= 1; got {distance!r}"
            )
        finite = isinstance(h, numbers.Real) and not isinstance(h, bool) and math.isfinite(h)
        if h is not None and not (finite and h > 0):
            raise InvalidRequestError(f"the split h must be a number > 0; got {h!r}")
        problem = size_problem("the split distance (min_distance)", distance, MAX_DISTANCE)
        if problem:
            raise InvalidRequestError(problem)
        object.__setattr__(self, "min_distance", int(distance))


class _Pieces:
    """The pieces found so far: owner object, piece number in it, size, first pixel (raster
    index), whether it touches the image's edge in Y or X. Rows gather in Python lists and
    are packed into arrays a group at a time (40 bytes a piece; arrays per object were
    ~700)."""

    def __init__(self) -> None:
        self.rows: list[list[int]] = []
        self.packed: list[np.ndarray] = [np.zeros((0, 5), np.int64)]

    def add(self, *columns: Any) -> None:
        self.rows.extend(zip(*(np.atleast_1d(c).tolist() for c in columns), strict=True))

    def pack(self) -> None:
        if self.rows:
            self.packed.append(np.array(self.rows, np.int64).reshape(-1, 5))
            self.rows = []

    def arrays(self) -> tuple[np.ndarray, ...]:
        self.pack()
        return tuple(np.concatenate(self.packed).T)


def split_objects(
    objects: Any,
    put: Callable[[tuple[slice, ...], np.ndarray], Any],
    *,
    split: Split | None,
    work: Path | None,
    tiles: Sequence[int],
    connectivity: int = 1,
    min_size: int = 0,
    max_size: int | None = None,
    remove_border: bool = False,
    offset: int = 0,
    progress: Progress = None,
    max_id: int | None = None,
) -> int:
    """Split the objects of ``objects`` (a ``[Z×]Y×X`` array-like of ids ≥ 1) and hand every
    tile of the pieces' ids (``1..N`` plus ``offset``) to ``put``; return ``N``. Without
    ``split`` the objects stay whole and only the size and border rules apply (ids renumbered
    by first pixels): filtering labels that are objects already (an id over ``max_id`` is
    refused: the records hold each id up to the largest).

    ``work`` is a scratch path for the pieces' numbers within their objects (removed by the
    caller), ``None`` to keep them in memory. Stages ``split`` (objects, by the tile their box
    begins in) and ``relabel``.
    """
    import zarr

    shape = tuple(int(n) for n in objects.shape)
    lo, hi, size, first = _boxes(objects, tiles, max_id)
    n_objects = size.size - 1
    numbered = (  # pieces' numbers in their objects; none without a split (all piece 1)
        None if split is None else np.zeros(shape, np.uint32) if work is None else
        zarr.open_array(str(work), mode="w", shape=shape, chunks=tuple(tiles), dtype=np.uint32,
                        fill_value=0)
    )  # fmt: skip
    pieces = _Pieces()
    edge = (lo[:, -2:] == 0).any(axis=1) | (hi[:, -2:] == np.array(shape[-2:])).any(axis=1)
    pieces.add(0, 1, 0, 0, 0)  # the background, so that every array has an entry
    too_big = []
    groups = _groups(lo, hi, tiles)
    for ids in track(groups, progress, "split" if split else "filter", unit="tile"):
        big = np.prod(hi[ids] - lo[ids], axis=1) > MAX_OBJECT_PIXELS
        if split is None:  # every object whole: its number stays 0, read as piece 1
            pieces.add(ids, np.ones_like(ids), size[ids], first[ids], edge[ids])
            pieces.pack()
            continue
        too_big += ids[big].tolist()
        for i in ids[big]:  # kept whole: its number stays 0, read as piece 1
            pieces.add(i, 1, size[i], first[i], edge[i])
        _split_group(objects, numbered, ids[~big], lo, hi, split, connectivity, pieces)
        pieces.pack()
    if too_big:
        warnings.warn(
            f"{len(too_big)} objects span more than {MAX_OBJECT_PIXELS} pixels and were not "
            "split (each is kept whole: the split holds an object's box in memory)",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    lookup, start, count = _final_ids(pieces, n_objects, min_size, max_size, remove_border)
    for region, _ in track(list(iter_regions(shape, tiles)), progress, "relabel", unit="tile"):
        ids = np.asarray(objects[region]).astype(np.int64)
        number = 1 if numbered is None else np.maximum(np.asarray(numbered[region]), 1)
        final = np.where(ids > 0, lookup[start[ids] + number - 1], 0)
        put(region, np.where(final > 0, final + offset, 0).astype(np.uint32))
    return count


def split_each(mask: np.ndarray, split: Split, *, connectivity: int = 1) -> np.ndarray:
    """The objects of ``mask`` (its connected components) split each on its own, in memory:
    what ``label_objects(split=...)`` writes, for a plane or stack held whole (the analysis
    settings' ``watershed_split``). ``int32``, pieces numbered by their first pixels.

    >>> yy, xx = np.mgrid[:20, :32]
    >>> two = ((yy - 10) ** 2 + (xx - 10) ** 2 < 49) | ((yy - 10) ** 2 + (xx - 21) ** 2 < 49)
    >>> int(split_each(two, Split(min_distance=4)).max())
    2
    """
    from scopeml.objects.label import label_instances

    objects = label_instances(np.asarray(mask) > 0, connectivity=connectivity)
    out = np.zeros(objects.shape, np.int32)
    split_objects(objects, out.__setitem__, split=split, work=None, tiles=objects.shape,
                  connectivity=connectivity)  # fmt: skip
    return out


def _boxes(objects: Any, tiles: Sequence[int], max_id: int | None) -> tuple[np.ndarray, ...]:
    """Per id ``0..`` the largest found: its box's first and past-last coordinates, its size
    and the raster index of its first pixel, in one pass over the tiles (the records grow
    with the ids read; an id over ``max_id`` is refused, before they grow to it)."""
    shape = tuple(int(k) for k in objects.shape)
    most = np.iinfo(np.int64).max
    lo, hi = np.full((1, len(shape)), most, np.int64), np.zeros((1, len(shape)), np.int64)
    size, first = np.zeros(1, np.int64), np.full(1, most, np.int64)
    largest = 0
    for region, _ in iter_regions(shape, tiles):
        values = _check_labels(np.asarray(objects[region]))  # measure's: integers, none < 0
        top = int(values.max(initial=0))  # before a cast: ids of 2**63 and more stay positive
        if max_id is not None and top > max_id:
            raise InvalidLabelsError(
                f"object ids up to {top}; filtering takes ids up to {max_id} (number the "
                "objects 1..n first)"
            )
        at = np.nonzero(values)
        ids = values[at].astype(np.intp)
        largest = max(largest, top)
        if top >= size.size:  # ids past those read so far: the records grow (doubling)
            grown = max(top + 1, 2 * size.size)
            more = (grown if max_id is None else min(grown, max_id + 1)) - size.size
            lo = np.concatenate([lo, np.full((more, len(shape)), most, np.int64)])
            hi = np.concatenate([hi, np.zeros((more, len(shape)), np.int64)])
            size = np.concatenate([size, np.zeros(more, np.int64)])
            first = np.concatenate([first, np.full(more, most, np.int64)])
        coords = [a + s.start for a, s in zip(at, region, strict=True)]
        for axis, c in enumerate(coords):
            np.minimum.at(lo[:, axis], ids, c)
            np.maximum.at(hi[:, axis], ids, c + 1)
        size += np.bincount(ids, minlength=size.size)
        if ids.size:
            np.minimum.at(first, ids, np.ravel_multi_index(coords, shape))
    lo[0], hi[0] = 0, 0
    keep = largest + 1
    return lo[:keep], hi[:keep], size[:keep], first[:keep]


def _groups(lo: np.ndarray, hi: np.ndarray, tiles: Sequence[int]) -> list[np.ndarray]:
    """Object ids grouped by the tile their box begins in (read together), in tile order."""
    ids = np.flatnonzero((hi > lo).all(axis=1))
    if not ids.size:
        return []
    tile_of = lo[ids] // np.asarray(tiles, np.int64)
    order = np.lexsort(tile_of.T[::-1])
    ids, tile_of = ids[order], tile_of[order]
    breaks = np.flatnonzero((np.diff(tile_of, axis=0) != 0).any(axis=1)) + 1
    return np.split(ids, breaks)


def _split_group(
    objects: Any,
    numbered: Any,
    ids: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    split: Split,
    connectivity: int,
    pieces: _Pieces,
) -> None:
    """Split the objects ``ids`` from one read of their boxes' union grown by one pixel (read
    one at a time where the union is too big) and write their pieces' numbers."""
    from scopeml.post.morphology import split_touching

    if not ids.size:
        return
    shape = np.asarray(objects.shape, np.int64)
    start = np.maximum(lo[ids].min(axis=0) - 1, 0)
    stop = np.minimum(hi[ids].max(axis=0) + 1, shape)
    if len(ids) > 1 and math.prod(stop - start) > MAX_OBJECT_PIXELS:
        for i in ids:
            _split_group(objects, numbered, ids[ids == i], lo, hi, split, connectivity, pieces)
        return
    region = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    values = np.asarray(objects[region])
    written = np.asarray(numbered[region])
    for i in ids:
        box = tuple(
            slice(int(max(a - 1, 0) - s), int(min(b + 1, n) - s))
            for a, b, s, n in zip(lo[i], hi[i], start, shape, strict=True)
        )
        mask = values[box] == i
        parts = split_touching(mask, min_distance=split.min_distance, h=split.h,
                               connectivity=connectivity)  # fmt: skip
        found, first_at = np.unique(parts.ravel(), return_index=True)
        found, first_at = found[found > 0], first_at[found > 0]
        order = np.argsort(first_at)  # pieces in raster order of their first pixels
        renumber = np.zeros(int(parts.max()) + 1, np.int64)
        renumber[found[order]] = np.arange(1, found.size + 1)
        parts = renumber[parts]
        written[box][mask] = parts[mask]
        origin = [b.start + s for b, s in zip(box, start, strict=True)]
        firsts = np.unravel_index(np.sort(first_at), parts.shape)
        global_first = np.ravel_multi_index(
            [f + o for f, o in zip(firsts, origin, strict=True)], tuple(shape)
        )
        pieces.add(
            np.full(found.size, i), np.arange(1, found.size + 1),
            np.bincount(parts.ravel(), minlength=found.size + 1)[1:], global_first,
            _piece_edges(parts, origin, shape, found.size),
        )  # fmt: skip
    numbered[region] = written


def _piece_edges(parts: np.ndarray, origin: Sequence[int], shape: np.ndarray, n: int) -> Any:
    """Whether each piece ``1..n`` touches the image's edge in Y or X."""
    touching = np.zeros(n + 1, bool)
    for axis in (-2, -1):
        for at, on_edge in ((0, origin[axis] == 0),
                            (-1, origin[axis] + parts.shape[axis] == shape[axis])):  # fmt: skip
            if on_edge:
                touching[np.take(parts, [at], axis=axis).ravel()] = True
    return touching[1:]


def _final_ids(
    pieces: _Pieces, n_objects: int, min_size: int, max_size: int | None, remove_border: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """The pieces kept (by size, edge), numbered by their first pixels: ``lookup`` over every
    piece, ``start[object]`` its first piece's index there, and how many were kept."""
    owner, number, size, first, edge = pieces.arrays()
    order = np.lexsort((number, owner))
    owner, size, first, edge = owner[order], size[order], first[order], edge[order]
    keep = (size >= max(min_size, 1)) & (owner > 0)
    if max_size is not None:
        keep &= size <= max_size
    if remove_border:
        keep &= edge == 0
    start = np.searchsorted(owner, np.arange(n_objects + 1))
    lookup = np.zeros(owner.size, np.int64)
    kept = np.flatnonzero(keep)
    lookup[kept[np.argsort(first[kept], kind="stable")]] = np.arange(1, kept.size + 1)
    return lookup, start, int(kept.size)
