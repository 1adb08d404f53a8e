"""``open_image``: the file format is chosen from a registry of readers keyed by suffix.

Readers are named as ``"module:function"`` and imported on first use, so an optional backend
(pylibCZIrw for CZI) is needed only to read its format.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from scopeml.errors import ImageNotFoundError, InvalidImageError, InvalidRequestError, not_found
from scopeml.io.confine import Confinement
from scopeml.io.image import Image
from scopeml.io.limits import ImageLimits, default_limits
from scopeml.io.stores import is_zarr_store

Reader = Callable[..., Image]


#: Between a field's files where one name stands for them (records, messages).
FIELD_SEPARATOR = " + "


@dataclass(frozen=True)
class ChannelFiles:
    """One field of view saved one file per channel, as plate readers export it (CellProfiler's
    NamesAndTypes): :func:`open_image` opens it as one image whose channels are the files',
    named ``channels``, in this order (:func:`~scopeml.io.image.stack_channels`).

    Examples
    --------
    >>> field = ChannelFiles((Path("A01_w1.tif"), Path("A01_w2.tif")), ("DAPI", "GFP"))
    >>> str(field)
    'A01_w1.tif + A01_w2.tif'
    """

    paths: tuple[Path, ...]
    channels: tuple[str, ...]

    def __str__(self) -> str:
        return FIELD_SEPARATOR.join(str(path) for path in self.paths)

    def to_json(self) -> dict[str, list[str]]:
        """As JSON for another process (:meth:`from_json` gives it back)."""
        return {"paths": [str(path) for path in self.paths], "channels": list(self.channels)}

    @classmethod
    def from_json(cls, data: dict[str, list[str]]) -> ChannelFiles:
        return cls(tuple(Path(path) for path in data["paths"]), tuple(data["channels"]))


def input_files(image: str | PathLike[str] | ChannelFiles) -> list[Path]:
    """The files an image input is read from: a file's own path, or a field's channel files."""
    return list(image.paths) if isinstance(image, ChannelFiles) else [Path(image)]


READERS: dict[str, str | Reader] = {
    ".czi": "scopeml.io.czi:read_czi",
    ".ome.tiff": "scopeml.io.tiff:read_tiff",
    ".ome.tif": "scopeml.io.tiff:read_tiff",
    ".tiff": "scopeml.io.tiff:read_tiff",
    ".tif": "scopeml.io.tiff:read_tiff",
    ".btf": "scopeml.io.tiff:read_tiff",
    ".ome.zarr": "scopeml.io.omezarr:read_ome_zarr",
    ".zarr": "scopeml.io.omezarr:read_ome_zarr",
    ".png": "scopeml.io.raster:read_raster",
    ".jpg": "scopeml.io.raster:read_raster",
    ".jpeg": "scopeml.io.raster:read_raster",
}
#: Image suffixes the built-in readers claim, longest first: the one list for every caller that
#: must recognise an image by name (the server's uploads and paths, the napari reader).
IMAGE_SUFFIXES: tuple[str, ...] = tuple(sorted(READERS, key=len, reverse=True))
#: The last resort for a file no reader above claims: bioio and its format plugins.
FALLBACK: str | Reader | None = "scopeml.io.bioio:read_bioio"


def reader_for(path: str | PathLike[str]) -> Reader:
    """The reader for ``path``: by suffix, or OME-Zarr for a folder holding zarr metadata
    (``out.ome.zarr/labels``), else :data:`FALLBACK` (bioio, for any other format).

    Examples
    --------
    >>> reader_for("cells.ome.tif").__name__
    'read_tiff'
    """
    path = Path(path)
    name = path.name.lower()
    for suffix in sorted(READERS, key=len, reverse=True):  # READERS may gain plug-ins
        if name.endswith(suffix):
            return _resolve(READERS[suffix])
    if is_zarr_store(path):
        return _resolve(READERS[".zarr"])
    if FALLBACK is not None:  # ND2, LIF, DV, …: its error lists the formats tried
        return _resolve(FALLBACK)
    known = ", ".join(sorted(READERS))
    raise InvalidImageError(f"unknown image format {path.suffix!r}; known: {known}", path=path)


def _resolve(reader: str | Reader) -> Reader:
    if callable(reader):
        return reader
    module, _, function = reader.partition(":")
    return getattr(importlib.import_module(module), function)


def open_image(
    path: str | PathLike[str] | ChannelFiles,
    *,
    scene: int | None = None,
    level: int = 0,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
    limits: ImageLimits | None = None,
    axes: str | None = None,
) -> Image:
    """Open an image file lazily as a 6-D ``S T C Z Y X`` :class:`Image`.

    Parameters
    ----------
    path
        A CZI, OME-TIFF/TIFF, OME-Zarr (folder, or an image group inside one), PNG or JPEG;
        or a :class:`ChannelFiles` field, one file per channel, each holding one channel.
    scene
        Open only this scene (CZI scene, TIFF series, NGFF image ``0, 1, …``), by number or by
        its name in the file (``"B2"``, as ``scopeml info`` lists them). By default all
        scenes are opened as ``S`` when they have equal sizes; a file whose scenes differ in
        size raises :class:`InvalidImageError` listing the sizes, and must be opened per scene.
    level
        A pyramid level of an OME-TIFF or OME-Zarr (0 = full resolution), e.g. for statistics
        over a whole huge image; pixel sizes are those of the level. CZI and PNG have level 0.
    allowed_roots
        Folders below which every file the reader opens must lie, symlinks followed: the image
        itself, multi-file OME-TIFF companions, OME-Zarr metadata, array folders and chunk
        files (checked at each read, from any thread). A file outside raises
        :class:`~scopeml.errors.OutsideRootError` naming it. ``None`` (default) checks nothing.
        A registered reader that cannot confine its reads is refused when roots are given.
    limits
        What the image may declare (pixels, pixels per axis, chunk bytes, compression ratio);
        default :func:`~scopeml.io.limits.default_limits` (module defaults, overridable by the
        ``SCOPEML_MAX_*`` environment variables). Checked before any pixel is read.
    axes
        What the file's axes are, one letter of ``T C Z Y X`` per axis in the file's order
        (any case): ``"TYX"`` reads a plain multi-page TIFF as a time-lapse, which is
        otherwise read as a Z stack (with a warning). The number of letters must be the
        file's number of axes. Only for TIFF files (other formats name their axes); a reader
        that cannot take it refuses it.

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> from pathlib import Path
    >>> file = Path(tempfile.mkdtemp()) / "a.tif"
    >>> tifffile.imwrite(file, np.arange(12, dtype=np.uint8).reshape(3, 4))
    >>> with open_image(file, allowed_roots=[file.parent]) as image:
    ...     image.shape, image.read(Y=slice(1, 2)).ravel().tolist()
    ((1, 1, 1, 1, 3, 4), [4, 5, 6, 7])
    """
    if isinstance(path, ChannelFiles):
        return _open_channel_files(path, scene=scene, level=level, allowed_roots=allowed_roots,
                                   limits=limits, axes=axes)  # fmt: skip
    if not isinstance(path, (str, PathLike)):  # an array, say: not a raw TypeError of pathlib
        where = (
            "it is open already"
            if isinstance(path, Image)
            else "pass an array itself to segment, predict_region, train_pixel_classifier, "
            "label_objects or measure_objects, or a 6-D one (S×T×C×Z×Y×X) to Image"
        )
        raise InvalidRequestError(
            f"open_image opens a file or folder, not {type(path).__name__!r}: {where}"
        )
    confinement = Confinement.of(allowed_roots)
    if confinement is not None:  # before anything else looks at the path
        confinement.check(path)
    reader = reader_for(path)
    if not Path(path).exists():
        raise ImageNotFoundError(not_found(path), path=path)
    if level < 0:
        raise InvalidImageError(f"level must be ≥ 0; got {level}", path=path)
    limits = default_limits() if limits is None else limits
    accepts = _keywords(reader)
    scene = scene_numbered(path, scene, allowed_roots=allowed_roots, limits=limits, axes=axes)
    options: dict[str, object] = {"scene": scene}
    if axes is not None:
        from scopeml.io.axes import check_axes_text

        options["axes"] = check_axes_text(axes)
        if "axes" not in accepts:
            raise InvalidImageError(
                f"axes={axes!r} applies to TIFF files; this format names its own axes "
                f"(reader {getattr(reader, '__name__', reader)!r})",
                path=path,
            )
    if level:  # a registered reader without pyramids need not take the keyword
        options["level"] = level
    if "limits" in accepts:
        options["limits"] = limits
    if allowed_roots is not None:
        if "allowed_roots" not in accepts:
            raise InvalidImageError(
                f"the reader {getattr(reader, '__name__', reader)!r} of this format cannot "
                "confine its reads to allowed folders",
                path=path,
            )
        options["allowed_roots"] = confinement.roots if confinement else ()
    image = reader(path, **options)
    try:
        limits.check_shape(image.shape, path=path)
    except BaseException:
        image.close()
        raise
    image.mark_read_from_file(scene, options.get("axes"))  # a run records what it read
    return image


def _open_channel_files(field: ChannelFiles, **options: Any) -> Image:
    """A field's channel files opened (``options``: :func:`open_image`'s) and stacked; a
    scene named, by the first file's number for it (the stack records one)."""
    from scopeml.io.image import stack_channels

    if isinstance(scene_given(options.get("scene")), str):
        named = {k: v for k, v in options.items() if k in ("allowed_roots", "limits", "axes")}
        options["scene"] = scene_numbered(field.paths[0], options["scene"], **named)
    with ExitStack() as stack:
        opened = []
        for path, channel in zip(field.paths, field.channels, strict=True):
            image = stack.enter_context(open_image(path, **options))
            if image.sizes["C"] != 1:
                raise InvalidImageError(
                    f"holds {image.sizes['C']} channels; a file of channel {channel!r} of a "
                    "field saved one file per channel holds one",
                    path=path,
                )
            opened.append(image)
        stacked = stack_channels(opened, field.channels)
        stack.pop_all()  # the stack closes them now
    stacked.mark_read_from_file(options.get("scene"), stacked.file_axes)
    stacked.channel_files = tuple(str(path) for path in field.paths)
    return stacked


def open_levels(
    path: str | PathLike[str], *, scene: int | None = None, smallest: int = 1, most: int = 16,
    **options: Any,
) -> list[Image]:  # fmt: skip
    """The pyramid levels of an image file, full resolution first, each opened (the caller
    closes them; one level for CZI/PNG): levels are opened until one is no larger than
    ``smallest`` along Y and X, or ``most`` are open. ``options``: :func:`open_image`'s.

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> file = tempfile.mkdtemp() + "/a.tif"
    >>> tifffile.imwrite(file, np.zeros((8, 8), np.uint8))
    >>> [level.shape for level in open_levels(file)]
    [(1, 1, 1, 1, 8, 8)]
    """
    levels = [open_image(path, scene=scene, **options)]
    while len(levels) < most and min(levels[-1].sizes["Y"], levels[-1].sizes["X"]) > smallest:
        try:
            level = open_image(path, scene=scene, level=len(levels), **options)
        except InvalidImageError:
            break  # no such level
        if level.sizes["Y"] >= levels[-1].sizes["Y"]:
            level.close()
            break  # a reader without pyramids answers with level 0 again
        levels.append(level)
    return levels


@contextmanager
def open_scenes(
    path: str | PathLike[str], scene: int | None = None, **options: Any
) -> Iterator[list[Image]]:
    """Every scene of a file, each its own image (``S`` = 1, in the file's order), closed on
    leaving: also a file whose scenes differ in size, which :func:`open_image` cannot stack,
    opened one scene at a time. ``scene``: that one only. ``options``: :func:`open_image`'s.

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> file = Path(tempfile.mkdtemp()) / "two.ome.tif"
    >>> with tifffile.TiffWriter(file, ome=True) as tif:
    ...     tif.write(np.zeros((4, 5), np.uint8)); tif.write(np.zeros((2, 3), np.uint8))
    >>> with open_scenes(file) as scenes:
    ...     [(image.view()["scene"], image.shape[-2:]) for image in scenes]
    [(0, (4, 5)), (1, (2, 3))]
    """
    if scene is not None:
        with open_image(path, scene=scene, **options) as image:
            yield [image]
        return
    with ExitStack() as stack:
        try:
            image = stack.enter_context(open_image(path, **options))
            count = image.sizes["S"]
            scenes = [image] if count == 1 else [image.select_scene(s) for s in range(count)]
        except InvalidImageError as err:
            if "scenes of different sizes" not in str(err):
                raise
            scenes = []
            while (opened := _scene_or_none(path, len(scenes), options)) is not None:
                scenes.append(stack.enter_context(opened))  # until the reader has no more
        yield scenes


def iter_scenes(path: str | PathLike[str], **options: Any) -> Iterator[Image]:
    """Each scene of a file (``S`` = 1) in turn, closed before the next is opened: a file of
    hundreds of positions of different sizes holds one open at a time (all at once ran out of
    file descriptors). ``options``: :func:`open_image`'s.

    >>> import tempfile, tifffile, numpy as np
    >>> file = Path(tempfile.mkdtemp()) / "two.ome.tif"
    >>> with tifffile.TiffWriter(file, ome=True) as tif:
    ...     tif.write(np.zeros((4, 5), np.uint8)); tif.write(np.zeros((2, 3), np.uint8))
    >>> [image.shape[-2:] for image in iter_scenes(file)]
    [(4, 5), (2, 3)]
    """
    number = 0
    while (image := _scene_or_none(path, number, options)) is not None:
        with image:
            yield image
        number += 1


def _scene_or_none(path: str | PathLike[str], number: int, options: dict[str, Any]) -> Any:
    """Scene ``number`` of ``path``, opened; ``None`` past the last."""
    try:
        return open_image(path, scene=number, **options)
    except InvalidImageError as end:
        if f"scene {number} does not exist" in str(end):  # not a level's
            return None
        raise


def scene_numbered(
    path: str | PathLike[str], scene: int | str | None, **options: Any
) -> int | None:
    """The number in this file of the scene ``scene`` names: a number as it is, else the
    file's name for a scene (``A1-Pos3``, as ``scopeml info`` lists them), read here one
    scene at a time (``options``: :func:`open_image`'s), as a batch's files may number a
    scene differently.

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> file = Path(tempfile.mkdtemp()) / "plate.ome.tif"
    >>> with tifffile.TiffWriter(file, ome=True) as tif:
    ...     for name in ("A1", "B2"):
    ...         tif.write(np.zeros((4, 5), np.uint8), metadata={"axes": "YX", "Name": name})
    >>> scene_numbered(file, "B2"), scene_numbered(file, 0)
    (1, 0)
    >>> scene_numbered(file, "C3")
    Traceback (most recent call last):
    scopeml.errors.InvalidImageError: ...: no scene named 'C3'; the image has 2: 0 A1, 1 B2
    """
    text = scene_given(scene)
    if not isinstance(text, str):
        return text
    names: list[str] = []
    count = 0
    for image in iter_scenes(path, **options):  # the first names them all, if any does
        names, count = list(getattr(image, "scene_names", ()) or ()), count + 1
        if names:
            break
    return named_scene(names or [str(i) for i in range(count)], text, path)


def scene_given(scene: int | str | None) -> int | str | None:
    """A scene as given: its number (digits too: ``"2"``), its name (stripped), or ``None``.

    >>> scene_given(" 2 "), scene_given("A1-Pos3 "), scene_given("²"), scene_given(None)
    (2, 'A1-Pos3', '²', None)
    """
    if scene is None or isinstance(scene, int):
        return scene
    text = str(scene).strip()
    return int(text) if text.isascii() and text.isdigit() else text


def named_scene(names: Sequence[str], text: str, path: str | PathLike[str]) -> int:
    """The number of the scene named ``text`` among a file's ``names`` of its scenes: as
    written, else in any case.

    Raises
    ------
    InvalidImageError
        No scene of that name (the scenes are listed), several of it, or a file that names
        none.
    """
    names = [str(name) for name in names]
    exact = [i for i, name in enumerate(names) if name == text]
    loose = [i for i, name in enumerate(names) if name.casefold() == text.casefold()]
    for found in (exact, loose):  # the name as written, else in any case
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            numbers = ", ".join(map(str, found))
            raise InvalidImageError(
                f"scene name {text!r} is not one scene's: scenes {numbers} are named so; give "
                "its number",
                path=path,
            )
    listed = ", ".join(f"{i} {name}" for i, name in enumerate(names))
    if all(name == str(i) for i, name in enumerate(names)):
        problem = (
            f"no scene named {text!r}: the file names none; give its number (0–{len(names) - 1})"
        )
    else:
        problem = f"no scene named {text!r}; the image has {len(names)}: {listed}"
    raise InvalidImageError(problem, path=path)


def takes_axes(path: str | PathLike[str]) -> bool:
    """Whether the reader of ``path`` takes ``axes=`` (TIFF: a file that may not say them).

    Examples
    --------
    >>> takes_axes("a.ome.tif"), takes_axes("a.ome.zarr")
    (True, False)
    """
    return "axes" in _keywords(reader_for(path))


def _keywords(reader: Reader) -> set[str]:
    """The keyword parameters ``reader`` takes (all, if it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(reader).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return {"limits", "allowed_roots"}  # not axes: a reader must say it takes them
    return {p.name for p in parameters}
