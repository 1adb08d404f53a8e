"""The one region iterator: an N-d array cut into tiles, each read with a halo.

Feature blocks (:mod:`scopeml.pixel`), pyramid levels (:mod:`scopeml.io.pyramid`) and tiled
post-processing (:mod:`scopeml.post.tiled`) walk arrays with it. A tile's core is computed from
the core grown by the halo and clipped to the array, so an operation whose reach is within the
halo gives, at core pixels, exactly the whole-array result (the clipped window has the same
border as the whole array where it touches it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import product

Region = tuple[slice, ...]


def iter_regions(
    shape: Sequence[int], tile_shape: int | Sequence[int], halo: int | Sequence[int] = 0
) -> Iterator[tuple[Region, Region]]:
    """Yield ``(read, core_in_read)`` slices whose cores cover ``shape`` exactly once.

    ``read`` is the core (``tile_shape`` per axis, smaller at the far edge) grown by ``halo``
    and clipped to ``shape``; ``core_in_read`` selects the core inside the array read. An axis
    no longer than ``tile + 2 * halo`` is one tile: splitting it would cost more halo than it
    saves. With ``halo=0`` the read and the core are the same region.

    Examples
    --------
    >>> [r for r, _ in iter_regions((6,), 3, 1)]
    [(slice(0, 4, None),), (slice(2, 6, None),)]
    >>> [c for _, c in iter_regions((5,), 3, 1)]  # one tile: its core is the whole axis
    [(slice(0, 5, None),)]
    >>> [r for r, _ in iter_regions((2, 5), (2, 2))]
    [(slice(0, 2, None), slice(0, 2, None)), (slice(0, 2, None), slice(2, 4, None)), \
(slice(0, 2, None), slice(4, 5, None))]
    """
    shape = tuple(int(n) for n in shape)
    tiles = _per_axis(tile_shape, len(shape), "tile_shape")
    halos = _per_axis(halo, len(shape), "halo")
    if any(t < 1 for t in tiles) or any(h < 0 for h in halos):
        raise ValueError(f"tile_shape {tiles} must be >= 1 and halo {halos} >= 0")
    steps = [t if n > t + 2 * h else max(n, 1) for n, t, h in zip(shape, tiles, halos, strict=True)]
    starts = [range(0, n, step) for n, step in zip(shape, steps, strict=True)]
    for origin in product(*starts):
        read, core = [], []
        for start, n, step, h in zip(origin, shape, steps, halos, strict=True):
            stop = min(start + step, n)
            lo, hi = max(start - h, 0), min(stop + h, n)
            read.append(slice(lo, hi))
            core.append(slice(start - lo, stop - lo))
        yield tuple(read), tuple(core)


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    values = tuple(int(v) for v in value)
    if len(values) != ndim:
        raise ValueError(f"{name} {values} has {len(values)} entries for {ndim} axes")
    return values


def core_region(read: Region, core: Region) -> Region:
    """The core of a tile in whole-array coordinates (where its result is written).

    Examples
    --------
    >>> core_region((slice(2, 6),), (slice(1, 4),))
    (slice(3, 6, None),)
    """
    return tuple(
        slice(r.start + c.start, r.start + c.stop) for r, c in zip(read, core, strict=True)
    )
