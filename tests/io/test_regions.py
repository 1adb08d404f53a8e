"""The one region iterator: cores cover the array exactly once; a halo makes filters exact."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from scopeml.io.regions import core_region, iter_regions


@pytest.mark.parametrize(
    ("shape", "tile", "halo"),
    [((7,), 3, 0), ((10, 13), (4, 5), 2), ((3, 9, 8), 4, 1), ((2, 2), 8, 3), ((0, 4), 2, 0)],
)
def test_cores_cover_every_pixel_once(shape, tile, halo) -> None:
    count = np.zeros(shape, int)
    for read, core in iter_regions(shape, tile, halo):
        count[read][core] += 1
        assert all(0 <= s.start <= s.stop <= n for s, n in zip(read, shape, strict=True))
    assert (count == 1).all()


def test_halo_makes_a_local_filter_exact() -> None:
    image = np.random.default_rng(0).random((37, 41))
    whole = ndi.maximum_filter(image, 5, mode="reflect")
    out = np.empty_like(image)
    for read, core in iter_regions(image.shape, 8, 2):
        tile = ndi.maximum_filter(image[read], 5, mode="reflect")[core]
        out[core_region(read, core)] = tile
    np.testing.assert_array_equal(out, whole)


def test_bad_tiles_are_refused() -> None:
    with pytest.raises(ValueError, match="tile_shape"):
        list(iter_regions((4, 4), (0, 2)))
    with pytest.raises(ValueError, match="2 entries for 3 axes"):
        list(iter_regions((4, 4, 4), (2, 2)))
