"""Out-of-core measurement of an instance-label array of any size (a zarr array on disk).

Two passes over tiles. The first finds every object's global bounding box (tile-wise
``find_objects``, merged per id). The second reads each tile extended by a margin and measures
there, exactly, the objects whose bounding box starts in the tile and fits in the extended
region; every other object (larger than the margin) is measured on its own crop read from the
store. Each object is therefore measured once, on all of its pixels: sums, moments and shape
features equal the in-memory :func:`~scopeml.objects.measure.measure_objects`. Peak memory is one
extended tile per worker (plus the crop of the largest object larger than the margin) and the
table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from scopeml.errors import InvalidImageError, InvalidLabelsError, InvalidRequestError
from scopeml.io.image import Image
from scopeml.io.regions import iter_regions
from scopeml.objects.label import tile_sizes
from scopeml.objects.measure import (
    NONFINITE,
    _check_labels,
    _compact,
    _measure,
    _parse_spacing,
    warn_nonfinite,
)
from scopeml.objects.stacks import StackView
from scopeml.objects.table import check_table_output, place_table, temporary_table
from scopeml.progress import Progress, track
from scopeml.threads import map_ordered


def measure_objects_tiled(
    labels: Any,
    image: Any = None,
    *,
    pixel_sizes: Mapping[str, float] | Sequence[float] | None = None,
    channel_names: Sequence[str] | None = None,
    shape_features: bool = True,
    tile_size: int | Sequence[int] | None = None,
    margin: int = 128,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    workers: int = 2,
) -> pd.DataFrame | Path:
    """Measure every object of a large instance-label array tile by tile.

    Parameters
    ----------
    labels
        ``(Z×)Y×X`` integer array-like (zarr array, memmap, numpy); 0 = background.
    image
        Intensities: an :class:`~scopeml.io.image.Image` of one scene and time point (several:
        use :func:`~scopeml.objects.images.measure_image`), or an array-like ``(Z×)Y×X`` /
        ``C×(Z×)Y×X`` of the labels' size.
    pixel_sizes, channel_names, shape_features
        As in :func:`~scopeml.objects.measure.measure_objects`; taken from an ``Image`` when
        not given.
    tile_size
        Tile size (one int, or one per axis), clipped to the labels; defaults to the labels'
        chunks, else :func:`~scopeml.objects.label.default_tile` (1024×1024 in 2-D, at most
        128³ voxels in 3-D).
    margin
        Extra pixels read past each tile's far edges; objects up to about this size are
        measured inside a tile, larger ones on their own crop.
    output
        Stream the rows to this ``.csv`` / ``.parquet`` file tile by tile (written to a
        temporary file, moved into place when complete) instead of returning a table, so
        memory does not grow with the number of objects. Rows are sorted by ``label`` there
        too where a plane has at most :data:`SORTED_ROWS` objects, else in tile order.
    overwrite
        Replace an existing ``output`` file (else it is refused before any work).
    progress
        Progress and cancel callback, or ``True`` for bars (see :mod:`scopeml.progress`);
        stages ``find objects`` and ``measure``, unit ``tile``.
    workers
        Tiles measured at once (threads, which read ``labels`` and ``image`` too). The table is
        the same whatever their number; each holds one extended tile.

    Returns
    -------
    pandas.DataFrame or pathlib.Path
        The same columns as ``measure_objects``, one row per object, sorted by ``label``; or
        the path written when ``output`` is given.

    Examples
    --------
    >>> labels = np.zeros((8, 8), np.uint32)
    >>> labels[2:6, 1:7] = 5
    >>> table = measure_objects_tiled(labels, tile_size=4, margin=1)
    >>> table[["label", "area", "bbox-0", "bbox-3"]].to_numpy().tolist()
    [[5.0, 24.0, 2.0, 7.0]]
    """
    shape = tuple(int(s) for s in labels.shape)
    ndim = len(shape)
    if ndim not in (2, 3):
        raise InvalidLabelsError(f"labels must be 2-D or 3-D; got shape {shape}")
    if margin < 0:
        raise InvalidLabelsError(f"margin must be >= 0; got {margin}")
    reader = _channel_reader(image, shape)
    if isinstance(image, Image):
        pixel_sizes = pixel_sizes if pixel_sizes is not None else image.pixel_sizes
        channel_names = channel_names if channel_names is not None else image.channel_names
    spacing = _parse_spacing(pixel_sizes, ndim)
    tiles = tile_sizes(tile_size, labels.shape, getattr(labels, "chunks", None))
    sink = TableSink(output, overwrite=overwrite)
    try:
        measure_stack(labels, reader, sink, spacing, channel_names, shape_features, tiles, margin,
                      progress, workers)  # fmt: skip
        if sink.empty:
            sink.add(empty_table(ndim, reader, spacing, channel_names, shape_features))
    except BaseException:
        sink.abort()
        raise
    warn_nonfinite(sink.nonfinite, sink.rows, getattr(image, "path", None))
    return sink.close()


#: The most objects of one stack whose rows are held to be written sorted by ``label`` (about
#: 1 kB a row); a stack with more is written tile by tile as measured, each tile read once
#: (sorting those would hold them all, or read every tile again for each run of ids).
SORTED_ROWS = 2**16


def measure_stack(
    labels: Any,
    reader: Any,
    sink: TableSink,
    spacing: np.ndarray | None,
    channel_names: Sequence[str] | None,
    shape_features: bool,
    tiles: tuple[int, ...],
    margin: int,
    progress: Progress,
    workers: int = 1,
) -> None:
    """Measure every object of one ``(Z×)Y×X`` label array-like into ``sink`` (both passes),
    ``workers`` tiles at a time (threads; the same rows whatever their number): sorted by
    ``label`` for up to :data:`SORTED_ROWS` objects, else in tile order. Each tile is read once.

    ``reader`` maps a region to ``C×(Z×)Y×X`` intensities (or is ``None``).
    """
    if workers < 1:
        raise InvalidRequestError(f"workers must be >= 1; got {workers}")
    shape = tuple(int(s) for s in labels.shape)
    ndim = len(shape)
    regions = [read for read, _ in iter_regions(shape, tiles)]
    ids, starts, stops = _global_boxes(labels, regions, progress, workers)
    cover = float(np.prod(stops - starts, axis=1, dtype=np.float64).sum() / np.prod(shape))
    sink.cover = max(sink.cover, cover)  # for a warning on labels that are grey values
    owner_tile = np.stack([starts[:, d] // tiles[d] for d in range(ndim)], 1)
    tile_start = owner_tile * np.asarray(tiles)
    limit = np.minimum(tile_start + np.asarray(tiles) + margin, shape)
    fits = np.all(stops <= limit, axis=1)
    grid = [len(range(0, n, t)) for n, t in zip(shape, tiles, strict=True)]
    owner_flat = np.ravel_multi_index(tuple(owner_tile.T), grid) if ids.size else ids

    def measure(region: tuple[slice, ...], keep: np.ndarray, alone: bool = False) -> pd.DataFrame:
        tile_labels = _check_labels(np.asarray(labels[region]))
        if alone:  # a large object on its own crop: the others in its box left out
            tile_labels = np.where(tile_labels == keep[0], tile_labels, 0)
        channels = None if reader is None else reader(region)
        origin = [r.start for r in region]
        return _measure(tile_labels, channels, spacing, channel_names, shape_features, origin, keep)

    def measure_tile(flat: int) -> pd.DataFrame | None:
        keep = ids[fits & (owner_flat == flat)]
        if not keep.size:
            return None
        extended = tuple(
            slice(r.start, min(r.stop + margin, n))
            for r, n in zip(regions[flat], shape, strict=True)
        )
        return measure(extended, keep)

    parts: list[pd.DataFrame] = []
    add = parts.append if len(ids) <= SORTED_ROWS else sink.add  # held to be sorted, or not
    measured = map_ordered(measure_tile, range(len(regions)), workers)
    with closing(measured):  # a cancel drops the tiles not started
        for part in track(measured, progress, "measure", total=len(regions), unit="tile"):
            if part is not None:
                add(part)
    for i in np.flatnonzero(~fits):  # the large objects, each on its own crop
        add(measure(tuple(map(slice, starts[i].tolist(), stops[i].tolist())), ids[i : i + 1],
                    alone=True))  # fmt: skip
    if parts:
        sink.add(_in_label_order(parts))


def _in_label_order(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One table of ``parts`` (each with its count of objects with non-finite intensities),
    sorted by ``label``."""
    nonfinite = sum(int(part.attrs.pop(NONFINITE, 0)) for part in parts)
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    table = table.sort_values("label", kind="stable", ignore_index=True)
    table.attrs[NONFINITE] = nonfinite
    return table


def empty_table(
    ndim: int,
    reader: Any,
    spacing: np.ndarray | None,
    channel_names: Sequence[str] | None,
    shape_features: bool,
) -> pd.DataFrame:
    """The table of an image without objects: no rows, the columns (and dtypes) of one with.

    The intensity columns come from ``reader`` (one pixel is read to learn the channels and
    their dtype), so per-image tables of empty and non-empty images concatenate to one schema.
    """
    channels = None if reader is None else reader((slice(0, 1),) * ndim)
    labels = np.zeros((1,) * ndim, np.uint8)
    return _measure(labels, channels, spacing, channel_names, shape_features, None)


class TableSink:
    """Collects measured rows in memory, or streams them to a CSV/Parquet file atomically.

    ``keys`` (e.g. ``{"t": 3}``) are put in front of every part added while they are set, and
    rows kept in memory are sorted by them and then by ``label``. An existing ``output`` file
    is refused (when the sink is made, before any work, and when it is moved into place)
    unless ``overwrite``.
    """

    def __init__(self, output: str | os.PathLike[str] | None, *, overwrite: bool = False) -> None:
        self.parts: list[pd.DataFrame] = []
        self.empty = True
        self.path = None if output is None else Path(output)
        self.writer: Any = None
        self.keys: dict[str, int | float | str] = {}
        self.rows = 0
        self.nonfinite = 0  # rows with NaN or infinite intensities, for one warning at the end
        self.cover = 0.0  # most times over a stack's object boxes cover it (measure_stack)
        self.overwrite = overwrite
        if self.path is not None:
            kind = check_table_output(self.path, overwrite=overwrite)
            self.parquet = kind == "parquet"
            self.temp = temporary_table(self.path)  # this writer's own

    def add(self, part: pd.DataFrame) -> None:
        self.nonfinite += int(part.attrs.pop(NONFINITE, 0))
        self.rows += len(part)
        for position, (name, value) in enumerate(self.keys.items()):
            kind = (object if isinstance(value, str)  # scene_name: a well, B2
                    else np.float64 if isinstance(value, float) else np.int64)  # fmt: skip
            part.insert(position, name, np.full(len(part), value, kind))
        if self.path is None:
            self.parts.append(part)
        elif self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(part, preserve_index=False)
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.temp, table.schema)
            self.writer.write_table(table)
        else:
            part.to_csv(self.temp, mode="w" if self.empty else "a", header=self.empty, index=False)
        self.empty = False

    def close(self) -> pd.DataFrame | Path:
        if self.path is None:
            table = pd.concat(self.parts, ignore_index=True)
            return table.sort_values([*self.keys, "label"], ignore_index=True)
        try:
            if self.writer is not None:
                self.writer.close()
        except BaseException:
            self.temp.unlink(missing_ok=True)
            raise
        return place_table(self.temp, self.path, overwrite=self.overwrite)  # temp gone if it fails

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            if self.path is not None:
                self.temp.unlink(missing_ok=True)


def _global_boxes(
    labels: Any, regions: list[tuple[slice, ...]], progress: Progress, workers: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every object id with its global bounding box (start, stop), from one tile-wise pass."""

    def boxes(region: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, index = _compact(_check_labels(np.asarray(labels[region])))
        slices = ndi.find_objects(index) if ids.size else []
        corners = np.array([[(s.start, s.stop) for s in box] for box in slices], np.int64)
        corners = corners.reshape(-1, len(region), 2) + np.array([[r.start] for r in region])
        return ids, corners[..., 0], corners[..., 1]

    found = map_ordered(boxes, regions, workers)
    with closing(found):  # a cancel drops the tiles not started
        tracked = track(found, progress, "find objects", total=len(regions), unit="tile")
        parts = [part for part in tracked if part[0].size]
    ndim = len(regions[0]) if regions else 2
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, ndim), np.int64), np.zeros((0, ndim), np.int64)
    ids, inverse = np.unique(np.concatenate([part[0] for part in parts]), return_inverse=True)
    starts = np.full((ids.size, ndim), np.iinfo(np.int64).max)
    stops = np.zeros((ids.size, ndim), np.int64)
    np.minimum.at(starts, inverse, np.concatenate([part[1] for part in parts]))
    np.maximum.at(stops, inverse, np.concatenate([part[2] for part in parts]))
    return ids, starts, stops


def _channel_reader(image: Any, shape: tuple[int, ...]) -> Any:
    """A function region → ``C×(Z×)Y×X`` numpy intensities, or None without an image."""
    if image is None:
        return None
    ndim = len(shape)
    if isinstance(image, Image):
        z, y, x = image.spatial_shape
        if (z, y, x)[-ndim:] != shape or (ndim == 2 and z != 1):
            raise InvalidImageError(
                f"image has Z×Y×X {(z, y, x)}; labels have shape {shape} (are the image's "
                "channels read as Z? store it with axes metadata, e.g. OME-TIFF 'CYX')",
                path=image.path,
            )
        if image.sizes["S"] * image.sizes["T"] > 1:  # never silently the first plane
            raise InvalidImageError(
                f"image has {image.sizes['S']} scenes and {image.sizes['T']} time points; "
                "measure every one with scopeml.objects.measure_image (or sm.measure_objects)",
                path=image.path,
            )
        view = StackView(image, scene=0, time=0, channel=None)
        return lambda region: view[(slice(None), *region)]
    if tuple(image.shape) == shape:
        return lambda region: np.asarray(image[region])[np.newaxis]
    if len(image.shape) == ndim + 1 and tuple(image.shape[1:]) == shape:
        return lambda region: np.asarray(image[(slice(None), *region)])
    raise InvalidImageError(
        f"image has shape {tuple(image.shape)}; labels have shape {shape} "
        "(image must be (Z×)Y×X or C×(Z×)Y×X of the same size)"
    )
