"""Tile plans: pure N-d geometry, keyed by axis name, no pixels and no I/O.

A plan cuts the axes of an image into tiles. Each :class:`Tile` has a *core* (the region its
result is written to; cores cover the image exactly once and are the output chunks), a *read*
region (core plus halo, clipped to the image) and the *input shape* the model sees (the read
region padded at the far end only, to a multiple of the model's step or to its fixed size).
For a fixed input size the read region is a window of that size, shifted back from the far
edge so that it ends where a whole-image run's step-padded image ends (equal boundaries).

Axes named in ``tile_shape`` are tiled; every other axis iterates one index at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from scopeml.errors import IncompatibleModelError, InvalidRequestError

Region = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Tile:
    """One unit of work.

    Attributes
    ----------
    index
        Position in the plan; names the tile's done record.
    core
        ``{axis: (start, stop)}`` written by this tile, in image coordinates.
    read
        ``{axis: (start, stop)}`` read from the image (core plus halo, clipped).
    input_shape
        ``{axis: size}`` of the model input along the tiled axes; ``>=`` the read size, the
        difference is zero padding at the far end.
    windows
        Blending mode only: the model windows (``{axis: (start, stop)}``, image coordinates)
        whose weighted predictions are fused into this tile's core; empty in exact mode.
    """

    index: int
    core: Region
    read: Region
    input_shape: dict[str, int]
    windows: tuple[Region, ...] = ()

    @property
    def core_offset(self) -> dict[str, int]:
        """Where the core starts inside the read region, per axis."""
        return {axis: self.core[axis][0] - self.read[axis][0] for axis in self.core}

    def core_slices(self) -> dict[str, slice]:
        return {axis: slice(*bounds) for axis, bounds in self.core.items()}

    def read_slices(self) -> dict[str, slice]:
        return {axis: slice(*bounds) for axis, bounds in self.read.items()}


@dataclass(frozen=True)
class TilePlan:
    """A list of tiles plus the geometry they were cut with."""

    sizes: dict[str, int]
    tile_shape: dict[str, int]
    halo: dict[str, int]
    step: dict[str, int]
    tiles: tuple[Tile, ...]

    @property
    def chunks(self) -> dict[str, int]:
        """Output chunk size per axis: the core size (1 along iterated axes)."""
        return {axis: self.tile_shape.get(axis, 1) for axis in self.sizes}

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)


def plan_tiles(
    sizes: Mapping[str, int],
    *,
    tile_shape: Mapping[str, int],
    halo: Mapping[str, int] | None = None,
    step: Mapping[str, int] | None = None,
    fixed_input: Mapping[str, int] | None = None,
) -> TilePlan:
    """Cut an image into tiles for exact (halo-cropping) inference.

    Parameters
    ----------
    sizes
        Size of every axis to cover, e.g. ``{"T": 3, "Z": 5, "Y": 9000, "X": 7000}``.
    tile_shape
        Core size along each tiled axis; rounded up to a multiple of ``step``. Ignored where
        ``fixed_input`` is given (the core is then ``fixed_input - 2 * halo``, rounded down to
        the step).
    halo
        Context on each side of the core, per tiled axis; rounded up to a multiple of ``step``
        so every read starts on the step grid (needed for pooling models to be exact).
    step
        The model's stride: core offsets and input sizes are multiples of it.
    fixed_input
        The model's fixed input size along the tiled axes, if it has one.

    Examples
    --------
    >>> plan = plan_tiles({"Y": 100, "X": 70}, tile_shape={"Y": 64, "X": 64}, halo={"Y": 8, "X": 8})
    >>> [(t.core["Y"], t.core["X"]) for t in plan]
    [((0, 64), (0, 64)), ((0, 64), (64, 70)), ((64, 100), (0, 64)), ((64, 100), (64, 70))]
    >>> plan.tiles[3].read, plan.tiles[3].core_offset
    ({'Y': (56, 100), 'X': (56, 70)}, {'Y': 8, 'X': 8})
    """
    tiled = list(tile_shape) if fixed_input is None else list(fixed_input)
    unknown = set(tiled) - set(sizes)
    if unknown:
        raise InvalidRequestError(f"tiled axes {sorted(unknown)} are not image axes {list(sizes)}")
    step = {axis: int((step or {}).get(axis, 1)) for axis in tiled}
    halo = {axis: _round_up(int((halo or {}).get(axis, 0)), step[axis]) for axis in tiled}
    if any(v < 1 for v in step.values()) or any(v < 0 for v in halo.values()):
        raise InvalidRequestError(f"step must be >= 1 and halo >= 0; got {step}, {halo}")
    core = {}
    for axis in tiled:
        if fixed_input is not None:
            size = (int(fixed_input[axis]) - 2 * halo[axis]) // step[axis] * step[axis]
            if size < step[axis]:
                raise IncompatibleModelError(
                    f"model input size {fixed_input[axis]} along {axis} leaves no core "
                    f"around a halo of {halo[axis]} on each side"
                )
        else:
            size = _round_up(int(tile_shape[axis]), step[axis])
            if size < 1:
                raise InvalidRequestError(f"tile size along {axis} must be >= 1; got {size}")
        core[axis] = size
    per_axis = []
    for axis, n in sizes.items():
        if axis not in core:
            per_axis.append([(i, i + 1, i, i + 1, 1) for i in range(n)])
            continue
        spans = []
        for start in range(0, n, core[axis]):
            stop = min(start + core[axis], n)
            lo, hi = max(0, start - halo[axis]), min(n, stop + halo[axis])
            size = _round_up(hi - lo, step[axis])
            if fixed_input:  # a window of the fixed size, inside the step-padded image if it fits
                size = int(fixed_input[axis])
                last = (_round_up(n, step[axis]) - size) // step[axis] * step[axis]
                lo = max(0, min(lo, last))
                hi = min(n, lo + size)
            spans.append((start, stop, lo, hi, int(size)))
        per_axis.append(spans)
    axes = list(sizes)
    tiles = []
    for index, combo in enumerate(itertools.product(*per_axis)):
        tiles.append(
            Tile(
                index=index,
                core={a: (c[0], c[1]) for a, c in zip(axes, combo, strict=True)},
                read={a: (c[2], c[3]) for a, c in zip(axes, combo, strict=True)},
                input_shape={a: c[4] for a, c in zip(axes, combo, strict=True) if a in core},
            )
        )
    return TilePlan(dict(sizes), core, halo, step, tuple(tiles))


def plan_blend_tiles(
    sizes: Mapping[str, int],
    *,
    window: Mapping[str, int],
    overlap: Mapping[str, int],
    block: Mapping[str, int],
    step: Mapping[str, int] | None = None,
    fixed_input: bool = False,
) -> TilePlan:
    """Cut an image into blocks fused from overlapping, Gaussian-weighted model windows.

    Windows lie on one global grid (offsets ``0, s, 2s, …`` with ``s = window - overlap``; the
    last one clipped to the image), so the fused value of a pixel does not depend on the block
    it falls in: a blocked run equals a whole-image blended run. A block's read region is the
    union of the windows that touch its core; windows straddling two blocks are computed twice.

    Examples
    --------
    >>> plan = plan_blend_tiles({"X": 100}, window={"X": 40}, overlap={"X": 8}, block={"X": 64})
    >>> [(t.core["X"], len(t.windows)) for t in plan]
    [((0, 64), 2), ((64, 100), 2)]
    """
    step = {axis: int((step or {}).get(axis, 1)) for axis in window}
    grids: dict[str, list[tuple[int, int]]] = {}
    core: dict[str, int] = {}
    for axis, w in window.items():
        w = _round_up(int(w), step[axis])
        stride = _round_up(max(w - int(overlap[axis]), 1), step[axis])
        if stride > w:
            stride = w
        n = sizes[axis]
        starts = range(0, max(n - w, 0) + stride, stride) if n > w else [0]
        grids[axis] = [(s, min(s + w, n)) for s in starts if s < n]
        if grids[axis][-1][1] < n:  # guard: the grid must reach the end
            grids[axis].append((grids[axis][-1][0] + stride, n))
        core[axis] = _round_up(int(block[axis]), step[axis])
    per_axis = []
    for axis, n in sizes.items():
        if axis not in core:
            per_axis.append([(i, i + 1, [(i, i + 1)]) for i in range(n)])
            continue
        spans = []
        for start in range(0, n, core[axis]):
            stop = min(start + core[axis], n)
            touching = [w for w in grids[axis] if w[0] < stop and w[1] > start]
            spans.append((start, stop, touching))
        per_axis.append(spans)
    axes = list(sizes)
    tiles = []
    for index, combo in enumerate(itertools.product(*per_axis)):
        window_axes = [c[2] for c in combo]
        windows = tuple(
            {a: w for a, w in zip(axes, choice, strict=True)}
            for choice in itertools.product(*window_axes)
        )
        read = {a: (min(w[a][0] for w in windows), max(w[a][1] for w in windows)) for a in axes}
        input_shape = {
            a: (int(window[a]) if fixed_input else _round_up(read[a][1] - read[a][0], step[a]))
            for a in core
        }
        tiles.append(
            Tile(
                index=index,
                core={a: (c[0], c[1]) for a, c in zip(axes, combo, strict=True)},
                read=read,
                input_shape=input_shape,
                windows=windows,
            )
        )
    halo = {axis: int(overlap[axis]) for axis in window}
    return TilePlan(dict(sizes), core, halo, step, tuple(tiles))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple if multiple > 1 else value
