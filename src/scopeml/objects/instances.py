"""Instances from a model's class labels, touching nuclei split, tile by tile and exact.

A model with a boundary class (the shipped ``nuclei``: background, nucleus, boundary) marks the
seam between touching nuclei. Seeds are the connected components of the interior class; each
foreground pixel (interior or boundary) without a seed takes the id of the nearest seed within
``grow`` pixels (Euclidean; a tie goes to the smaller id). That growth is local — a pixel's
id depends only on seeds within ``grow`` of it — so a tile read with a halo of ``grow`` pixels
gives exactly the whole-image result. (A seeded watershed is not local: a flood can travel
arbitrarily far, so it could not be tiled exactly.) Seed ids are the raster-order numbering of
:func:`scipy.ndimage.label` after dropping seeds smaller than ``min_size``, so a tiled run and
a whole-image run agree bit for bit, ids included. Without a boundary class, instances are the
connected components of the chosen class.

Seeds are best taken where the model is confident: with probabilities at hand,
:func:`seed_classes` makes the class map from ``P(object) > seed_threshold`` (seeds) and
``P(object) + P(boundary) > 0.5`` (grown into), pixel by pixel, so tiling stays exact.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scopeml.errors import InvalidRequestError, find_stack_level
from scopeml.io.image import Image
from scopeml.io.regions import iter_regions
from scopeml.objects.label import ProvisionalLabels, _structure, label_value, renumber
from scopeml.post.steps import MAX_DISTANCE, size_problem
from scopeml.progress import Progress, track
from scopeml.tiling.outputs import probability_scale

__all__ = ["InstanceOptions", "grow_seeds", "instance_image", "instance_labels", "seed_classes"]

#: Class names taken as the seam between touching objects.
BOUNDARY_NAMES = ("boundary",)
#: Class names never taken as objects when the object class is not given.
BACKGROUND_NAMES = ("background", "bg")


#: Old spellings of :class:`InstanceOptions` fields (and of the server's JSON fields), still
#: taken, with a :class:`DeprecationWarning`, for one release: the new names are the settings
#: YAML keys and the command line's flags (``--seed-threshold``, ``--boundary-class``).
RENAMED = {"boundary": "boundary_class", "threshold": "seed_threshold"}


def object_candidates(classes: Sequence[str], boundary: int | None = None) -> list[int]:
    """The label values of the ``classes`` that may be the objects where none is chosen:
    all but the background (the class named so; of classes left unnamed, ``class 1 …``, the
    first, as in ZEN) and the boundary (named so, or the label value ``boundary``).

    >>> object_candidates(["background", "nucleus", "boundary"]), object_candidates(
    ...     ["class 1", "class 2"])
    ([2], [2])
    """
    from scopeml.model.metadata import default_classes

    unnamed = tuple(classes) == default_classes(len(classes))  # the one naming rule
    return [
        i
        for i, name in enumerate(classes, 1)
        if name not in (*BACKGROUND_NAMES, *BOUNDARY_NAMES)
        and i != boundary
        and not (unnamed and i == 1)
    ]


def renamed(old: str, new: str, where: str) -> None:
    """Warn (:class:`DeprecationWarning`) that ``old`` is now spelt ``new`` in ``where``."""
    warnings.warn(
        f"{where}: {old!r} is renamed {new!r}; the old name goes in the next release",
        DeprecationWarning,
        stacklevel=find_stack_level(),
    )


@dataclass(frozen=True, init=False)
class InstanceOptions:
    """How :func:`scopeml.segment` turns class labels into instances (output ``instances``).

    The names are those of the settings YAML (``class``, ``boundary_class``,
    ``seed_threshold``, ``grow``, ``min_size``), of the command line (``--class``,
    ``--boundary-class``, ``--seed-threshold``, …) and of the server's ``instances`` JSON;
    ``class_`` is ``class`` (a Python keyword). The old ``boundary=`` and ``threshold=`` are
    still taken, with a :class:`DeprecationWarning`, for one release.

    Attributes
    ----------
    class_
        The object class, by name or label value; default: the one class that is neither
        background nor boundary.
    boundary_class
        The class grown into (name or label value); default a class named ``boundary`` if the
        model has one; ``None`` with no such class: plain connected components.
    grow
        Largest distance (pixels) a seed grows into boundary pixels; also the tiles' halo.
    min_size
        Seeds with fewer pixels are dropped (their boundary goes to a neighbour or stays 0).
    connectivity
        1 = faces only (4-/6-neighbourhood) … ``ndim`` = full, for the seeds.
    seed_threshold
        With a boundary class: seeds are pixels where ``P(object) > seed_threshold`` (from the
        probabilities, which the run then writes too), grown over ``P(object) +
        P(boundary) > 0.5``; ``None``: seeds are the labels of the object class (argmax).
        The default is the shipped ``nuclei`` model's, chosen on synthetic validation scenes
        (object F1 0.901 there, against 0.897 at 0.5 and 0.896 at 0.7).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as said:
    ...     warnings.simplefilter("always")
    ...     old = InstanceOptions(threshold=0.8)
    >>> old == InstanceOptions(seed_threshold=0.8), str(said[0].message)
    (True, "InstanceOptions: 'threshold' is renamed 'seed_threshold'; the old name goes in \
the next release")
    """

    class_: str | int | None
    boundary_class: str | int | None
    grow: float
    min_size: int
    connectivity: int
    seed_threshold: float | None

    def __init__(
        self,
        class_: str | int | None = None,
        boundary_class: str | int | None = None,
        grow: float = 4.0,
        min_size: int = 8,
        connectivity: int = 1,
        seed_threshold: float | None = 0.6,
        **old: Any,
    ) -> None:
        given = {"boundary_class": boundary_class, "seed_threshold": seed_threshold}
        defaults = {"boundary_class": None, "seed_threshold": 0.6}
        for name, value in old.items():
            if name not in RENAMED:
                raise TypeError(f"InstanceOptions got an unexpected keyword argument {name!r}")
            if given[RENAMED[name]] != defaults[RENAMED[name]]:
                raise TypeError(f"InstanceOptions: give {RENAMED[name]}= only, not {name}= too")
            renamed(name, RENAMED[name], "InstanceOptions")
            given[RENAMED[name]] = value
        for name, value in (
            ("class_", class_),
            ("boundary_class", given["boundary_class"]),
            ("grow", grow),
            ("min_size", min_size),
            ("connectivity", connectivity),
            ("seed_threshold", given["seed_threshold"]),
        ):
            object.__setattr__(self, name, value)

    @property
    def threshold(self) -> float | None:
        """Deprecated: :attr:`seed_threshold`."""
        renamed("threshold", "seed_threshold", "InstanceOptions")
        return self.seed_threshold

    @property
    def boundary(self) -> str | int | None:
        """Deprecated: :attr:`boundary_class`."""
        renamed("boundary", "boundary_class", "InstanceOptions")
        return self.boundary_class

    @classmethod
    def from_fields(cls, fields: dict[str, Any], where: str = "instances") -> InstanceOptions:
        """Options from a JSON or YAML mapping: the settings' names (``class`` for the object
        class; ``class_`` too, as :meth:`record` writes it), and the old ``boundary`` and
        ``threshold`` with a :class:`DeprecationWarning` naming ``where``.

        Examples
        --------
        >>> InstanceOptions.from_fields({"class": "nucleus", "seed_threshold": None})
        InstanceOptions(class_='nucleus', boundary_class=None, grow=4.0, min_size=8, \
connectivity=1, seed_threshold=None)
        """
        keywords: dict[str, Any] = {}
        for name, value in fields.items():
            key = "class_" if name == "class" else name
            if key in RENAMED:
                renamed(key, RENAMED[key], where)
                key = RENAMED[key]
            if key in keywords:
                raise InvalidRequestError(f"{where}: {name!r} given twice (old and new name)")
            keywords[key] = value
        return cls(**keywords)

    def resolve(self, classes: Sequence[str]) -> tuple[int, int | None]:
        """``(object label value, boundary label value or None)`` for a model's classes.

        Examples
        --------
        >>> InstanceOptions().resolve(["background", "nucleus", "boundary"])
        (2, 3)
        >>> InstanceOptions(class_="cell").resolve(["bg", "cell", "debris"])
        (2, None)
        >>> InstanceOptions().resolve(["class 1", "class 2"])  # unnamed: the first is background
        (2, None)
        """
        check_grow(self.grow)
        if self.grow < 0 or self.min_size < 0:
            raise InvalidRequestError(
                f"grow and min_size must be >= 0; got {self.grow} and {self.min_size}"
            )
        if self.seed_threshold is not None and not 0 <= self.seed_threshold < 1:
            raise InvalidRequestError(
                f"seed_threshold must be in [0, 1); got {self.seed_threshold}"
            )
        boundary = self.boundary_class
        if boundary is None:
            boundary = next((name for name in classes if name in BOUNDARY_NAMES), None)
        grow_value = None if boundary is None else label_value(classes, boundary)
        if self.class_ is not None:
            value = label_value(classes, self.class_)
        else:
            candidates = object_candidates(classes, grow_value)
            if len(candidates) != 1:
                raise InvalidRequestError(
                    f"which class are the objects? classes are {', '.join(classes)} "
                    "(choose with --class / InstanceOptions(class_=...))"
                )
            value = candidates[0]
        if value == grow_value:
            raise InvalidRequestError(f"the object class {classes[value - 1]!r} is the boundary")
        return value, grow_value

    def record(self, classes: Sequence[str]) -> dict[str, Any]:
        """These options as applied to a model's ``classes``, JSON-ready, for a store's run
        record: classes by name (the defaults resolved), ``seed_threshold`` ``None`` where no
        boundary class makes it apply; ``InstanceOptions(**record)`` makes the same instances.

        Examples
        --------
        >>> InstanceOptions(class_=2).record(["background", "nucleus", "boundary"])["class_"]
        'nucleus'
        >>> InstanceOptions().record(["bg", "cell"])
        {'class_': 'cell', 'boundary_class': None, 'grow': 4.0, 'min_size': 8, \
'connectivity': 1, 'seed_threshold': None}
        """
        value, grow_value = self.resolve(classes)
        seed = self.seed_threshold
        threshold = None if grow_value is None or seed is None else seed
        return {
            "class_": classes[value - 1],
            "boundary_class": None if grow_value is None else classes[grow_value - 1],
            "grow": float(self.grow),
            "min_size": int(self.min_size),
            "connectivity": int(self.connectivity),
            "seed_threshold": None if threshold is None else float(threshold),
        }


def seed_classes(probabilities: Image, class_id: int, grow_id: int, threshold: float) -> Image:
    """A lazy class map from probabilities: 2 = seed (``P(object) > threshold``), 3 = grown
    into (``P(object) + P(boundary) > 0.5``), 1 = neither; computed pixel by pixel as read.

    ``class_id`` and ``grow_id`` are label values (class ``k`` is channel ``k - 1``).

    Examples
    --------
    >>> p = np.array([[0.1, 0.2, 0.9], [0.8, 0.5, 0.1], [0.1, 0.3, 0.0]], np.float32)
    >>> seed_classes(Image(p.reshape(1, 1, 3, 1, 1, 3)), 2, 3, 0.7).read().ravel().tolist()
    [2, 3, 1]
    """
    return Image(
        _SeedClasses(probabilities, class_id - 1, grow_id - 1, threshold),
        pixel_sizes=probabilities.pixel_sizes,
        path=probabilities.path,
    )


class _SeedClasses:
    """6-D array-like of :func:`seed_classes` (one channel, ``uint8``)."""

    def __init__(self, probabilities: Image, obj: int, boundary: int, threshold: float) -> None:
        self.probabilities, self.obj, self.boundary = probabilities, obj, boundary
        self.threshold = threshold
        s, t, _, z, y, x = probabilities.shape
        self.shape, self.dtype = (s, t, 1, z, y, x), np.dtype(np.uint8)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        named = dict(zip("STCZYX", key, strict=True))
        channels = named.pop("C")
        p = self.probabilities.read(**named)
        scale = probability_scale(p.dtype)  # uint8: stored × 255
        p = p.astype(np.float32, copy=False) if scale == 1 else p / np.float32(scale)
        obj, boundary = p[:, :, self.obj : self.obj + 1], p[:, :, self.boundary : self.boundary + 1]
        seed, grown, neither = np.uint8(2), np.uint8(3), np.uint8(1)  # no int64 temporaries
        out = np.where(obj > self.threshold, seed, np.where(obj + boundary > 0.5, grown, neither))
        return out[:, :, channels]


def check_grow(grow: float) -> None:
    """Refuse a ``grow`` that is no finite number of pixels, or past
    :data:`~scopeml.post.steps.MAX_DISTANCE` (its neighbourhood is searched for every pixel)."""
    problem = size_problem("grow (--grow)", grow, MAX_DISTANCE)
    if problem:
        raise InvalidRequestError(problem)


def grow_seeds(seeds: np.ndarray, mask: np.ndarray, distance: float) -> np.ndarray:
    """Give each ``mask`` pixel without a seed the id of the nearest seed within ``distance``.

    Nearest is Euclidean in pixels; among seeds at the same distance the smaller id wins, so
    the result does not depend on where the array was cut out of a larger one (a window with
    ``distance`` pixels of margin gives the whole-image answer in its core). Seeds keep their
    pixels; pixels outside ``mask`` stay 0.

    Parameters
    ----------
    seeds
        ``(Z×)Y×X`` non-negative integer ids, 0 = no seed.
    mask
        Boolean array of the same shape: where seeds may grow.
    distance
        Largest growth in pixels.

    Returns
    -------
    numpy.ndarray
        Ids of the same shape and dtype.

    Examples
    --------
    >>> seeds = np.array([[1, 0, 0, 0, 0, 2]])
    >>> grow_seeds(seeds, np.ones((1, 6), bool), 2).tolist()
    [[1, 1, 1, 2, 2, 2]]
    >>> grow_seeds(seeds, np.array([[1, 1, 0, 1, 1, 1]], bool), 1).tolist()
    [[1, 1, 0, 0, 2, 2]]
    """
    check_grow(distance)
    seeds = np.asarray(seeds)
    out = seeds.copy()
    todo = np.flatnonzero(np.asarray(mask, bool) & (seeds == 0))
    radius = int(np.floor(distance))
    if radius < 1 or not todo.size or not seeds.any():
        return out
    grid = np.indices((2 * radius + 1,) * seeds.ndim).reshape(seeds.ndim, -1).T - radius
    squared = (grid**2).sum(1)
    keep = (squared > 0) & (squared <= distance**2)
    grid, squared = grid[keep], squared[keep]
    none = np.iinfo(seeds.dtype).max if seeds.dtype.kind in "iu" else np.inf
    padded = np.pad(np.where(seeds > 0, seeds, none), radius, constant_values=none)
    # only the pixels left to fill are visited (most are filled by the first shells): their
    # flat positions in ``padded``, and each offset as a step along its flattened array
    strides = np.cumprod((1, *padded.shape[:0:-1]))[::-1]
    steps = grid @ strides
    at = np.ravel_multi_index(
        tuple(i + radius for i in np.unravel_index(todo, seeds.shape)), padded.shape
    )
    flat = padded.ravel()
    for shell in np.unique(squared):  # nearest first; within a shell the smallest id
        best = np.full(at.size, none, seeds.dtype)
        for step in steps[squared == shell]:
            np.minimum(best, flat[at + step], out=best)
        hit = best != none
        np.put(out, todo[hit], best[hit])
        todo, at = todo[~hit], at[~hit]
        if not todo.size:
            break
    return out


def instance_labels(
    labels: np.ndarray,
    *,
    class_id: int,
    grow_id: int | None = None,
    grow: float = 4.0,
    min_size: int = 0,
    connectivity: int = 1,
) -> np.ndarray:
    """Instances of one class in memory, touching objects split at a boundary class.

    Seeds are the connected components of ``labels == class_id`` with at least ``min_size``
    pixels, numbered in raster order; with ``grow_id`` they grow over the pixels of that class
    by at most ``grow`` pixels (:func:`grow_seeds`). :func:`instance_image` gives the same
    result tile by tile.

    Returns
    -------
    numpy.ndarray
        ``uint32`` ids of the shape of ``labels``; 0 = background.

    Examples
    --------
    >>> labels = np.array([[2, 2, 3, 3, 2, 2, 1, 3, 2]])  # 1 background, 2 nucleus, 3 boundary
    >>> instance_labels(labels, class_id=2, grow_id=3, grow=1, min_size=2).tolist()
    [[1, 1, 1, 2, 2, 2, 0, 0, 0]]
    """
    labels = np.asarray(labels)
    seeds, n = ndi.label(labels == class_id, _structure(labels.ndim, connectivity))
    sizes = np.bincount(seeds.ravel(), minlength=n + 1)
    lookup = renumber(sizes, np.arange(n + 1), min_size).astype(np.uint32)
    seeds = lookup[seeds]
    if grow_id is not None:
        seeds = grow_seeds(seeds, (labels == class_id) | (labels == grow_id), grow)
    return seeds


def instance_image(
    labels: Image,
    output: str | os.PathLike[str],
    *,
    class_id: int,
    grow_id: int | None = None,
    grow: float = 4.0,
    min_size: int = 0,
    connectivity: int = 1,
    tile_size: int | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: Progress = None,
) -> Image:
    """:func:`instance_labels` of every scene and time point of a class-label image, tile by
    tile, as an OME-Zarr image (axes, pixel sizes and scenes as
    :func:`~scopeml.objects.images.label_image` writes them; ids unique in the whole output).

    Per stack: seeds are labelled across tiles exactly (:class:`ProvisionalLabels`), counted
    and renumbered in raster order, then grown tile by tile with a halo of ``grow`` pixels
    over where they may grow (recorded on disk as the seeds are labelled: ``labels`` is read
    once). Peak memory is a few tiles plus a few integers per seed. Stages ``label``, ``relabel``
    and ``grow`` (unit ``tile``) are reported to ``progress``.

    Examples
    --------
    >>> import tempfile
    >>> labels = np.array([[2, 2, 3, 3, 2, 2, 1, 3, 2]], np.uint8).reshape(1, 1, 1, 1, 1, 9)
    >>> out = instance_image(Image(labels), f"{tempfile.mkdtemp()}/i.ome.zarr", class_id=2,
    ...                      grow_id=3, grow=1, min_size=2, tile_size=4)
    >>> out.read()[0, 0, 0, 0, 0].tolist()
    [1, 1, 1, 2, 2, 2, 0, 0, 0]
    """
    from scopeml.objects.images import write_label_image

    check_grow(grow)

    def label_stack(stack: Any, work: Path, tiles: tuple[int, ...], put: Any, offset: int) -> int:
        try:
            return _grow_stack(
                stack, work, class_id, grow_id, grow, min_size, connectivity, tiles, progress,
                lambda region, ids: put(region, np.where(ids > 0, ids + np.uint32(offset), 0)),
            )  # fmt: skip
        finally:
            for scratch in (".seeds", ".grow"):
                shutil.rmtree(f"{work}{scratch}", ignore_errors=True)

    written = write_label_image(
        labels, output, label_stack, name="instances", connectivity=connectivity,
        tile_size=tile_size, overwrite=overwrite, progress=progress,
    )  # fmt: skip
    _display_window(Path(output))
    return written


def _display_window(output: Path) -> None:
    """Set the ``omero`` display window of each instances image to ``0..n_objects`` (the ids
    written), so that a viewer shows the objects instead of the black of a ``uint32`` range."""
    import zarr

    from scopeml.io.omezarr import set_display_window

    root = zarr.open_group(str(output), mode="r+")
    groups = [root] if "0" in root.array_keys() else [g for _, g in root.groups()]
    for group in groups:
        if "0" in group.array_keys():
            set_display_window(group, int(group["0"].attrs.get("n_objects", 0)))


def _grow_stack(
    stack: Any,
    work: Path,
    class_id: int,
    grow_id: int | None,
    grow: float,
    min_size: int,
    connectivity: int,
    tiles: tuple[int, ...],
    progress: Progress,
    put: Any,
) -> int:
    """One ``(Z×)Y×X`` stack: label seeds exactly across tiles, renumber, grow; the number of
    objects written through ``put(region, ids)``."""
    import zarr

    shape = tuple(int(s) for s in stack.shape)

    def scratch(name: str, dtype: Any) -> Any:
        return zarr.open_array(
            f"{work}.{name}", mode="w", shape=shape, chunks=tiles, dtype=dtype, fill_value=0
        )

    seeds, labelled = scratch("seeds", np.uint32), stack
    if grow_id is not None:  # where seeds may grow, recorded as the seeds are labelled
        growable = scratch("grow", bool)
        labelled = _Recording(stack, growable, (class_id, grow_id))
    with ProvisionalLabels(labelled, work, class_id, connectivity, tiles, progress) as found:
        n = found.n_objects
        sizes = np.zeros(n + 1, np.int64)
        first = np.full(n + 1, np.iinfo(np.int64).max, np.int64)

        def count(region: tuple[slice, ...], ids: np.ndarray) -> None:
            seeds[region] = ids
            # tile raster order is global raster order within the tile: first hit = global min
            where = np.flatnonzero(ids)
            values, index, counts = np.unique(
                ids.ravel()[where], return_index=True, return_counts=True
            )
            local = np.unravel_index(where[index], ids.shape)
            at = np.ravel_multi_index(
                tuple(c + s.start for c, s in zip(local, region, strict=True)), shape
            )
            sizes[values] += counts
            first[values] = np.minimum(first[values], at)

        found.write(count, dtype=np.uint32)
    lookup = renumber(sizes, first, min_size).astype(np.uint32)
    radius = int(np.floor(grow)) if grow_id is not None else 0
    regions = [read for read, _ in iter_regions(shape, tiles)]
    for region in track(regions, progress, "grow", unit="tile"):
        window = tuple(
            slice(max(s.start - radius, 0), min(s.stop + radius, n_))
            for s, n_ in zip(region, shape, strict=True)
        )
        ids = lookup[seeds[window]]
        if grow_id is not None:
            ids = grow_seeds(ids, growable[window], grow)
        core = tuple(
            slice(s.start - w.start, s.stop - w.start) for s, w in zip(region, window, strict=True)
        )
        put(region, ids[core])
    return int(np.count_nonzero(lookup))


class _Recording:
    """``stack`` as :class:`ProvisionalLabels` reads it (every tile once), writing where
    seeds may grow (``classes``) to ``growable`` on the way, so that growing reads those
    bytes instead of the stack a second time (a model's probabilities, for seed classes)."""

    def __init__(self, stack: Any, growable: Any, classes: tuple[int, int]) -> None:
        self.stack, self.growable, self.classes = stack, growable, classes
        self.shape = stack.shape

    def __getitem__(self, region: tuple[slice, ...]) -> np.ndarray:
        tile = np.asarray(self.stack[region])
        self.growable[region] = np.isin(tile, self.classes)
        return tile
