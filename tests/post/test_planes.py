"""The whole-plane hole filling of post-processing equals scipy's on the whole plane, out of
core and in memory, on a plane larger than one tile (tiles of 64 on 300×250, so holes cross
tile borders); the analysis runner uses this one implementation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from scopeml.post.morphology import fill_holes
from scopeml.post.planes import fill_holes_tiled, open_plane_store, plane_tiles

TILE = 64


def holey_mask(seed: int = 7, shape: tuple[int, int] = (300, 250)) -> np.ndarray:
    """Smooth random blobs (with their own holes) under one big object with a hole spanning
    tiles, an island in the hole, and a notch open to the border."""
    smooth = ndi.gaussian_filter(np.random.default_rng(seed).random(shape), 3)
    mask = smooth > np.quantile(smooth, 0.7)
    mask[50:200, 40:190] = True  # one big object across several tiles
    mask[60:180, 60:170] = False  # a hole spanning tiles
    mask[100:120, 100:120] = True  # an island in the hole (its surround is a hole too)
    mask[0:30, 0:30] = True
    mask[10:20, 0:10] = False  # a notch open to the border: not a hole
    return mask


@pytest.mark.parametrize("in_memory", [False, True])
def test_fill_holes_equals_the_whole_plane(tmp_path: Path, in_memory: bool) -> None:
    mask = holey_mask()
    out = fill_holes_tiled(mask, None if in_memory else tmp_path / "f.zarr", tile_size=TILE)
    assert isinstance(out, np.ndarray) == in_memory
    filled = np.asarray(out[...])
    np.testing.assert_array_equal(filled, fill_holes(mask))
    np.testing.assert_array_equal(filled, ndi.binary_fill_holes(mask))
    assert filled[70, 70] and not filled[15, 5] and filled.sum() > mask.sum()
    assert [p.name for p in tmp_path.iterdir()] == ([] if in_memory else ["f.zarr"])  # no scratch


def test_a_lazy_mask_is_read_tile_by_tile(tmp_path: Path) -> None:
    mask = holey_mask(seed=3)
    store = open_plane_store(tmp_path / "m.zarr", mask.shape, bool, TILE)
    for tile in plane_tiles(mask.shape, TILE):
        store[tile] = mask[tile]
    out = fill_holes_tiled(store, tmp_path / "f.zarr", tile_size=TILE)
    assert out.chunks == (TILE, TILE)
    np.testing.assert_array_equal(out[...], ndi.binary_fill_holes(mask))


def test_a_3d_volume_fills_holes_enclosed_in_3d(tmp_path: Path) -> None:
    volume = np.zeros((20, 40, 40), bool)
    volume[2:18, 5:35, 5:35] = True
    volume[5:15, 10:30, 10:30] = False  # a closed cavity: a hole in 3-D
    volume[8:12, 0:5, 15:20] = False  # a notch from the border: not a hole
    volume[8:12, 5:8, 15:20] = False  # (a dead end, apart from the cavity)
    out = fill_holes_tiled(volume, tmp_path / "f.zarr", tile_size=16)[...]
    np.testing.assert_array_equal(out, ndi.binary_fill_holes(volume))
    assert out[10, 20, 20] and not out[10, 6, 17]


def test_the_analysis_runner_uses_this_implementation() -> None:
    import scopeml.analysis.tiled as runner

    assert runner.fill_holes_tiled is fill_holes_tiled
