"""Objects grown from seed objects: each nucleus into its cell, CellProfiler's secondary objects.

A cell stain rarely separates touching cells by itself, but their nuclei are apart: each
nucleus (a seed) is grown into the one cell around it and keeps its id, so cell ``k`` is the
cell of nucleus ``k`` and the two tables join on ``object_id``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["grow_objects"]


def grow_objects(
    seeds: Any,
    distance: float,
    *,
    mask: Any = None,
    intensity: Any = None,
    dark: bool = False,
    parents: Any = None,
    exclude_seeds: bool = False,
    spacing: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Each seed object grown at most ``distance`` pixels into one object with the seed's id.

    Seeds flood the pixels within ``distance`` of them (and in ``mask``, a cell stain's
    foreground, where given) at once, so touching cells meet where they are equally far from
    their nuclei (CellProfiler's Distance-N) or, with ``intensity``, a cell stain, at its dim
    line between them: the stain is flooded from its brightest pixels down, CellProfiler's
    Watershed-Image. ``dark``: the stain is a membrane, bright between cells, and ``mask`` the
    pixels below it: the seeds flood those from the darkest up, then the membrane pixels
    (outside ``mask``) from both sides, so neighbours meet on its brightest line and each
    cell holds its side of it. A grown object is connected to its seed and
    holds all of it, so no seed is lost. ``parents``: labels each grown object is kept within
    (its seed's parent object: the one under most of the seed). ``exclude_seeds``: the ring
    around each seed (a cytoplasm), not the whole cell. ``spacing``: each axis's pixel size
    in X pixels (a Z stack of 1 µm steps at 0.25 µm pixels: ``(4, 1, 1)``), so ``distance``
    is as far in Z as in Y and X; default 1 each. ``int32``, ``(Z×)Y×X`` as ``seeds``.

    Examples
    --------
    >>> seeds = np.array([[0, 1, 0, 0, 0, 0, 2, 0]])
    >>> grow_objects(seeds, 2).tolist()
    [[1, 1, 1, 1, 2, 2, 2, 2]]
    >>> grow_objects(seeds, 1).tolist()
    [[1, 1, 1, 0, 0, 2, 2, 2]]
    >>> stain = np.array([[5, 9, 8, 7, 1, 8, 9, 5]])  # the cells meet at the dim pixel
    >>> grow_objects(seeds, 5, intensity=stain, mask=stain > 4).tolist()
    [[1, 1, 1, 1, 0, 2, 2, 2]]
    >>> membrane = np.array([[2, 1, 3, 6, 9, 7, 1, 2]])  # its brightest pixel to one side
    >>> grow_objects(seeds, 5, intensity=membrane, mask=membrane < 5, dark=True).tolist()
    [[1, 1, 1, 1, 1, 2, 2, 2]]
    >>> grow_objects(seeds, 1, exclude_seeds=True).tolist()
    [[1, 0, 1, 0, 0, 2, 0, 2]]
    """
    from scopeml.errors import InvalidLabelsError, InvalidRequestError

    seeds = np.asarray(seeds)
    if not np.issubdtype(seeds.dtype, np.integer) and seeds.dtype != bool:
        raise InvalidLabelsError(f"seeds must be integer labels, not {seeds.dtype}")
    if seeds.ndim not in (2, 3):
        raise InvalidRequestError(f"seeds must be Y×X or Z×Y×X, not {seeds.ndim}-D")
    if seeds.size and (seeds.min() < 0 or seeds.max() > np.iinfo(np.int32).max):
        raise InvalidLabelsError(f"seed ids {seeds.min()}–{seeds.max()} do not fit 0–2³¹−1")
    for name, other in (("mask", mask), ("intensity", intensity), ("parents", parents)):
        if other is not None and np.shape(other) != seeds.shape:
            raise InvalidRequestError(
                f"{name} has shape {np.shape(other)}; the seeds {seeds.shape}"
            )
    if not isinstance(distance, numbers.Real) or not np.isfinite(distance) or distance <= 0:
        raise InvalidRequestError(f"distance must be a number of pixels above 0, not {distance}")
    spacing = _per_axis(spacing, seeds.ndim)
    if parents is not None and not np.issubdtype(np.asarray(parents).dtype, np.integer):
        raise InvalidLabelsError(f"parents must be integer labels, not {np.asarray(parents).dtype}")
    seeds = seeds.astype(np.int32, copy=False)
    mask = None if mask is None else np.asarray(mask, bool)
    order = None if intensity is None else _flooding_order(intensity, dark)
    edges = dark and mask is not None
    if parents is None:
        grown = _flood(seeds, distance, mask, order, edges, spacing=spacing)
    else:
        grown = _flood_each_parent(seeds, distance, mask, order, edges, np.asarray(parents),
                                   spacing)  # fmt: skip
    if exclude_seeds:
        grown[seeds > 0] = 0
    return grown


def _per_axis(spacing: Any, ndim: int) -> tuple[float, ...]:
    """``spacing`` as one size above 0 per axis (one number: every axis)."""
    from scopeml.errors import InvalidRequestError

    if spacing is None:
        return (1.0,) * ndim
    try:
        sizes = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing, float), (ndim,)))
    except (TypeError, ValueError):
        sizes = ()
    if not sizes or not all(np.isfinite(s) and s > 0 for s in sizes):
        raise InvalidRequestError(f"spacing {spacing} is not a size above 0 per axis of the seeds")
    return sizes


def _flood(
    seeds: np.ndarray,
    distance: float,
    mask: np.ndarray | None,
    order: np.ndarray | None,
    edges: bool = False,
    region: np.ndarray | None = None,
    spacing: tuple[float, ...] | None = None,
) -> np.ndarray:
    """The seeds flooding, all at once, the pixels within ``distance`` of them (and in
    ``mask``), nearest first (or in ``order``, lowest first); with ``edges``, then the
    pixels outside ``mask`` within ``distance`` that touch what they flooded. Nothing leaves
    ``region`` (a parent object). Distances by ``spacing``."""
    from scipy.ndimage import distance_transform_edt
    from skimage.segmentation import watershed

    if not seeds.any():
        return np.zeros(seeds.shape, np.int32)
    far = distance_transform_edt(seeds == 0, sampling=spacing)
    near = far <= distance if region is None else (far <= distance) & region
    allowed = near if mask is None else near & mask
    allowed |= seeds > 0
    landscape = far if order is None else order
    grown = watershed(landscape, seeds, mask=allowed).astype(np.int32)
    if edges and mask is not None:
        grown = watershed(landscape, grown, mask=near & ((grown > 0) | ~mask))
    grown = grown.astype(np.int32, copy=False)
    if order is not None:  # nearest first, each pixel is its nearest seed's: within reach
        _keep_within_reach(grown, seeds, distance, spacing)
    return grown


def _keep_within_reach(
    grown: np.ndarray, seeds: np.ndarray, distance: float, spacing: tuple[float, ...] | None
) -> None:
    """Take from each grown object (in place) its pixels farther than ``distance`` from its
    own seed, and what they cut off from the seed. Flooded by a stain, a cell reaches every
    pixel within ``distance`` of some seed, and so past its own nucleus's reach where it is
    near a neighbour's; ``distance`` is each cell's own bound (a ``grow`` under a parent,
    measured from the own seed only, differed from the cell around it by those pixels)."""
    from scipy.ndimage import distance_transform_edt, find_objects, label

    for k, box in enumerate(find_objects(grown), start=1):
        if box is None:
            continue
        mine = grown[box] == k
        far = distance_transform_edt(seeds[box] != k, sampling=spacing) > distance
        if not (mine & far).any():
            continue
        kept = mine & ~far
        parts, _ = label(kept, structure=np.ones((3,) * grown.ndim))
        joined = np.unique(parts[(seeds[box] == k) & kept])  # the seed's own parts
        kept &= np.isin(parts, joined[joined > 0])
        grown[box][mine & ~kept] = 0


def _flood_each_parent(
    seeds: np.ndarray,
    distance: float,
    mask: np.ndarray | None,
    order: np.ndarray | None,
    edges: bool,
    parents: np.ndarray,
    spacing: tuple[float, ...],
) -> np.ndarray:
    """:func:`_flood` within each parent object, from its seeds (those mostly in it), so no
    object crosses into another parent's pixels, however near their seed."""
    from scipy.ndimage import find_objects

    from scopeml.objects.hierarchy import assign_parents

    found = assign_parents(seeds, parents)
    parent_of = np.zeros(int(seeds.max()) + 1, np.int64)
    parent_of[found["label"].to_numpy()] = found["parent_label"].to_numpy()
    grown = np.zeros(seeds.shape, np.int32)
    boxes = find_objects(parents)  # integer labels of any width: no int64 copy of the plane
    for parent in np.unique(parent_of[parent_of > 0]):  # those with seeds
        box = boxes[parent - 1]
        inside = parents[box] == parent
        own = np.where(inside & (parent_of[seeds[box]] == parent), seeds[box], 0)
        part = _flood(own, distance, None if mask is None else mask[box],
                      None if order is None else order[box], edges, inside, spacing)  # fmt: skip
        grown[box] = np.where(part > 0, part, grown[box])
    return grown


def _flooding_order(intensity: Any, dark: bool) -> np.ndarray:
    """The stain as the watershed floods it, lowest first: its brightest pixels (``dark``: its
    darkest), non-finite pixels last."""
    values = np.asarray(intensity, np.float64)
    order = values if dark else -values
    finite = np.isfinite(order)
    return np.where(finite, order, order[finite].max() + 1 if finite.any() else 0.0)
