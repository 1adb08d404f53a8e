"""Spatial blocks with a halo, for computing features of a large array piece by piece.

A block's core is computed from the core grown by the halo and clipped to the array, so the
result at core pixels equals the whole-array result exactly (the feature filters reflect at the
real border, and the clipped block has the same border). This bounds memory by block size.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product


def iter_blocks(
    shape: tuple[int, ...], block: int, halo: int
) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """Yield ``(read, core_in_read)`` slices covering ``shape`` once with cores of ``block``.

    ``read`` is the core grown by ``halo`` and clipped to ``shape``; ``core_in_read`` selects
    the core inside the array read. An axis no longer than ``block + 2 * halo`` is one block:
    splitting it would cost more halo than it saves.

    Examples
    --------
    >>> [r for r, _ in iter_blocks((6,), 3, 1)]
    [(slice(0, 4, None),), (slice(2, 6, None),)]
    >>> [c for _, c in iter_blocks((5,), 3, 1)]  # one block: its core is the whole axis
    [(slice(0, 5, None),)]
    """
    steps = [block if n > block + 2 * halo else max(n, 1) for n in shape]
    starts = [range(0, n, step) for n, step in zip(shape, steps, strict=True)]
    for origin in product(*starts):
        read, core = [], []
        for start, n, step in zip(origin, shape, steps, strict=True):
            stop = min(start + step, n)
            lo, hi = max(start - halo, 0), min(stop + halo, n)
            read.append(slice(lo, hi))
            core.append(slice(start - lo, stop - lo))
        yield tuple(read), tuple(core)
