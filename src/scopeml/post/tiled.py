"""Post-processing of a label image tile by tile, from one OME-Zarr store into another.

Peak memory depends on the tile size and the steps' halo, never on the image size: each
``(Z×)Y×X`` tile is read with the halo of its steps (:func:`~scopeml.post.steps.steps_halo`),
processed, and only its core written, so the result equals the whole-image result exactly.
``fill_holes`` of any size has no halo: with it, each class's mask goes through scratch stores
on disk, local steps tile by tile and the hole filling as one exact whole-plane pass
(:func:`scopeml.post.planes.fill_holes_tiled`), and the classes are merged tile by tile.
The output is written to a temporary store and moved into place when complete.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io.image import Image
from scopeml.io.regions import core_region, iter_regions
from scopeml.post.planes import fill_holes_tiled
from scopeml.post.steps import (
    PostStep,
    apply_steps,
    class_values,
    merge_classes,
    run_steps,
    steps_halo,
)
from scopeml.progress import Progress, ProgressCallback, ProgressEvent, as_progress, track

#: Default tile edge (pixels) along Y and X; Z is read whole up to this size too.
TILE_SIZE = 1024
#: Most classes ``fill_holes`` of any size takes: it makes whole-plane passes per class, so
#: instance labels (an id per object) would take a pass per object.
MAX_FILL_CLASSES = 64


def post_process_tiled(
    image: Image,
    steps: Sequence[PostStep],
    out: np.ndarray,
    *,
    tile_size: int = TILE_SIZE,
    progress: Progress = None,
    scratch: str | PathLike[str] | None = None,
) -> None:
    """Run ``steps`` over every plane stack of a 6-D label ``image`` into the 6-D ``out``.

    ``out`` is any array-like with ``image.shape`` that takes slice assignment (a zarr array).
    Each scene, time point and channel is processed on its own as a ``Z×Y×X`` volume (the steps
    work in 3-D when Z > 1), tile by tile. ``fill_holes`` of any size keeps each class's mask in
    zarr stores in a new folder inside ``scratch`` (default: the system's temporary folder),
    removed at the end; disk use is about one boolean image per class, compressed.

    Examples
    --------
    >>> labels = np.zeros((1, 1, 1, 1, 30, 30), np.uint8); labels[..., 5:25, 5:25] = 1
    >>> labels[..., 10, 10] = 0; labels[..., 2, 2] = 1
    >>> out = np.empty_like(labels)
    >>> post_process_tiled(Image(labels), [PostStep.parse("fill_holes"),
    ...                    PostStep.parse("remove_small:2")], out, tile_size=8)
    >>> int(out[0, 0, 0, 0, 10, 10]), int(out[0, 0, 0, 0, 2, 2]), int(out.sum())
    (1, 0, 400)
    >>> ring = np.zeros((1, 1, 1, 1, 40, 40), np.uint8); ring[..., 2:38, 2:38] = 1
    >>> ring[..., 6:34, 6:34] = 0  # a hole of 784 pixels, wider than the tiles
    >>> out = np.empty_like(ring)
    >>> post_process_tiled(Image(ring), [PostStep.parse("fill_holes")], out, tile_size=8)
    >>> int(out.sum())
    1296
    """
    from scopeml.objects.stacks import StackView

    if not np.issubdtype(image.dtype, np.integer):
        raise InvalidImageError(
            f"post-processing takes integer labels; the image is {image.dtype}", path=image.path
        )
    _check_tile_size(tile_size)
    stacks = list(np.ndindex(*image.shape[:3]))
    views = [StackView(image, scene=s, time=t, channel=c) for s, t, c in stacks]
    puts = [_StackOut(out, index, view.ndim) for index, view in zip(stacks, views, strict=True)]
    if all(step.local for step in steps):
        halo = steps_halo(steps)
        work = [(n, tile) for n, view in enumerate(views)
                for tile in iter_regions(view.shape, tile_size, halo)]  # fmt: skip
        for n, (read, core) in track(work, progress, "post", unit="tile"):
            puts[n][core_region(read, core)] = apply_steps(views[n][read], steps)[core]
        return
    report = as_progress(progress)
    with _scratch_folder(scratch) as folder:
        for view, put in zip(views, puts, strict=True):
            _post_stack(view, steps, put, tile_size, folder, report)


def _post_stack(
    stack: Any,
    steps: Sequence[PostStep],
    out: Any,
    tile_size: int,
    folder: Path,
    report: ProgressCallback,
) -> None:
    """``steps`` with a non-local one on one ``(Z×)Y×X`` stack: per class, its mask through
    scratch stores (runs of local steps tile by tile, each unbounded hole filling as one exact
    tiled pass), then every class merged tile by tile as :func:`apply_steps` merges them."""
    tiles = [read for read, _ in iter_regions(stack.shape, tile_size)]
    found: set[int] = set()
    for tile in track(tiles, report, "find classes", unit="tile"):
        found.update(class_values(stack[tile]))
        if len(found) > MAX_FILL_CLASSES:
            raise InvalidRequestError(
                f"more than {MAX_FILL_CLASSES} label values: fill_holes of any size makes "
                "whole-plane passes per class; for instance labels (an id per object) use "
                "fill_holes:MAX_PIXELS",
                path=getattr(stack.image, "path", None),
            )
    masks: dict[int, Any] = {}
    for value in sorted(found):
        mask: Any = _ClassMask(stack, value)
        done: Path | None = None  # the store the next run reads, removed once read
        for run in _runs(steps):
            path = folder / f"class{value}-{uuid.uuid4().hex[:8]}.zarr"
            if run:
                mask = _local_pass(mask, run, path, tile_size, report)
            else:
                report(ProgressEvent("fill holes", 0, 1, "pass"))
                mask = fill_holes_tiled(mask, path, tile_size=tile_size)
                report(ProgressEvent("fill holes", 1, 1, "pass"))
            if done is not None:
                shutil.rmtree(done, ignore_errors=True)
            done = path
        masks[value] = mask
    for tile in track(tiles, report, "merge", unit="tile"):
        labels = stack[tile]
        parts = ((value, np.asarray(mask[tile], bool)) for value, mask in masks.items())
        out[tile] = merge_classes(labels, parts)


def _runs(steps: Sequence[PostStep]) -> Iterator[list[PostStep]]:
    """The steps as runs of local steps, each non-local step an empty run of its own."""
    run: list[PostStep] = []
    for step in steps:
        if step.local:
            run.append(step)
            continue
        if run:
            yield run
        run = []
        yield []
    if run:
        yield run


def _local_pass(mask: Any, steps: list[PostStep], path: Path, tile_size: int,
                report: ProgressCallback) -> Any:  # fmt: skip
    """Local ``steps`` on a boolean mask, tile by tile with their halo, into a zarr store."""
    import zarr

    shape = tuple(mask.shape)
    store = zarr.open_array(str(path), mode="w", shape=shape, chunks=(tile_size,) * len(shape),
                            dtype=bool, fill_value=False)  # fmt: skip
    regions = list(iter_regions(shape, tile_size, steps_halo(steps)))
    for read, core in track(regions, report, "post", unit="tile"):
        store[core_region(read, core)] = run_steps(np.asarray(mask[read], bool), steps)[core]
    return store


class _ClassMask:
    """``stack == value``, read a tile at a time."""

    def __init__(self, stack: Any, value: int) -> None:
        self.stack, self.value, self.shape = stack, value, tuple(stack.shape)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.stack[key]) == self.value


class _StackOut:
    """Writes ``(Z×)Y×X`` regions of one stack ``(s, t, c)`` into a 6-D array."""

    def __init__(self, out: Any, index: tuple[int, ...], ndim: int) -> None:
        self.out, self.index, self.ndim = out, index, ndim

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        zyx = key if self.ndim == 3 else (slice(0, 1), *key)
        self.out[(*self.index, *zyx)] = value.reshape([k.stop - k.start for k in zyx])


@contextmanager
def _scratch_folder(parent: str | PathLike[str] | None) -> Iterator[Path]:
    """A new folder for intermediate stores inside ``parent``, removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix=".scopeml-post-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def post_process_file(
    source: str | PathLike[str] | Image,
    output: str | PathLike[str],
    steps: Sequence[PostStep | str],
    *,
    tile_size: int = TILE_SIZE,
    overwrite: bool = False,
    progress: Progress = None,
) -> Path:
    """Post-process the label image ``source`` (any readable format, or an open ``Image``) into
    the OME-Zarr ``output``; ``steps`` as :class:`PostStep` or as the command line writes them
    (``"closing:1"``).

    The output keeps the input's dtype, pixel sizes and channel names, with axes ``T C Z Y X``
    where the input has them (size-1 axes are left out; several scenes are refused). It is
    written to a temporary store and moved into place when complete; ``fill_holes`` of any size
    keeps its scratch stores in a hidden folder beside ``output`` while it runs.

    Examples
    --------
    >>> import tempfile
    >>> from scopeml.io.omezarr import create_ome_zarr
    >>> folder = Path(tempfile.mkdtemp())
    >>> a = create_ome_zarr(folder / "in.ome.zarr", shape=(12, 12), dtype="uint8", axes="YX",
    ...                     chunks=(8, 8), pixel_sizes={"Y": 0.5, "X": 0.5})
    >>> a[2:10, 2:10] = 1; a[5, 5] = 0
    >>> out = post_process_file(folder / "in.ome.zarr", folder / "out.ome.zarr", ["fill_holes"])
    >>> from scopeml.io import open_image
    >>> result = open_image(out)
    >>> int(result.read()[0, 0, 0, 0, 5, 5]), result.pixel_sizes
    (1, {'Y': 0.5, 'X': 0.5})
    """
    from scopeml.io import open_image
    from scopeml.io.omezarr import create_ome_zarr
    from scopeml.io.replace import atomic_write, check_replaceable_store

    output = Path(output)
    steps = [PostStep.parse(step) if isinstance(step, str) else step for step in steps]
    _check_tile_size(tile_size)  # before any work: the output's chunks are made from it
    if output.exists() and not overwrite:
        raise InvalidRequestError(
            "output exists; pass overwrite=True (--overwrite) to replace it", path=output
        )
    check_replaceable_store(output)
    opened = nullcontext(source) if isinstance(source, Image) else open_image(source)
    with opened as image:  # a caller's Image stays open
        if image.sizes["S"] > 1:
            raise InvalidImageError(
                f"has {image.sizes['S']} scenes; post-process one scene at a time", path=image.path
            )
        axes = "".join(a for a in "TCZ" if image.sizes[a] > 1) + "YX"
        shape = [image.sizes[a] for a in axes]
        chunks = [1 if a in "TC" else min(n, tile_size) for a, n in zip(axes, shape, strict=True)]
        with atomic_write(output, folder=True) as temp:
            array = create_ome_zarr(
                temp,
                shape=shape,
                dtype=image.dtype,
                axes=axes,
                chunks=chunks,
                pixel_sizes=image.pixel_sizes,
                channel_names=image.channel_names if "C" in axes else None,
                name=output.name,
                overwrite=True,
                root=temp,
            )
            post_process_tiled(
                image,
                steps,
                _SixD(array, axes),
                tile_size=tile_size,
                progress=progress,
                scratch=output.parent,  # the output's disk, not the system's temporary one
            )
    return output


def _check_tile_size(tile_size: int) -> None:
    if int(tile_size) < 1:
        raise InvalidRequestError(f"tile_size must be positive; got {tile_size}")


class _SixD:
    """Writes 6-D ``S T C Z Y X`` regions into an array that has only the axes ``axes``."""

    def __init__(self, array: Any, axes: str) -> None:
        self.array = array
        self.keep = ["STCZYX".index(a) for a in axes]

    def __setitem__(self, key: tuple, value: np.ndarray) -> None:
        index = tuple(key[i] for i in self.keep)
        shape = [k.stop - k.start for k in index if isinstance(k, slice)]
        self.array[index] = value.reshape(shape)
