"""Invariants of tile plans: cores cover the image once, on the step, chunk-aligned."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scopeml.errors import IncompatibleModelError
from scopeml.tiling.plan import plan_blend_tiles, plan_tiles


def coverage(plan, sizes):
    counts = np.zeros([sizes[a] for a in sizes], np.int32)
    for tile in plan:
        counts[tuple(slice(*tile.core[a]) for a in sizes)] += 1
    return counts


axis_case = st.tuples(
    st.integers(1, 100),  # size
    st.integers(1, 80),  # tile
    st.integers(0, 20),  # halo
    st.sampled_from([1, 2, 4, 8]),  # step
)


@settings(max_examples=100, deadline=None)
@given(cases=st.lists(axis_case, min_size=1, max_size=3), t=st.integers(1, 3))
def test_exact_plan_invariants(cases, t):
    axes = "ZYX"[-len(cases) :]
    sizes = {"T": t, **{a: c[0] for a, c in zip(axes, cases, strict=True)}}
    tile = {a: c[1] for a, c in zip(axes, cases, strict=True)}
    halo = {a: c[2] for a, c in zip(axes, cases, strict=True)}
    step = {a: c[3] for a, c in zip(axes, cases, strict=True)}
    plan = plan_tiles(sizes, tile_shape=tile, halo=halo, step=step)
    assert np.all(coverage(plan, sizes) == 1)  # cores cover the image exactly once
    chunks = plan.chunks
    for tile_ in plan:
        assert tile_.core["T"][1] - tile_.core["T"][0] == 1  # T iterates
        for a in axes:
            (c0, c1), (r0, r1) = tile_.core[a], tile_.read[a]
            assert c0 % step[a] == 0 and c0 % chunks[a] == 0  # on the step, chunk-aligned
            assert chunks[a] % step[a] == 0
            assert c1 - c0 == chunks[a] or c1 == sizes[a]  # only the last core is short
            assert r0 % step[a] == 0  # reads start on the step grid (pooling stays aligned)
            assert r0 == max(0, c0 - plan.halo[a]) and r1 == min(sizes[a], c1 + plan.halo[a])
            assert plan.halo[a] >= halo[a]
            size = tile_.input_shape[a]
            assert size % step[a] == 0 and 0 <= size - (r1 - r0) < step[a]  # far-end pad only
            assert tile_.core_offset[a] == c0 - r0


@settings(max_examples=50, deadline=None)
@given(size=st.integers(1, 400), fixed=st.sampled_from([32, 48, 64]), halo=st.integers(0, 12))
def test_fixed_input_plan_reads_windows_of_that_size(size, fixed, halo):
    plan = plan_tiles(
        {"X": size}, tile_shape={}, halo={"X": halo}, step={"X": 4}, fixed_input={"X": fixed}
    )
    assert np.all(coverage(plan, {"X": size}) == 1)
    for tile in plan:
        (c0, c1), (r0, r1) = tile.core["X"], tile.read["X"]
        assert tile.input_shape["X"] == fixed
        assert r0 <= max(0, c0 - plan.halo["X"]) and r1 >= min(size, c1 + plan.halo["X"])
        assert r1 - r0 <= fixed and r0 % 4 == 0


def test_fixed_input_too_small_for_halo():
    with pytest.raises(IncompatibleModelError, match="leaves no core"):
        plan_tiles({"X": 100}, tile_shape={}, halo={"X": 16}, fixed_input={"X": 32})


def test_image_smaller_than_a_tile():
    plan = plan_tiles(
        {"Y": 5, "X": 3},
        tile_shape={"Y": 64, "X": 64},
        halo={"Y": 8, "X": 8},
        step={"Y": 4, "X": 4},
    )
    (tile,) = plan.tiles
    assert tile.core == tile.read == {"Y": (0, 5), "X": (0, 3)}
    assert tile.input_shape == {"Y": 8, "X": 4}


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(1, 300),
    window=st.integers(8, 64),
    block=st.integers(8, 100),
    frac=st.floats(0.0, 0.6),
)
def test_blend_plan_invariants(size, window, block, frac):
    overlap = int(window * frac)
    plan = plan_blend_tiles(
        {"T": 2, "X": size},
        window={"X": window},
        overlap={"X": overlap},
        block={"X": block},
        step={"X": 4},
    )
    assert np.all(coverage(plan, {"T": 2, "X": size}) == 1)
    for tile in plan:
        covered = np.zeros(size, bool)
        for w in tile.windows:
            assert w["X"][0] % 4 == 0 and w["X"][1] <= size
            assert tile.read["X"][0] <= w["X"][0] and w["X"][1] <= tile.read["X"][1]
            covered[slice(*w["X"])] = True
        assert covered[slice(*tile.core["X"])].all()  # windows cover the core


@settings(max_examples=50, deadline=None)
@given(
    cases=st.lists(axis_case, min_size=1, max_size=3),
    t=st.integers(1, 3),
    blend=st.booleans(),
    picks=st.lists(st.integers(-50, 50), min_size=1, max_size=5),
)
def test_lazy_tiles_are_a_sequence(cases, t, blend, picks):
    """Random access, negative indices and slices give the tiles iteration gives."""
    axes = "ZYX"[-len(cases) :]
    sizes = {"T": t, **{a: c[0] for a, c in zip(axes, cases, strict=True)}}
    step = {a: c[3] for a, c in zip(axes, cases, strict=True)}
    if blend:
        window = {a: max(c[1], 8) for a, c in zip(axes, cases, strict=True)}
        overlap = {a: min(c[2], window[a] // 2) for a, c in zip(axes, cases, strict=True)}
        plan = plan_blend_tiles(sizes, window=window, overlap=overlap, block=window, step=step)
    else:
        tile = {a: c[1] for a, c in zip(axes, cases, strict=True)}
        halo = {a: c[2] for a, c in zip(axes, cases, strict=True)}
        plan = plan_tiles(sizes, tile_shape=tile, halo=halo, step=step)
    listed = list(plan)
    assert len(plan) == len(listed) == len(plan.tiles)
    assert [tile.index for tile in listed] == list(range(len(listed)))
    for pick in picks:
        if -len(listed) <= pick < len(listed):
            assert plan.tiles[pick] == listed[pick]
        else:
            with pytest.raises(IndexError):
                plan.tiles[pick]
        assert plan.tiles[pick::3] == listed[pick::3]
