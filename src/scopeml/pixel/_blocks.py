"""Spatial blocks with a halo, for computing features of a large array piece by piece.

A block's core is computed from the core grown by the halo and clipped to the array, so the
result at core pixels equals the whole-array result exactly (the feature filters reflect at the
real border, and the clipped block has the same border; deep features mirror the image there,
told which sides those are by :func:`read_edges`). This bounds memory by block size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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


def read_edges(read: tuple[slice, ...], shape: Sequence[int]) -> tuple[tuple[bool, bool], ...]:
    """Per axis, whether the region ``read`` reaches the array's (low, high) edge: the sides
    where deep features mirror the image (the network would otherwise zero-pad at a true edge,
    and must not mirror at a block's inner side, which is not the image's).

    Examples
    --------
    >>> [read_edges(r, (6,)) for r, _ in iter_blocks((6,), 3, 1)]
    [((True, False),), ((False, True),)]
    """
    return tuple((r.start == 0, r.stop == n) for r, n in zip(read, shape, strict=True))
