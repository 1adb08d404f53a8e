"""``open_image``: the file format is chosen from a registry of readers keyed by suffix.

Readers are named as ``"module:function"`` and imported on first use, so an optional backend
(pylibCZIrw for CZI) is needed only to read its format.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from os import PathLike
from pathlib import Path

from scopeml.errors import InvalidImageError
from scopeml.io.image import Image

Reader = Callable[..., Image]

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
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")


def reader_for(path: str | PathLike[str]) -> Reader:
    """The reader for ``path``: by suffix, or OME-Zarr for a folder holding zarr metadata
    (``out.ome.zarr/labels``).

    Examples
    --------
    >>> reader_for("cells.ome.tif").__name__
    'read_tiff'
    """
    path = Path(path)
    name = path.name.lower()
    for suffix in sorted(READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return _resolve(READERS[suffix])
    if path.is_dir() and any((path / marker).is_file() for marker in _ZARR_MARKERS):
        return _resolve(READERS[".zarr"])
    known = ", ".join(sorted(READERS))
    raise InvalidImageError(f"unknown image format {path.suffix!r}; known: {known}", path=path)


def _resolve(reader: str | Reader) -> Reader:
    if callable(reader):
        return reader
    module, _, function = reader.partition(":")
    return getattr(importlib.import_module(module), function)


def open_image(path: str | PathLike[str], *, scene: int | None = None, level: int = 0) -> Image:
    """Open an image file lazily as a 6-D ``S T C Z Y X`` :class:`Image`.

    Parameters
    ----------
    path
        A CZI, OME-TIFF/TIFF, OME-Zarr (folder, or an image group inside one), PNG or JPEG.
    scene
        Open only this scene (CZI scene, TIFF series, NGFF image ``0, 1, …``). By default all
        scenes are opened as ``S`` when they have equal sizes; a file whose scenes differ in
        size raises :class:`InvalidImageError` listing the sizes, and must be opened per scene.
    level
        A pyramid level of an OME-TIFF or OME-Zarr (0 = full resolution), e.g. for statistics
        over a whole huge image; pixel sizes are those of the level. CZI and PNG have level 0.

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> file = Path(tempfile.mkdtemp()) / "a.tif"
    >>> tifffile.imwrite(file, np.arange(12, dtype=np.uint8).reshape(3, 4))
    >>> with open_image(file) as image:
    ...     image.shape, image.read(Y=slice(1, 2)).ravel().tolist()
    ((1, 1, 1, 1, 3, 4), [4, 5, 6, 7])
    """
    reader = reader_for(path)
    if not Path(path).exists():
        raise InvalidImageError("no such file or folder", path=path)
    if level < 0:
        raise InvalidImageError(f"level must be ≥ 0; got {level}", path=path)
    if level == 0:  # a registered reader without pyramids need not take the keyword
        return reader(path, scene=scene)
    return reader(path, scene=scene, level=level)
