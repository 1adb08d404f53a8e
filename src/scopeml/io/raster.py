"""Small raster images (PNG, JPEG) via Pillow: gray → one channel, RGB → three.

These formats cannot be read by region, so the file is decoded whole; Pillow's decompression
bomb warning (about 89 megapixels, raised here as an error) and the chunk limit of
:mod:`scopeml.io.limits`, checked from the header before Pillow allocates the image, keep an
untrusted file from exhausting memory. Alpha is
dropped; palette images keep their indices (a label image saved as PNG stays a label image).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError
from scopeml.io._view import AxesView
from scopeml.io.confine import Confinement
from scopeml.io.image import Image
from scopeml.io.limits import ImageLimits, default_limits


def read_raster(
    path: str | Path,
    *,
    scene: int | None = None,
    level: int = 0,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
    limits: ImageLimits | None = None,
) -> Image:
    """Open a PNG or JPEG file as an :class:`Image` (decoded into memory, by its real path
    when confined to ``allowed_roots``: the file is read whole, once, here).

    The whole image is one chunk: its decoded size, read from the header before decoding,
    is held to ``limits`` (chunk bytes, and compression ratio against the file's size).
    """
    from PIL import Image as PILImage

    path = str(path)
    confinement = Confinement.of(allowed_roots)
    real = confinement.check(path) if confinement is not None else path
    limits = default_limits() if limits is None else limits
    if level:
        raise InvalidImageError(f"level {level} does not exist; the image has 1", path=path)
    if scene not in (None, 0):
        raise InvalidImageError(f"scene {scene} does not exist; the image has 1 (0–0)", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(real) as pil:
                mode = pil.mode
                _check_declared(pil, path, limits)
                if mode in ("RGBA", "LA", "PA", "CMYK", "YCbCr", "HSV", "1"):
                    pil = pil.convert(
                        {"RGBA": "RGB", "LA": "L", "PA": "P", "1": "L"}.get(mode, "RGB")
                    )
                pixels = np.asarray(pil)
    except InvalidImageError:
        raise
    except Exception as err:  # UnidentifiedImageError, OSError (truncated), bomb warnings
        raise InvalidImageError(f"not a readable PNG/JPEG file: {err}", path=path) from err
    axes = "YXC" if pixels.ndim == 3 else "YX"
    names = ["R", "G", "B"] if pixels.ndim == 3 and pixels.shape[2] == 3 else None
    return Image(AxesView(pixels, axes, path=path), channel_names=names, path=path)


_MODE_ITEMSIZE = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4}


def _check_declared(pil: Any, path: str, limits: ImageLimits) -> None:
    """Refuse a header whose decoded image exceeds the chunk limit or the compression ratio:
    Pillow allocates the whole image before it decodes a byte of it."""
    width, height = pil.size
    bands = len(pil.getbands())
    itemsize = _MODE_ITEMSIZE.get(pil.mode, 1)
    limits.check_chunk((height, width, bands), itemsize, what="a PNG/JPEG image", path=path)
    declared = width * height * bands * itemsize
    file_bytes = os.path.getsize(pil.filename) if getattr(pil, "filename", "") else 0
    if file_bytes and declared > limits.max_compression_ratio * file_bytes:
        raise InvalidImageError(
            f"the image declares {declared} bytes of pixels in {file_bytes} bytes of file, "
            f"more than {limits.max_compression_ratio:g} times as many",
            path=path,
        )
