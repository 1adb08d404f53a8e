"""The one rule for the dtype of a label array, shared by every layer that writes labels.

Labels are 0 = unlabelled or background and 1 … n = class or object id; the array takes the
smallest unsigned integer type that holds ``n``, so a 2-class map costs one byte per pixel.
"""

from __future__ import annotations

import numpy as np


def label_dtype(n_classes: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds labels ``0 … n_classes``.

    Examples
    --------
    >>> label_dtype(2), label_dtype(255), label_dtype(256)
    (dtype('uint8'), dtype('uint8'), dtype('uint16'))
    """
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n_classes <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)
