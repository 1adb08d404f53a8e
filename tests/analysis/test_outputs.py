"""The overview's outlines are scikit-image's inner boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from scopeml.analysis.outputs import outlines
from scopeml.objects.label import label_instances


@pytest.mark.parametrize("shape", [(1, 7), (40, 33), (6, 9, 11)])
@pytest.mark.parametrize("seed", [0, 1])
def test_outlines_equal_find_boundaries_inner(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = label_instances(rng.random(shape) > 0.5)
    labels[labels == 3] = 0  # objects next to background and touching each other
    touching = np.where(rng.random(shape) > 0.8, labels.max() + 1, labels)
    for case in (labels, touching):
        np.testing.assert_array_equal(outlines(case), find_boundaries(case, mode="inner"))
