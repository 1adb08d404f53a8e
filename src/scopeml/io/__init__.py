"""Files ↔ lazy 6-D images with metadata (CZI, OME-TIFF, OME-Zarr, plain TIFF/PNG).

Reading: :func:`open_image` returns an :class:`Image` (axes ``S T C Z Y X``, pixel sizes in
micrometres, channel names) whose pixels are read region by region. Untrusted images are held
to :class:`ImageLimits` on declared sizes, and with ``allowed_roots`` every file a reader opens
must lie below those folders (:mod:`scopeml.io.confine`).
Writing: :func:`create_ome_zarr` makes an NGFF 0.5 image group that workers fill chunk by chunk
through :func:`open_ome_zarr_array`; :func:`write_pyramid` adds downsampled levels;
:func:`write_ome_tiff` streams an image or array into a tiled OME-TIFF;
:func:`write_ome_zarr` copies any image (a CZI, a TIFF) into an OME-Zarr store.

The functions are imported on first use (zarr and tifffile take a while to import), so
``import scopeml.io`` stays cheap for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from scopeml.io.image import AXES, Image, stack_channels

if TYPE_CHECKING:
    from scopeml.io.convert import write_ome_zarr
    from scopeml.io.limits import ImageLimits
    from scopeml.io.ometiff import write_ome_tiff
    from scopeml.io.omezarr import create_ome_zarr, open_ome_zarr_array, read_axes
    from scopeml.io.pyramid import write_pyramid
    from scopeml.io.registry import READERS, open_image

_LAZY = {
    "READERS": "scopeml.io.registry",
    "ImageLimits": "scopeml.io.limits",
    "open_image": "scopeml.io.registry",
    "create_ome_zarr": "scopeml.io.omezarr",
    "open_ome_zarr_array": "scopeml.io.omezarr",
    "read_axes": "scopeml.io.omezarr",
    "write_ome_tiff": "scopeml.io.ometiff",
    "write_pyramid": "scopeml.io.pyramid",
    "write_ome_zarr": "scopeml.io.convert",
}

__all__ = [
    "AXES",
    "READERS",
    "Image",
    "ImageLimits",
    "create_ome_zarr",
    "open_image",
    "open_ome_zarr_array",
    "read_axes",
    "stack_channels",
    "write_ome_tiff",
    "write_ome_zarr",
    "write_pyramid",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scopeml.io' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
