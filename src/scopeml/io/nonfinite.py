"""The one rule for NaN and infinite pixels, shared by the tiling engine and the pixel classifier.

A pixel with a NaN or infinite value in any channel becomes 0 in every channel, and is reported
in a mask, so the callers give it no class (label 0, probability 0) while its neighbours'
filters and model inputs stay finite. The rule is per pixel, so tiles and blocks give the same
result as one piece. Callers: :func:`scopeml.tiling.kernel.mask_invalid` (float32 model input)
and :func:`scopeml.pixel._classifier.finite_pixels` (the pixels' own dtype).
"""

from __future__ import annotations

import numpy as np


def replace_nonfinite(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``C×…`` pixels with every pixel non-finite in any channel set to 0 in every channel,
    in the pixels' dtype, and the ``…`` mask of those pixels (``None``, and the pixels
    unchanged, when there are none; integers are always finite).

    Examples
    --------
    >>> block, invalid = replace_nonfinite(np.array([[1.0, np.nan], [2.0, 3.0]]))
    >>> block.tolist(), invalid.tolist(), block.dtype
    ([[1.0, 0.0], [2.0, 0.0]], [False, True], dtype('float64'))
    >>> replace_nonfinite(np.ones((1, 2), np.uint16))[1] is None
    True
    """
    if pixels.dtype.kind not in "fc":
        return pixels, None
    invalid = ~np.isfinite(pixels).all(axis=0)
    if not invalid.any():
        return pixels, None
    return np.where(invalid, pixels.dtype.type(0), pixels), invalid
