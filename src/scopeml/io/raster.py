"""Small raster images (PNG, JPEG) via Pillow: gray → one channel, RGB → three.

These formats cannot be read by region, so the file is decoded whole; Pillow's decompression
bomb limit (about 179 megapixels) keeps an untrusted file from exhausting memory. Alpha is
dropped; palette images keep their indices (a label image saved as PNG stays a label image).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from scopeml.errors import InvalidImageError
from scopeml.io._view import AxesView
from scopeml.io.confine import Confinement
from scopeml.io.image import Image


def read_raster(
    path: str | Path,
    *,
    scene: int | None = None,
    level: int = 0,
    allowed_roots: Sequence[str | PathLike[str]] | None = None,
) -> Image:
    """Open a PNG or JPEG file as an :class:`Image` (decoded into memory, by its real path
    when confined to ``allowed_roots``: the file is read whole, once, here)."""
    from PIL import Image as PILImage

    path = str(path)
    confinement = Confinement.of(allowed_roots)
    real = confinement.check(path) if confinement is not None else path
    if level:
        raise InvalidImageError(f"level {level} does not exist; the image has 1", path=path)
    if scene not in (None, 0):
        raise InvalidImageError(f"scene {scene} does not exist; the image has 1 (0–0)", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(real) as pil:
                mode = pil.mode
                if mode in ("RGBA", "LA", "PA", "CMYK", "YCbCr", "HSV", "1"):
                    pil = pil.convert(
                        {"RGBA": "RGB", "LA": "L", "PA": "P", "1": "L"}.get(mode, "RGB")
                    )
                pixels = np.asarray(pil)
    except Exception as err:  # UnidentifiedImageError, OSError (truncated), bomb warnings
        raise InvalidImageError(f"not a readable PNG/JPEG file: {err}", path=path) from err
    axes = "YXC" if pixels.ndim == 3 else "YX"
    names = ["R", "G", "B"] if pixels.ndim == 3 and pixels.shape[2] == 3 else None
    return Image(AxesView(pixels, axes, path=path), channel_names=names, path=path)
