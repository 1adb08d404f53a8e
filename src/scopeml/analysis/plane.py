"""One 2-D plane analysed out of core: inputs read a tile at a time from the image, every class's
labels kept in zarr arrays in the image's temporary folder, so memory stays flat in image size.

A class goes tile by tile when its segmenter is a threshold or a model and its post steps are
fill holes, opening, closing, remove small/large (:mod:`scopeml.analysis.tiled`): the mask is
thresholded (after smoothing), or the model's class read from the engine's labels, inside the
parent's objects, the mask steps run on the mask, the objects are labelled with the exact tiled
connected components (numbered in raster order of their first pixel, as
:func:`~scopeml.objects.label.label_instances` numbers them; a child's within each parent
object, so that no child spans two touching parents) before the first area filter, and
area filters drop whole objects. Unlike the whole-plane :func:`segment.apply_post`, mask steps
before labelling do not keep earlier object ids (a closing that joins two objects makes one).
An ``instances`` class reads ``segment``'s instances (made tile by tile by
:mod:`scopeml.objects.instances`), cut to the parent's objects tile by tile, and goes tile by
tile when its post steps are area filters only (ids kept; an instance over several parents
is split, one object per parent). Watershed split, the dense CRF, mask steps on instances
and ``grow`` (whose flooding order is the whole plane's) depend on whole objects: such a class
is computed on the whole plane
(:func:`segment.segment_class`) — the documented exception whose memory grows with the plane
(announced by a warning when the plane does not fit ``memory_mb``).
An automatic threshold's level comes from all the parent's objects together, or with ``scope:
per_parent`` one per parent object (:mod:`scopeml.analysis.parent_threshold`), exact by tile too.

A plane whose stages fit the settings' ``memory_mb`` (:func:`plane_memory`) runs the same
functions on numpy arrays instead of zarr stores (no scratch I/O, which dominated small
images): the same tiles in the same order, so the same labels and tables.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.analysis import tiled
from scopeml.analysis.settings import (
    ClassSettings,
    Closing,
    FillHoles,
    GrowSegmenter,
    InstancesSegmenter,
    Opening,
    RemoveBorder,
    RemoveLarge,
    RemoveSmall,
    ThresholdSegmenter,
)
from scopeml.objects.label import iter_tiles, label_instances, label_instances_tiled

__all__ = [
    "ChannelView",
    "PlaneChannels",
    "label_raster_order",
    "label_within_parents",
    "plane_memory",
    "segment_class_tiled",
    "split_by_parent",
    "tileable",
]

_MASK_STEPS = (FillHoles, Opening, Closing)
_OBJECT_STEPS = (RemoveSmall, RemoveLarge, RemoveBorder)  # whole objects kept or dropped
#: Bytes per pixel the in-memory stages need besides the channels and each class's ``int32``
#: labels: a smoothed ``float32`` plane, masks, provisional labels, index temporaries and the
#: measurement's. Measured: one 2-channel ``uint16`` image with a 3-class tree peaks at about
#: 230 MB (the libraries) + 31 bytes per pixel (bench/bench_analysis.py --sizes 1024,4096).
WORK_BYTES_PER_PIXEL = 16
#: Bytes per pixel a ``grow`` class needs besides (always on the whole plane): the distance
#: to the seeds and the flooding order (``float64`` each), masks and the watershed's own.
#: Measured with tracemalloc on 2048² with 3000 seeds: 33 without a stain, 41 with one, 46
#: with a membrane's two floods.
GROW_BYTES_PER_PIXEL = 48


def plane_memory(
    shape: tuple[int, ...], n_channels: int, itemsize: int, n_classes: int, grow: bool = False
) -> int:
    """Bytes an in-memory plane analysis needs: channels, labels and working arrays (with a
    ``grow`` class, its flooding's too: one at a time).

    Examples
    --------
    >>> [plane_memory((2048, 2048), 2, 2, 3, grow) // 2**20 for grow in (False, True)]
    [128, 320]
    """
    pixels = int(np.prod(shape))
    work = WORK_BYTES_PER_PIXEL + GROW_BYTES_PER_PIXEL * grow
    return pixels * (n_channels * itemsize + 4 * n_classes + work)


def tileable(cls: ClassSettings) -> bool:
    """Whether a class can run tile by tile: a threshold or model segmenter with fill holes,
    opening, closing and area filters, or ``instances`` with area filters only (a mask step
    would join touching instances; on the whole plane they keep their ids); never ``grow``.

    Examples
    --------
    >>> tileable(ClassSettings(name="c", segmenter=ThresholdSegmenter(channel="a")))
    True
    """
    if isinstance(cls.segmenter, GrowSegmenter):
        return False  # the stain's flooding order is the whole plane's
    if isinstance(cls.segmenter, InstancesSegmenter):
        return all(isinstance(step, _OBJECT_STEPS) for step in cls.post)
    return all(isinstance(step, _MASK_STEPS + _OBJECT_STEPS) for step in cls.post)


class ChannelView:
    """One channel of one ``(scene, t)`` 2-D plane of an image, read a region at a time."""

    def __init__(self, image: Any, scene: int, t: int, channel: int) -> None:
        self.image, self.scene, self.t, self.channel = image, scene, t, channel
        self.shape = (int(image.sizes["Y"]), int(image.sizes["X"]))
        self.dtype = np.dtype(image.dtype)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        y, x = key
        return self.image.read(S=self.scene, T=self.t, C=self.channel, Z=0, Y=y, X=x)[0, 0, 0, 0]


class PlaneChannels:
    """``C×Y×X`` view of a plane's channels (``key[0]`` a list of channel indices or a slice)."""

    def __init__(self, views: list[ChannelView]) -> None:
        self.views = views
        self.shape = (len(views), *views[0].shape)
        self.dtype = views[0].dtype

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        channels = key[0]
        picked = (
            [self.views[i] for i in channels]
            if isinstance(channels, (list, tuple, np.ndarray))
            else self.views[channels]
        )
        if isinstance(picked, ChannelView):
            return picked[key[1:]]
        return np.stack([view[key[1:]] for view in picked])


class EngineIds:
    """One time point of a scene of an engine output (``S T C Z Y X``, one scene, one
    channel: the class labels of a model, or ``segment``'s instances) as a lazy ``(Z×)Y×X``
    array read a region at a time; ``offset`` is subtracted from nonzero values (``segment``
    numbers instances on from one time point to the next; a plane's start at 1)."""

    def __init__(self, image: Any, t: int, offset: int = 0) -> None:
        self.image, self.t, self.offset = image, t, int(offset)
        self.has_z = int(image.sizes["Z"]) > 1
        self.shape = tuple(int(n) for n in image.spatial_shape[-3 if self.has_z else -2 :])
        dtype = np.dtype(image.dtype)  # class labels as stored; instance ids as int32
        self.dtype = np.dtype(np.int32) if dtype.itemsize >= 4 else dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if key == (Ellipsis,):
            key = tuple(slice(0, n) for n in self.shape)
        named = dict(zip("ZYX" if self.has_z else "YX", key, strict=True))
        values = self.image.read(S=0, T=self.t, C=0, **named)[0, 0, 0]
        values = values if self.has_z else values[0]
        if self.offset:
            values = np.where(values > 0, values - np.asarray(self.offset, values.dtype), 0)
        return values.astype(self.dtype, copy=False)


class _Positive:
    """A lazy ``labels > 0`` mask."""

    def __init__(self, labels: Any) -> None:
        self.labels, self.shape, self.dtype = labels, tuple(labels.shape), np.dtype(bool)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.labels[key]) > 0


class _Inside:
    """A lazy ``values`` (or ``values == equal``) cut to a region: 0 / ``False`` outside."""

    def __init__(self, values: Any, region: Any, equal: int | None = None) -> None:
        self.values, self.region, self.equal = values, region, equal
        self.shape = tuple(values.shape)
        self.dtype = np.dtype(bool) if equal is not None else np.dtype(values.dtype)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        values = np.asarray(self.values[key])
        if self.equal is not None:
            values = values == self.equal
        if self.region is None:
            return values
        return np.where(np.asarray(self.region[key], bool), values, values.dtype.type(0))


def label_raster_order(mask: Any, output: Path | None, *, tile_size: int) -> Any:
    """Label a mask with the exact tiled connected components into ``int32`` zarr, numbering
    the objects by the raster order of their first pixel (as ``scipy.ndimage.label`` does);
    ``output`` ``None``: the whole mask at once, in memory (the same labels).

    Examples
    --------
    >>> import tempfile
    >>> from scopeml.objects.label import label_instances
    >>> m = np.random.default_rng(0).random((20, 20)) > 0.6
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = label_raster_order(m, Path(tmp) / "l.zarr", tile_size=6)
    ...     bool((out[...] == label_instances(m)).all())
    True
    """
    if output is None:
        return label_instances(np.asarray(mask[tuple(slice(0, n) for n in mask.shape)]))
    scratch = output.with_name(f".{output.name}.provisional")
    try:
        found = label_instances_tiled(mask, scratch, tile_size=tile_size, overwrite=True)
        n = int(found.attrs["n_objects"])
        if n >= 2**31:
            raise OverflowError(f"{n} objects do not fit int32 labels")
        width = int(mask.shape[-1])
        first = np.full(n + 1, np.iinfo(np.int64).max, np.int64)
        for tile in iter_tiles(mask.shape, (tile_size,) * len(mask.shape)):
            ids = np.asarray(found[tile]).astype(np.int64)
            ys, xs = np.nonzero(ids)
            if not ys.size:
                continue
            flat = (ys + tile[0].start) * width + xs + tile[1].start
            np.minimum.at(first, ids[ys, xs], flat)
        lut = np.zeros(n + 1, np.int32)
        lut[1 + np.argsort(first[1:], kind="stable")] = np.arange(1, n + 1, dtype=np.int32)
        out = tiled._open_store(output, mask.shape, np.int32, tile_size)
        for tile in iter_tiles(mask.shape, (tile_size,) * len(mask.shape)):
            out[tile] = lut[np.asarray(found[tile]).astype(np.intp)]
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def label_within_parents(mask: Any, parent: Any, output: Path | None, *, tile_size: int) -> Any:
    """Label a mask's connected components within each parent object, tile by tile, into
    ``int32`` zarr: neighbouring pixels (4-connected) join only where they lie in the same
    parent, so no object spans two touching parents; objects are numbered by the raster order
    of their first pixel. ``output`` ``None``: the whole plane at once, in memory
    (:func:`~scopeml.analysis.segment.label_in_parents`, the same labels).

    Each tile's components of ``parent id × mask`` get provisional ids; ids on either side of
    a tile border are joined where both pixels are in the mask and in the same parent (union
    find over the provisional ids), so the result equals the whole-plane labelling exactly.

    Examples
    --------
    >>> import tempfile
    >>> from scopeml.analysis.segment import label_in_parents
    >>> rng = np.random.default_rng(0)
    >>> m, cells = rng.random((20, 20)) > 0.3, np.repeat(np.arange(1, 5), 100).reshape(20, 20)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = label_within_parents(m, cells, Path(tmp) / "l.zarr", tile_size=6)
    ...     bool((out[...] == label_in_parents(m, cells)).all())
    True
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from skimage.measure import label

    from scopeml.analysis.segment import label_in_parents

    full = tuple(slice(0, n) for n in mask.shape)
    if output is None:
        return label_in_parents(np.asarray(mask[full]), np.asarray(parent[full]))
    shape = tuple(int(n) for n in mask.shape)
    tiles = list(iter_tiles(shape, (tile_size,) * len(shape)))
    scratch = output.with_name(f".{output.name}.provisional")
    try:
        provisional = tiled._open_store(scratch, shape, np.int64, tile_size)
        keys, n_total = [np.zeros(1, np.int64)], 0  # the parent id of each provisional id
        for tile in tiles:
            key = np.where(np.asarray(mask[tile], bool), np.asarray(parent[tile]), 0)
            local = label(key, background=0, connectivity=1).astype(np.int64)
            n = int(local.max(initial=0))
            found = np.zeros(n + 1, np.int64)
            found[local] = key
            keys.append(found[1:])
            provisional[tile] = np.where(local > 0, local + n_total, 0)
            n_total += n
        key_of = np.concatenate(keys)
        edges = [np.zeros((0, 2), np.int64)]
        for axis in range(len(shape)):
            for border in range(tile_size, shape[axis], tile_size):
                for piece in range(0, shape[1 - axis], tile_size):
                    along = slice(piece, min(piece + tile_size, shape[1 - axis]))
                    across = slice(border - 1, border + 1)
                    strip = np.asarray(provisional[(across, along) if axis == 0 else
                                                   (along, across)])  # fmt: skip
                    a, b = strip if axis == 0 else strip.T
                    joined = (a > 0) & (b > 0) & (key_of[a] == key_of[b])
                    edges.append(np.stack([a[joined], b[joined]], 1))
        pairs = np.concatenate(edges)
        graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])),
                           (n_total + 1, n_total + 1))  # fmt: skip
        n_comp, component = connected_components(graph, directed=False)
        width = shape[-1]
        first = np.full(n_comp, np.iinfo(np.int64).max, np.int64)
        for tile in tiles:
            ids = np.asarray(provisional[tile])
            ys, xs = np.nonzero(ids)
            flat = (ys + tile[0].start) * width + xs + tile[1].start
            np.minimum.at(first, component[ids[ys, xs]], flat)
        if n_comp - 1 >= 2**31:
            raise OverflowError(f"{n_comp - 1} objects do not fit int32 labels")
        rank = np.zeros(n_comp, np.int32)  # the background's component has no pixel: last
        rank[np.argsort(first, kind="stable")] = np.arange(1, n_comp + 1, dtype=np.int32)
        rank[component[0]] = 0
        lut = rank[component]
        out = tiled._open_store(output, shape, np.int32, tile_size)
        for tile in tiles:
            out[tile] = lut[np.asarray(provisional[tile])]
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def split_by_parent(labels: Any, parent: Any, output: Path | None, *, tile_size: int) -> Any:
    """Objects that lie over several parent objects split into one object per parent, read
    tile by tile: the part over the parent under most of the object's pixels (ties: the
    smaller parent id) keeps the id, each other part gets a new id after the largest, in order
    of (id, parent id). Objects within one parent keep their ids; where none spans two
    parents, ``labels`` itself is returned. ``output`` ``None``: numpy (any number of axes).

    Examples
    --------
    >>> cells = np.array([[1, 1, 2, 2, 3, 3]])
    >>> split_by_parent(np.array([[4, 4, 4, 0, 5, 5]]), cells, None, tile_size=4).tolist()
    [[4, 4, 6, 0, 5, 5]]
    """
    shape = tuple(int(n) for n in labels.shape)
    tiles = list(iter_tiles(shape, (tile_size,) * len(shape)))
    keys, counts, top = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], 0
    for tile in tiles:
        child, under = np.asarray(labels[tile]).astype(np.int64), np.asarray(parent[tile])
        top = max(top, int(child.max(initial=0)))
        both = (child > 0) & (under > 0)
        found, n = np.unique((child[both] << 32) | under[both].astype(np.int64),
                             return_counts=True)  # fmt: skip
        keys.append(found)
        counts.append(n)
    pairs, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(counts)).astype(np.int64)
    children, parents = pairs >> 32, pairs & 0xFFFFFFFF
    order = np.lexsort((parents, -total, children))  # per child: most pixels, smaller id
    kept = np.zeros(pairs.size, bool)
    kept[order[np.unique(children[order], return_index=True)[1]]] = True
    moved = pairs[~kept]  # in (id, parent id) order
    if not moved.size:
        return labels
    if top + moved.size >= 2**31:
        raise OverflowError(f"{top + moved.size} objects do not fit int32 labels")
    new_ids = np.arange(top + 1, top + 1 + moved.size, dtype=np.int64)
    spanning = np.zeros(top + 1, bool)
    spanning[moved >> 32] = True
    out = tiled._open_store(output, shape, np.int32, tile_size)
    for tile in tiles:
        child, under = np.asarray(labels[tile]).astype(np.int64), np.asarray(parent[tile])
        pick = spanning[child] & (under > 0)
        key = (child[pick] << 32) | under[pick].astype(np.int64)
        at = np.minimum(np.searchsorted(moved, key), moved.size - 1)
        child[pick] = np.where(moved[at] == key, new_ids[at], child[pick])
        out[tile] = child
    return out


def _threshold_tiled(
    seg: ThresholdSegmenter,
    source: Any,
    store: Callable[[str], Path | None],
    tile_size: int,
    parent: Any,
    region: Any,
) -> Any:
    """A threshold segmenter's mask of one plane: smoothed, then one level for the plane
    (``pooled``, inside ``region``) or one per parent object (``per_parent``)."""
    if seg.sigma > 0:
        source = tiled.gaussian_tiled(source, store("smooth"), seg.sigma, tile_size=tile_size)
    if seg.scope == "per_parent" and seg.method != "fixed" and parent is not None:
        from scopeml.analysis.parent_threshold import threshold_per_parent_tiled

        mask, _ = threshold_per_parent_tiled(
            source, store("mask"), seg.method, tile_size=tile_size, parent=parent,
            dark=seg.dark, adjust=seg.adjusted,
        )  # fmt: skip
        return mask
    mask, _ = tiled.threshold_tiled(
        source, store("mask"), seg.method, tile_size=tile_size,
        value=seg.value, dark=seg.dark, region=region, adjust=seg.adjusted,
    )  # fmt: skip
    return mask


def segment_class_tiled(
    cls: ClassSettings,
    channels: dict[str, Any],
    scratch: Path | None,
    *,
    tile_size: int,
    parent: Any = None,
    model_labels: Any = None,
    class_value: int | None = None,
) -> Any:
    """Instance labels (``int32`` zarr) of a :func:`tileable` class on one 2-D plane.

    ``channels`` are the plane's channels as array-likes by name (:class:`ChannelView`);
    ``parent`` the parent class's labels (array-like) or ``None``. A model segmenter takes
    the engine's class labels of the plane as ``model_labels`` (:class:`EngineIds`) and its
    class's label value as ``class_value``; ``instances``, ``segment``'s instances of the
    plane (cut to the parent's objects, ids kept but for an instance over several parents:
    :func:`split_by_parent`). A child's mask is labelled within each parent object
    (:func:`label_within_parents`): each child object lies in one parent. Intermediate stores
    go to ``scratch``;
    with ``scratch`` ``None`` every stage keeps its result in memory (numpy, the same
    values: the in-memory path of a plane that fits the memory budget).

    Examples
    --------
    >>> import tempfile
    >>> plane = {"a": np.array([[0, 9, 9, 0, 9]], np.float32)}
    >>> cls = ClassSettings(name="x", segmenter=ThresholdSegmenter(channel="a", method="fixed",
    ...                     value=5))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     segment_class_tiled(cls, plane, Path(tmp), tile_size=2)[...].tolist()
    [[0, 1, 1, 0, 2]]
    """
    seg = cls.segmenter
    name = cls.name
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)

    def store(stage: str) -> Path | None:
        return None if scratch is None else scratch / f"{name}-{stage}.zarr"

    region = None if parent is None else _Positive(parent)

    def labelled(mask: Any, stage: str) -> Any:  # a child's objects: each in one parent
        if parent is None:
            return label_raster_order(mask, store(stage), tile_size=tile_size)
        return label_within_parents(mask, parent, store(stage), tile_size=tile_size)

    current: Any
    if isinstance(seg, ThresholdSegmenter):
        current = _threshold_tiled(seg, channels[seg.channel], store, tile_size, parent, region)
    elif model_labels is None:
        raise ValueError(f"class {name!r} needs the model's labels of this plane")
    elif isinstance(seg, InstancesSegmenter):
        current = _copy(_Inside(model_labels, region), store("instances"), np.int32, tile_size)
        if parent is not None:
            current = split_by_parent(current, parent, store("split"), tile_size=tile_size)
        if not cls.post:
            return current
    else:
        current = _Inside(model_labels, region, equal=class_value)
    is_labels = isinstance(seg, InstancesSegmenter)
    for i, step in enumerate(cls.post):
        path = store(f"step{i}")
        if isinstance(step, _OBJECT_STEPS):
            if not is_labels:
                current = labelled(current, f"labels{i}")
                is_labels = True
            if isinstance(step, RemoveBorder):
                current = tiled.remove_border_tiled(current, path, tile_size=tile_size)
                continue
            current = tiled.remove_by_area_tiled(
                current, path, tile_size=tile_size,
                min_size=step.min_size if isinstance(step, RemoveSmall) else None,
                max_size=step.max_size if isinstance(step, RemoveLarge) else None,
            )  # fmt: skip
            continue
        mask = _Positive(current) if is_labels else current
        if isinstance(step, FillHoles):
            current = tiled.fill_holes_tiled(mask, path, tile_size=tile_size)
        elif isinstance(step, Opening):
            current = tiled.open_tiled(mask, path, step.radius, tile_size=tile_size)
        else:
            current = tiled.close_tiled(mask, path, step.radius, tile_size=tile_size)
        if region is not None:
            current = _cut(current, region, store(f"cut{i}"), tile_size)
        is_labels = False
    if not is_labels:
        current = labelled(current, "labels")
    return current


def _copy(array: Any, output: Path | None, dtype: Any, tile_size: int) -> Any:
    """An array-like written to a store (numpy when ``output`` is ``None``), a tile at a time."""
    out = tiled._open_store(output, array.shape, dtype, tile_size)
    for tile in iter_tiles(array.shape, (tile_size,) * len(array.shape)):
        out[tile] = array[tile]
    return out


def _cut(mask: Any, region: Any, output: Path | None, tile_size: int) -> Any:
    out = tiled._open_store(output, mask.shape, bool, tile_size)
    for tile in iter_tiles(mask.shape, (tile_size,) * len(mask.shape)):
        out[tile] = np.asarray(mask[tile], bool) & region[tile]
    return out
