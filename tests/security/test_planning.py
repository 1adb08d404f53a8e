"""Tile planning in bounded memory, and tile geometry checked before any read (issue #18).

A plan is lazy: planning 10⁶ × 10⁶ (or 10¹² × 10¹²) pixels takes as little memory as planning
100 × 100, whatever the number of tiles. A halo or tile size that would make one tile read a
huge region (a container with ``MinOverlap`` 100000) is refused before any pixel is read, with
an error naming the model. Memory is measured with tracemalloc here and with the child's
``ru_maxrss`` for the command line, never time.
"""

from __future__ import annotations

import itertools
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scopeml.errors import InvalidRequestError
from scopeml.io import create_ome_zarr
from scopeml.model import ModelMetadata, ModelType, write_container
from scopeml.model.testing import tiny_unet_onnx
from scopeml.tiling.plan import MAX_TILE_ENV, plan_blend_tiles, plan_tiles
from tests.security.test_model_limits import assert_one_line_error, run_cli

TILE = {"Y": 512, "X": 512}


def traced_peak(call) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def plan_and_walk(side: int):
    """Plan a ``side × side`` image and touch its first, middle and last 100 tiles."""
    plan = plan_tiles({"T": 1, "Z": 1, "Y": side, "X": side}, tile_shape=TILE, halo={"Y": 32})
    n = len(plan)
    for start in (0, n // 2, max(n - 100, 0)):
        for tile in itertools.islice(plan.tiles[start : start + 100], 100):
            assert tile.core["X"][1] <= side
    return plan


def test_planning_memory_does_not_grow_with_the_number_of_tiles():
    small, small_peak = traced_peak(lambda: plan_and_walk(100))
    huge, huge_peak = traced_peak(lambda: plan_and_walk(10**6))
    assert len(small) == 1 and len(huge) == 1954**2
    assert huge_peak < 2 * small_peak + 256 * 2**10  # the same few kB, not gigabytes


def test_a_declared_10_12_square_image_plans_and_counts():
    plan, peak = traced_peak(
        lambda: plan_tiles({"Y": 10**12, "X": 10**12}, tile_shape=TILE, halo={"Y": 8, "X": 8})
    )
    assert len(plan) == (-(-(10**12) // 512)) ** 2
    last = plan.tiles[-1]
    assert last.index == len(plan) - 1
    edge = (10**12 - 512, 10**12)  # 10**12 is a multiple of 512
    assert last.core == {"Y": edge, "X": edge}
    assert peak < 256 * 2**10


def test_lazy_tiles_index_like_a_sequence():
    plan = plan_tiles({"T": 2, "Y": 100, "X": 70}, tile_shape={"Y": 32, "X": 32})
    listed = list(plan)
    assert [tile.index for tile in listed] == list(range(len(plan)))
    assert plan.tiles[-1] == listed[-1] and plan.tiles[2:5] == listed[2:5]
    with pytest.raises(IndexError):
        plan.tiles[len(plan)]


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(1, 10**9),
    tile=st.integers(1, 4096),
    halo=st.integers(0, 256),
    index=st.integers(0, 10**6),
)
def test_any_tile_of_a_huge_axis_is_computed_alone(size, tile, halo, index):
    plan = plan_tiles({"X": size}, tile_shape={"X": tile}, halo={"X": halo})
    tile = max(tile, size) if halo >= size else tile  # a halo past the image: one tile
    i = index % len(plan)
    got = plan.tiles[i]
    start = i * tile
    assert got.core == {"X": (start, min(start + tile, size))}
    assert got.read == {"X": (max(0, start - halo), min(size, start + tile + halo))}


@pytest.mark.parametrize(
    ("halo", "tile", "fixed"),
    [(100_000, 512, None), (0, 1_000_000, None), (0, 512, 20_000)],
    ids=["halo", "tile size", "fixed input"],
)
def test_a_tile_over_the_bound_is_refused_before_planning(halo, tile, fixed):
    sizes = {"Y": 10**6, "X": 10**6}
    fixed_input = {"Y": fixed, "X": fixed} if fixed else None
    with pytest.raises(InvalidRequestError, match="a tile would read") as caught:
        plan_tiles(
            sizes,
            tile_shape={"Y": tile, "X": tile},
            halo={"Y": halo, "X": halo},
            fixed_input=fixed_input,
        )
    assert MAX_TILE_ENV in str(caught.value)
    with pytest.raises(InvalidRequestError, match="model window"):
        plan_blend_tiles(sizes, window={"Y": 10**5, "X": 10**5}, overlap=sizes, block=sizes)


def test_the_bound_is_configurable(monkeypatch):
    sizes = {"Y": 5000, "X": 5000}
    monkeypatch.setenv(MAX_TILE_ENV, str(100 * 100))
    with pytest.raises(InvalidRequestError, match="at most 10000"):
        plan_tiles(sizes, tile_shape={"Y": 128, "X": 128})
    assert len(plan_tiles(sizes, tile_shape={"Y": 100, "X": 100})) == 2500
    # a halo larger than a small image only reads the image: no refusal
    assert len(plan_tiles({"Y": 50, "X": 50}, tile_shape={"Y": 32, "X": 32}, halo={"Y": 10**5}))


def test_a_halo_wider_than_the_image_plans_one_tile_along_it_not_one_whole_read_a_tile():
    # MinOverlap 100000 on a 2048² image: each 256² tile would run the model on all of it
    plan = plan_tiles({"Y": 2048, "X": 2048}, tile_shape={"Y": 256, "X": 256},
                      halo={"Y": 100_000, "X": 100_000})  # fmt: skip
    assert len(plan) == 1 and plan.tiles[0].read == {"Y": (0, 2048), "X": (0, 2048)}
    wide_on_y = plan_tiles({"Y": 300, "X": 2048}, tile_shape={"Y": 256, "X": 256},
                           halo={"Y": 400, "X": 16}, step={"Y": 8, "X": 8})  # fmt: skip
    assert (wide_on_y.tile_shape["Y"], wide_on_y.tile_shape["X"], len(wide_on_y)) == (304, 256, 8)


def test_segment_refuses_a_min_overlap_of_100000_naming_the_model(tmp_path):
    meta = ModelMetadata(
        model_type=ModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION,
        input_shape=(64, 64, 1),
        output_shape=(64, 64, 2),
        classes=("bg", "fg"),
        min_overlap=(100_000, 100_000),
    )
    model = write_container(tmp_path / "wide.czann", tiny_unet_onnx(), meta)
    image = tmp_path / "big.ome.zarr"  # 30000² declared, nothing written: reading it all is 900 MB
    create_ome_zarr(
        image, shape=(1, 30000, 30000), dtype=np.uint8, axes="CYX", chunks=(1, 512, 512)
    )
    out = tmp_path / "out.ome.zarr"
    code, stderr, peak = run_cli("segment", str(image), "-m", str(model), "-o", str(out), "-q")
    assert code == 2, stderr
    assert_one_line_error(stderr, model, "a tile would read")
    assert peak < 700 * 2**20  # refused before any pixel was read
    assert not out.exists()


_SEGMENT_AND_CANCEL = """
import sys
import numpy as np
from scopeml.api import segment
from scopeml.errors import Cancelled
from scopeml.io import create_ome_zarr
from scopeml.model import ModelMetadata, ModelType, write_container
from scopeml.model.testing import tiny_unet_onnx

folder, side = sys.argv[1], int(sys.argv[2])
meta = ModelMetadata(
    model_type=ModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION, input_shape=(64, 64, 1),
    output_shape=(64, 64, 2), classes=("bg", "fg"), min_overlap=(8, 8),
)
model = write_container(f"{folder}/m.czann", tiny_unet_onnx(), meta)
image = f"{folder}/img.ome.zarr"
create_ome_zarr(image, shape=(1, side, side), dtype=np.uint8, axes="CYX", chunks=(1, 512, 512))
seen = []

def cancel_after_first_batch(event):
    seen.append(event.total)
    if event.done:
        raise Cancelled("enough")

try:
    segment(image, model, f"{folder}/out.ome.zarr", workers=1, progress=cancel_after_first_batch)
except Cancelled:
    print("tiles", seen[0], file=sys.stderr)
"""


@pytest.mark.parametrize("side", [2048, 10**6])
def test_segment_starts_a_huge_plan_in_bounded_memory(tmp_path, side):
    """The engine streams the lazy plan into batches: a 10⁶ × 10⁶ image (3.8 million tiles)
    starts as lean as a 2048² one (each tile as a list entry would take gigabytes)."""
    from tests.security.test_model_limits import run_measured

    args = ["-c", _SEGMENT_AND_CANCEL, str(tmp_path), str(side)]
    code, stderr, peak = run_measured([sys.executable, *args])
    assert code == 0, stderr
    assert f"tiles {(-(-side // 512)) ** 2}" in stderr  # the whole plan counted, one batch run
    assert peak < 600 * 2**20, f"peak {peak / 2**20:.0f} MiB"
