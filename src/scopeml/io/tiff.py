"""TIFF reader (OME-TIFF, ImageJ, plain) on tifffile: lazy, tile by tile through ``aszarr``.

Metadata comes from OME-XML (``PhysicalSizeX/Y/Z`` with units, channel names), else from ImageJ
metadata (``unit``, ``spacing``) and resolution tags. Series are scenes: equally shaped series
become ``S``, otherwise one is chosen with ``scene=``. Level 0 of a pyramid is read.

tifffile names RGB samples ``S``; they become channels. A generic page sequence (``I``/``Q``:
a plain multi-page TIFF, whose pages could be planes or time points) becomes ``Z``, or ``T`` if
the file already has ``Z``, as bioio/aicsimageio and napari read it too; that is warned about
once, and ``axes=`` ("TYX") says what the file's axes are instead. ImageJ hyperstacks
(frames/slices/channels) and OME-XML name their axes and are read as they say; an OME-XML
that declares more planes than the file holds is refused. The time step (OME
``TimeIncrement``, ImageJ ``finterval``) becomes the ``T`` entry of the pixel sizes (seconds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import warnings
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from scopeml.errors import InvalidImageError, ScopeMLError, find_stack_level
from scopeml.io._units import checked_size, ordered_sizes
from scopeml.io._view import AxesView, select_scene
from scopeml.io.axes import check_axes_text
from scopeml.io.confine import Confinement
from scopeml.io.image import Image
from scopeml.io.limits import ImageLimits, default_limits
from scopeml.io.tiff_checks import (
    check_declared_sizes,
    check_micromanager_files,
    check_ome_xml,
    check_segments,
    file_size,
    ome_not_used,
    opened_files,
    pin_files,
    truncated,
)

_SEQUENCE_AXES = "IQ"


def map_axes(tiff_axes: str, shape: tuple[int, ...], *, path: str = "") -> str:
    """Map tifffile axis letters onto ``STCZYX`` letters (``_`` for meaningless size-1 axes).

    Examples
    --------
    >>> map_axes("YXS", (5, 6, 3)), map_axes("IYX", (4, 5, 6)), map_axes("CYXS", (1, 5, 6, 3))
    ('YXC', 'ZYX', '_YXC')
    >>> map_axes("QQYX", (20, 5, 6, 7))  # 20 time points of 5 planes, as ImageJ orders them
    'TZYX'
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
    # innermost first: two unknown page axes read as T then Z (ImageJ's order, TZYX), not ZT
    for i, (axis, size) in reversed(list(enumerate(zip(tiff_axes, shape, strict=True)))):
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


def user_axes(axes: str, tiff_axes: str, shape: tuple[int, ...], *, path: str = "") -> str:
    """The ``STCZYX`` letters of a series whose axes the user named (``axes``, one letter per
    axis of the file, in the file's order), instead of what tifffile guessed. A file of one
    plane told more axes than it has (``TYX`` for a batch's time-lapses) is read as it is: a
    snapshot among movies is one time point, not an error.

    Examples
    --------
    >>> user_axes("TYX", "QYX", (20, 5, 6)), user_axes("TYX", "YX", (5, 6))
    ('TYX', 'YX')
    >>> user_axes("TZYX", "QYX", (20, 5, 6))
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidImageError: axes 'TZYX' name 4 axes; the file has 3 (20 pages, Y=5, X=6)
    >>> user_axes("CYX", "YXS", (960, 1280, 3))
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidImageError: axes 'CYX' would read the file's Y=960 as C, X=1280 as Y, \
3 samples as X; its pages fix Y and X: name only its other axes (Y=960, X=1280, 3 samples)
    """
    letters = check_axes_text(axes)
    found = _described(tiff_axes, shape)
    one_plane = set(tiff_axes) <= set("YXS") and letters.endswith("YX")
    if one_plane and len(letters) > len(shape):  # the axes named beyond Y, X are of size 1
        return map_axes(tiff_axes, shape, path=path)
    if len(letters) != len(shape):
        raise InvalidImageError(
            f"axes {axes!r} name {len(letters)} axes; the file has {len(shape)} ({found})",
            path=path,
        )
    # the file's rows and columns are what its pages are: naming them otherwise reads the
    # image sideways (an RGB TIFF told CYX: 960 channels of 1280 × 3 pixels); samples (S)
    # may be named (3 or 4 plain pages are taken for planar samples: time points, say)
    axes_sizes = list(zip(letters, tiff_axes, shape, strict=True))
    moved = [f"{_described(own, (size,))} as {told}" for told, own, size in axes_sizes
             if (own in "YX" or told in "YX") and own != told]  # fmt: skip
    if moved:
        raise InvalidImageError(
            f"axes {axes!r} would read the file's {', '.join(moved)}; its pages fix Y and X: "
            f"name only its other axes ({found})",
            path=path,
        )
    renamed = [f"{own}={size} as {told}" for told, own, size in axes_sizes
               if own in "TZC" and told != own and size > 1]  # fmt: skip
    if renamed:
        _warn_once(
            f"{path}: axes {axes!r} read the file's {', '.join(renamed)}, though its metadata "
            "names them (channel names and time steps go with the metadata's axes)"
        )
    return letters


#: What each letter a guessed axis may be read as is, in words.
_KINDS = {"T": "time points", "Z": "planes", "C": "channels"}


def guessed_axes(tiff_axes: str, shape: tuple[int, ...], mapped: str) -> list[Any]:
    """The axes the file leaves to a guess: pages of unknown kind (tifffile's ``I``/``Q``)
    read as Z (or T), and 3–4 pages tifffile stored as the colour samples of one pixel (``S``
    before the rows: what ``tifffile.imwrite`` makes of a short stack) read as channels. Each
    as its index, size, the letter it is read as and the other ways to read it,
    ``[(kind, axes text), …]`` (channels only where the file has none yet).

    Examples
    --------
    >>> guessed_axes("QYX", (5, 6, 7), "ZYX")
    [(0, 5, 'Z', [('time points', 'TYX'), ('channels', 'CYX')])]
    >>> guessed_axes("SYX", (4, 6, 7), "CYX"), guessed_axes("YXS", (6, 7, 3), "YXC")
    ([(0, 4, 'C', [('time points', 'TYX'), ('planes', 'ZYX')])], [])
    """
    rows = tiff_axes.index("Y") if "Y" in tiff_axes else len(tiff_axes)
    guessed = []
    for i, (axis, size) in enumerate(zip(tiff_axes, shape, strict=True)):
        if size > 1 and (axis in _SEQUENCE_AXES or (axis == "S" and i < rows)):
            read = mapped[i]
            others = [a for a in "TZC" if a != read and (a != "C" or "C" not in mapped)]
            guessed.append((i, size, read, [(_KINDS[a], _hint(mapped, i, a)) for a in others]))
    return guessed


def _sequence_note(tiff_axes: str, shape: tuple[int, ...], mapped: str, path: str) -> None:
    """Warn once that an axis was read by guess (:func:`guessed_axes`), and how to read it
    as the other kinds."""
    for i, size, read, ways in guessed_axes(tiff_axes, shape, mapped):
        _warn_guessed(path, tiff_axes[i], size, read, ways)


def _warn_guessed(path: str, axis: str, size: int, read: str, ways: list[Any]) -> None:
    what = "pages of unknown kind" if axis in _SEQUENCE_AXES else "pages stored as colours"
    first = ways[0][1]
    _warn_once(
        f"{path}: {size} {what} read as {read} ({_KINDS[read]}); if they are "
        f"{' or '.join(k for k, _ in ways)}, pass {' or '.join(f'--axes {h}' for _, h in ways)} "
        f"(Python: sm.open_image(path, axes='{first}')"
        + "".join(f" or axes='{h}'" for _, h in ways[1:])
        + f", or segment/analyze(path, ..., axes='{first}'))"
    )


def _described(tiff_axes: str, shape: tuple[int, ...]) -> str:
    """The file's axes for a message, in letters the user may type, else in words (tifffile's
    ``Q``, ``I`` and ``S`` are none of T, C, Z, Y, X).

    >>> _described("QYX", (20, 5, 6)), _described("YXS", (5, 6, 3))
    ('20 pages, Y=5, X=6', 'Y=5, X=6, 3 samples')
    """
    words = {**dict.fromkeys(_SEQUENCE_AXES, "pages"), "S": "samples"}
    return ", ".join(
        f"{n} {words[a]}" if a in words else f"{a}={n}"
        for a, n in zip(tiff_axes, shape, strict=True)
    )


def _hint(mapped: str, index: int, letter: str) -> str:
    """The axes text reading axis ``index`` as ``letter`` (size-1 axes get free letters); an
    axis read as ``letter`` already takes the letter given up, so no letter comes twice.

    Examples
    --------
    >>> _hint("ZTYX", 0, "T"), _hint("ZTYX", 1, "Z"), _hint("ZTYX", 0, "C")
    ('TZYX', 'TZYX', 'CTYX')
    """
    free = iter(a for a in "CZT" if a not in mapped and a != letter)

    def read_as(j: int, m: str) -> str:
        if j == index:
            return letter
        if m == letter:
            return mapped[index]
        return next(free, "?") if m == "_" else m

    return "".join(read_as(j, m) for j, m in enumerate(mapped))


_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


def _warn_once(message: str) -> None:
    """One warning per message per process (engine workers reopen the same file), counted
    once shown: one a caller silenced (a server's pre-check opening the file under
    ``"ignore"``) is still given when the file is read for the run. Locked: two threads in
    ``catch_warnings`` at once can leave the process's warnings recorded into a lost list."""
    with _WARNED_LOCK:
        if message in _WARNED:
            return
        with warnings.catch_warnings(record=True) as shown:  # the caller's filters, recorded
            warnings.warn(message, UserWarning, stacklevel=find_stack_level())
        if shown:
            _WARNED.add(message)
            warnings.warn(message, UserWarning, stacklevel=find_stack_level())


@contextlib.contextmanager
def notes_given_again(path: str | PathLike[str]) -> Iterator[set[str]]:
    """The notes on ``path`` this process gave already (pages read as Z…), withdrawn for the
    block so that reading the file again gives them again (an analysis keeps them in the
    image's record; a batch's check of its first image gave them first), and put back after;
    yields them, for the caller not to give them twice."""
    prefix = f"{os.fspath(path)}: "
    with _WARNED_LOCK:
        given = {note for note in _WARNED if note.startswith(prefix)}
        _WARNED.difference_update(given)
    try:
        yield given
    finally:
        with _WARNED_LOCK:
            _WARNED.update(given)


def _ome_metadata(xml: str, index: int, path: str = "") -> tuple[dict[str, float], list[str]]:
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
    time = checked_size(
        pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit", "s"), "T", path=path,
        what="time increment",
    )  # fmt: skip
    if time is not None:
        sizes["T"] = time
    for axis in "ZYX":
        size = checked_size(
            pixels.get(f"PhysicalSize{axis}"),
            pixels.get(f"PhysicalSize{axis}Unit", "µm"),
            axis,
            path=path,
        )
        if size is not None:
            sizes[axis] = size
    names = [channel.get("Name") or "" for channel in pixels.findall(q("Channel"))]
    return sizes, names


def ome_label_classes(xml: str, index: int) -> list[str] | None:
    """The class names of label values 1, 2, … that OME ``Image`` number ``index`` records in
    scopeml's labels annotation (:data:`~scopeml.io.ometiff.LABELS_NAMESPACE`: segment's
    OME-TIFF copies of its labels and instances, ``[]`` for object ids); ``None``: it records
    none, it is not marked as labels.

    >>> from scopeml.io.ometiff import write_ome_tiff
    >>> import tempfile
    >>> file = tempfile.mkdtemp() + "/l.ome.tif"
    >>> write_ome_tiff(file, np.ones((16, 16), np.uint8), axes="YX", labels=["bg", "cell"])
    >>> ome_label_classes(tifffile.TiffFile(file).ome_metadata, 0)
    ['bg', 'cell']
    """
    from scopeml.io.ometiff import LABELS_NAMESPACE
    from scopeml.io.omezarr import by_value

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)
    images = root.findall(q("Image"))
    if index >= len(images):
        return None
    refs = {ref.get("ID") for ref in images[index].iter(q("AnnotationRef"))}
    for note in root.iter(q("MapAnnotation")):
        if note.get("ID") in refs and note.get("Namespace") == LABELS_NAMESPACE:
            return by_value({m.get("K"): m.text or "" for m in note.iter(q("M"))})
    return None


def _imagej_metadata(tf: tifffile.TiffFile, path: str = "") -> dict[str, float]:
    """Pixel sizes (µm) from ImageJ metadata (unit, spacing) and the resolution tags, and
    the time step (``finterval``, seconds unless ``tunit`` says otherwise)."""
    page = tf.pages.first
    sizes: dict[str, float] = {}
    meta = tf.imagej_metadata or {}
    if meta.get("finterval") is not None:
        unit = str(meta.get("tunit") or "s").replace("\\u00B5", "µ")
        time = checked_size(meta["finterval"], unit, "T", path=path, what="frame interval")
        if time is not None:
            sizes["T"] = time
    try:
        x_res, y_res = page.get_resolution()
    except Exception:
        return sizes
    if meta:
        unit = str(meta.get("unit", "")).replace("\\u00B5", "µ")
    else:
        unit = {3: "cm", 4: "mm", 5: "µm"}.get(int(page.resolutionunit), "")
    if unit:
        z = checked_size(meta.get("spacing"), unit, "Z", path=path)
        if z is not None:
            sizes["Z"] = z
        for axis, res in (("Y", y_res), ("X", x_res)):
            if res and res > 0:
                size = checked_size(1.0 / res, unit, axis, path=path)
                if size is not None:
                    sizes[axis] = size
    return ordered_sizes(sizes)


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


def read_tiff(
    path: str | Path,
    *,
    scene: int | None = None,
    level: int = 0,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
    limits: ImageLimits | None = None,
    axes: str | None = None,
) -> Image:
    """Open a TIFF (OME, ImageJ or plain) as a lazy :class:`Image`.

    ``axes`` names the file's axes, one letter of ``TCZYX`` per axis of its series in the
    file's order (``"TYX"`` for a plain multi-page time-lapse, which is otherwise read as Z).

    A file whose structure tifffile finds corrupt (it logs an error), whose pixel data runs
    past the end of the file, or whose declared sizes the data in it cannot back (see
    :mod:`scopeml.io.limits`) is rejected when opened. With ``allowed_roots``, the file, every
    companion its OME-XML names and every file of a Micro-Manager dataset must resolve below
    one of them, checked before tifffile opens them; the files the series read from are then
    checked again and held open (:mod:`scopeml.io.tiff_checks`).
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
            check_ome_xml(ome_xml, tf, path, confinement, limits)
        if confinement is not None:
            check_micromanager_files(tf, path, confinement)
        series = list(tf.series)
        opened = opened_files(tf, series)
        if confinement is not None:
            pin_files(opened, confinement, path)
        files = [tif.filehandle.path for tif in opened]
        if errors.messages:
            raise InvalidImageError(_corrupt(errors.messages[0], path), path=path)
        check_segments(tf, path)
        check_declared_sizes(series, files, path, limits)
        if ome_xml:
            _check_missing_planes(series, path)
            if (unused := ome_not_used(ome_xml, series)) is not None:
                _warn_once(f"{path}: {unused}")
        image = _open_series(tf, series, ome_xml, path, scene, level, axes)
        # an image dropped unclosed (a napari layer removed, a view given away) closes its
        # files once nothing reads them, quietly (not Python's "unclosed file" warning)
        weakref.finalize(tf, _close_files, [tif.filehandle for tif in opened])
        return image
    except ScopeMLError:
        if tf is not None:
            tf.close()
        raise
    except Exception as err:  # tifffile raises TiffFileError, ValueError, struct.error, …
        if tf is not None:
            tf.close()
        raise InvalidImageError(_unreadable(err, path), path=path) from err
    finally:
        logger.removeHandler(errors)


def _close_files(handles: list[Any]) -> None:
    for handle in handles:
        handle.close()


def _corrupt(message: str, path: str) -> str:
    """tifffile's complaint about a broken tag or page, in our words: an offset past the end
    of the file says the file was cut short; any other with the file's size."""
    found = re.search(r"invalid (value|page) offset (\d+)", message)
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    if found and size and int(found.group(2)) >= size:
        what = "a tag points at" if found.group(1) == "value" else "a page starts at"
        return truncated(size, what, int(found.group(2)))
    reason = re.sub(r"^<[^>]*>\s*(raised\s*)?", "", message)
    reason = re.sub(r"<tifffile\.(\w+) (\d+) @\d+>", r"\1 \2", reason)
    reason = re.sub(r"^\w+Error\('(.*)'\)$", r"\1", reason)  # TiffFileError('…')
    if "shape does not match page shape" in reason:  # tifffile's shape JSON against a tag
        reason = "the size its description records differs from its pages' (an edited header?)"
    return f"truncated or corrupt TIFF structure (file is {file_size(size)}): {reason[:200]}"


def _unreadable(err: Exception, path: str) -> str:
    """Why tifffile could not open ``path``: a broken structure is said to be so with the
    file's size (a cut file is the usual cause), as an empty file is."""
    size = os.path.getsize(path) if os.path.isfile(path) else None
    if size == 0:
        return "empty file (0 bytes), not a TIFF"
    if size is not None and size < 8 and str(err).startswith("unpack requires"):
        return f"truncated TIFF header (file is {size} bytes; a TIFF header has 8)"
    if size is not None and re.search(r"corrupt|invalid|offset|truncat|suspicious", str(err), re.I):
        return f"truncated or corrupt TIFF (file is {file_size(size)}): {err}"
    found = re.fullmatch(r"self\.(\w+)=(.*)", str(err))  # tifffile's assertion on a tag
    if found:  # self.rowsperstrip=0 < 1
        return f"not a readable TIFF file: its {found[1]} tag is out of range ({found[2]})"
    return f"not a readable TIFF file: {str(err) or f'{type(err).__name__} inside tifffile'}"


def _check_missing_planes(series: list[Any], path: str) -> None:
    """An OME series whose XML declares planes the file(s) do not hold: tifffile fills them
    with zeros (and logs a warning); a run over them would be mostly made-up pixels."""
    for s in series:
        pages = getattr(s, "_pages", None)
        if pages is None:
            continue
        missing = sum(page is None for page in pages)
        if missing:
            raise InvalidImageError(
                f"OME-XML declares {len(pages)} planes, the file holds {len(pages) - missing}",
                path=path,
            )


def _open_series(
    tf: tifffile.TiffFile,
    series: list[Any],
    ome_xml: str | None,
    path: str,
    scene: int | None,
    level: int,
    user: str | None = None,
) -> Image:
    views = []
    for index, s in enumerate(series):
        if not 0 <= level < len(s.levels):
            raise InvalidImageError(
                f"level {level} does not exist; series {index} has {len(s.levels)}", path=path
            )
        if user is not None:
            axes = user_axes(user, s.axes, tuple(s.shape), path=path)
        else:
            axes = map_axes(s.axes, tuple(s.shape), path=path)
            if index == (scene or 0) and not ome_xml:  # OME-XML names its axes: no guess
                _sequence_note(s.axes, tuple(s.shape), axes, path)
        views.append(AxesView(_Series(tf, s, index, level, path), axes, path=path))
    opened = [view.array for view in views]
    if not views:
        raise InvalidImageError(_no_images(path), path=path)
    given = [str(s.name or "") for s in series]  # OME Image names (positions, wells)
    named = ome_xml and any(name and name != f"Image{i}" for i, name in enumerate(given))
    scene_names = tuple(name or str(i) for i, name in enumerate(given)) if named else ()
    data = select_scene(views, scene, path=path, names=scene_names)
    for index in range(len(opened)) if scene is None else [scene]:  # those read, opened now:
        _ = opened[index].array  # a file tifffile cannot read is said so on opening
    if ome_xml:
        pixel_sizes, names = _ome_metadata(ome_xml, scene or 0, path)
    else:
        pixel_sizes, names = _imagej_metadata(tf, path), []
    if level:  # a level's pixels are larger by the ratio of the level sizes
        base = series[scene or 0].shape
        shrunk = series[scene or 0].levels[level].shape
        ratios = dict(zip(series[scene or 0].axes, np.divide(base, shrunk), strict=True))
        pixel_sizes = {a: v * float(ratios.get(a, 1.0)) for a, v in pixel_sizes.items()}
    if data.shape[1] == 1:  # one time point has no time step (ImageJ writes finterval anyway)
        pixel_sizes.pop("T", None)
    names = _channel_names(names, data.shape[2])
    rgb = "S" in series[scene or 0].axes and data.shape[2] == 3
    if rgb and not names:
        names = ["R", "G", "B"]
    image = Image(data, pixel_sizes=pixel_sizes, channel_names=names, path=path,
                  close=lambda: _close(tf, opened))  # fmt: skip
    image.scene_names = scene_names
    return image


class _Series:
    """A series' pixels, opened on their first read (mapped where they lie in one piece, else
    through ``aszarr``): a file of hundreds of positions held a descriptor for each (every map
    holds one) and ran out of them, though one position was read."""

    def __init__(self, tf: tifffile.TiffFile, series: Any, index: int, level: int, path: str):
        self._tf, self._series, self._index, self._level = tf, series.levels[level], index, level
        self._path = path
        self.shape = tuple(self._series.shape)
        self.dtype = np.dtype(self._series.dtype).newbyteorder("=")  # as read: native
        self._array: Any = None
        self._closed = False

    @property
    def array(self) -> Any:
        if self._closed:  # its file handle is gone: tifffile said nothing (an empty reason)
            raise InvalidImageError("read after the image was closed", path=self._path)
        if self._array is None:
            self._array = _memmapped(self._tf, self._series) or zarr.open_array(
                self._tf.aszarr(series=self._index, level=self._level), mode="r"
            )
        return self._array

    @property
    def chunks(self) -> Any:
        return getattr(self.array, "chunks", None)

    def release(self) -> None:
        """Let go of the map (and its descriptor) now, not when collected."""
        self._array, self._closed = None, True

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key])


def _close(tf: tifffile.TiffFile, series: list[_Series]) -> None:
    for one in series:
        one.release()
    tf.close()


class _Mapped:
    """A memory-mapped series whose reads are copies: writable arrays, as ``aszarr``'s were,
    none of them keeping the file mapped once the image is closed."""

    def __init__(self, mapped: np.memmap) -> None:
        self._mapped = mapped
        self.shape, self.dtype = mapped.shape, mapped.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.array(self._mapped[key])


def _memmapped(tf: tifffile.TiffFile, series: Any) -> _Mapped | None:
    """An uncompressed series stored in one piece (most plain and ImageJ TIFFs: one strip),
    memory-mapped from the file already open, so a region read touches its rows only; through
    ``aszarr`` every read decoded the whole strip (a 600² region of a 16k² file took 275 ms,
    4 ms from a tiled one). ``None`` for any other layout, or bytes not in this machine's
    order."""
    dtype = getattr(series, "dtype", None)
    if series.dataoffset is None or dtype is None or dtype.kind not in "biuf":
        return None
    stored = np.dtype(tf.byteorder + dtype.char)
    if not stored.isnative:
        return None
    try:
        handle = series.pages[0].parent.filehandle  # the file its pages are in, held open
        return _Mapped(np.memmap(handle, stored, "r", series.dataoffset, tuple(series.shape)))
    except (AttributeError, TypeError, ValueError, OSError):  # not mappable after all
        return None


def _no_images(path: str) -> str:
    """Why a TIFF gave no images: cut short before its first directory (a header and nothing
    more, or a first IFD past the end: writers that put it last lose it first), or none."""
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    if size <= 16:
        return f"truncated TIFF: a header and no image (file is {size:,} bytes)"
    with open(path, "rb") as handle:
        head = handle.read(16)
    order = "<" if head[:2] == b"II" else ">"
    big = int.from_bytes(head[2:4], "little" if order == "<" else "big") == 43
    offset = int.from_bytes(head[8:16] if big else head[4:8], "little" if order == "<" else "big")
    if offset >= size:
        return truncated(size, "its first image directory lies at", offset)
    return "the TIFF holds no images"
