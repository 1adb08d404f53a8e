"""TIFF reader (OME-TIFF, ImageJ, plain) on tifffile: lazy, tile by tile through ``aszarr``.

Metadata comes from OME-XML (``PhysicalSizeX/Y/Z`` with units, channel names), else from ImageJ
metadata (``unit``, ``spacing``) and resolution tags. Series are scenes: equally shaped series
become ``S``, otherwise one is chosen with ``scene=``. Level 0 of a pyramid is read.

tifffile names RGB samples ``S``; they become channels. A generic page sequence (``I``/``Q``)
becomes ``Z``, or ``T`` if the file already has ``Z``.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from scopeml.errors import InvalidImageError, ScopeMLError
from scopeml.io._units import to_micrometres
from scopeml.io._view import AxesView, select_scene
from scopeml.io.confine import Confinement
from scopeml.io.image import Image
from scopeml.io.limits import ImageLimits, default_limits

_SEQUENCE_AXES = "IQ"


def map_axes(tiff_axes: str, shape: tuple[int, ...], *, path: str = "") -> str:
    """Map tifffile axis letters onto ``STCZYX`` letters (``_`` for meaningless size-1 axes).

    Examples
    --------
    >>> map_axes("YXS", (5, 6, 3)), map_axes("IYX", (4, 5, 6)), map_axes("CYXS", (1, 5, 6, 3))
    ('YXC', 'ZYX', '_YXC')
    """
    sizes = dict(zip(tiff_axes, shape, strict=True))
    if "Y" not in sizes or "X" not in sizes:
        raise InvalidImageError(f"TIFF series has no Y and X axes (axes {tiff_axes})", path=path)
    if sizes.get("C", 1) > 1 and sizes.get("S", 1) > 1:
        raise InvalidImageError(
            f"TIFF series has both channels ({sizes['C']}) and samples ({sizes['S']}) per pixel; "
            "not supported",
            path=path,
        )
    mapped = []
    for axis, size in zip(tiff_axes, shape, strict=True):
        if axis in "TZYX":
            mapped.append(axis)
        elif (axis in "CS" and size > 1) or (axis == "C" and "S" not in sizes):
            mapped.append("C")
        else:
            mapped.append("_" if size == 1 or axis in _SEQUENCE_AXES else "?")
    for i, (axis, size) in enumerate(zip(tiff_axes, shape, strict=True)):
        if axis in _SEQUENCE_AXES and size > 1:
            free = [a for a in "ZT" if a not in mapped]
            if not free:
                raise InvalidImageError(
                    f"TIFF series axes {tiff_axes} have no free Z or T", path=path
                )
            mapped[i] = free[0]
    if "?" in mapped:
        odd = [f"{a}={n}" for a, n, m in zip(tiff_axes, shape, mapped, strict=True) if m == "?"]
        raise InvalidImageError(
            f"TIFF axes {', '.join(odd)} are not supported (series axes {tiff_axes})", path=path
        )
    return "".join(mapped)


def _ome_metadata(xml: str, index: int) -> tuple[dict[str, float], list[str]]:
    """Pixel sizes (µm) and channel names of OME ``Image`` number ``index``."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}, []
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)
    images = root.findall(q("Image"))
    if index >= len(images) or images[index].find(q("Pixels")) is None:
        return {}, []
    pixels = images[index].find(q("Pixels"))
    sizes = {}
    for axis in "XYZ":
        size = to_micrometres(
            pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "µm")
        )
        if size is not None:
            sizes[axis] = size
    names = [channel.get("Name") or "" for channel in pixels.findall(q("Channel"))]
    return sizes, names


def _imagej_metadata(tf: tifffile.TiffFile) -> dict[str, float]:
    """Pixel sizes (µm) from ImageJ metadata (unit, spacing) and the resolution tags."""
    page = tf.pages.first
    sizes: dict[str, float] = {}
    try:
        x_res, y_res = page.get_resolution()
    except Exception:
        return sizes
    meta = tf.imagej_metadata or {}
    if meta:
        unit = str(meta.get("unit", "")).replace("\\u00B5", "µ")
    else:
        unit = {3: "cm", 4: "mm", 5: "µm"}.get(int(page.resolutionunit), "")
    if unit:
        for axis, res in (("X", x_res), ("Y", y_res)):
            if res and res > 0:
                size = to_micrometres(1.0 / res, unit)
                if size is not None:
                    sizes[axis] = size
        z = to_micrometres(meta.get("spacing"), unit)
        if z is not None:
            sizes["Z"] = z
    return sizes


def _channel_names(names: list[str], n_channels: int) -> list[str]:
    if len(names) == 1 and n_channels == 3:  # one OME channel of 3 samples (RGB)
        names = [f"{names[0] or 'C0'}-{rgb}" for rgb in "RGB"]
    if len(names) != n_channels:
        return []
    return [name or f"C{i}" for i, name in enumerate(names)]


class _ErrorLog(logging.Handler):
    """Collects what tifffile logs at ERROR: it logs, rather than raises, on corrupt tags."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_segments(tf: tifffile.TiffFile, path: str) -> None:
    """The tiles or strips of the first and last page of each series must lie inside the file,
    so a truncated file fails when opened; a page in between fails when its pixels are read.
    (Checking every page would load every IFD of a long time series.)"""
    size = Path(path).stat().st_size
    for series in tf.series:
        n_pages = len(series.pages)
        for index in sorted({0, n_pages - 1}) if n_pages else ():
            page = series.pages[index]
            if page is None:
                continue
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
                if count and offset + count > size:
                    raise InvalidImageError(
                        f"truncated TIFF: pixel data at byte {offset} + {count} lies past the "
                        f"end of the file ({size} bytes)",
                        path=path,
                    )


def read_tiff(
    path: str | Path,
    *,
    scene: int | None = None,
    level: int = 0,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
    limits: ImageLimits | None = None,
) -> Image:
    """Open a TIFF (OME, ImageJ or plain) as a lazy :class:`Image`.

    A file whose structure tifffile finds corrupt (it logs an error), whose pixel data runs
    past the end of the file, or whose declared sizes the data in it cannot back (see
    :mod:`scopeml.io.limits`) is rejected when opened. With ``allowed_roots``, the file and
    every companion file its OME-XML names must resolve below one of them (checked before
    tifffile opens the companions, and again for each file it opened).
    """
    path = str(path)
    confinement = Confinement.of(allowed_roots)
    limits = default_limits() if limits is None else limits
    if confinement is not None:
        confinement.check(path)
    errors = _ErrorLog()
    logger = logging.getLogger("tifffile")
    logger.addHandler(errors)
    tf = None
    try:
        tf = tifffile.TiffFile(path)
        ome_xml = tf.ome_metadata if tf.is_ome else None
        if ome_xml:
            _check_ome_xml(ome_xml, tf, path, confinement, limits)
        if confinement is not None:
            _check_micromanager_files(tf, path, confinement)
        series = list(tf.series)
        opened = _opened_files(tf, series)
        if confinement is not None:
            _pin_files(opened, confinement, path)
        files = [tif.filehandle.path for tif in opened]
        if errors.messages:
            raise InvalidImageError(f"corrupt TIFF structure: {errors.messages[0]}", path=path)
        _check_segments(tf, path)
        _check_declared_sizes(series, files, path, limits)
        return _open_series(tf, series, ome_xml, path, scene, level)
    except ScopeMLError:
        if tf is not None:
            tf.close()
        raise
    except Exception as err:  # tifffile raises TiffFileError, ValueError, struct.error, …
        if tf is not None:
            tf.close()
        raise InvalidImageError(f"not a readable TIFF file: {err}", path=path) from err
    finally:
        logger.removeHandler(errors)


# ---------------------------------------------------------------------------- untrusted sizes

_OME_ITEMSIZE = {
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "float": 4,
    "double": 8,
    "complex": 8,
    "double-complex": 16,
    "bit": 1,
}


def _check_ome_xml(
    xml: str,
    tf: tifffile.TiffFile,
    path: str,
    confinement: Confinement | None,
    limits: ImageLimits,
) -> None:
    """Check what an OME-XML declares before tifffile acts on it.

    tifffile opens every companion file the XML names (``UUID FileName``, joined to the
    folder of ``path``) and makes a list entry per declared plane, so both are checked first:
    companions against the allowed roots, declared pixels against the limits and the bytes
    of the files that could hold them.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return  # tifffile cannot parse it either, and falls back to the TIFF pages
    folder = tf.filehandle.dirname
    file_bytes = tf.filehandle.size
    named: set[str] = set()
    for element in root.iter():
        name = element.attrib.get("FileName") if element.tag.endswith("UUID") else None
        if name is None or name in named:
            continue
        named.add(name)
        companion = os.path.join(folder, name)
        if confinement is not None:
            confinement.check(companion, named_by=path)
        if os.path.isfile(companion):
            file_bytes += os.path.getsize(companion)
    declared_bytes = 0
    for pixels in root.iter():
        if not pixels.tag.endswith("}Pixels") and pixels.tag != "Pixels":
            continue
        try:
            shape = [int(pixels.attrib.get(f"Size{axis}", 1)) for axis in "TCZYX"]
        except ValueError as err:
            raise InvalidImageError(
                f"OME-XML Pixels sizes are not integers: {err}", path=path
            ) from err
        limits.check_shape(shape, path=path)
        itemsize = _OME_ITEMSIZE.get(pixels.attrib.get("Type", ""), 1)
        declared_bytes += math.prod(shape) * itemsize
        planes = math.prod(shape[:3])
        if planes > file_bytes:  # each plane needs its own IFD somewhere in the files
            raise InvalidImageError(
                f"the OME-XML declares {planes} planes; the file(s) hold {file_bytes} bytes",
                path=path,
            )
        _check_tiffdata(pixels, planes, path)
    _check_ratio(declared_bytes, file_bytes, path, limits)


def _check_tiffdata(pixels: ET.Element, planes: int, path: str) -> None:
    """A ``TiffData`` may not claim more planes than its image has: tifffile makes a list
    entry for each claimed plane."""
    for tiffdata in pixels:
        if not tiffdata.tag.endswith("TiffData"):
            continue
        for name in ("PlaneCount", "NumPlanes", "IFD"):
            text = tiffdata.get(name, "0")
            try:
                value = int(text)
            except ValueError as err:
                raise InvalidImageError(
                    f"OME-XML TiffData {name}={text!r} is not an integer", path=path
                ) from err
            if value < 0 or (name != "IFD" and value > planes):
                raise InvalidImageError(
                    f"an OME-XML TiffData declares {name}={value}; its image has {planes} planes",
                    path=path,
                )


MAX_PINNED_FILES = 256


def _pin_files(opened: list[tifffile.TiffFile], confinement: Confinement, path: str) -> None:
    """Check every file tifffile opened and keep the companions open, so that reads later
    (in engine threads) use the files checked now rather than reopening their paths.

    tifffile closes companion files after listing their pages and reopens them by path on
    each read; an open handle is used as it is. Past ``MAX_PINNED_FILES`` companions (file
    descriptors are finite) they are reopened by the checked real path.
    """
    for index, tif in enumerate(opened):
        handle = tif.filehandle
        confinement.check(handle.path, named_by=path)
        if handle.closed and index < MAX_PINNED_FILES:
            handle.open()


def _opened_files(tf: tifffile.TiffFile, series: list[Any]) -> list[tifffile.TiffFile]:
    """Every file the series read pixels from: ``tf``, OME companions, and any other file a
    format's series refer to (Micro-Manager stacks), found from the pages themselves."""
    opened = {id(tf): tf}
    for tif in (getattr(tf, "_files", None) or {}).values():
        if tif is not None:
            opened.setdefault(id(tif), tif)
    for s in series:
        for level in s.levels:
            for page in getattr(level, "_pages", None) or ():
                parent = getattr(page, "parent", None)
                if parent is not None:
                    opened.setdefault(id(parent), parent)
    return list(opened.values())


def _check_micromanager_files(tf: tifffile.TiffFile, path: str, confinement: Confinement) -> None:
    """Check the files of a Micro-Manager dataset before tifffile opens them."""
    files = micromanager_files(
        tf.filehandle.dirname,
        ndtiff=bool(getattr(tf, "is_ndtiff", False)),
        mmstack=bool(getattr(tf, "is_mmstack", False)),
    )
    for file in files:
        confinement.check(file, named_by=path)


def micromanager_files(folder: str, *, ndtiff: bool, mmstack: bool) -> list[str]:
    """Files a Micro-Manager dataset in ``folder`` spans, which tifffile finds by itself:
    NDTiff names them in ``NDTiff.index`` (read here too), MMStack globs ``*_MMStack*.tif``.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, "a_MMStack_1.tif"), "wb").close()
    >>> [os.path.basename(f) for f in micromanager_files(folder, ndtiff=False, mmstack=True)]
    ['a_MMStack_1.tif']
    """
    files: list[str] = []
    if ndtiff:
        index = os.path.join(folder, "NDTiff.index")
        if os.path.exists(index):
            files.append(index)
            names = {entry[1] for entry in tifffile.read_ndtiff_index(index)}
            files += [os.path.join(folder, name) for name in sorted(names)]
    if mmstack:
        files += sorted(glob.glob(os.path.join(glob.escape(folder), "*_MMStack*.tif")))
    return files


def _check_ratio(declared: int, file_bytes: int, path: str, limits: ImageLimits) -> None:
    if declared > limits.max_compression_ratio * max(file_bytes, 1):
        raise InvalidImageError(
            f"the image declares {declared} bytes of pixels in {file_bytes} bytes of file, "
            f"more than {limits.max_compression_ratio:g} times as many; the file lies about "
            "its size",
            path=path,
        )


def _check_declared_sizes(
    series: list[Any], files: list[str], path: str, limits: ImageLimits
) -> None:
    """Refuse sizes the data in the file(s) cannot back, before any pixel is read.

    Every series' decoded bytes over the files' bytes must stay under the compression-ratio
    limit; the first and last page of each level must hold every tile or strip it declares,
    each small enough to decode (unless uncompressed and really in the file), and an
    uncompressed page must hold all its bytes.
    """
    file_bytes = sum(os.path.getsize(file) for file in set(files) if os.path.isfile(file))
    declared = 0
    for s in series:
        limits.check_shape(tuple(s.shape), path=path)
        declared += math.prod(s.shape) * np.dtype(s.dtype).itemsize
        for level in s.levels:  # first and last page only: see _check_segments
            n_pages = len(level.pages)
            for index in sorted({0, n_pages - 1}) if n_pages else ():
                if level.pages[index] is not None:
                    _check_page(level.pages[index], path, limits)
    _check_ratio(declared, file_bytes, path, limits)


def _check_page(page: Any, path: str, limits: ImageLimits) -> None:
    keyframe = page.keyframe
    what = "tile" if keyframe.is_tiled else "strip"
    expected = math.prod(keyframe.chunked)
    present = len(page.dataoffsets)
    if present < expected:
        raise InvalidImageError(
            f"a page declares {expected} {what}s of {'×'.join(map(str, keyframe.chunks))} "
            f"pixels but the file holds {present}",
            path=path,
        )
    itemsize = np.dtype(keyframe.dtype).itemsize
    stored = sum(int(n) for n in page.databytecounts)
    raw = keyframe.compression == 1 and keyframe.bitspersample == 8 * itemsize
    if raw and stored < keyframe.nbytes:
        raise InvalidImageError(
            f"an uncompressed page declares {keyframe.nbytes} bytes of pixels but its "
            f"{what}s hold {stored}",
            path=path,
        )
    if not raw:  # an uncompressed strip that is really in the file is read as it is
        limits.check_chunk(keyframe.chunks, itemsize, what=f"a TIFF {what}", path=path)


def _open_series(
    tf: tifffile.TiffFile,
    series: list[Any],
    ome_xml: str | None,
    path: str,
    scene: int | None,
    level: int,
) -> Image:
    views = []
    for index, s in enumerate(series):
        if not 0 <= level < len(s.levels):
            raise InvalidImageError(
                f"level {level} does not exist; series {index} has {len(s.levels)}", path=path
            )
        axes = map_axes(s.axes, tuple(s.shape), path=path)
        array: Any = zarr.open_array(tf.aszarr(series=index, level=level), mode="r")
        views.append(AxesView(array, axes, path=path))
    if not views:
        raise InvalidImageError("the TIFF holds no images", path=path)
    data = select_scene(views, scene, path=path)
    if ome_xml:
        pixel_sizes, names = _ome_metadata(ome_xml, scene or 0)
    else:
        pixel_sizes, names = _imagej_metadata(tf), []
    if level:  # a level's pixels are larger by the ratio of the level sizes
        base = series[scene or 0].shape
        shrunk = series[scene or 0].levels[level].shape
        ratios = dict(zip(series[scene or 0].axes, np.divide(base, shrunk), strict=True))
        pixel_sizes = {a: v * float(ratios.get(a, 1.0)) for a, v in pixel_sizes.items()}
    names = _channel_names(names, data.shape[2])
    rgb = "S" in series[scene or 0].axes and data.shape[2] == 3
    if rgb and not names:
        names = ["R", "G", "B"]
    return Image(data, pixel_sizes=pixel_sizes, channel_names=names, path=path, close=tf.close)
