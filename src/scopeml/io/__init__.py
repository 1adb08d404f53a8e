"""Files ↔ lazy 6-D images with metadata (CZI, OME-TIFF, OME-Zarr, plain TIFF/PNG)."""

from scopeml.io.image import AXES, Image

__all__ = ["AXES", "Image"]
