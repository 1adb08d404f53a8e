"""Instance labels from a semantic label image or mask, in memory or tile by tile out of core.

The out-of-core path labels each tile on its own, gives every tile-local component a provisional
global id, then joins the provisional ids that touch across a tile border (union-find, as
connected components of a sparse graph) and rewrites each tile once through a lookup table. The
result equals whole-image connected-component labelling, numbering included: an object cut by
a tile border gets one id, objects that do not touch are never merged, and ids follow the
objects' first pixels in raster order, as ``ndi.label`` numbers them. Peak memory is a few
tiles plus three integers per provisional id. Objects smaller than ``min_size`` pixels are
dropped after the join, by their whole size (each tile counts its components' pixels), so the
result is the same however the image is tiled.
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scopeml.errors import InvalidLabelsError, InvalidRequestError, did_you_mean
from scopeml.io.regions import iter_regions
from scopeml.io.replace import check_replaceable_store
from scopeml.progress import Progress, track


def label_value(classes: Sequence[str], choice: str | int) -> int:
    """The label value of a class chosen by name or by label value: the one rule for choosing
    a class, everywhere (class ``classes[k]`` is written as label ``k + 1``; 0 is background).

    Examples
    --------
    >>> label_value(["background", "nucleus"], "nucleus"), label_value(["bg", "fg"], 1)
    (2, 1)
    """
    if isinstance(choice, str):
        if choice in classes:
            return list(classes).index(choice) + 1
        raise InvalidRequestError(
            f"no class {choice!r}{did_you_mean(choice, classes)}; classes are {', '.join(classes)}"
        )
    if isinstance(choice, bool) or not 1 <= int(choice) <= len(classes):
        raise InvalidRequestError(
            f"no label value {choice!r}; classes are "
            + ", ".join(f"{name}={i}" for i, name in enumerate(classes, 1))
        )
    return int(choice)


def label_instances(
    labels: np.ndarray,
    *,
    class_id: int | None = None,
    connectivity: int = 1,
    min_size: int = 0,
    max_size: int | None = None,
    remove_border: bool = False,
) -> np.ndarray:
    """Connected components of one class (or of all non-zero pixels) as instance labels.

    Parameters
    ----------
    labels
        ``(Z×)Y×X`` semantic labels (0 = background) or a boolean mask.
    class_id
        The class whose objects to label; ``None`` labels every non-zero pixel.
    connectivity
        1 = faces only (4-/6-neighbourhood) … ``ndim`` = full (8-/26-neighbourhood).
    min_size
        Objects with fewer pixels (voxels) are dropped (become 0); the rest keep ids 1..N.
    max_size
        Objects with more pixels (voxels) are dropped too (clumps, debris); ``None`` keeps all.
    remove_border
        Drop the objects touching the image's edge in Y or X (cut by the field of view, so
        their size and shape are not theirs): CellProfiler's and ZEN's border exclusion.

    Returns
    -------
    numpy.ndarray
        ``int32`` instance labels of the same shape; 0 = background, 1..N in raster order.

    Examples
    --------
    >>> semantic = np.array([[1, 1, 0, 2], [0, 0, 0, 2], [1, 0, 1, 1]])
    >>> label_instances(semantic, class_id=1)
    array([[1, 1, 0, 0],
           [0, 0, 0, 0],
           [2, 0, 3, 3]], dtype=int32)
    >>> label_instances(semantic, class_id=1, min_size=2)
    array([[1, 1, 0, 0],
           [0, 0, 0, 0],
           [0, 0, 2, 2]], dtype=int32)
    >>> label_instances(semantic, class_id=1, remove_border=True).max()
    np.int32(0)
    """
    mask = _mask(np.asarray(labels), class_id)
    structure = _structure(mask.ndim, connectivity)
    _check_sizes(min_size, max_size, remove_border)
    out, n = ndi.label(mask, structure=structure, output=np.int32)
    if (min_size > 1 or max_size is not None or remove_border) and n:
        sizes = np.bincount(out.ravel(), minlength=n + 1)
        edge = (
            _edge_ids(out, tuple(slice(0, k) for k in out.shape), out.shape)
            if remove_border
            else []
        )
        sizes = kept_sizes(sizes, max_size, edge)
        out = renumber(sizes, np.arange(n + 1), min_size).astype(np.int32)[out]
    return out


def _check_sizes(min_size: int, max_size: int | None = None, remove_border: bool = False) -> None:
    """Refuse size and border rules no object count could follow, before any work."""
    for name, value, least in (("min size", min_size, 0), ("max size", max_size, 1)):
        whole = isinstance(value, numbers.Real) and float(value).is_integer()
        if value is not None and (isinstance(value, bool) or not whole or value < least):
            raise InvalidRequestError(
                f"the {name} must be a whole number >= {least}; got {value!r}"
            )
    if max_size is not None and max_size < min_size:
        raise InvalidRequestError(
            f"the max size {max_size} is below the min size {min_size}: every object would be "
            "dropped"
        )
    if not isinstance(remove_border, (bool, np.bool_)):
        raise InvalidRequestError(f"remove_border must be True or False; got {remove_border!r}")


def kept_sizes(sizes: np.ndarray, max_size: int | None, edge: Any = ()) -> np.ndarray:
    """Whole objects' sizes with those to drop set to 0 (larger than ``max_size``, or among
    the ``edge`` ids): :func:`renumber` then leaves them out with the small ones.

    >>> kept_sizes(np.array([0, 5, 9, 3]), 8, [3]).tolist()
    [0, 5, 0, 0]
    """
    sizes = np.array(sizes, copy=True)
    if max_size is not None:
        sizes[sizes > max_size] = 0
    sizes[np.asarray(edge, np.intp)] = 0
    return sizes


def _edge_ids(local: np.ndarray, region: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    """The ids of ``local`` (a tile at ``region`` of an image of ``shape``) on the image's edge
    in Y or X (the rule of ``remove_border`` in analysis settings: a Z stack's first and last
    planes are no edge)."""
    found = [np.zeros(0, local.dtype)]
    for axis in (-2, -1):
        cut = region[axis]
        for at, edge in ((0, cut.start == 0), (-1, cut.stop == shape[axis])):
            if edge:
                found.append(np.take(local, [at], axis=axis).ravel())
    ids = np.unique(np.concatenate(found))
    return ids[ids > 0]


def renumber(sizes: np.ndarray, first: np.ndarray, min_size: int) -> np.ndarray:
    """Lookup id → new id over ids ``0..len(sizes)-1`` (0 the background, kept 0): ids of at
    least ``min_size`` pixels numbered by their ``first`` pixel in raster order, as whole-image
    ``ndi.label`` numbers them, so a tiled labelling numbers them however it is tiled.

    Examples
    --------
    >>> renumber(np.array([0, 5, 1, 7]), np.array([0, 30, 2, 10]), 2).tolist()
    [0, 2, 0, 1]
    """
    kept = np.flatnonzero(sizes >= max(min_size, 1))
    kept = kept[kept > 0]
    kept = kept[np.argsort(first[kept], kind="stable")]
    lookup = np.zeros(sizes.size, np.uint64)
    lookup[kept] = np.arange(1, kept.size + 1, dtype=np.uint64)
    return lookup


def _first_pixels(
    local: np.ndarray, region: tuple[slice, ...], shape: tuple[int, ...]
) -> np.ndarray:
    """The first pixel of each of a tile's components ``1..n`` (``ndi.label`` numbers them in
    the order they begin in raster order) as an index into the image in raster order, which
    within the tile is the tile's own."""
    where = np.flatnonzero(local)
    ids = local.ravel()[where]
    begins = np.ones(ids.size, bool)  # a component begins where an id first exceeds the last
    begins[1:] = ids[1:] > np.maximum.accumulate(ids)[:-1]
    at = np.unravel_index(where[begins], local.shape)
    return np.ravel_multi_index(
        tuple(a + s.start for a, s in zip(at, region, strict=True)), shape
    ).astype(np.int64)


def label_instances_tiled(
    labels: Any,
    output: str | os.PathLike[str],
    *,
    class_id: int | None = None,
    connectivity: int = 1,
    min_size: int = 0,
    max_size: int | None = None,
    remove_border: bool = False,
    tile_size: int | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: Progress = None,
) -> Any:
    """Label the objects of an array-like (zarr) image of any size into a zarr array on disk.

    Parameters
    ----------
    labels
        ``(Z×)Y×X`` array-like whose slicing returns numpy (zarr array, numpy, memmap):
        semantic labels or a mask.
    output
        Path of the zarr array to create; written to a temporary sibling and moved into place
        when complete.
    class_id, connectivity, min_size, max_size, remove_border
        As in :func:`label_instances` (objects are measured whole, across tiles).
    tile_size
        Tile size (also the output chunks): one int for every axis or one per axis, clipped
        to the image; defaults to the input's chunks, else :func:`default_tile` (1024×1024 in
        2-D, at most 128³ voxels in 3-D).
    overwrite
        Replace an existing ``output``.
    progress
        Progress and cancel callback, or ``True`` for bars (see :mod:`scopeml.progress`);
        stages ``label`` and ``relabel``, unit ``tile``.

    Returns
    -------
    zarr.Array
        ``uint32`` (``uint64`` past 2³² − 1 objects) instance labels, 0 = background, opened
        read-only. Equal to :func:`label_instances` up to a renumbering of the objects.

    Examples
    --------
    >>> import tempfile, zarr
    >>> mask = np.zeros((6, 6), bool)
    >>> mask[1:5, 2:4] = True
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = label_instances_tiled(mask, f"{tmp}/objects.zarr", tile_size=3)
    ...     int(out[...].max()), int((out[...] > 0).sum())
    (1, 8)
    """
    import zarr

    shape = tuple(int(s) for s in labels.shape)
    if len(shape) not in (2, 3):
        raise InvalidLabelsError(f"labels must be 2-D or 3-D; got shape {shape}")
    _structure(len(shape), connectivity)  # a bad value fails before any work
    _check_sizes(min_size, max_size, remove_border)
    output = Path(output)
    if output.exists() and not overwrite:
        raise InvalidRequestError(
            "output exists; pass --overwrite (overwrite=True) to replace it", path=output
        )
    check_replaceable_store(output)
    tiles = tile_sizes(tile_size, labels.shape, getattr(labels, "chunks", None))
    temp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with ProvisionalLabels(
            labels, temp, class_id, connectivity, tiles, progress,
            min_size=min_size, max_size=max_size, remove_border=remove_border,
        ) as labelled:  # fmt: skip
            dtype = np.uint32 if labelled.n_objects < 2**32 else np.uint64
            final = zarr.open_array(
                str(temp) + ".final", mode="w", shape=shape, chunks=tiles, dtype=dtype, fill_value=0
            )
            labelled.write(final.__setitem__, dtype=dtype)
            final.attrs["n_objects"] = int(labelled.n_objects)
        if output.exists():
            shutil.rmtree(output)
        os.replace(str(temp) + ".final", output)
    finally:
        shutil.rmtree(str(temp) + ".final", ignore_errors=True)
    return zarr.open_array(str(output), mode="r")


class ProvisionalLabels:
    """Pass 1 of tiled labelling: tile-local components with provisional global ids in a
    temporary store, joined across tile borders; :meth:`write` is pass 2.

    A context manager: the temporary store is removed on exit. ``n_objects`` is known after
    entering, so the caller can size the output before writing it; ``n_found`` counts the
    objects before those under ``min_size`` pixels (over ``max_size``, on the edge with
    ``remove_border``) were dropped. Without ``class_id``,
    ``joined`` is the first pair of different non-zero values found side by side (so made
    one object): labels that were instances or classes already, not a mask.
    """

    def __init__(
        self,
        labels: Any,
        temp: Path,
        class_id: int | None,
        connectivity: int,
        tiles: tuple[int, ...],
        progress: Progress = None,
        *,
        min_size: int = 0,
        max_size: int | None = None,
        remove_border: bool = False,
    ) -> None:
        _check_sizes(min_size, max_size, remove_border)
        self.min_size, self.max_size = int(min_size), max_size
        self.remove_border = remove_border
        self.shape = tuple(int(s) for s in labels.shape)
        if len(self.shape) not in (2, 3):
            raise InvalidLabelsError(f"labels must be 2-D or 3-D; got shape {self.shape}")
        self.labels, self.temp, self.class_id = labels, Path(temp), class_id
        self.structure = _structure(len(self.shape), connectivity)
        # tiles (and the scratch chunks) never run past the image: a chunk is allocated whole
        self.tiles = tuple(min(int(t), max(n, 1)) for t, n in zip(tiles, self.shape, strict=True))
        self.progress = progress
        self.n_objects = self.n_found = 0
        self.joined: tuple[int, int] | None = None
        self._lut = np.zeros(1, np.uint64)

    def __enter__(self) -> ProvisionalLabels:
        import zarr

        try:
            self._store = zarr.open_array(
                str(self.temp), mode="w", shape=self.shape, chunks=self.tiles, dtype=np.uint64,
                fill_value=0,
            )  # fmt: skip
            n_total = 0
            sizes = [np.zeros(1, np.int64)]  # pixels of each provisional id (0: background)
            first = [np.zeros(1, np.int64)]  # and its first pixel in the image's raster order
            edge = [np.zeros(0, np.int64)]  # provisional ids on the image's edge in Y or X
            regions = [read for read, _ in iter_regions(self.shape, self.tiles)]
            for region in track(regions, self.progress, "label", unit="tile"):
                values = np.asarray(self.labels[region])
                if self.class_id is None and self.joined is None and values.dtype != bool:
                    self.joined = _joined_values(values)
                mask = _mask(values, self.class_id)
                local, n = ndi.label(mask, self.structure)
                self._store[region] = np.where(local > 0, local.astype(np.uint64) + n_total, 0)
                if self.remove_border:
                    edge.append(_edge_ids(local, region, self.shape).astype(np.int64) + n_total)
                n_total += n
                sizes.append(np.bincount(local.ravel(), minlength=n + 1)[1:])
                first.append(_first_pixels(local, region, self.shape))
            pairs = _border_pairs(self._store, self.shape, self.tiles, self.structure)
            edges = [found for found in pairs if found.size]
            self._lut, self.n_found = _resolve(n_total, np.concatenate(edges) if edges else None)
            joined = self._lut.astype(np.intp)  # whole objects' sizes and first pixels
            whole = np.zeros(self.n_found + 1, np.int64)
            np.add.at(whole, joined, np.concatenate(sizes))
            start = np.full(self.n_found + 1, np.iinfo(np.int64).max, np.int64)
            np.minimum.at(start, joined, np.concatenate(first))
            whole = kept_sizes(whole, self.max_size, joined[np.concatenate(edge)])
            keep = renumber(whole, start, self.min_size)
            self._lut = keep[joined]
            self.n_objects = int(np.count_nonzero(keep))
        except BaseException:
            shutil.rmtree(self.temp, ignore_errors=True)
            raise
        return self

    def write(self, put: Callable[[tuple[slice, ...], np.ndarray], Any], *, dtype: Any,
              offset: int = 0) -> None:  # fmt: skip
        """Pass 2: hand every tile of final ids (1..N, plus ``offset``; 0 stays 0) to ``put``."""
        lut = self._lut.astype(dtype)
        if offset:  # not where a provisional id was dropped (under min_size): that stays 0
            lut[lut > 0] += np.asarray(offset, dtype)
        regions = [read for read, _ in iter_regions(self.shape, self.tiles)]
        for region in track(regions, self.progress, "relabel", unit="tile"):
            put(region, lut[self._store[region].astype(np.intp)])

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)


def iter_tiles(shape: Sequence[int], tile_size: Sequence[int]) -> Iterator[tuple[slice, ...]]:
    """Regions of a regular grid of tiles covering ``shape`` exactly once (edge tiles clipped):
    the cores of :func:`scopeml.io.regions.iter_regions`, kept for callers outside ``objects``.

    Examples
    --------
    >>> [tuple((s.start, s.stop) for s in r) for r in iter_tiles((3, 5), (2, 4))]
    [((0, 2), (0, 4)), ((0, 2), (4, 5)), ((2, 3), (0, 4)), ((2, 3), (4, 5))]
    """
    return (read for read, _ in iter_regions(shape, tile_size))


def _joined_values(values: np.ndarray) -> tuple[int, int] | None:
    """Two different non-zero values side by side along an axis, if any (the first found).

    Examples
    --------
    >>> _joined_values(np.array([[1, 1, 0, 2], [0, 0, 0, 2]])) is None
    True
    >>> _joined_values(np.array([[1, 1, 0, 2], [0, 3, 0, 2]]))
    (1, 3)
    """
    for axis in range(values.ndim):
        before = values[(slice(None),) * axis + (slice(None, -1),)]
        after = values[(slice(None),) * axis + (slice(1, None),)]
        touching = (before != after) & (before != 0) & (after != 0)
        if touching.any():
            at = np.flatnonzero(touching)[0]
            return int(before.flat[at]), int(after.flat[at])
    return None


def _mask(labels: np.ndarray, class_id: int | None) -> np.ndarray:
    return labels != 0 if class_id is None else labels == class_id


def _structure(ndim: int, connectivity: int) -> np.ndarray:
    if not 1 <= connectivity <= ndim:
        raise InvalidRequestError(f"connectivity must be 1..{ndim}; got {connectivity}")
    return ndi.generate_binary_structure(ndim, connectivity)


#: Longest default tile edge (pixels): a 2-D default tile is up to 1024×1024.
TILE_EDGE = 1024


def default_tile(shape: Sequence[int]) -> tuple[int, ...]:
    """The default tile of an array of ``shape``: at most as many pixels (voxels) as the tiling
    engine's default 3-D tile (``DEFAULT_TILE[3]``³ = 128³ = 2²¹), whatever the number of axes.

    The pixels are shared equally by the axes: an axis no longer than its share is taken whole
    and leaves the rest to the others, and no edge is longer than :data:`TILE_EDGE`. So a
    plane gets 1024×1024 tiles, a large volume 128×128×128 and a thin Z stack its whole depth
    with wider planes (40×228×228): a tile's bytes are bounded in 2-D and 3-D alike (never
    ``TILE_EDGE`` per axis, 1024³).

    Examples
    --------
    >>> default_tile((5000, 300)), default_tile((500, 600, 700)), default_tile((40, 300, 300))
    ((1024, 300), (128, 128, 128), (40, 228, 228))
    """
    budget = tile_budget()
    shape = tuple(max(int(n), 1) for n in shape)
    tiles = list(shape)
    longer = sorted(range(len(shape)), key=lambda d: shape[d])
    while longer:
        edge = min(_root(budget, len(longer)), TILE_EDGE)
        if shape[longer[0]] > edge:  # every axis left is longer than its share: cut them all
            for axis in longer:
                tiles[axis] = max(edge, 1)
            break
        budget //= shape[longer.pop(0)]  # taken whole
    return tuple(tiles)


def tile_budget() -> int:
    """Most pixels (voxels) of a default tile: the tiling engine's default 3-D tile, 128³."""
    from scopeml.tiling.engine import DEFAULT_TILE  # the engine's rule, one home

    return int(DEFAULT_TILE[3]) ** 3


def _root(value: int, k: int) -> int:
    """The largest whole ``r`` with ``r**k <= value``."""
    r = round(value ** (1.0 / k))
    while r > 0 and r**k > value:
        r -= 1
    while (r + 1) ** k <= value:
        r += 1
    return r


def tile_sizes(
    tile_size: int | Sequence[int] | None,
    shape: Sequence[int],
    chunks: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """Tile size per axis of ``shape``, clipped to it: as given (one int for all axes, or one
    per axis), else the array's ``chunks`` (clipped) when one holds at most :func:`tile_budget`
    pixels, else :func:`default_tile` (bounded in pixels, not per axis). Every tiled writer of
    labels (objects, post-processing) chooses its tiles and output chunks here.

    Examples
    --------
    >>> tile_sizes(None, (5000, 300)), tile_sizes(64, (5000, 300)), tile_sizes((2, 8), (9, 9))
    ((1024, 300), (64, 64), (2, 8))
    >>> tile_sizes(1024, (60, 256, 256)), tile_sizes(None, (60, 256, 256), (1024, 1024, 1024))
    ((60, 256, 256), (60, 186, 186))
    """
    shape = tuple(int(n) for n in shape)
    if tile_size is None:
        if chunks is not None and len(chunks) == len(shape):
            given = tuple(max(min(int(c), n), 1) for c, n in zip(chunks, shape, strict=True))
            if math.prod(given) <= tile_budget():
                return given
        return default_tile(shape)
    sizes = (tile_size,) * len(shape) if isinstance(tile_size, (int, np.integer)) else tile_size
    tiles = tuple(int(t) for t in sizes)
    if len(tiles) != len(shape):
        raise InvalidRequestError(
            f"tile_size {tile_size} has {len(tiles)} values; the labels have {len(shape)} axes "
            f"(shape {shape})"
        )
    if min(tiles, default=1) < 1:
        raise InvalidRequestError(f"tile_size must be positive; got {tile_size}")
    return tuple(min(t, max(n, 1)) for t, n in zip(tiles, shape, strict=True))


def _border_pairs(
    store: Any, shape: tuple[int, ...], tiles: tuple[int, ...], structure: np.ndarray
) -> Iterator[np.ndarray]:
    """Pairs of provisional ids connected across a tile border.

    For each border plane, a two-pixel-thick slab across it is read piece by piece (each piece
    one tile wide plus one pixel, so diagonal neighbours are seen) and labelled with the same
    connectivity; the provisional ids inside one slab component belong to one object.
    """
    ndim = len(shape)
    for axis in range(ndim):
        for border in range(tiles[axis], shape[axis], tiles[axis]):
            others = [d for d in range(ndim) if d != axis]
            sub_shape = [shape[d] for d in others]
            sub_tiles = [tiles[d] for d in others]
            for piece in iter_tiles(sub_shape, sub_tiles):
                region: list[slice] = [slice(0)] * ndim
                region[axis] = slice(border - 1, border + 1)
                for d, s in zip(others, piece, strict=True):
                    region[d] = slice(s.start, min(s.stop + 1, shape[d]))
                slab = np.asarray(store[tuple(region)])
                comp, n = ndi.label(slab > 0, structure)
                if n == 0:
                    continue
                fg = comp > 0
                pairs = np.unique(np.stack([comp[fg].astype(np.uint64), slab[fg]], 1), axis=0)
                # link every id of a component to the component's first id
                first = np.searchsorted(pairs[:, 0], pairs[:, 0], side="left")
                yield np.stack([pairs[first, 1], pairs[:, 1]], 1)


def _resolve(n_total: int, edges: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Lookup table provisional id → final id (1..N, 0 stays 0), and N."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    size = n_total + 1
    if edges is None or not len(edges):
        return np.arange(size, dtype=np.uint64), n_total
    edges = edges.astype(np.int64)
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), (size, size))
    _, component = connected_components(graph, directed=False)
    # number components by their smallest provisional id (0 = background is its own component)
    first = np.full(component.max() + 1, size, np.int64)
    np.minimum.at(first, component, np.arange(size))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[component].astype(np.uint64), int(first.size - 1)
