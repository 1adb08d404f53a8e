"""CZI reader (ZEISS) on pylibCZIrw: region reads of huge mosaics without loading them.

libCZI addresses pixels in absolute mosaic coordinates: a scene's bounding rectangle may start at
any x, y, negative included. Each scene is exposed with its own origin at pixel (0, 0), so the
engine sees plain array indices; this module adds the offset back on every read.

Scenes of equal size become the ``S`` axis; a file whose scenes differ in size must be opened
one scene at a time (``scene=``), since padding them to a common box would invent pixels.
``scene=k`` is the k-th scene in the file's order (the CZI ``S`` index when scenes are numbered
from 0 without gaps), named as ZEN names it (the scene's ``Name``, else its well's) in
``--scene`` and in messages. Reads through one reader are serialised by a lock: libCZI's file
streams on Linux have not always been safe for concurrent reads (zeiss-microscopy/libCZI#39).
Other CZI dimensions (H, I, R, V, B) are read at index 0, with a warning when they have more.
Pixel sizes come from ``Scaling`` (metres), the time step from the ``T`` dimension's positions
(seconds), as ZEN writes them and libCZI reads them.
"""

from __future__ import annotations

import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError
from scopeml.io._units import checked_size, ordered_sizes
from scopeml.io._view import AxesView, select_scene
from scopeml.io.confine import Confinement
from scopeml.io.image import Image

log = logging.getLogger(__name__)

# libCZI pixel type -> (numpy dtype, samples per pixel)
PIXEL_TYPES: dict[str, tuple[str, int]] = {
    "Gray8": ("uint8", 1),
    "Gray16": ("uint16", 1),
    "Gray32Float": ("float32", 1),
    "Bgr24": ("uint8", 3),
    "Bgr48": ("uint16", 3),
    "Bgr96Float": ("float32", 3),
}
_IGNORED_DIMS = "HIRVB"


class CziScene:
    """One scene of a CZI file as a ``T C Z Y X`` array; slicing reads only that region.

    Channels of an RGB pixel type are split into three (R, G, B), so ``C`` counts samples.
    """

    def __init__(
        self,
        reader: Any,
        lock: threading.Lock,
        *,
        rect: tuple[int, int, int, int],
        scene: int | None,
        sizes: dict[str, int],
        pixel_type: str,
        path: str,
    ) -> None:
        self.path = path
        self._reader = reader
        self._lock = lock
        self.origin = (rect[0], rect[1])  # absolute x, y of pixel (0, 0)
        self.scene = scene
        self.pixel_type = pixel_type
        dtype, self.samples = PIXEL_TYPES[pixel_type]
        self.dtype = np.dtype(dtype)
        self.shape = (sizes["T"], sizes["C"] * self.samples, sizes["Z"], rect[3], rect[2])

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        t, c, z, y, x = key
        shape = tuple(s.stop - s.start for s in (t, c, z, y, x))
        out = np.empty(shape, self.dtype)
        if out.size == 0:
            return out
        roi = (
            self.origin[0] + x.start,
            self.origin[1] + y.start,
            x.stop - x.start,
            y.stop - y.start,
        )
        for it, ti in enumerate(range(t.start, t.stop)):
            for iz, zi in enumerate(range(z.start, z.stop)):
                plane_channel = None
                for ic, ci in enumerate(range(c.start, c.stop)):
                    channel, sample = divmod(ci, self.samples)
                    if channel != plane_channel:
                        plane = self._read_plane(roi, {"T": ti, "C": channel, "Z": zi})
                        plane_channel = channel
                    # libCZI stores colour as B, G, R; scopeml channels are R, G, B
                    out[it, ic, iz] = plane[..., self.samples - 1 - sample]
        return out

    def _read_plane(self, roi: tuple[int, int, int, int], plane: dict[str, int]) -> np.ndarray:
        try:
            with self._lock:
                return self._reader.read(
                    roi=roi, plane=plane, scene=self.scene, pixel_type=self.pixel_type
                )
        except MemoryError as err:
            # the region itself is small; libCZI allocates what a subblock header claims
            raise InvalidImageError(
                f"libCZI ran out of memory decoding a {roi[2]}×{roi[3]} region ({err}); "
                "a subblock is probably corrupt",
                path=self.path,
            ) from err


def _is_zero(value: str) -> bool:
    try:
        return float(value) == 0
    except ValueError:
        return False


def _metadata(
    raw_xml: str, path: str = "", z_planes: int | None = None
) -> tuple[dict[str, float], list[str]]:
    """Pixel sizes (µm, listed Z Y X; the time step ``T`` in seconds, see :func:`_time_step`)
    and channel names from the CZI metadata XML; a size given that is no size (≤ 0, not
    finite) is warned about, then unknown, except a Z step of 0 in a one-plane image (libCZI
    writers put it there; a single plane has no Z step to lose)."""
    try:
        root = ET.fromstring(raw_xml)
    except ET.ParseError:
        return {}, []
    sizes = {}
    step = _time_step(root, path)
    if step is not None:
        sizes["T"] = step
    for distance in root.iterfind("./Metadata/Scaling/Items/Distance"):
        axis, value = distance.get("Id"), distance.findtext("Value")
        if axis not in ("X", "Y", "Z") or not value:
            continue
        if axis == "Z" and z_planes == 1 and _is_zero(value):
            continue
        size = checked_size(value, "m", axis, path=path)  # CZI stores metres
        if size is not None:
            sizes[axis] = size
    sizes = ordered_sizes(sizes)
    names = [
        channel.get("Name") or channel.get("Id") or ""
        for channel in root.iterfind("./Metadata/Information/Image/Dimensions/Channels/Channel")
    ]
    return sizes, names


#: Where ZEN says when each time point was taken, in seconds from the first (libCZI's
#: ``GetDimensionTInfo`` reads the same: an interval, else a list of offsets).
_DIMENSION_T = "./Metadata/Information/Image/Dimensions/T/Positions"

#: How far a step between listed time points may stray from their mean step (a fraction of
#: it) for the series to have one time step; acquisition timing jitters a little.
EVEN_STEPS = 0.1


def _time_step(root: ET.Element, path: str = "") -> float | None:
    """The time step in seconds: ``Interval/Increment`` (as OME's ``TimeIncrement``), else the
    mean step of ``List/Offsets`` (last minus first over the steps) where each step is within
    :data:`EVEN_STEPS` of it; an uneven list is warned about and gives none (no one step would
    be true).

    Examples
    --------
    >>> t = "<ImageDocument><Metadata><Information><Image><Dimensions><T><Positions>{}"
    >>> t += "</Positions></T></Dimensions></Image></Information></Metadata></ImageDocument>"
    >>> step = lambda xml: _time_step(ET.fromstring(t.format(xml)))
    >>> step("<Interval><Start>0</Start><Increment>2.5</Increment></Interval>")
    2.5
    >>> step("<List><Offsets>0 30.1 59.9 90</Offsets></List>")
    30.0
    >>> step("<Interval><Start>0</Start></Interval>") is None
    True
    """
    positions = root.find(_DIMENSION_T)
    if positions is None:
        return None
    interval = positions.find("Interval")
    if interval is not None:
        increment = (interval.findtext("Increment") or "").strip()
        return checked_size(increment or None, "s", "T", path=path, what="time increment")
    offsets = (positions.findtext("List/Offsets") or "").split()
    try:
        times = np.array([float(o) for o in offsets])
    except ValueError:
        return None
    steps = np.diff(times)
    if steps.size == 0 or not np.isfinite(steps).all():
        return None
    step = float(times[-1] - times[0]) / steps.size
    if step <= 0 or np.abs(steps - step).max() > EVEN_STEPS * step:
        log.warning(
            "%s: the CZI's time points are not evenly spaced (steps %.6g to %.6g s); "
            "time step unknown",
            path, steps.min(), steps.max(),
        )  # fmt: skip
        return None
    return step


MIN_COVERAGE = 0.01


def _check_coverage(reader: Any, claimed: int, path: str) -> None:
    """Refuse a directory whose planes and boxes dwarf its subblocks.

    A corrupt directory can claim millions of planes or a box billions of pixels wide; the engine
    would then plan tiles over nothing for hours. Real mosaics cover most of their scene boxes,
    so subblocks covering less than ``MIN_COVERAGE`` of what is claimed mean a corrupt file.
    """
    covered = 0

    def add(_index: int, info: Any) -> bool:
        nonlocal covered
        if abs(info.get_zoom() - 1.0) < 1e-3:  # pyramid layer 0 only
            covered += info.logicalRect.w * info.logicalRect.h
        return True

    try:
        reader.enumerate_subblocks(add)
    except Exception as err:
        raise InvalidImageError(
            f"cannot read the CZI subblock directory: {err}", path=path
        ) from err
    if covered < MIN_COVERAGE * claimed:
        raise InvalidImageError(
            f"the CZI directory claims {claimed} pixels over all planes and scenes but its "
            f"subblocks cover {covered}; the file is corrupt",
            path=path,
        )


def read_czi(
    path: str | Path,
    *,
    scene: int | None = None,
    level: int = 0,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
) -> Image:
    """Open a CZI file as a lazy :class:`Image` (see the module docstring for scenes).

    Only level 0 is read: libCZI composes lower resolutions by zoom, not as pyramid arrays.
    libCZI opens the one file once, here, and names no other file, so with ``allowed_roots``
    the file's real path is checked here and the file is opened by that real path.
    """
    confinement = Confinement.of(allowed_roots)
    real = confinement.check(path) if confinement is not None else str(path)
    if level:
        raise InvalidImageError(f"level {level} does not exist; CZI is read at level 0", path=path)
    try:
        from pylibCZIrw import czi
    except ImportError as err:
        raise InvalidImageError(
            "reading CZI needs pylibCZIrw (pip install 'scopeml[czi]')", path=path
        ) from err
    path = str(path)
    try:
        reader = czi.CziReader(real)
    except Exception as err:  # libCZI raises RuntimeError/ValueError on corrupt files
        raise InvalidImageError(f"not a readable CZI file: {err}", path=path) from err
    try:
        image = _open_scenes(reader, path, scene)
    except BaseException:
        reader.close()
        raise
    return image


def _open_scenes(reader: Any, path: str, scene: int | None) -> Image:
    try:
        box = reader.total_bounding_box_no_pyramid
        scene_rects = reader.scenes_bounding_rectangle_no_pyramid
        total = reader.total_bounding_rectangle_no_pyramid
    except Exception as err:
        raise InvalidImageError(f"cannot read the CZI directory: {err}", path=path) from err
    if total.w <= 0 or total.h <= 0:
        raise InvalidImageError("the CZI holds no pixels", path=path)
    sizes = {axis: box[axis][1] - box[axis][0] for axis in "TCZ"}
    rects = list(scene_rects.values()) or [total]
    planes = sizes["T"] * sizes["C"] * sizes["Z"]
    _check_coverage(reader, planes * sum(r.w * r.h for r in rects), path)
    try:
        pixel_types = {reader.get_channel_pixel_type(c) for c in range(sizes["C"])}
        raw_xml = reader.raw_metadata
    except Exception as err:
        raise InvalidImageError(f"cannot read the CZI metadata: {err}", path=path) from err
    for dim in _IGNORED_DIMS:
        if dim in box and box[dim][1] - box[dim][0] > 1:
            log.warning(
                "%s: CZI dimension %s has %d indices; reading index 0",
                path,
                dim,
                box[dim][1] - box[dim][0],
            )
    if len(pixel_types) != 1 or not pixel_types <= PIXEL_TYPES.keys():
        raise InvalidImageError(
            f"channel pixel types {sorted(pixel_types)} are not supported; "
            f"supported (one for all channels): {', '.join(PIXEL_TYPES)}",
            path=path,
        )
    pixel_type = pixel_types.pop()

    lock = threading.Lock()
    scenes: list[tuple[int | None, Any]] = sorted(scene_rects.items()) or [(None, total)]
    series = [
        CziScene(
            reader,
            lock,
            rect=tuple(rect),
            scene=index,
            sizes=sizes,
            pixel_type=pixel_type,
            path=path,
        )
        for index, rect in scenes
    ]
    views = [AxesView(s, "TCZYX", path=path) for s in series]
    scene_names = _scene_names(raw_xml, [index for index, _ in scenes])
    data = select_scene(views, scene, path=path, names=scene_names)

    pixel_sizes, names = _metadata(raw_xml, path, z_planes=data.shape[-3])
    if PIXEL_TYPES[pixel_type][1] == 3:
        names = [
            f"{name or f'C{i}'}-{rgb}" for i, name in enumerate(names or [""]) for rgb in "RGB"
        ]
    if len(names) != data.shape[2]:
        names = []
    image = Image(data, pixel_sizes=pixel_sizes, channel_names=names, path=path, close=reader.close)
    image.scene_names = scene_names
    return image


_SCENES = "./Metadata/Information/Image/Dimensions/S/Scenes/Scene"


def _scene_names(raw_xml: str, indices: Sequence[int | None]) -> tuple[str, ...]:
    """The names ZEN gives the scenes (``Scene Name``, else its well's ``Shape Name``), in
    the file's order, so that ``--scene B2-Pos3`` and every message use them; ``()`` where
    the file names none (scenes then go by number)."""
    try:
        root = ET.fromstring(raw_xml)
    except ET.ParseError:
        return ()
    given: dict[str, str] = {}
    for element in root.iterfind(_SCENES):
        shape = element.find("Shape")
        name = element.get("Name") or (shape.get("Name") if shape is not None else "") or ""
        given[element.get("Index", "")] = name.strip()
    names = [given.get(str(index), "") for index in indices]
    if not any(name and name != str(i) for i, name in enumerate(names)):
        return ()
    return tuple(name or str(i) for i, name in enumerate(names))
