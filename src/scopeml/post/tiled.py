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

import math
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from os import PathLike
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError, InvalidRequestError, find_stack_level
from scopeml.io.image import Image
from scopeml.io.regions import core_region, iter_regions
from scopeml.objects.label import tile_sizes
from scopeml.post.crf_tiled import DEFAULT_CONTRAST, CrfStep, crf_tiled, split_crf
from scopeml.post.planes import fill_holes_tiled
from scopeml.post.steps import (
    PostStep,
    apply_steps,
    class_values,
    merge_classes,
    post_halo,
    removal_reach,
    run_steps,
    steps_halo,
)
from scopeml.progress import Progress, ProgressCallback, ProgressEvent, as_progress, track

#: A tile size: one edge for every axis, one per ``(Z,) Y, X`` axis, or ``None`` for the
#: default (:func:`~scopeml.objects.label.default_tile`: 1024×1024 in 2-D, at most 128³ voxels
#: in 3-D); clipped to the image, by :func:`~scopeml.objects.label.tile_sizes` as the objects'.
TileSize = int | Sequence[int] | None
#: Most classes ``fill_holes`` of any size takes: it makes whole-plane passes per class, so
#: instance labels (an id per object) would take a pass per object.
MAX_FILL_CLASSES = 64


def post_process_tiled(
    image: Image,
    steps: Sequence[PostStep],
    out: np.ndarray,
    *,
    background: int | None = None,
    tile_size: TileSize = None,
    progress: Progress = None,
    scratch: str | PathLike[str] | None = None,
) -> int:
    """Run ``steps`` over every plane stack of a 6-D label ``image`` into the 6-D ``out``;
    returns how many pixels changed.

    ``out`` is any array-like with ``image.shape`` that takes slice assignment (a zarr array).
    Each scene, time point and channel is processed on its own as a ``Z×Y×X`` volume (the steps
    work in 3-D when Z > 1), tile by tile (``tile_size``: see :data:`TileSize`). ``fill_holes``
    of any size keeps each class's mask in zarr stores in a new folder inside ``scratch``
    (default: the system's temporary folder), removed at the end; disk use is about one
    boolean image per class, compressed.
    ``background`` is the background class's label value, or ``None`` where 0 is the
    background (see :mod:`scopeml.post.steps`).

    Examples
    --------
    >>> labels = np.zeros((1, 1, 1, 1, 30, 30), np.uint8); labels[..., 5:25, 5:25] = 1
    >>> labels[..., 10, 10] = 0; labels[..., 2, 2] = 1
    >>> out = np.empty_like(labels)
    >>> post_process_tiled(Image(labels), [PostStep.parse("fill_holes"),
    ...                    PostStep.parse("remove_small:2")], out, tile_size=8)
    2
    >>> int(out[0, 0, 0, 0, 10, 10]), int(out[0, 0, 0, 0, 2, 2]), int(out.sum())
    (1, 0, 400)
    >>> out = np.empty_like(labels)  # background as class 1, as a pixel classifier writes it
    >>> post_process_tiled(Image(labels + 1), [PostStep.parse("fill_holes"),
    ...                    PostStep.parse("remove_small:2")], out, background=1, tile_size=8)
    2
    >>> int(out[0, 0, 0, 0, 10, 10]), int(out[0, 0, 0, 0, 2, 2]), int((out == 2).sum())
    (2, 1, 400)
    >>> ring = np.zeros((1, 1, 1, 1, 40, 40), np.uint8); ring[..., 2:38, 2:38] = 1
    >>> ring[..., 6:34, 6:34] = 0  # a hole of 784 pixels, wider than the tiles
    >>> out = np.empty_like(ring)
    >>> post_process_tiled(Image(ring), [PostStep.parse("fill_holes")], out, tile_size=8)
    784
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
    changed = 0
    if all(step.local for step in steps):
        halo = post_halo(steps, background)
        work = [(n, tile) for n, view in enumerate(views)
                for tile in iter_regions(view.shape, tile_sizes(tile_size, view.shape), halo)
                ]  # fmt: skip
        for n, (read, core) in track(work, progress, "post", unit="tile"):
            labels = np.asarray(views[n][read])
            result = apply_steps(labels, steps, background=background)[core]
            changed += int(np.count_nonzero(result != labels[core]))
            puts[n][core_region(read, core)] = result
        return changed
    report = as_progress(progress)
    with _scratch_folder(scratch) as folder:
        for view, put in zip(views, puts, strict=True):
            changed += _post_stack(view, steps, put, tile_size, folder, report, background)
    return changed


def _post_stack(
    stack: Any,
    steps: Sequence[PostStep],
    out: Any,
    tile_size: TileSize,
    folder: Path,
    report: ProgressCallback,
    background: int | None,
) -> int:
    """``steps`` with a non-local one on one ``(Z×)Y×X`` stack: per class, its mask through
    scratch stores (runs of local steps tile by tile, each unbounded hole filling as one exact
    tiled pass), then every class merged tile by tile (with the halo the lost pixels need) as
    :func:`apply_steps` merges them; returns how many pixels changed."""
    tile_size = tile_sizes(tile_size, stack.shape)
    tiles = [read for read, _ in iter_regions(stack.shape, tile_size)]
    found: set[int] = set()
    for tile in track(tiles, report, "find classes", unit="tile"):
        found.update(class_values(stack[tile], background))
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
    reach = removal_reach(steps) if background is not None else 0
    changed = 0
    regions = list(iter_regions(stack.shape, tile_size, reach))
    for read, core in track(regions, report, "merge", unit="tile"):
        labels = np.asarray(stack[read])
        parts = ((value, np.asarray(mask[read], bool)) for value, mask in masks.items())
        merged = merge_classes(labels, parts, background=background, reach=reach)[core]
        changed += int(np.count_nonzero(merged != labels[core]))
        out[core_region(read, core)] = merged
    return changed


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


def _local_pass(mask: Any, steps: list[PostStep], path: Path, tile_size: tuple[int, ...],
                report: ProgressCallback) -> Any:  # fmt: skip
    """Local ``steps`` on a boolean mask, tile by tile with their halo, into a zarr store."""
    import zarr

    shape = tuple(mask.shape)
    store = zarr.open_array(str(path), mode="w", shape=shape, chunks=tile_size,
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
    steps: Sequence[PostStep | CrfStep | str],
    *,
    background: int | str | None = None,
    image: str | PathLike[str] | Image | None = None,
    contrast: float = DEFAULT_CONTRAST,
    tile_size: TileSize = None,
    overwrite: bool = False,
    progress: Progress = None,
) -> Path:
    """Post-process the label image ``source`` (any readable format, a segment store — its
    ``labels`` — or an open ``Image``) into the OME-Zarr store ``output``; ``steps`` as
    :class:`PostStep` or as the command line writes them (``"closing:1"``).

    The result is written as ``output/NAME``, NAME being the input's output name (``labels``,
    ``mask``, …; ``labels`` for a plain file), marked as a label image (NGFF ``image-label``),
    with the input's dtype, pixel sizes and channel names and axes ``T C Z Y X`` where the input
    has them (size-1 axes are left out; several scenes are refused). The store records the
    steps, the background class, the pixels changed and, for a segment store's ``labels``, the
    class names, so a name picks a class later (``scopeml objects label OUT --class coin``).
    It is written to a temporary store and moved into place when complete; ``fill_holes`` of
    any size keeps its scratch stores in a hidden folder beside ``output`` while it runs.

    ``background`` is the background class, by name or label value (see
    :mod:`scopeml.post.steps`): by default the class named ``background`` or ``bg``, else the
    first class (ZEN's convention), where the labels have class names; 0 (the background is 0,
    as in a mask) where they have none, or when ``background=0``.

    A first step ``crf`` (or ``crf:ITERATIONS``, :class:`~scopeml.post.crf_tiled.CrfStep`)
    makes the labels from a segment store's ``probabilities`` with the dense CRF, guided by
    ``image`` (default: the image the store was segmented from) with the bilateral kernel's
    intensity scale ``contrast`` × the image's range; exact tile by tile
    (:mod:`scopeml.post.crf_tiled`). The other steps then run on its labels.

    Returns
    -------
    pathlib.Path
        The written label image, ``output/NAME`` (open it with :func:`scopeml.io.open_image`).

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
    >>> out.name, int(result.read()[0, 0, 0, 0, 5, 5]), result.pixel_sizes
    ('labels', 1, {'Y': 0.5, 'X': 0.5})
    """

    from scopeml.io.replace import check_replaceable_store
    from scopeml.objects.images import check_store_name

    output = Path(output)
    check_store_name(output)  # a folder named out.tif: refused before any work
    crf, rest = split_crf(list(steps))
    steps = [PostStep.parse(step) if isinstance(step, str) else step for step in rest]
    _check_tile_size(tile_size)  # before any work: the output's chunks are made from it
    if output.exists() and not overwrite:
        raise InvalidRequestError(
            "output exists; pass --overwrite (overwrite=True) to replace it", path=output
        )
    check_replaceable_store(output)
    if crf is not None:
        return _post_with_crf(
            source, output, crf, steps, background=background, image=image, contrast=contrast,
            tile_size=tile_size, progress=progress,
        )  # fmt: skip
    return _post_labels(source, output, steps, background, tile_size, progress)


def _post_labels(
    source: str | PathLike[str] | Image,
    output: Path,
    steps: Sequence[PostStep],
    background: int | str | None,
    tile_size: TileSize,
    progress: Progress,
) -> Path:
    """:func:`post_process_file` without ``crf``: the steps on a label image, which keeps its
    output name, dtype, pixel sizes and (for a segment store's ``labels``) class names."""
    from scopeml.io import open_image
    from scopeml.io.replace import atomic_write

    if not isinstance(source, Image):
        source = segment_labels(source)
    where = getattr(source, "path", None) if isinstance(source, Image) else source
    name = output_name(where)
    identity = recorded_identity(where)  # the segment run's record: model, image, options
    classes = tuple(identity["model"]["classes"]) if identity and name == "labels" else ()
    value = background_value(background, classes, path=where)
    opened = nullcontext(source) if isinstance(source, Image) else open_image(source)
    with opened as image:  # a caller's Image stays open
        if image.sizes["S"] > 1:
            raise InvalidImageError(
                f"has {image.sizes['S']} scenes; post-process one scene at a time", path=image.path
            )
        with atomic_write(output, folder=True) as temp:
            array, axes = _create_like(temp, name, image, tile_size)
            changed = post_process_tiled(
                image,
                steps,
                _SixD(array, axes),
                background=value,
                tile_size=tile_size,
                progress=progress,
                scratch=output.parent,  # the output's disk, not the system's temporary one
            )
            post = {
                "source": None if where is None else str(Path(where).absolute()),
                "steps": [step_text(step) for step in steps],
                "background": value,
                "changed_pixels": changed,
                "not_carried": outputs_not_carried(where, name),
            }
            _finish(temp, name, classes, identity, post, progress)
    return output / name


def _create_like(temp: Path, name: str, image: Image, tile_size: TileSize) -> tuple[Any, str]:
    """The output image ``temp/name`` shaped as ``image`` without its size-1 axes (one T and C
    per chunk, Z Y X tiles), with its dtype, pixel sizes and channel names; and its axes."""
    from scopeml.io.omezarr import create_ome_zarr

    axes = "".join(a for a in "TCZ" if image.sizes[a] > 1) + "YX"
    shape = [image.sizes[a] for a in axes]
    chunks = _chunks(axes, shape, tile_size)
    array = create_ome_zarr(
        temp / name,
        shape=shape,
        dtype=image.dtype,
        axes=axes,
        chunks=chunks,
        pixel_sizes=image.pixel_sizes,
        channel_names=image.channel_names if "C" in axes else None,
        name=name,
        overwrite=True,
        root=temp,
    )
    return array, axes


def _finish(temp: Path, name: str, classes: Sequence[str], identity: dict[str, Any],
            post: dict[str, Any], progress: Progress) -> None:  # fmt: skip
    """Mark the written image as labels, give it the levels a viewer needs to show a huge one
    whole, and record the run in the store's root group."""
    import zarr

    from scopeml.io.omezarr import mark_label_image
    from scopeml.io.pyramid import add_levels

    mark_label_image(zarr.open_group(str(temp / name), mode="r+"), classes)
    add_levels(temp / name, "mode", progress)
    from scopeml.tiling.store import WRITER, writer

    identity = {"format": 2, "model": {"classes": []}, **identity, "post": post, WRITER: writer()}
    zarr.open_group(str(temp), mode="r+").attrs["scopeml"] = identity


def _post_with_crf(
    source: str | PathLike[str] | Image,
    output: Path,
    crf: CrfStep,
    steps: Sequence[PostStep],
    *,
    background: int | str | None,
    image: str | PathLike[str] | Image | None,
    contrast: float,
    tile_size: TileSize,
    progress: Progress,
) -> Path:
    """:func:`post_process_file` with a first ``crf`` step: the CRF's labels from the store's
    probabilities (into a scratch store when other steps follow), then the other steps."""
    from scopeml.io import open_image
    from scopeml.io.omezarr import create_ome_zarr
    from scopeml.io.replace import atomic_write
    from scopeml.tiling.outputs import label_dtype

    store = probabilities_store(source)
    identity = recorded_identity(store / "probabilities")
    image = _crf_guide_image(image, identity, store)
    with (
        open_image(store / "probabilities") as probabilities,
        nullcontext(image) if isinstance(image, Image) else open_image(image) as guide,
    ):
        if probabilities.sizes["S"] > 1:
            raise InvalidImageError(
                f"has {probabilities.sizes['S']} scenes; post-process one scene at a time",
                path=probabilities.path,
            )
        classes = tuple(identity["model"]["classes"]) if identity else ()
        classes = classes or probabilities.channel_names
        value = background_value(background, classes, path=store)
        axes = "".join(a for a in "TZ" if probabilities.sizes[a] > 1) + "YX"
        shape = [probabilities.sizes[a] for a in axes]
        chunks = _chunks(axes, shape, tile_size)
        dtype = label_dtype(probabilities.sizes["C"])
        with atomic_write(output, folder=True) as temp:
            array = create_ome_zarr(
                temp / "labels", shape=shape, dtype=dtype, axes=axes, chunks=chunks,
                pixel_sizes=probabilities.pixel_sizes, name="labels", overwrite=True, root=temp,
            )  # fmt: skip
            _crf_then_steps(
                probabilities, guide, _SixD(array, axes), crf, steps, dtype=dtype,
                background=value, contrast=contrast, tile_size=tile_size, progress=progress,
                scratch=output.parent,  # the output's disk, not the system's temporary one
            )  # fmt: skip
            before = store / "labels"
            post = {
                "source": str((store / "probabilities").absolute()),
                "image": str(guide.path) if guide.path else None,
                "steps": [str(crf), *(step_text(step) for step in steps)],
                "background": value,
                "changed_pixels": _changed(before, array, axes, tile_size)
                if before.is_dir()
                else None,
                "not_carried": outputs_not_carried(store / "probabilities", "labels"),
            }
            _finish(temp, "labels", classes, identity, post, progress)
    return output / "labels"


def _crf_guide_image(
    image: str | PathLike[str] | Image | None, identity: dict[str, Any], store: Path
) -> str | PathLike[str] | Image:
    """The image that guides the CRF: ``image``, else the one the store records it was
    segmented from (its path, or on a store a server wrote, the name it knows it by), else a
    file of that name beside the store (a store downloaded from a server, or moved from another
    machine; a warning names it); refused in one line, saying how to give one, where none is
    found. The CRF needs the image's pixels: the store's probabilities alone cannot guide it.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.tif").write_bytes(b"")
    >>> record = {"image": {"name": "plate/a.tif"}}
    >>> with warnings.catch_warnings(record=True) as said:
    ...     warnings.simplefilter("always")
    ...     _crf_guide_image(None, record, folder / "r.ome.zarr") == folder / "a.tif"
    True
    >>> str(said[0].message)  # doctest: +ELLIPSIS
    'crf: the image the store records, plate/a.tif, is not at that path; using .../a.tif, ...'
    """
    if image is not None:
        return image
    recorded = identity.get("image") or {}
    recorded = recorded if isinstance(recorded, dict) else {}
    where = recorded.get("path") or recorded.get("name")
    if where is None:
        raise InvalidRequestError(
            "crf needs the image the probabilities came from, and the store records none: "
            "give it with --image (image=)",
            path=store,
        )
    if recorded.get("path") and Path(where).exists():
        return where
    beside = _beside(store, str(where))
    if beside is None:
        raise InvalidRequestError(
            f"crf needs the image the probabilities came from: the store records {where}, which "
            f"is not at that path (a store from a server or another machine?) nor beside the "
            f"store as {PurePath(where).name}; give it with --image (image=)",
            path=store,
        )
    warnings.warn(
        f"crf: the image the store records, {where}, is not at that path; using {beside}, "
        "the file of its name beside the store (--image chooses another)",
        UserWarning,
        stacklevel=find_stack_level(),
    )
    return beside


def _beside(store: Path, recorded: str) -> Path | None:
    """The recorded image found beside ``store``: by its path there where that is relative
    (a server's name below its root, no ``..``), else by its file name."""
    name = PurePath(recorded.replace("\\", "/"))
    tries = [name.name]
    if not name.is_absolute() and ".." not in name.parts and len(name.parts) > 1:
        tries.insert(0, name.as_posix())
    for relative in tries:
        candidate = Path(store).parent / relative
        if relative and candidate.exists() and candidate.resolve() != Path(store).resolve():
            return candidate
    return None


def _crf_then_steps(
    probabilities: Image,
    guide: Image,
    out: _SixD,
    crf: CrfStep,
    steps: Sequence[PostStep],
    *,
    dtype: Any,
    background: int | None,
    contrast: float,
    tile_size: TileSize,
    progress: Progress,
    scratch: Path,
) -> None:
    """The CRF's labels into ``out``, straight where no steps follow; else into a 6-D scratch
    store in a new folder inside ``scratch`` (the output's disk), which the steps then read."""
    import zarr

    z, y, x = probabilities.spatial_shape
    edge = _edge((y, x) if z == 1 else (z, y, x), tile_size)  # the CRF takes one edge
    if not steps:
        crf_tiled(probabilities, guide, out, crf, contrast=contrast, tile_size=edge,
                  progress=progress)  # fmt: skip
        return
    with _scratch_folder(scratch) as folder:
        six = [probabilities.sizes[a] if a in "TZYX" else 1 for a in "STCZYX"]
        labels = zarr.open_array(
            str(folder / "crf.zarr"), mode="w", shape=six, dtype=dtype,
            chunks=[1, 1, 1, *_chunks("ZYX", six[3:], tile_size)],
            fill_value=0,
        )  # fmt: skip
        crf_tiled(probabilities, guide, labels, crf, contrast=contrast, tile_size=edge,
                  progress=progress)  # fmt: skip
        post_process_tiled(
            Image(labels), steps, out, background=background, tile_size=tile_size,
            progress=progress, scratch=folder,
        )  # fmt: skip


def probabilities_store(source: str | PathLike[str] | Image) -> Path:
    """The segment store holding ``probabilities`` that ``source`` names (the store, or one of
    its outputs); refused, saying how to write them, where there is none."""
    from scopeml.io.stores import is_zarr_store

    path = Path(source.path) if isinstance(source, Image) and source.path else source
    if isinstance(path, Image):
        raise InvalidRequestError("crf reads a segment store's probabilities: give its path")
    path = Path(path)
    for store in (path, path.parent):
        if is_zarr_store(store) and is_zarr_store(store / "probabilities"):
            return store
    raise InvalidRequestError(
        "crf needs the class probabilities of a segment store: segment with "
        "outputs=('labels', 'probabilities') (--outputs labels,probabilities)",
        path=path,
    )


def _changed(before: Path, after: Any, axes: str, tile_size: TileSize) -> int:
    """How many pixels of the written ``after`` differ from the label image ``before``."""
    from scopeml.io import open_image

    changed = 0
    with open_image(before) as labels:
        for read, _ in iter_regions(after.shape, _chunks(axes, after.shape, tile_size)):
            named = {a: r for a, r in zip(axes, read, strict=True)}
            old = labels.read(**named).reshape([r.stop - r.start for r in read])
            changed += int(np.count_nonzero(np.asarray(after[read]) != old))
    return changed


def step_text(step: PostStep) -> str:
    """A step as the command line writes it (``remove_small:50``, ``fill_holes``)."""
    return step.name if step.size is None else f"{step.name}:{step.size}"


def outputs_not_carried(source: str | PathLike[str] | None, written: str) -> list[str]:
    """The outputs of the store the image ``source`` lies in but ``written``, the one output
    post-processing makes: recorded, so that neither ``post`` nor ``info`` drops them unsaid
    (``instances``, made from the labels before the steps, would no longer match them)."""
    from scopeml.io.stores import is_zarr_store
    from scopeml.tiling.options import OUTPUT_NAMES

    if source is None or not is_zarr_store(Path(source).parent):
        return []
    store, names = Path(source).parent, (*OUTPUT_NAMES, "instances")
    return [name for name in names if name != written and is_zarr_store(store / name)]


def segment_labels(source: str | PathLike[str]) -> Path:
    """A segment store (or a post store) as its ``labels`` output; any other path unchanged."""
    from scopeml.io.stores import is_zarr_store

    path = Path(source)
    if is_zarr_store(path) and is_zarr_store(path / "labels"):
        return path / "labels"
    return path


def output_name(path: str | PathLike[str] | None) -> str:
    """The name of the output a label image is (``labels``, ``mask``, ``instances``) where it
    lies in a store (its folder's name), else ``labels``."""
    from scopeml.io.stores import is_zarr_store

    if path is None:
        return "labels"
    path = Path(path)
    inside = is_zarr_store(path.parent) and path.parent != path
    return path.name if inside and path.name.isidentifier() else "labels"


def recorded_identity(path: str | PathLike[str] | None) -> dict[str, Any]:
    """The run record (``model`` with its ``classes``, ``image``, ``options``) of the segment or
    post store that the label image ``path`` lies in; empty where there is none or it is
    malformed."""
    from scopeml.io.stores import is_zarr_store

    if path is None or not is_zarr_store(Path(path).parent):
        return {}
    import zarr

    try:
        identity = zarr.open_group(str(Path(path).parent), mode="r").attrs.get("scopeml", {})
    except Exception:  # not a group: no record
        return {}
    model = identity.get("model") if isinstance(identity, dict) else None
    classes = model.get("classes") if isinstance(model, dict) else None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return {}
    return {key: value for key, value in identity.items() if key != "post"}


#: Class names taken for the background class, compared without case.
BACKGROUND_NAMES = ("background", "bg")


def background_value(
    background: int | str | None, classes: Sequence[str], *, path: Any = None
) -> int | None:
    """The label value of the background class, or ``None`` where 0 is the background.

    ``None`` chooses: the class named ``background`` or ``bg``, else the first class (ZEN's
    convention); 0 where there are no class names. ``0`` (or ``"0"``) means 0 is the background.

    Examples
    --------
    >>> background_value(None, ("coin", "BG")), background_value(None, ("cell", "nucleus"))
    (2, 1)
    >>> background_value(None, ()), background_value("coin", ("bg", "coin"))
    (None, 2)
    >>> background_value(0, ("background", "coin")) is None  # 0 is the background
    True
    """
    if background is None:
        if not classes:
            return None
        lower = [name.lower() for name in classes]
        found = [lower.index(n) for n in BACKGROUND_NAMES if n in lower]
        return (found[0] if found else 0) + 1
    if isinstance(background, str) and background.strip().isdigit():
        background = int(background)
    if isinstance(background, str):
        if not classes:
            raise InvalidRequestError(
                f"background class {background!r} given by name, but these labels carry no "
                "class names; give its label value (--background VALUE)",
                path=path,
            )
        lower = [name.lower() for name in classes]
        if background.strip().lower() not in lower:
            raise InvalidRequestError(
                f"no class {background!r}; the classes are {_listed(classes)}", path=path
            )
        return lower.index(background.strip().lower()) + 1
    value = int(background)
    if value < 0 or (classes and value > len(classes)):
        known = f"the classes are {_listed(classes)}" if classes else "label values are >= 0"
        raise InvalidRequestError(f"no background class {value}; {known}", path=path)
    return value or None


def _listed(classes: Sequence[str]) -> str:
    return ", ".join(f"{value} {name}" for value, name in enumerate(classes, 1))


def _check_tile_size(tile_size: TileSize) -> None:
    """Refuse a tile size that no image takes (its length is checked per stack)."""
    if tile_size is None:
        return
    sizes = [tile_size] if isinstance(tile_size, (int, np.integer)) else list(tile_size)
    if not sizes or any(int(t) < 1 for t in sizes):
        raise InvalidRequestError(f"tile_size must be positive; got {tile_size}")


def _chunks(axes: str, shape: Sequence[int], tile_size: TileSize) -> list[int]:
    """Chunks (and tiles) of an array with ``axes``: the tiles of its ``Z Y X`` axes
    (:func:`~scopeml.objects.label.tile_sizes`), 1 along the others.

    Examples
    --------
    >>> _chunks("TZYX", (3, 40, 300, 300), None), _chunks("CYX", (2, 300, 5000), 256)
    ([1, 40, 228, 228], [1, 256, 256])
    """
    spatial = [n for a, n in zip(axes, shape, strict=True) if a in "ZYX"]
    tiles = iter(tile_sizes(tile_size, spatial))
    return [next(tiles) if a in "ZYX" else 1 for a in axes]


def _edge(spatial: Sequence[int], tile_size: TileSize) -> int:
    """One tile edge for code that takes a single edge per axis (the CRF): ``tile_size`` when
    it is one, else the longest edge of the tiles whose tile, clipped to ``spatial``, holds no
    more pixels than theirs (their shortest edge when none).

    Examples
    --------
    >>> _edge((40, 300, 300), None), _edge((500, 500, 500), None), _edge((9, 9), (2, 4))
    (228, 128, 2)
    """
    if isinstance(tile_size, (int, np.integer)):
        return int(tile_size)
    tiles = tile_sizes(tile_size, spatial)
    longest = max(tiles)
    clipped = math.prod(min(longest, n) for n in spatial)
    return longest if clipped <= math.prod(tiles) else min(tiles)


class _SixD:
    """Writes 6-D ``S T C Z Y X`` regions into an array that has only the axes ``axes``."""

    def __init__(self, array: Any, axes: str) -> None:
        self.array = array
        self.keep = ["STCZYX".index(a) for a in axes]

    def __setitem__(self, key: tuple, value: np.ndarray) -> None:
        index = tuple(key[i] for i in self.keep)
        shape = [k.stop - k.start for k in index if isinstance(k, slice)]
        self.array[index] = value.reshape(shape)
