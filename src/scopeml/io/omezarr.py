"""OME-Zarr (NGFF) images: read 0.5 (zarr v3, attributes under ``"ome"``) and 0.4 (zarr v2,
top-level ``"multiscales"``); create 0.5 image groups that workers fill chunk by chunk.

An image group holds one array per pyramid level (``"0"`` full resolution) and the
``multiscales`` metadata: axes (a subset of ``t c z y x`` in that order, spatial units
micrometre), one ``scale`` per level from the pixel sizes, and ``omero`` channel labels.
A group without multiscales whose children ``0, 1, …`` are images (the bioformats2raw layout)
is read as scenes. A spatial scale without a unit is taken as micrometres, except a scale of 1,
which is how writers (scopeml included) say the size is unknown.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from scopeml.errors import InvalidImageError, InvalidRequestError, ScopeMLError, find_stack_level
from scopeml.io._units import checked_size, is_time_unit, ordered_sizes
from scopeml.io._view import AxesView, select_scene
from scopeml.io.chunk_guard import guard_chunks
from scopeml.io.confine import Confinement
from scopeml.io.confined_store import ConfinedStore
from scopeml.io.image import Image
from scopeml.io.limits import ImageLimits, default_limits
from scopeml.io.stores import is_zarr_store

NGFF_VERSION = "0.5"
WRITE_AXES = "TCZYX"
_AXIS_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


# ---------------------------------------------------------------------------- metadata


def multiscales_metadata(
    axes: str,
    pixel_sizes: Mapping[str, float] | None,
    *,
    levels: int = 1,
    factor: int = 2,
    name: str = "",
) -> dict[str, Any]:
    """The NGFF 0.5 ``multiscales`` entry for an image with ``levels`` levels downsampled in Y, X.

    Examples
    --------
    >>> ms = multiscales_metadata("CYX", {"X": 0.5, "Y": 0.5}, levels=2)
    >>> [a["name"] for a in ms["axes"]], ms["datasets"][1]["coordinateTransformations"][0]["scale"]
    (['c', 'y', 'x'], [1.0, 1.0, 1.0])
    """
    sizes = dict(pixel_sizes or {})
    axes_meta = []
    for axis in axes:
        entry = {"name": axis.lower(), "type": _AXIS_TYPES[axis]}
        if axis in "ZYX" and sizes.get(axis):
            entry["unit"] = "micrometer"  # no unit: the size is unknown (scale 1)
        elif axis == "T" and sizes.get(axis):
            entry["unit"] = "second"  # the time step, in seconds as pixel sizes hold it
        axes_meta.append(entry)
    datasets = []
    for level in range(levels):
        scale = [
            float(sizes.get(axis, 1.0)) * (factor**level if axis in "YX" else 1) for axis in axes
        ]
        datasets.append(
            {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    return {"name": name, "axes": axes_meta, "datasets": datasets}


def _omero(channel_names: Sequence[str], dtype: np.dtype) -> dict[str, Any]:
    if dtype.kind in "ui":
        low, high = float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
    else:
        low, high = 0.0, 1.0
    window = {"min": low, "max": high, "start": low, "end": high}
    return {
        "channels": [
            {"label": str(n), "active": True, "color": "FFFFFF", "window": window}
            for n in channel_names
        ]
    }


class _Multiscale:
    """The parts of NGFF metadata scopeml uses, validated (the metadata is untrusted)."""

    def __init__(self, attrs: Mapping[str, Any], *, path: str) -> None:
        ome = attrs.get("ome")
        source = ome if isinstance(ome, Mapping) and "multiscales" in ome else attrs
        try:
            multiscale = source["multiscales"][0]
            raw_axes = multiscale["axes"]
            names = [(a["name"] if isinstance(a, Mapping) else a) for a in raw_axes]
            units = [(a.get("unit") if isinstance(a, Mapping) else None) for a in raw_axes]
            self.axes = "".join(str(n).upper() for n in names)
            self.paths = [str(d["path"]) for d in multiscale["datasets"]]
            outer = _scale(multiscale.get("coordinateTransformations"), len(names))
            scales = [
                _scale(d.get("coordinateTransformations"), len(names))
                for d in multiscale["datasets"]
            ]
            if not scales:
                raise ValueError("no datasets")
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as err:
            raise InvalidImageError(
                f"malformed NGFF multiscales metadata: {err!r}", path=path
            ) from err
        if not re.fullmatch("T?C?Z?YX", self.axes):
            raise InvalidImageError(
                f"NGFF axes {names} are not supported; expected a subset of t, c, z, y, x in "
                "that order",
                path=path,
            )
        self.levels: list[dict[str, float]] = []  # pixel sizes (µm; T: s) of each level
        for number, scale in enumerate(scales):
            sizes = {}
            for axis, unit, a, b in zip(self.axes, units, scale, outer, strict=True):
                if axis not in "TZYX" or (unit is None and a * b == 1.0):
                    continue  # scale 1 without a unit says nothing about the physical size
                if axis == "T" and not is_time_unit(unit):
                    continue  # a time step without a unit of time is no time step
                where = path if number == 0 else f"{path} (level {number})"
                size = checked_size(a * b, unit, axis, path=where, what="scale")
                if size is not None:
                    sizes[axis] = size
            self.levels.append(ordered_sizes(sizes))
        self.pixel_sizes = self.levels[0]
        omero = source.get("omero") or attrs.get("omero") or {}
        try:
            self.channel_names = [str(c.get("label", "")) for c in omero.get("channels", [])]
        except (AttributeError, TypeError):
            self.channel_names = []


def _scale(transforms: Any, ndim: int) -> list[float]:
    scale = [1.0] * ndim
    for transform in transforms or []:
        if transform.get("type") == "scale":
            values = [float(v) for v in transform["scale"]]
            if len(values) != ndim:
                raise ValueError(f"scale has {len(values)} values for {ndim} axes")
            scale = [s * v for s, v in zip(scale, values, strict=True)]
    return scale


def _has_multiscales(attrs: Mapping[str, Any]) -> bool:
    ome = attrs.get("ome")
    return "multiscales" in attrs or (isinstance(ome, Mapping) and "multiscales" in ome)


# ---------------------------------------------------------------------------- reading


def _natural(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 62, name)


def _check_array(
    array: zarr.Array, path: str, limits: ImageLimits, *, labels: bool = False
) -> None:
    """Refuse an absurd declared shape, or a chunk (or shard index) too big to decode, and
    make each compressed chunk decode to no more than the declared chunk size.

    A huge shape whose chunks are absent is legitimate (they read as the fill value), so the
    shape is held only to the absolute limits; what one region read decodes is the chunk.
    Absent chunks are noted unless the array is an NGFF label image (``labels``): objects
    leave most of the background empty, and zarr stores no chunk of zeros (a run's own
    instances were said to be 985 of 2,400 chunks present).
    """
    limits.check_shape(array.shape, path=path)
    if 0 in array.shape or any(c < 1 for c in array.chunks):
        raise InvalidImageError(
            f"a zarr array of shape {tuple(array.shape)} in chunks {tuple(array.chunks)}: "
            "no pixels, or chunks of no size",
            path=path,
        )
    itemsize = np.dtype(array.dtype).itemsize
    limits.check_chunk(array.chunks, itemsize, what="a zarr chunk", path=path)
    shards = getattr(array, "shards", None)
    if shards:
        entries = math.prod(-(-s // c) for s, c in zip(shards, array.chunks, strict=True))
        limits.check_chunk((entries,), 16, what="a zarr shard index", path=path)
    guard_chunks(array, path=path)
    if not labels:
        _note_sparse(array, path)


#: Chunk files counted at most when looking for absent chunks (listing is then bounded).
MAX_COUNTED_CHUNKS = 100_000
#: Arrays of fewer chunks are not counted: reading their absent chunks takes no time.
MIN_NOTED = 1024
_METADATA_FILES = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
_NOTED: set[str] = set()


def chunk_presence(array: zarr.Array, limit: int = MAX_COUNTED_CHUNKS) -> tuple[int, int, bool]:
    """``(present, total, capped)``: chunk (or shard) files stored for ``array`` on a local
    disk, out of how many its shape declares; counting stops at ``limit`` files (``capped``:
    at least that many). An array on other storage is taken as complete.

    Examples
    --------
    >>> import tempfile
    >>> a = zarr.open_array(tempfile.mkdtemp() + "/a.zarr", mode="w", shape=(8, 8), chunks=(4, 4),
    ...                     dtype="u1", zarr_format=3)
    >>> a[:4, :4] = 1
    >>> chunk_presence(a)
    (1, 4, False)
    """
    stored = getattr(array, "shards", None) or array.chunks
    total = math.prod(-(-n // c) for n, c in zip(array.shape, stored, strict=True))
    root = getattr(array.store, "root", None)
    if root is None:
        return total, total, False
    folder = os.path.join(str(root), array.path) if array.path else str(root)
    present = 0
    stack = [folder]
    while stack and present < limit:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if not os.path.exists(os.path.join(entry.path, "zarr.json")) and not (
                    os.path.exists(os.path.join(entry.path, ".zarray"))
                ):  # a nested array or group is not this array's chunks
                    stack.append(entry.path)
            elif entry.name not in _METADATA_FILES:
                present += 1
                if present >= limit:
                    break
    return min(present, total), total, present >= limit and present < total


def sparse_note(array: zarr.Array, path: str) -> str | None:
    """What an image's absent chunks mean, or ``None`` where every chunk is stored. Fewer
    than half, of at least :data:`MIN_NOTED`: ``"k of N chunks present; absent chunks read as
    fill value"`` (a huge declared shape with a few chunks in it, which a statistics pass would
    read whole); a few absent: how many, and that a copy cut short leaves them (an interrupted
    rsync's missing chunk read as a black square, 137 nuclei fewer, without a word), where
    each is among stored ones (:func:`_holes`; a blank region's are not). Absent
    chunks are legal (zarr stores no chunk of the fill value): this is said, never refused."""
    present, total, capped = chunk_presence(array)
    what = "shards" if getattr(array, "shards", None) else "chunks"
    if present * 2 < total and total >= MIN_NOTED:
        return (
            f"{path}: {'≥' if capped else ''}{present:,} of {total:,} {what} present; absent "
            f"{what} read as fill value ({array.fill_value})"
        )
    if capped or present >= total:
        return None
    holes = _holes(array)
    if not holes:  # absent next to absent: a blank region zarr did not store, as it does
        return None
    return (
        f"{path}: {holes:,} of {total:,} {what} absent inside the image, each among stored "
        f"ones (read as {array.fill_value}): a copy cut short, or a lost file? compare it "
        "with its source"
    )


def _holes(array: zarr.Array) -> int:
    """How many absent chunk (or shard) files have every neighbour in Y and X stored: a
    file lost from the middle of an image, where a blank region's absent chunks (a mosaic's
    empty border, zarr storing no chunk of the fill value) lie next to each other or at the
    edge. 0 for an array not on a local disk, or of more than :data:`MAX_COUNTED_CHUNKS`."""
    import itertools

    stored = getattr(array, "shards", None) or array.chunks
    grid = [-(-n // c) for n, c in zip(array.shape, stored, strict=True)]
    root = getattr(array.store, "root", None)
    if root is None or math.prod(grid) > MAX_COUNTED_CHUNKS or len(grid) < 2:
        return 0
    folder = os.path.join(str(root), array.path) if array.path else str(root)
    encoding = getattr(array.metadata, "chunk_key_encoding", None)  # zarr 3: c/0/3/3
    separator = getattr(array.metadata, "dimension_separator", None) or "."  # zarr 2: 0.3.3

    def present(index: tuple[int, ...]) -> bool:
        name = encoding.encode_chunk_key(index) if encoding else separator.join(map(str, index))
        return os.path.exists(os.path.join(folder, name))

    holes = 0
    for index in itertools.product(*map(range, grid)):
        if present(index):
            continue
        around = []
        for axis in (-2, -1):
            for step in (-1, 1):
                near = list(index)
                near[axis] += step
                around.append(0 <= near[axis] < grid[axis] and present(tuple(near)))
        holes += all(around)
    return holes


def _note_sparse(array: zarr.Array, path: str) -> None:
    """Warn, once per array per process, that most of an array's chunks are absent."""
    if path in _NOTED:
        return
    _NOTED.add(path)
    note = sparse_note(array, path)
    if note is not None:
        warnings.warn(note, UserWarning, stacklevel=find_stack_level())


def _image_view(
    group: Any, path: str, level: int, limits: ImageLimits
) -> tuple[AxesView, _Multiscale]:
    meta = _Multiscale(group.attrs.asdict(), path=path)
    if not 0 <= level < len(meta.paths):
        raise InvalidImageError(
            f"level {level} does not exist; the image has {len(meta.paths)} levels",
            path=path,
        )
    name = meta.paths[level]
    try:
        array = group[name]
    except ScopeMLError:
        raise
    except Exception as err:
        stored = any(os.path.exists(os.path.join(path, name, f)) for f in ("zarr.json", ".zarray"))
        what = "is not a valid zarr array" if stored else "is missing"
        raise InvalidImageError(f"NGFF level {name!r} {what}: {err}", path=path) from err
    if not isinstance(array, zarr.Array) or array.ndim != len(meta.axes):
        raise InvalidImageError(
            f"NGFF level {name!r} is not a {len(meta.axes)}-D array (axes {meta.axes})",
            path=path,
        )
    attrs = group.attrs.asdict()
    labels = "image-label" in attrs or "image-label" in (attrs.get("ome") or {})
    _check_array(array, path, limits, labels=labels)
    meta.pixel_sizes = meta.levels[level]
    return AxesView(array, meta.axes, path=path), meta


def read_ome_zarr(
    path: str | Path,
    *,
    scene: int | None = None,
    level: int = 0,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
    limits: ImageLimits | None = None,
) -> Image:
    """Open an OME-Zarr image group (NGFF 0.4 or 0.5), or a bare zarr array with
    ``dimension_names`` from ``t c z y x``, as a lazy :class:`Image`.

    ``level`` picks a pyramid level (its pixel sizes come from that level's scale). With
    ``allowed_roots`` every key (metadata, array folder, chunk or shard file) is read through a
    :class:`~scopeml.io.confined_store.ConfinedStore`, which checks its real path at each read.
    Declared shapes and chunk sizes are held to ``limits`` before any pixel is read."""
    path = str(path)
    confinement = Confinement.of(allowed_roots)
    limits = default_limits() if limits is None else limits
    store: Any = path if confinement is None else ConfinedStore(path, confinement=confinement)
    try:
        node = zarr.open(store=store, mode="r")
    except ScopeMLError:
        raise
    except Exception as err:
        raise InvalidImageError(f"not a readable zarr store: {err}", path=path) from err
    if isinstance(node, zarr.Array):
        names = getattr(node.metadata, "dimension_names", None) or ()
        axes = "".join(str(n).upper() for n in names if n is not None)
        if len(axes) != node.ndim or not re.fullmatch("T?C?Z?YX", axes):
            raise InvalidImageError(
                f"a bare zarr array needs dimension_names from t, c, z, y, x; has {list(names)}",
                path=path,
            )
        if level:
            raise InvalidImageError(f"level {level} does not exist; a bare array has 1", path=path)
        _check_array(node, path, limits)
        data = select_scene([AxesView(node, axes, path=path)], scene, path=path)
        return Image(data, path=path)
    attrs = node.attrs.asdict()
    if _has_multiscales(attrs):
        view, meta = _image_view(node, path, level, limits)
        views, metas = [view], [meta]
    else:
        children = sorted((n for n, _ in node.groups() if n.isdigit()), key=_natural)
        children = [n for n in children if _has_multiscales(node[n].attrs.asdict())]
        if not children:
            from scopeml.segmentation import INSTANCES
            from scopeml.tiling.options import OUTPUT_NAMES

            members = sorted(n for n, _ in node.members())
            outputs = [n for n in members if n in (*OUTPUT_NAMES, INSTANCES)]
            hint = (
                f"; a segment store: open one of its outputs (its {outputs[0]} folder), or the "
                "whole with sm.Segmentation(path)"
                if outputs
                else ""
            )
            raise InvalidImageError(
                "zarr group has no NGFF metadata (no 'ome'/'multiscales' attributes) and no "
                f"image children 0, 1, …; members: {members or 'none'}{hint}",
                path=path,
            )
        pairs = [_image_view(node[n], f"{path}/{n}", level, limits) for n in children]
        views, metas = [p[0] for p in pairs], [p[1] for p in pairs]
    scene_names = _scene_names([node] if len(views) == 1 else [node[n] for n in children])
    data = select_scene(views, scene, path=path, names=scene_names)
    meta = metas[scene or 0]
    names = meta.channel_names if len(meta.channel_names) == data.shape[2] else None
    image = Image(data, pixel_sizes=meta.pixel_sizes, channel_names=names, path=path)
    image.scene_names = scene_names
    return image


def _scene_names(groups: Sequence[Any]) -> tuple[str, ...]:
    """The scenes' names: each image's NGFF ``name`` (``convert`` keeps a CZI's well names
    there), where several images have names of their own (distinct); else none."""
    names = []
    for group in groups:
        attrs = group.attrs.asdict()
        multiscales = attrs.get("ome", attrs).get("multiscales") or [{}]
        name = multiscales[0].get("name") if isinstance(multiscales[0], dict) else None
        names.append(str(name) if isinstance(name, (str, int)) else "")
    if len(names) < 2 or not all(names) or len(set(names)) < len(names):
        return ()
    return tuple(names)


# ---------------------------------------------------------------------------- writing


def _root_of(path: Path) -> Path:
    """The outermost ancestor named ``*.zarr`` (or ``*.zarr.*``, a temporary store such as
    ``out.ome.zarr.partial``), else the nearest existing zarr group, else ``path`` itself."""
    candidates = [p for p in path.parents if re.search(r"\.zarr(\.[^/]*)?$", p.name)]
    if candidates:
        return candidates[-1]
    for parent in path.parents:
        if is_zarr_store(parent):
            return parent
    return path


def _ensure_groups(root: Path, path: Path) -> None:
    """Make every folder from ``root`` down to ``path``'s parent a zarr v3 group."""
    if root != path and root not in path.parents:
        raise InvalidRequestError(f"root {root} does not contain the image group", path=path)
    chain = [root, *[p for p in reversed(path.parents) if root in p.parents]]
    for folder in chain:
        meta = folder / "zarr.json"
        if meta.is_file():
            node = zarr.open(store=str(folder), mode="r")
            if not isinstance(node, zarr.Group):
                raise InvalidRequestError("is a zarr array, not a group", path=folder)
        else:
            zarr.open_group(str(folder), mode="a", zarr_format=3)


def create_ome_zarr(
    path: str | Path,
    *,
    shape: Sequence[int],
    dtype: Any,
    axes: str,
    chunks: Sequence[int],
    pixel_sizes: Mapping[str, float] | None = None,
    channel_names: Sequence[str] | None = None,
    name: str = "",
    fill_value: Any = 0,
    shards: Sequence[int] | None = None,
    overwrite: bool = False,
    root: str | Path | None = None,
) -> zarr.Array:
    """Create an NGFF 0.5 image group at ``path`` and return its level-0 array, unwritten.

    ``path`` may lie inside a root group (``out.ome.zarr/labels``): the folders above it
    become zarr groups. Workers then open the array by path with :func:`open_ome_zarr_array`
    and each writes whole chunks (or whole shards, if ``shards`` is given).

    Parameters
    ----------
    axes
        A subset of ``"TCZYX"`` in that order ending in ``"YX"``, one letter per ``shape`` entry.
    pixel_sizes
        Micrometres per pixel keyed by ``"Z"``, ``"Y"``, ``"X"``; missing ones are written as
        scale 1 without a unit, which :func:`open_image` reads back as unknown.
    channel_names
        One per ``C``, written as ``omero`` channel labels.
    shards
        Shard shape (a multiple of ``chunks``): many chunks in one file, written whole.
    overwrite
        Replace an existing node at ``path``; otherwise an existing one is an error.
    root
        The folder that becomes the root group; by default the outermost ancestor named
        ``*.zarr`` or ``*.zarr.*`` (``out.ome.zarr.partial``), else the nearest existing group.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "out.ome.zarr" / "labels"
    >>> array = create_ome_zarr(out, shape=(1, 6, 8), dtype="uint8", axes="CYX",
    ...                         chunks=(1, 4, 4), pixel_sizes={"Y": 0.5, "X": 0.5})
    >>> array[0, :4, :4] = 7
    >>> open_ome_zarr_array(out, mode="r")[0, 0, :5].tolist()
    [7, 7, 7, 7, 0]
    """
    path = Path(path)
    shape = tuple(int(n) for n in shape)
    chunks = tuple(int(n) for n in chunks)
    if not re.fullmatch("T?C?Z?YX", axes):
        raise InvalidRequestError(f"axes {axes!r} must be a subset of TCZYX in that order, with YX")
    if not len(shape) == len(chunks) == len(axes):
        raise InvalidRequestError(
            f"shape {shape}, chunks {chunks} and axes {axes!r} must have the same length"
        )
    if any(n < 0 for n in shape) or any(n < 1 for n in chunks):
        raise InvalidRequestError(f"invalid shape {shape} or chunks {chunks}")
    n_channels = shape[axes.index("C")] if "C" in axes else 1
    if channel_names is not None and len(channel_names) != n_channels:
        raise InvalidRequestError(
            f"{len(channel_names)} channel names given for {n_channels} channels"
        )
    if path.exists() and not overwrite:
        raise InvalidRequestError("output exists; remove it or pass overwrite=True", path=path)
    root = _root_of(path) if root is None else Path(root)
    if root != path:
        _ensure_groups(root, path)
    dtype = np.dtype(np.dtype(dtype).str)  # tifffile's 'q' (long long) is no zarr type; '<i8' is
    ome: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [multiscales_metadata(axes, pixel_sizes, name=name)],
    }
    names = list(channel_names) if channel_names else [f"C{i}" for i in range(n_channels)]
    ome["omero"] = _omero(names, dtype)
    group = zarr.open_group(str(path), mode="w", zarr_format=3, attributes={"ome": ome})
    return group.create_array(
        "0",
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        shards=tuple(shards) if shards else None,
        fill_value=fill_value,
        dimension_names=[a.lower() for a in axes],
    )


def mark_label_image(group: Any, classes: Sequence[str]) -> None:
    """Mark an NGFF image group as a label image (``image-label``, with the class names as
    properties, class ``k`` as label value ``k``), so viewers open it as labels, not as
    intensities: every label image scopeml writes (segment's class labels, post, objects,
    analysis) is marked so."""
    attrs = group.attrs.asdict()
    ome = dict(attrs.get("ome", {}))
    label: dict[str, Any] = {"version": ome.get("version", "0.5")}
    if classes:
        label["properties"] = [
            {"label-value": value, "class": name} for value, name in enumerate(classes, 1)
        ]
    ome["image-label"] = label
    group.attrs["ome"] = ome


def label_classes(path: str | Path) -> list[str] | None:
    """The class names by label value (1, 2, …) of the NGFF image group at ``path``, as
    :func:`mark_label_image` writes them (``[]``: object ids, or classes without names);
    ``None``: not marked as labels."""
    try:
        attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    except Exception:
        return None
    label = attrs.get("ome", attrs).get("image-label")
    if not isinstance(label, dict):
        return None
    properties = [p for p in label.get("properties") or () if isinstance(p, dict)]
    return by_value({p.get("label-value"): str(p.get("class", "")) for p in properties})


def by_value(named: Mapping[Any, str]) -> list[str]:
    """Names keyed by label value (ints, or their text) as a list from value 1, ``""`` where a
    value has none; other keys, and values past 65535, are left out.

    >>> by_value({5: "x", "2": "y", "bad": "z"})
    ['', 'y', '', '', 'x']
    """
    values = {int(k): v for k, v in named.items() if str(k).isdigit() and 0 < int(k) < 65536}
    return [values.get(v, "") for v in range(1, max(values, default=0) + 1)]


def set_display_window(group: Any, end: float | Sequence[tuple[float, float]]) -> None:
    """Set the ``omero`` display window of an image ``group``'s channels to ``0..end`` (a
    label image's ids, or its classes), so that a viewer shows them instead of the black of a
    ``uint32`` or ``int32`` range; or to each channel's own ``(start, end)`` (an image's
    values: a 12-bit camera's in ``uint16``, a stacked ``uint8`` channel)."""
    ome = dict(group.attrs.get("ome") or {})
    if "omero" not in ome:
        return
    given = ome["omero"].get("channels", [])
    spans = [(0.0, float(max(end, 1)))] * len(given) if np.isscalar(end) else list(end)
    channels = []
    for channel, (low, high) in zip(given, spans, strict=False):
        window = dict(channel.get("window", {}))
        low, high = float(low), max(float(high), float(low) + 1)  # a constant one: not 7..7
        window.update(start=low, end=high, min=min(window.get("min", low), low),
                      max=max(window.get("max", high), high))  # fmt: skip
        channels.append({**channel, "window": window})
    ome["omero"] = {**ome["omero"], "channels": channels}
    group.attrs["ome"] = ome


def open_ome_zarr_array(path: str | Path, level: int = 0, mode: str = "r+") -> zarr.Array:
    """Open pyramid level ``level`` of the NGFF image group at ``path`` (for workers).

    ``mode="r+"`` writes into an existing array; ``"r"`` only reads.
    """
    path = str(path)
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as err:
        raise InvalidImageError(f"not an OME-Zarr image group: {err}", path=path) from err
    meta = _Multiscale(group.attrs.asdict(), path=path)
    if not 0 <= level < len(meta.paths):
        raise InvalidRequestError(
            f"level {level} does not exist; the image has {len(meta.paths)}", path=path
        )
    try:
        return zarr.open_array(store=f"{path}/{meta.paths[level]}", mode=mode)
    except Exception as err:
        raise InvalidImageError(f"cannot open level {level}: {err}", path=path) from err


def level_count(path: str | Path) -> int:
    """How many pyramid levels the NGFF image group at ``path`` names."""
    group = zarr.open_group(str(path), mode="r")
    return len(_Multiscale(group.attrs.asdict(), path=str(path)).paths)


def read_axes(path: str | Path) -> tuple[str, dict[str, float], list[str]]:
    """Axes, pixel sizes (µm) and channel names of the NGFF image group at ``path``."""
    group = zarr.open_group(str(path), mode="r")
    meta = _Multiscale(group.attrs.asdict(), path=str(path))
    return meta.axes, meta.pixel_sizes, meta.channel_names
