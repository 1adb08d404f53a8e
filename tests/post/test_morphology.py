"""Binary post-processing per class and watershed splitting of touching objects."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidRequestError
from scopeml.objects import label_instances
from scopeml.post import (
    binary_close,
    binary_open,
    clean_classes,
    fill_holes,
    remove_small_objects,
    split_touching,
)
from scopeml.synthetic import synthetic_nuclei


def _disks(centres, radius, shape=(40, 60)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.any([(yy - y) ** 2 + (xx - x) ** 2 <= radius**2 for y, x in centres], axis=0)


def test_split_touching_separates_two_disks():
    mask = _disks([(20, 18), (20, 33)], 8)  # overlap: one connected component
    assert label_instances(mask).max() == 1
    split = split_touching(mask, min_distance=5)
    assert split.max() == 2
    np.testing.assert_array_equal(split > 0, mask)
    assert split[20, 18] != split[20, 33]
    # h-maxima seeds do the same, and a lone small blob without a seed keeps a label
    assert split_touching(mask, h=1.0).max() == 2


def test_a_flat_object_is_one_seed_not_a_grid_of_them():
    """A nucleus five planes deep and 60 px wide: its distance to the background is flat over
    most of its middle plane; local maxima ``min_distance`` apart would cut it into a grid."""
    stack = np.zeros((7, 80, 80), bool)
    stack[1:6] = _disks([(40, 40)], 28, shape=(80, 80))
    for min_distance in (3, 5, 10):
        assert split_touching(stack, min_distance=min_distance).max() == 1
    zz, yy, xx = np.mgrid[:24, :40, :60]
    balls = ((zz - 12) ** 2 + (yy - 20) ** 2 + (xx - 18) ** 2 <= 64) | (
        (zz - 12) ** 2 + (yy - 20) ** 2 + (xx - 33) ** 2 <= 64
    )
    assert split_touching(balls, min_distance=5).max() == 2  # touching balls: still two


def test_split_touching_recovers_synthetic_nuclei_counts():
    _, truth = synthetic_nuclei((256, 256), density=0.002, cluster_fraction=0.6, seed=3)
    mask = truth > 0
    merged = label_instances(mask).max()
    split = split_touching(mask, min_distance=4, h=1.5)
    # components merge touching nuclei; the watershed gets closer to the true count
    assert abs(split.max() - truth.max()) < abs(merged - truth.max())


def test_fill_remove_open_close():
    ring = _disks([(20, 20)], 10) & ~_disks([(20, 20)], 4)
    assert fill_holes(ring).sum() == _disks([(20, 20)], 10).sum()
    specks = np.zeros((10, 10), bool)
    specks[1, 1] = specks[5:8, 5:8] = True
    assert remove_small_objects(specks, 4).sum() == 9
    gap = _disks([(20, 15)], 6) | _disks([(20, 28)], 6)  # 1-pixel gap between them
    assert label_instances(binary_close(gap, 2)).max() == 1
    spur = _disks([(20, 20)], 8)
    spur[20, 28:40] = True
    assert binary_open(spur, 1)[20, 35] == 0 and binary_open(spur, 1)[20, 20]


def test_clean_classes_per_class():
    semantic = np.zeros((30, 30), np.uint8)
    semantic[2:12, 2:12] = 1
    semantic[6, 6] = 0  # a hole in class 1
    semantic[20, 20] = 2  # a speck of class 2
    semantic[15:25, 2:12] = 2
    out = clean_classes(semantic, fill=True, min_size=5)
    assert out[6, 6] == 1 and out[20, 20] == 0 and (out == 2).sum() == 100
    only_2 = clean_classes(semantic, classes=[2], fill=True, min_size=5)
    assert only_2[6, 6] == 0  # class 1 untouched
    with pytest.raises(InvalidRequestError):
        clean_classes(semantic, min_size=-1)
