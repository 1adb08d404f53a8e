"""Tile plans: pure N-d geometry, keyed by axis name, no pixels and no I/O.

A plan cuts the axes of an image into tiles. Each :class:`Tile` has a *core* (the region its
result is written to; cores cover the image exactly once and are the output chunks), a *read*
region (core plus halo, clipped to the image) and the *input shape* the model sees (the read
region padded at the far end only, to a multiple of the model's step or to its fixed size).
For a fixed input size the read region is a window of that size, shifted back from the far
edge so that it ends where a whole-image run's step-padded image ends (equal boundaries).

Axes named in ``tile_shape`` are tiled; every other axis iterates one index at a time.

Plans are lazy: a tile is computed from its index when it is asked for, so a plan of 10**6 ×
10**6 pixels costs as little memory as one of 100 × 100, and ``len(plan)`` is a product of
per-axis counts. Before a plan is made, the region one tile reads is checked against a bound
(:data:`MAX_TILE_ELEMENTS`), so a huge halo or tile size is refused before any pixel is read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from scopeml.errors import IncompatibleModelError, InvalidRequestError

#: Environment variable overriding :data:`MAX_TILE_ELEMENTS`.
MAX_TILE_ENV = "SCOPEML_MAX_TILE_ELEMENTS"
#: Most elements (per channel, along the tiled axes) one tile may read or feed the model:
#: 2**26 is an 8192² plane, 256 MiB as float32. Sizes come from the model (halo, fixed input)
#: and the options (tile size), so a container with ``MinOverlap`` 100000 stops here.
MAX_TILE_ELEMENTS = 2**26

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


class _Spans:
    """The spans of one axis, computed on demand: ``(core start, core stop, read start, read
    stop, input size, windows)`` for span ``i``."""

    def __init__(self, count: int, span: Callable[[int], tuple[Any, ...]]) -> None:
        self.count = count
        self.span = span


class TileSequence(Sequence[Tile]):
    """The tiles of a plan, in plan order, each built from its index when asked for.

    Order: the last axis varies fastest (as :func:`itertools.product`); ``tiles[i].index == i``.
    """

    def __init__(
        self, axes: Sequence[str], spans: Sequence[_Spans], build: Callable[..., Tile]
    ) -> None:
        self._axes = tuple(axes)
        self._spans = tuple(spans)
        self._build = build
        self._len = math.prod(span.count for span in self._spans)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Tile: ...

    @overload
    def __getitem__(self, index: slice) -> list[Tile]: ...

    def __getitem__(self, index: int | slice) -> Tile | list[Tile]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"tile {index} of a plan of {self._len}")
        picks = []
        rest = index
        for span in reversed(self._spans):
            rest, position = divmod(rest, span.count)
            picks.append(span.span(position))
        return self._build(index, dict(zip(self._axes, reversed(picks), strict=True)))

    def __iter__(self) -> Iterator[Tile]:
        for index in range(self._len):
            yield self[index]

    def __repr__(self) -> str:
        return f"TileSequence({self._len} tiles over {''.join(self._axes)})"


@dataclass(frozen=True)
class TilePlan:
    """A lazy sequence of tiles plus the geometry they were cut with."""

    sizes: dict[str, int]
    tile_shape: dict[str, int]
    halo: dict[str, int]
    step: dict[str, int]
    tiles: Sequence[Tile]

    @property
    def chunks(self) -> dict[str, int]:
        """Output chunk size per axis: the core size (1 along iterated axes)."""
        return {axis: self.tile_shape.get(axis, 1) for axis in self.sizes}

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)


def max_tile_elements(limit: int | None = None) -> int:
    """The bound on one tile's elements: ``limit``, else ``$SCOPEML_MAX_TILE_ELEMENTS``, else
    :data:`MAX_TILE_ELEMENTS`.

    Examples
    --------
    >>> max_tile_elements(1000)
    1000
    """
    if limit is None:
        text = os.environ.get(MAX_TILE_ENV, "").strip()
        if not text:
            return MAX_TILE_ELEMENTS
        try:
            limit = int(float(text))
        except ValueError as err:
            raise InvalidRequestError(f"{MAX_TILE_ENV} must be a count, got {text!r}") from err
    if limit < 1:
        raise InvalidRequestError(f"the tile element bound must be >= 1, got {limit}")
    return int(limit)


def check_tile_bound(read: Mapping[str, int], what: str, limit: int | None = None) -> None:
    """Refuse a tile whose read region (``{axis: size}``) is over the element bound.

    Examples
    --------
    >>> check_tile_bound({"Y": 200_512, "X": 200_512}, "halo 100000", limit=2**26)
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: a tile would read 200512×200512 pixels (halo 100000); ...
    """
    bound = max_tile_elements(limit)
    total = math.prod(read.values())
    if total > bound:
        shape = "×".join(str(size) for size in read.values())
        raise InvalidRequestError(
            f"a tile would read {shape} pixels ({what}); at most {bound} are allowed "
            f"({MAX_TILE_ENV})"
        )


def _iterated(n: int) -> _Spans:
    return _Spans(n, lambda i: (i, i + 1, i, i + 1, 1, ((i, i + 1),)))


def plan_tiles(
    sizes: Mapping[str, int],
    *,
    tile_shape: Mapping[str, int],
    halo: Mapping[str, int] | None = None,
    step: Mapping[str, int] | None = None,
    fixed_input: Mapping[str, int] | None = None,
    max_elements: int | None = None,
) -> TilePlan:
    """Cut an image into tiles for exact (halo-cropping) inference.

    Parameters
    ----------
    sizes
        Size of every axis to cover, e.g. ``{"T": 3, "Z": 5, "Y": 9000, "X": 7000}``.
    tile_shape
        Core size along each tiled axis; rounded up to a multiple of ``step``, and widened to
        the whole axis where the halo reaches past it (each tile would read all of it).
        Ignored where ``fixed_input`` is given (the core is then ``fixed_input - 2 * halo``,
        rounded down to the step).
    halo
        Context on each side of the core, per tiled axis; rounded up to a multiple of ``step``
        so every read starts on the step grid (needed for pooling models to be exact).
    step
        The model's stride: core offsets and input sizes are multiples of it.
    fixed_input
        The model's fixed input size along the tiled axes, if it has one.
    max_elements
        Bound on the elements one tile reads (see :func:`max_tile_elements`).

    Returns
    -------
    TilePlan
        Its tiles are computed on demand: memory does not grow with the number of tiles.

    Raises
    ------
    InvalidRequestError
        Unknown axes, a bad step/halo/tile size, or a tile whose read region (core plus twice
        the halo, or the fixed input) is over the element bound.

    Examples
    --------
    >>> plan = plan_tiles({"Y": 100, "X": 70}, tile_shape={"Y": 64, "X": 64}, halo={"Y": 8, "X": 8})
    >>> [(t.core["Y"], t.core["X"]) for t in plan]
    [((0, 64), (0, 64)), ((0, 64), (64, 70)), ((64, 100), (0, 64)), ((64, 100), (64, 70))]
    >>> plan.tiles[3].read, plan.tiles[3].core_offset
    ({'Y': (56, 100), 'X': (56, 70)}, {'Y': 8, 'X': 8})
    >>> len(plan_tiles({"Y": 10**6, "X": 10**6}, tile_shape={"Y": 512, "X": 512}))
    3818116
    """
    tiled = list(tile_shape) if fixed_input is None else list(fixed_input)
    unknown = set(tiled) - set(sizes)
    if unknown:
        raise InvalidRequestError(f"tiled axes {sorted(unknown)} are not image axes {list(sizes)}")
    step = {axis: int((step or {}).get(axis, 1)) for axis in tiled}
    halo_given = halo
    halo = {axis: _round_up(int((halo or {}).get(axis, 0)), step[axis]) for axis in tiled}
    if any(v < 1 for v in step.values()) or any(v < 0 for v in halo.values()):
        raise InvalidRequestError(f"step must be >= 1 and halo >= 0; got {step}, {halo}")
    core = {}
    for axis in tiled:
        if fixed_input is not None:
            size = (int(fixed_input[axis]) - 2 * halo[axis]) // step[axis] * step[axis]
            if size < step[axis]:
                given = int((halo_given or {}).get(axis, 0))
                rounded = f" ({given} rounded up to the step {step[axis]})" * (given != halo[axis])
                raise IncompatibleModelError(
                    f"model input size {fixed_input[axis]} along {axis} leaves no core "
                    f"around a halo of {halo[axis]}{rounded} on each side"
                )
        else:
            size = _round_up(int(tile_shape[axis]), step[axis])
            if size < 1:
                raise InvalidRequestError(f"tile size along {axis} must be >= 1; got {size}")
            whole = _round_up(int(sizes[axis]), step[axis])
            if halo[axis] >= whole:  # every tile would read the whole axis: one reads it once
                size = max(size, whole)
        core[axis] = size
    sizes_ = {axis: int(n) for axis, n in sizes.items()}
    if fixed_input:
        reads = {axis: int(fixed_input[axis]) for axis in tiled}
    else:  # core plus halo on both sides, clipped to the (step-padded) image
        reads = {
            axis: min(core[axis] + 2 * halo[axis], _round_up(sizes_[axis], step[axis]))
            for axis in tiled
        }
    what = "fixed model input" if fixed_input else _describe(core, halo)
    if not fixed_input and any(reads[a] < core[a] + 2 * halo[a] for a in tiled):
        what += ", clipped to the image"  # a small image: the halo reaches past it
    check_tile_bound(reads, what, max_elements)
    spans = [
        _exact_spans(n, core[axis], halo[axis], step[axis], fixed_input, axis)
        if axis in core
        else _iterated(n)
        for axis, n in sizes_.items()
    ]
    tiles = TileSequence(list(sizes_), spans, _exact_tile(set(core)))
    return TilePlan(sizes_, core, halo, step, tiles)


def _describe(core: Mapping[str, int], halo: Mapping[str, int]) -> str:
    cores = "×".join(str(size) for size in core.values())
    halos = "×".join(str(size) for size in halo.values())
    return f"core {cores} + halo {halos} on each side"


def _exact_spans(
    n: int, core: int, halo: int, step: int, fixed_input: Mapping[str, int] | None, axis: str
) -> _Spans:
    def span(i: int) -> tuple[Any, ...]:
        start = i * core
        stop = min(start + core, n)
        lo, hi = max(0, start - halo), min(n, stop + halo)
        size = _round_up(hi - lo, step)
        if fixed_input:  # a window of the fixed size, inside the step-padded image if it fits
            size = int(fixed_input[axis])
            last = (_round_up(n, step) - size) // step * step
            lo = max(0, min(lo, last))
            hi = min(n, lo + size)
        return (start, stop, lo, hi, int(size), ())

    return _Spans(-(-n // core), span)


def _exact_tile(tiled: set[str]) -> Callable[[int, dict[str, tuple[Any, ...]]], Tile]:
    def build(index: int, picks: dict[str, tuple[Any, ...]]) -> Tile:
        return Tile(
            index=index,
            core={a: (c[0], c[1]) for a, c in picks.items()},
            read={a: (c[2], c[3]) for a, c in picks.items()},
            input_shape={a: c[4] for a, c in picks.items() if a in tiled},
        )

    return build


def plan_blend_tiles(
    sizes: Mapping[str, int],
    *,
    window: Mapping[str, int],
    overlap: Mapping[str, int],
    block: Mapping[str, int],
    step: Mapping[str, int] | None = None,
    fixed_input: bool = False,
    max_elements: int | None = None,
) -> TilePlan:
    """Cut an image into blocks fused from overlapping, Gaussian-weighted model windows.

    Windows lie on one global grid (offsets ``0, s, 2s, …`` with ``s = window - overlap``; the
    last one clipped to the image), so the fused value of a pixel does not depend on the block
    it falls in: a blocked run equals a whole-image blended run. A block's read region is the
    union of the windows that touch its core; windows straddling two blocks are computed twice.
    Lazy like :func:`plan_tiles`; the window and the block are checked against the bound.

    Examples
    --------
    >>> plan = plan_blend_tiles({"X": 100}, window={"X": 40}, overlap={"X": 8}, block={"X": 64})
    >>> [(t.core["X"], len(t.windows)) for t in plan]
    [((0, 64), 2), ((64, 100), 2)]
    """
    step = {axis: int((step or {}).get(axis, 1)) for axis in window}
    grids: dict[str, _Grid] = {}
    core: dict[str, int] = {}
    for axis, w in window.items():
        w = _round_up(int(w), step[axis])
        stride = _round_up(max(w - int(overlap[axis]), 1), step[axis])
        grids[axis] = _Grid(int(sizes[axis]), w, min(stride, w))
        core[axis] = _round_up(int(block[axis]), step[axis])
    windows = {axis: _round_up(int(w), step[axis]) for axis, w in window.items()}
    check_tile_bound(windows, "model window", max_elements)
    reads = {a: min(core[a] + 2 * windows[a], _round_up(int(sizes[a]), step[a])) for a in core}
    check_tile_bound(reads, "block plus the windows around it", max_elements)
    spans = []
    for axis, n in sizes.items():
        if axis not in core:
            spans.append(_iterated(int(n)))
        else:
            spans.append(_blend_spans(int(n), core[axis], grids[axis]))

    def build(index: int, picks: dict[str, tuple[Any, ...]]) -> Tile:
        axes = list(picks)
        tile_windows = tuple(
            dict(zip(axes, choice, strict=True)) for choice in _product([picks[a][5] for a in axes])
        )
        read = {a: (picks[a][2], picks[a][3]) for a in axes}
        input_shape = {
            a: (int(window[a]) if fixed_input else _round_up(read[a][1] - read[a][0], step[a]))
            for a in core
        }
        return Tile(
            index=index,
            core={a: (picks[a][0], picks[a][1]) for a in axes},
            read=read,
            input_shape=input_shape,
            windows=tile_windows,
        )

    halo = {axis: int(overlap[axis]) for axis in window}
    sizes_ = {axis: int(n) for axis, n in sizes.items()}
    return TilePlan(sizes_, core, halo, step, TileSequence(list(sizes_), spans, build))


class _Grid:
    """The window grid of one axis: offsets ``0, s, 2s, …`` (window ``w``, stride ``s``), the
    last window clipped to the image, one more where the regular ones stop short of the end."""

    def __init__(self, n: int, w: int, stride: int) -> None:
        self.n, self.w, self.stride = n, w, stride
        # as a list: [s for s in range(0, n - w + stride, stride)] when n > w, else [0]
        self.count = -(-(n - w + stride) // stride) if n > w else 1
        self.extra = self.window(self.count - 1)[1] < n

    def window(self, k: int) -> tuple[int, int]:
        if k == self.count:  # the extra window that reaches the end
            return (self.window(k - 1)[0] + self.stride, self.n)
        start = k * self.stride
        return (start, min(start + self.w, self.n))

    def touching(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Windows that overlap ``[start, stop)``, in grid order."""
        first = max(0, -(-(start - self.w + 1) // self.stride))
        last = min(self.count - 1, (stop - 1) // self.stride)
        found = [self.window(k) for k in range(first, last + 1)]
        found = [w for w in found if w[0] < stop and w[1] > start]
        if self.extra:
            extra = self.window(self.count)
            if extra[0] < stop and extra[1] > start:
                found.append(extra)
        return found


def _blend_spans(n: int, core: int, grid: _Grid) -> _Spans:
    def span(i: int) -> tuple[Any, ...]:
        start = i * core
        stop = min(start + core, n)
        touching = grid.touching(start, stop)
        lo = min(w[0] for w in touching)
        hi = max(w[1] for w in touching)
        return (start, stop, lo, hi, hi - lo, tuple(touching))

    return _Spans(-(-n // core), span)


def _product(choices: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    if not choices:
        yield ()
        return
    for head in choices[0]:
        for tail in _product(choices[1:]):
            yield (head, *tail)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple if multiple > 1 else value
