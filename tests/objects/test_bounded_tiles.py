"""Default tiles are bounded in voxels, and every tile and chunk is clipped to the image.

t1 finding F1: ``objects label`` on a 60×256×256 stack used 1024 per axis, so its scratch store
had one 1024³ ``uint64`` chunk (8 GiB) and the run was killed. The default now holds at most
the engine's default 3-D tile (128³ voxels); a given size is clipped to the image. The CLI runs
below are made under an address-space limit that 1024³ chunks cannot fit, and equal runs with
small explicit tiles or the whole stack at once.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from scipy import ndimage as ndi

from scopeml.io import open_image
from scopeml.objects import label_instances, label_instances_tiled
from scopeml.objects.label import TILE_EDGE, default_tile, tile_sizes
from scopeml.post.steps import PostStep, apply_steps
from scopeml.post.tiled import _chunks
from scopeml.tiling.engine import DEFAULT_TILE

BOUND = DEFAULT_TILE[3] ** 3  # voxels in one default tile, 2-D or 3-D
SHAPE = (40, 300, 300)
#: Address space a CLI run may map: the libraries take ~0.9 GB of it; one 1024³ chunk is 1-8 GiB.
ADDRESS_SPACE = 1_500_000_000


def semantic_stack(seed: int = 3) -> np.ndarray:
    """``SHAPE`` semantic labels: ellipsoids of class 1 (left) and 2 (right), with pin holes."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(SHAPE, bool)
    seeds[tuple(rng.integers(0, n, 150) for n in SHAPE)] = True
    zz, yy, xx = np.mgrid[-3:4, -6:7, -6:7]
    blobs = ndi.binary_dilation(seeds, (zz / 3) ** 2 + (yy / 6) ** 2 + (xx / 6) ** 2 <= 1)
    labels = blobs.astype(np.uint8)
    labels[blobs & (np.arange(SHAPE[2]) > 150)] = 2
    labels[::7, 50:250:9, 50:250:9] = 0
    return labels


def same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """Same foreground and a one-to-one map between the two labellings' ids."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel().astype(np.int64)
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@pytest.mark.parametrize(
    "shape",
    [(40, 300, 300), (60, 256, 256), (1024, 1024, 1024), (2, 5000, 5000), (7, 9, 100000),
     (1, 1, 1), (5000, 300), (300, 5000), (100000, 3), (3000, 3000)],
)  # fmt: skip
def test_default_tile_is_bounded_in_voxels_and_fits_the_image(shape):
    tiles = default_tile(shape)
    assert len(tiles) == len(shape)
    assert math.prod(tiles) <= BOUND
    assert all(1 <= t <= min(n, TILE_EDGE) for t, n in zip(tiles, shape, strict=True))
    # not needlessly small: a tile doubled along its shortest cut axis would break the bound,
    # or every axis is whole or at the longest edge
    cut = [d for d, (t, n) in enumerate(zip(tiles, shape, strict=True)) if t < min(n, TILE_EDGE)]
    if cut:
        d = min(cut, key=lambda d: tiles[d])
        assert math.prod(tiles) * min(2 * tiles[d], shape[d]) // tiles[d] > BOUND


def test_plane_and_volume_defaults():
    assert default_tile((5000, 5000)) == (1024, 1024)  # 2-D as before
    assert default_tile((500, 600, 700)) == (128, 128, 128)  # segment's 3-D tile
    assert default_tile((40, 300, 300)) == (40, 228, 228)  # a thin stack: its depth whole


def test_given_tiles_and_chunks_are_clipped_to_the_image():
    assert tile_sizes(1024, (60, 256, 256)) == (60, 256, 256)
    assert tile_sizes((2000, 8), (9, 9)) == (9, 8)
    # an input's chunks are taken only when they hold no more than a default tile
    assert tile_sizes(None, (60, 256, 256), (1024, 1024, 1024)) == default_tile((60, 256, 256))
    assert tile_sizes(None, (60, 256, 256), (1, 64, 64)) == (1, 64, 64)
    assert _chunks("TCZYX", (3, 2, *SHAPE), None) == [1, 1, *default_tile(SHAPE)]


def test_scratch_and_output_chunks_of_a_stack_in_one_chunk_stay_bounded(tmp_path):
    labels = semantic_stack()
    source = zarr.open_array(  # one chunk of 3.6 M voxels: more than a default tile
        str(tmp_path / "in.zarr"), mode="w", shape=SHAPE, chunks=SHAPE, dtype=np.uint8
    )
    source[...] = labels
    out = label_instances_tiled(source, tmp_path / "out.zarr", class_id=1, min_size=20)
    assert out.chunks == default_tile(SHAPE)
    assert same_objects(label_instances(labels, class_id=1, min_size=20), out[...])


def _run(*args: str, cwd) -> str:
    """``scopeml ARGS`` in a child whose address space is limited to :data:`ADDRESS_SPACE`."""

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    done = subprocess.run(
        [sys.executable, "-m", "scopeml", *args, "-q"],
        cwd=cwd, capture_output=True, text=True, preexec_fn=limit, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _read(path) -> np.ndarray:
    with open_image(path) as image:
        return image.read()[0, 0, 0]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_AS is POSIX")
def test_label_post_measure_a_stack_with_default_tiles_in_bounded_memory(tmp_path):
    labels = semantic_stack()
    tifffile.imwrite(tmp_path / "l.tif", labels, metadata={"axes": "ZYX"})

    # label: default tiles (was 1024³: 8 GiB) and small tiles that cut Z, Y and X give one result
    for name, extra in (("o.ome.zarr", ()), ("o32.ome.zarr", ("--tile-size", "32"))):
        said = _run("objects", "label", "l.tif", "-o", name, "--class", "1", "--min-size", "20",
                    *extra, cwd=tmp_path)  # fmt: skip
        assert said.startswith(f"{label_instances(labels, class_id=1, min_size=20).max()} objects")
    objects = _read(tmp_path / "o.ome.zarr")
    assert same_objects(objects, label_instances(labels, class_id=1, min_size=20))
    assert same_objects(objects, _read(tmp_path / "o32.ome.zarr"))
    chunks = zarr.open_array(str(tmp_path / "o.ome.zarr" / "0"), mode="r").chunks
    assert math.prod(chunks) <= BOUND

    # post: a whole-plane pass (fill holes) and a local one, equal to the whole stack at once
    steps = ["fill_holes", "remove_small:30"]
    _run("post", "l.tif", "-o", "p.ome.zarr", *(f"--step={step}" for step in steps), cwd=tmp_path)
    post = _read(tmp_path / "p.ome.zarr/labels")
    whole = apply_steps(labels, [PostStep.parse(step) for step in steps], background=None)
    assert np.count_nonzero(whole != labels) > 0  # the steps change something
    np.testing.assert_array_equal(post, whole)
    assert math.prod(zarr.open_array(str(tmp_path / "p.ome.zarr/labels/0")).chunks) <= BOUND

    # measure: the same rows whatever the tiles
    _run("objects", "measure", "o.ome.zarr", "-o", "t.csv", cwd=tmp_path)
    _run("objects", "measure", "o.ome.zarr", "-o", "t32.csv", "--tile-size", "32", cwd=tmp_path)
    table = pd.read_csv(tmp_path / "t.csv").sort_values("label", ignore_index=True)
    small = pd.read_csv(tmp_path / "t32.csv").sort_values("label", ignore_index=True)
    assert len(table) == objects.max()
    np.testing.assert_array_equal(table["area"], np.bincount(objects.ravel())[1:])
    pd.testing.assert_frame_equal(table, small[table.columns], check_exact=False, rtol=1e-6)
