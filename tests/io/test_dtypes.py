"""One ``label_dtype`` for every layer: the engine's outputs and the pixel classifier's labels."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.io.dtypes import label_dtype
from scopeml.pixel._sources import check_labels
from scopeml.tiling import outputs


@pytest.mark.parametrize(
    ("top", "dtype"),
    [(0, np.uint8), (255, np.uint8), (256, np.uint16), (65535, np.uint16), (65536, np.uint32)],
)
def test_label_dtype_is_the_smallest_that_holds_top(top: int, dtype: type) -> None:
    assert label_dtype(top) == np.dtype(dtype)
    assert np.array([top], dtype=label_dtype(top))[0] == top


def test_engine_and_pixel_classifier_share_the_one_home() -> None:
    assert outputs.label_dtype is label_dtype
    labels = np.zeros((4, 4), np.int64)
    labels[0, 0] = 300
    assert check_labels(labels, (4, 4), max_classes=1000).dtype == np.uint16
    labels[0, 0] = 3
    assert check_labels(labels, (4, 4)).dtype == np.uint8
