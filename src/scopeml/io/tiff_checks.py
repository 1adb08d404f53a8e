"""What an untrusted TIFF may declare and which files it may make tifffile open.

:func:`~scopeml.io.tiff.read_tiff` runs these checks when it opens a file, before any pixel is
read: declared sizes against the data really in the file(s) and the limits of
:mod:`scopeml.io.limits`; and, with allowed roots, every file tifffile would open or read
from (OME companions, Micro-Manager datasets) against :mod:`scopeml.io.confine`.
"""

from __future__ import annotations

import glob
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from scopeml.errors import InvalidImageError
from scopeml.io.confine import Confinement
from scopeml.io.limits import ImageLimits


def check_segments(tf: tifffile.TiffFile, path: str) -> None:
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
                        truncated(size, "pixel data reaches", offset + count), path=path
                    )


def truncated(size: int, what: str, reach: int) -> str:
    """The message for a TIFF of ``size`` bytes that something (``what``: "pixel data
    reaches", "a tag points at") expects to reach ``reach``: both in MB, or in bytes where
    MB would show both as the same figure (:func:`file_size`).

    Examples
    --------
    >>> truncated(262_272, "pixel data reaches", 524_544)
    'truncated or corrupt TIFF (file is 0.3 MB, pixel data reaches 0.5 MB)'
    >>> truncated(524_534, "pixel data reaches", 524_544)
    'truncated or corrupt TIFF (file is 524,534 bytes, pixel data reaches 524,544 bytes)'
    """
    shown = [file_size(size), file_size(reach)]
    if shown[0] == shown[1]:
        shown = [f"{n:,} bytes" for n in (size, reach)]
    return f"truncated or corrupt TIFF (file is {shown[0]}, {what} {shown[1]})"


def file_size(size: int) -> str:
    """A file's size for a message: MB from 0.1 MB up, else bytes.

    Examples
    --------
    >>> file_size(7_163_920), file_size(200)
    ('7.2 MB', '200 bytes')
    """
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size:,} bytes"


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


def check_ome_xml(
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


def pin_files(opened: list[tifffile.TiffFile], confinement: Confinement, path: str) -> None:
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


def opened_files(tf: tifffile.TiffFile, series: list[Any]) -> list[tifffile.TiffFile]:
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


def check_micromanager_files(tf: tifffile.TiffFile, path: str, confinement: Confinement) -> None:
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


def check_declared_sizes(
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
        for level in s.levels:  # first and last page only: see check_segments
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


def ome_not_used(xml: str, series: Sequence[Any]) -> str | None:
    """What to say where a file's OME-XML describes pixels its pages do not hold (tifffile
    then reads the pages as they are, its ``generic`` series: a file whose XML said 9096²
    pixels, its pages 4096², was read as 4096² without a word); ``None`` where tifffile
    read the file as its OME-XML says.

    >>> xml = '<OME><Image><Pixels SizeX="9096" SizeY="9096"/></Image></OME>'
    >>> class Pages:
    ...     kind, shape = "generic", (512, 512)
    >>> ome_not_used(xml, [Pages()])
    'its OME-XML declares 9096×9096 pixels, its pages hold 512×512: read as the pages say; \
its pixel sizes and channel names may not be its own'
    """
    if any(getattr(s, "kind", "") == "ome" for s in series) or not series:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag == "Pixels" or e.tag.endswith("}Pixels")), None)
    if pixels is None:
        return None
    sizes = {axis: pixels.attrib.get(f"Size{axis}", "?") for axis in "TCZYX"}
    shape = tuple(series[0].shape)
    planes = math.prod(shape[:-2])
    declared = "×".join(sizes[axis] for axis in "YX") + " pixels"
    held = "×".join(map(str, shape[-2:]))
    told = " ".join(f"{axis}={sizes[axis]}" for axis in "TCZ" if sizes[axis] not in ("1", "?"))
    if planes > 1:  # the planes too: where X and Y agree, they are what differs
        declared = f"{told} of {declared}" if told else declared
        held = f"{planes} planes of {held}"
    as_z = f" (the {planes} planes as Z: --axes TYX or CYX says otherwise)" * (planes > 1)
    return (
        f"its OME-XML declares {declared}, its pages hold {held}: read as the pages "
        f"say{as_z}; its pixel sizes and channel names may not be its own"
    )
