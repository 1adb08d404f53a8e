"""Spatial blocks with a halo, for computing features of a large array piece by piece.

A block's core is computed from the core grown by the halo and clipped to the array, so the
result at core pixels equals the whole-array result exactly (the feature filters reflect at the
real border, and the clipped block has the same border). This bounds memory by block size.
"""

from __future__ import annotations

from collections.abc import Iterator

from scopeml.io.regions import iter_regions


def iter_blocks(
    shape: tuple[int, ...], block: int, halo: int
) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """Yield ``(read, core_in_read)`` slices covering ``shape`` once with cores of ``block``.

    The one region iterator, :func:`scopeml.io.regions.iter_regions`, with a cubic block.

    Examples
    --------
    >>> [r for r, _ in iter_blocks((6,), 3, 1)]
    [(slice(0, 4, None),), (slice(2, 6, None),)]
    """
    return iter_regions(shape, block, halo)
