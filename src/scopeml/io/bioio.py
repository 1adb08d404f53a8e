"""Vendor formats (ND2, LIF, DV, VSI, ImageXpress, …) through bioio: the registry's last resort.

scopeml's own readers keep the formats they know (CZI, TIFF, OME-Zarr, PNG, JPEG); a file none
of them claims is opened with `bioio <https://github.com/bioio-devs/bioio>`_ and whichever of its
format plugins are installed (``pip install 'scopeml[formats]'``), as the same lazy 6-D
:class:`~scopeml.io.image.Image`. A region read slices bioio's dask array and computes only the
chunks it overlaps. How fine those chunks are is the plugin's choice: bioio-ome-zarr reads zarr
chunks and bioio-vsi tiles, while the ND2, LIF, DV, OME-TIFF, TIFF and imageio plugins (as read
in their sources) decode a whole Y×X plane per chunk, so a tile read from such a file costs one
plane (:attr:`BioioImage.region_reads` says which), and a plane larger than the chunk limit
(:mod:`scopeml.io.limits`) is refused when opened.

With ``allowed_roots`` (a server) only plugins that read the one file they are given are used
(:data:`SINGLE_FILE_PLUGINS`); the others may follow companion files or folders that cannot be
confined, and are refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scopeml.errors import ImageNotFoundError, InvalidImageError, ScopeMLError, not_found
from scopeml.io._units import checked_size
from scopeml.io._view import AxesView, select_scene
from scopeml.io.image import Image

if TYPE_CHECKING:
    from scopeml.io.limits import ImageLimits

_GENERATED_NAME = re.compile(r"Channel:\d+:\d+")

#: Suffix → the bioio plugin that reads it (installed or not): named in the error for a file
#: nothing installed can read. The README's table lists the same.
PLUGINS: dict[str, str] = {
    ".nd2": "bioio-nd2",
    ".lif": "bioio-lif",
    ".dv": "bioio-dv",
    ".r3d": "bioio-dv",
    ".vsi": "bioio-vsi",
    ".jdce": "bioio-imagexpress",
    ".lsm": "bioio-tifffile",
    ".ozx": "bioio-ome-zarr",
    ".zarr.zip": "bioio-ome-zarr",
    ".bmp": "bioio-imageio",
    ".gif": "bioio-imageio",
    ".jp2": "bioio-imageio",
    ".qptiff": "bioio-qptiff",
    ".sldy": "bioio-sldy",
    ".ims": "bioio-bioformats",
    ".oib": "bioio-bioformats",
    ".oif": "bioio-bioformats",
    ".svs": "bioio-bioformats",
}


#: Plugins that open only the file they are given (no companions, no folders): the ones allowed
#: when reads must stay inside allowed folders.
SINGLE_FILE_PLUGINS = frozenset({"bioio-nd2", "bioio-lif", "bioio-dv", "bioio-imageio"})


class BioioImage(Image):
    """An :class:`Image` read through a bioio plugin, which it names (``scopeml info`` prints it).

    Attributes
    ----------
    plugin
        The bioio plugin distribution and version, e.g. ``"bioio-nd2 2.6.0"``.
    scene_names
        bioio's name of every scene in the file (not only those opened).
    chunk_shape
        Pixels per chunk of bioio's dask array in ``Y`` and ``X``: a region read decodes every
        chunk it overlaps.
    chunk
        The whole shape of one such chunk (bioio's axes), which one read may decode.
    """

    def __init__(
        self,
        data: Any,
        *,
        plugin: str,
        scene_names: Sequence[str],
        chunk: Sequence[int],
        chunk_shape: tuple[int, int],
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.plugin = plugin
        self.scene_names = tuple(scene_names)
        self.chunk = tuple(int(n) for n in chunk)
        self.chunk_shape = chunk_shape

    @property
    def region_reads(self) -> str:
        """How a region read reaches the file: by chunks, or a whole Y×X plane at a time."""
        height, width = self.shape[4], self.shape[5]
        if self.chunk_shape == (height, width) and height * width > 1:
            return f"whole {height}×{width} planes (the plugin cannot read regions)"
        return f"chunks of {self.chunk_shape[0]}×{self.chunk_shape[1]} (Y×X)"


class _DaskRegions:
    """A dask array whose slices are computed on the calling thread, touching only their chunks.

    The synchronous scheduler keeps a read on the engine's worker thread instead of nesting a
    second thread pool inside it.
    """

    def __init__(self, array: Any, *, path: str, confinement: Any = None) -> None:
        self.array, self.path, self.confinement = array, path, confinement
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        if self.confinement is not None:  # the path may have become a symlink since opening
            self.confinement.check(self.path)
        return np.asarray(self.array[key].compute(scheduler="synchronous"))


def read_bioio(
    path: str | PathLike[str],
    *,
    scene: int | None = None,
    level: int = 0,
    plugin: str | None = None,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
    limits: ImageLimits | None = None,
) -> BioioImage:
    """Open ``path`` with the bioio plugin that reads it, as a lazy :class:`BioioImage`.

    Parameters
    ----------
    path
        Any file (or folder, for directory formats) an installed bioio plugin reads.
    scene
        Open only this scene; by default all scenes, stacked on ``S`` when equally sized.
    level
        A resolution level, where the plugin offers pyramids (0 = full resolution).
    plugin
        Use this plugin (its distribution name, ``"bioio-ome-tiff"``) instead of bioio's choice.
    allowed_roots
        Folders the file must lie in (symlinks followed, checked at each read); only
        :data:`SINGLE_FILE_PLUGINS` are used then. ``None`` checks nothing.
    limits
        The largest chunk (one plane, for most plugins) and image allowed; by default
        :func:`~scopeml.io.limits.default_limits`.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> file = Path(tempfile.mkdtemp()) / "a.ome.tif"
    >>> tifffile.imwrite(file, np.arange(30, dtype=np.uint8).reshape(2, 3, 5), ome=True,
    ...                  metadata={"axes": "CYX", "Channel": {"Name": ["dna", "actin"]}})
    >>> with read_bioio(file) as image:
    ...     image.plugin.split()[0], image.channel_names, image.read(C=1, Y=0).ravel().tolist()
    ('bioio-ome-tiff', ('dna', 'actin'), [15, 16, 17, 18, 19])
    """
    from scopeml.io.confine import Confinement
    from scopeml.io.limits import default_limits

    path = str(path)
    confinement = Confinement.of(allowed_roots)
    if confinement is not None:
        confinement.check(path)
    bioimage, plugin_name = _open(path, plugin, confined=confinement is not None)
    try:
        image = _image(
            bioimage, plugin_name, path, scene=scene, level=level, confinement=confinement
        )
        limits = default_limits() if limits is None else limits
        limits.check_shape(image.shape, path=path)
        what = f"a {plugin_name} chunk"
        limits.check_chunk(image.chunk, image.dtype.itemsize, what=what, path=path)
        return image
    except (ScopeMLError, MemoryError):
        _close(bioimage)
        raise
    except Exception as err:  # the plugin failed describing the file (inconsistent metadata)
        _close(bioimage)
        raise InvalidImageError(f"{plugin_name} cannot read it: {err!r}", path=path) from err
    except BaseException:
        _close(bioimage)
        raise


def _open(path: str, plugin: str | None, *, confined: bool = False) -> tuple[Any, str]:
    """A ``BioImage`` for ``path`` and the name and version of the plugin that opened it;
    ``confined``: only a single-file plugin that claims the suffix may open it."""
    try:
        import bioio
        from bioio_base.exceptions import UnsupportedFileFormatError
    except ImportError as err:
        raise InvalidImageError(
            _unknown_format(path, "bioio is not installed (pip install 'scopeml[formats]')"),
            path=path,
        ) from err
    if not Path(path).exists():
        raise ImageNotFoundError(not_found(path), path=path)
    entries = _installed_plugins()
    reader = None
    if plugin is not None:
        if plugin not in entries:
            raise InvalidImageError(
                f"bioio plugin {plugin!r} is not installed; installed: "
                f"{', '.join(sorted(entries)) or 'none'}",
                path=path,
            )
        reader = entries[plugin].metadata.get_reader()
    if confined:
        allowed = [name for name in (plugin,) if name] or [
            name for name, entry in entries.items() if _claims(entry, path)
        ]
        allowed = [name for name in allowed if name in SINGLE_FILE_PLUGINS]
        if not allowed:
            raise InvalidImageError(
                "within allowed folders bioio may only use plugins that open one file "
                f"({', '.join(sorted(SINGLE_FILE_PLUGINS))}); none reads {Path(path).suffix!r}",
                path=path,
            )
        reader = [entries[name].metadata.get_reader() for name in allowed]
        plugin = allowed[0] if len(allowed) == 1 else None
    try:
        bioimage = bioio.BioImage(path, reader=reader, use_plugin_cache=True)
    except UnsupportedFileFormatError as err:
        claiming = [name for name, entry in entries.items() if _claims(entry, path)]
        if claiming:  # a plugin for the suffix is there: the file is not what it says
            reason = _refusal(entries[claiming[0]], path)
            raise InvalidImageError(f"{claiming[0]} cannot read it: {reason}", path=path) from err
        tried = ", ".join(sorted(entries))
        raise InvalidImageError(
            _unknown_format(path, f"no installed bioio plugin reads it (tried {tried})"), path=path
        ) from err
    except FileNotFoundError as err:
        inner = err.filename and str(err.filename) != str(path)  # a file the image names
        said = f"no such file or folder: {err.filename}" if inner else "no such file or folder"
        raise ImageNotFoundError(said, path=path) from err
    except MemoryError:
        raise
    except Exception as err:  # a plugin's parser failing on a corrupt file
        name = plugin or _chosen_plugin(path, entries)
        raise InvalidImageError(f"{name} cannot read it: {err}", path=path) from err
    chosen = type(bioimage.reader)
    name = plugin or next(
        (name for name, entry in entries.items() if entry.metadata.get_reader() is chosen),
        f"{chosen.__module__}.{chosen.__name__}",
    )
    return bioimage, f"{name} {_version(name)}".strip()


def _image(
    bioimage: Any, plugin: str, path: str, *, scene: int | None, level: int, confinement: Any
) -> BioioImage:
    scene_names = tuple(str(s) for s in bioimage.scenes)
    if scene is not None:  # check the index before building any scene (select_scene's message)
        select_scene(range(len(scene_names)), scene, path=path, names=scene_names)
    indices = range(len(scene_names)) if scene is None else [scene]
    views, arrays = [], []
    for index in indices:
        bioimage.set_scene(index)
        if level:
            levels = bioimage.resolution_levels
            if level not in levels:
                raise InvalidImageError(
                    f"level {level} does not exist; the image has {len(levels)} levels", path=path
                )
            bioimage.set_resolution_level(level)
        array, dims = _scene_array(bioimage)  # built for the current scene; stays bound to it
        regions = _DaskRegions(array, path=path, confinement=confinement)
        views.append(AxesView(regions, _axes(dims, path), path=path))
        arrays.append((array, dims))
    data = select_scene(views, None if scene is None else 0, path=path)
    bioimage.set_scene(indices[0])
    if level:
        bioimage.set_resolution_level(level)
    array, dims = arrays[0]
    names = [str(n) for n in bioimage.channel_names]
    if len(names) != data.shape[2]:  # samples (RGB) became channels
        names = ["R", "G", "B"] if data.shape[2] == 3 else []
    if all(_GENERATED_NAME.fullmatch(n) for n in names) or names == [
        str(i) for i in range(len(names))
    ]:  # bioio's ids, or the plugin's indices (bioio-dv's): the file names none
        names = []
    order = dims.order
    chunk = array.chunksize
    return BioioImage(
        data,
        plugin=plugin,
        scene_names=scene_names,
        chunk=chunk,
        chunk_shape=(int(chunk[order.index("Y")]), int(chunk[order.index("X")])),
        pixel_sizes=_pixel_sizes(bioimage, path),
        channel_names=names or None,
        path=path,
        close=lambda: _close(bioimage),
    )


def _scene_array(bioimage: Any) -> tuple[Any, Any]:
    """The current scene's dask array and its dimensions: bioio's (``TCZYX``), else the
    plugin's own, where bioio fails to label them (bioio-dv 1.2.0 on a DeltaVision file of two
    wavelengths: one channel coordinate for two channels), as long as the plugin reads them."""
    try:
        return bioimage.dask_data, bioimage.dims
    except Exception:
        reader = bioimage.reader
        try:
            return reader.dask_data, reader.dims
        except Exception:
            pass
        raise


def _axes(dims: Any, path: str) -> str:
    """bioio's dimension order in scopeml letters: RGB samples become channels."""
    order = dims.order
    if "M" in order:
        raise InvalidImageError(
            "mosaic tiles that bioio cannot stitch are not supported", path=path
        )
    if "S" not in order:
        return order
    if dims.C > 1 and dims.S > 1:
        raise InvalidImageError(
            f"{dims.C} channels of {dims.S} samples each are not supported", path=path
        )
    if dims.S == 1:
        return order.replace("S", "_")
    return order.replace("C", "_").replace("S", "C")


def _pixel_sizes(bioimage: Any, path: str = "") -> dict[str, float]:
    """Pixel sizes in micrometres: bioio's values carry no unit, so the unit comes from the
    dimension properties or the OME metadata (``PhysicalSizeXUnit="nm"``), else µm.

    A size of exactly 1 without a unit is unknown, as in scopeml's own readers: it is what TIFF
    resolution tags and NGFF scales hold when no size was written (bioio-tifffile reports it).
    A size that is no size (≤ 0, not finite) is warned about, then unknown.
    """
    sizes = bioimage.physical_pixel_sizes
    units = _units(bioimage)
    out = {}
    for axis in "ZYX":
        value, unit = getattr(sizes, axis), units.get(axis)
        size = None if unit is None and value == 1 else checked_size(value, unit, axis, path=path)
        if size is not None:
            out[axis] = size
    return out


def _units(bioimage: Any) -> dict[str, str]:
    units: dict[str, str] = {}
    try:
        properties = bioimage.dimension_properties
        for axis in "ZYX":
            unit = getattr(properties, axis).unit
            if unit is not None:
                units[axis] = str(unit)
    except Exception:  # older plugins have no dimension properties
        pass
    if len(units) == 3:
        return units
    try:
        pixels = bioimage.ome_metadata.images[bioimage.current_scene_index].pixels
    except Exception:  # not every plugin can describe itself as OME
        return units
    for axis in "ZYX":
        unit = getattr(pixels, f"physical_size_{axis.lower()}_unit", None)
        if axis not in units and unit is not None:
            units[axis] = str(getattr(unit, "value", unit))
    return units


def _close(bioimage: Any) -> None:
    close = getattr(bioimage.reader, "close", None) or getattr(bioimage.reader, "_close", None)
    if callable(close):
        close()


# ---------------------------------------------------------------------------- plugins


def _installed_plugins() -> dict[str, Any]:
    """Installed bioio plugins by distribution name (``"bioio-nd2"``)."""
    from bioio.plugins import get_directory_image_plugins, get_plugins

    entries: dict[str, Any] = {}
    for group in [*get_plugins(use_cache=True).values(), get_directory_image_plugins(True)]:
        for entry in group:
            entries.setdefault(entry.entrypoint.name, entry)
    return entries


def _claims(entry: Any, path: str) -> bool:
    name = path.lower().rstrip("/")
    return any(
        name.endswith(ext if ext.startswith(".") else f".{ext}")
        for ext in (e.lower() for e in entry.metadata.get_supported_extensions())
    )


def _refusal(entry: Any, path: str) -> str:
    """Why the plugin of ``entry`` does not read ``path`` (a corrupt or mislabelled file), in its
    words without its preamble: bioio says only that no plugin read it, and logs the reason."""
    try:
        entry.metadata.get_reader()(path)
    except Exception as err:  # its refusal
        said = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return re.sub(r"^.*does not support the image: '.*?'\.?\s*", "", said) or said
    return "it opens alone, but not among the installed plugins"


def _chosen_plugin(path: str, entries: dict[str, Any]) -> str:
    claiming = [name for name, entry in entries.items() if _claims(entry, path)]
    return f"bioio ({', '.join(claiming)})" if claiming else "bioio"


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


@functools.cache
def plugin_installed(distribution: str) -> bool:
    """Whether the bioio plugin ``distribution`` (``"bioio-nd2"``) is installed."""
    return _version(distribution) != ""


def plugin_for(path: str | PathLike[str]) -> str | None:
    """The bioio plugin that reads ``path``'s format (installed or not), if scopeml knows one.

    Examples
    --------
    >>> plugin_for("run1.ND2"), plugin_for("scan.qptiff"), plugin_for("notes.txt")
    ('bioio-nd2', 'bioio-qptiff', None)
    """
    name = Path(path).name.lower()
    for suffix in sorted(PLUGINS, key=len, reverse=True):
        if name.endswith(suffix):
            return PLUGINS[suffix]
    return None


def _unknown_format(path: str, reason: str) -> str:
    """The registry's "unknown image format" message, with what bioio tried and could use."""
    from scopeml.io.registry import READERS

    known = ", ".join(sorted(READERS))
    suffix = Path(path).suffix
    if not suffix:
        suffix = "(a folder without zarr metadata)" if Path(path).is_dir() else "(no suffix)"
    message = f"unknown image format {suffix if suffix.startswith('(') else repr(suffix)}; "
    message += f"known: {known}; {reason}"
    hint = plugin_for(path)
    if hint is not None and _version(hint) == "":
        message += f"; {hint} reads it (pip install {hint})"
    if Path(path).is_dir() and not str(path).rstrip("/").endswith(".zarr"):
        message += "; a folder of images goes to analyze, with a settings file"
    return message
