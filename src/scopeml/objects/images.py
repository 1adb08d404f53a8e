"""Objects over every scene, time point and Z plane of an :class:`~scopeml.io.image.Image`.

The tiled labelling and measuring work on one ``(Z×)Y×X`` stack; here a 6-D label image is cut
into its ``(scene, time point)`` stacks, each labelled or measured on its own, and the results
put back together: instance labels as an OME-Zarr image with the same ``[T][Z]YX`` axes and
pixel sizes (one NGFF image per scene where there are several), tables with a ``t`` column (and
``scene`` where there are several). Z stacks give 3-D objects. Nothing is silently dropped: a
label image with several channels is an error that says so.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeml.errors import (
    ImageNotFoundError,
    InvalidImageError,
    InvalidLabelsError,
    InvalidRequestError,
    ScopeMLError,
    find_stack_level,
    not_found,
    summarize,
)
from scopeml.io._view import AxesView
from scopeml.io.image import Image
from scopeml.io.regions import iter_regions
from scopeml.io.replace import check_replaceable_store
from scopeml.io.stores import is_zarr_store
from scopeml.objects.label import ProvisionalLabels, _check_sizes, _structure, tile_sizes
from scopeml.objects.measure import _parse_spacing, warn_nonfinite
from scopeml.objects.measure_tiled import TableSink, empty_table, measure_stack
from scopeml.objects.split import Split, split_objects
from scopeml.objects.stacks import StackView, iter_stacks
from scopeml.progress import Progress
from scopeml.tiling.store import WRITER, writer

#: Times over that objects' boxes cover a stack, beyond which its labels are taken for an
#: intensity image (objects, even touching, cover it about once).
SCATTERED = 10.0
#: Distinct label values collected at most to say which occur (an instance image has millions).
VALUES_KEPT = 10_000

__all__ = [
    "StackView",
    "array_image",
    "check_same_sizes",
    "filter_image",
    "iter_stacks",
    "label_image",
    "measure_image",
    "open_labels",
]


def check_label_image(labels: Image) -> None:
    """A label image has one channel of integers; anything else is an error naming the file."""
    if labels.sizes["C"] != 1:
        raise InvalidLabelsError(
            f"label image has {labels.sizes['C']} channels; labels have one (Python: pick it "
            "with Image.select_channels; the command line reads a file of that channel alone); "
            "a colour or intensity image is no labels: segment it first (segment, analyze)",
            path=labels.path,
        )
    if labels.dtype.kind not in "biu":
        hint = "; a float label image (such as Fiji's 32-bit) is read once saved as integers " \
            "(numpy: labels.astype(np.uint32))" if labels.dtype.kind == "f" else ""  # fmt: skip
        raise InvalidLabelsError(
            f"labels must be integers; got dtype {labels.dtype}{hint}", path=labels.path
        )


def check_store_name(output: str | os.PathLike[str]) -> None:
    """Refuse an image or table file name (``objects.tif``, ``objects.csv``) for a new OME-Zarr
    store, before any work: it would be a folder by that name that no reader of the suffix
    opens. ``segment``'s check and words, less its ``--ome-tiff`` (which only it has).

    Examples
    --------
    >>> check_store_name("objects.ome.zarr")
    >>> check_store_name("objects.csv")
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: objects.csv: the output is an OME-Zarr store (a \
folder), not a .csv file; name it objects.ome.zarr (a table of objects: scopeml objects measure)
    """
    from scopeml.inputs import check_output_name

    check_output_name(output, note="", tables=True)


def check_same_sizes(
    reference: Image,
    other: Image,
    name: str,
    reference_name: str,
    error: type[Exception],
    *,
    hint: bool = True,
) -> None:
    """Two images of one scene must agree on every axis but ``C`` (``error`` names ``other``);
    ``hint``: where one's time points are the other's Z planes, say which to read as TYX (off
    for a caller that knows the axes to name).

    Examples
    --------
    >>> one, two = Image(np.zeros((1,) * 6)), Image(np.zeros((1, 2, 1, 1, 1, 1)))
    >>> try:
    ...     check_same_sizes(one, two, "labels", "the image", ValueError)
    ... except ValueError as err:
    ...     print(str(err).split(";")[0])
    labels have sizes {'S': 1, 'T': 2, 'Z': 1, 'Y': 1, 'X': 1}
    """
    want = {a: n for a, n in reference.sizes.items() if a != "C"}
    have = {a: n for a, n in other.sizes.items() if a != "C"}
    if want != have:
        verb = "have" if name.endswith("s") else "has"
        ref_verb = "have" if reference_name.endswith("s") else "has"
        message = (
            f"{name} {verb} sizes {have}; {reference_name} {ref_verb} sizes {want} "
            "(every axis but C must agree)"
        )
        swapped = {**have, "T": have["Z"], "Z": have["T"]} == want
        if hint and swapped and 1 in (have["T"], have["Z"]):  # a time series read as Z
            from scopeml.io.stores import is_zarr_store

            planes, image = (name, other) if have["Z"] > 1 else (reference_name, reference)
            planes = planes if planes.startswith("the ") else f"the {planes}"
            fix = f"read {planes} with axes TYX (--axes TYX, axes='TYX')"
            if image.path is not None and is_zarr_store(image.path):  # scopeml's: made so
                fix = f"make {planes} again from the file read with --axes TYX (a store "
                fix += "keeps the axes it was written with)"
            message += f"; the time points of one are the Z planes of the other: {fix}"
        if issubclass(error, ScopeMLError):
            raise error(message, path=other.path)
        raise error(message)


def label_image(
    labels: Image,
    output: str | os.PathLike[str],
    *,
    class_id: int | None = None,
    connectivity: int = 1,
    min_size: int = 0,
    max_size: int | None = None,
    remove_border: bool = False,
    split: Split | None = None,
    tile_size: int | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    require_class: bool = False,
) -> Image:
    """Instance labels of every scene and time point of a label image, as OME-Zarr.

    Each ``(scene, time point)`` stack is labelled on its own, tile by tile (3-D objects in a
    Z stack). Object ids are unique in the whole output: a time point's ids follow the previous
    one's. The output keeps the input's ``[T][Z]YX`` axes and pixel sizes; several scenes become
    NGFF images ``0, 1, …`` inside it (read back as ``S``).

    Parameters
    ----------
    labels
        Semantic labels or a mask: one channel, integers, 0 = background.
    output
        The ``.ome.zarr`` to create (written to a temporary sibling, moved into place).
    class_id
        Label value whose objects to label; ``None`` labels every non-zero pixel.
    connectivity
        1 = faces only … ``ndim`` = full neighbourhood.
    min_size
        Objects with fewer pixels (voxels in a Z stack) are dropped; ids stay ``1..n`` without
        gaps. Sizes are those of whole objects, joined across tiles, so any tiling gives the
        same objects.
    max_size
        Objects with more pixels (voxels) are dropped too, measured whole as ``min_size``.
    remove_border
        Drop the objects touching the image's edge in Y or X (cut by the field of view).
    split
        Split touching objects at the necks of their distance to the background, each object
        on its own (:mod:`scopeml.objects.split`: exact whatever the tiling); the size and
        border rules then apply to the pieces.
    tile_size
        Tile size: one int, or one per ``(Z,) Y, X`` (also the output chunks), clipped to the
        image; default :func:`~scopeml.objects.label.default_tile` (1024×1024 in 2-D, at most
        128³ voxels in 3-D).
    overwrite
        Replace an existing output store.
    progress
        See :mod:`scopeml.progress`; stages ``label`` and ``relabel`` per stack.
    require_class
        Refuse a ``class_id`` that occurs nowhere in the labels (naming the values that do),
        and write nothing: for plain labels, where the value is the class's only name and an
        absent one is a typo. Labels whose classes are known (a segment store) may lack a class.

    Returns
    -------
    Image
        The instance labels, opened lazily (``uint32``); ``n_objects`` is stored in the image
        group's attributes.

    Examples
    --------
    >>> import tempfile
    >>> mask = np.zeros((1, 2, 1, 1, 4, 6), np.uint8)
    >>> mask[0, 0, 0, 0, 1:3, 1:3] = mask[0, 1, 0, 0, :2, 4:] = mask[0, 1, 0, 0, 3, :2] = 1
    >>> out = label_image(Image(mask), f"{tempfile.mkdtemp()}/objects.ome.zarr")
    >>> out.shape, out.read()[0, :, 0, 0].max(axis=(1, 2)).tolist()
    ((1, 2, 1, 1, 4, 6), [1, 3])
    """

    _check_sizes(min_size, max_size, remove_border)
    found_any = False  # an object of the class, before small ones were dropped
    warned = False

    def label_stack(stack: Any, work: Path, tiles: tuple[int, ...], put: Any, offset: int) -> int:
        nonlocal found_any, warned
        rules = dict(min_size=min_size, max_size=max_size, remove_border=remove_border)
        with ProvisionalLabels(
            stack, work, class_id, connectivity, tiles, progress, **({} if split else rules)
        ) as found:
            found_any |= found.n_found > 0
            if found.joined and not warned:  # a StarDist/cellpose label image, say
                warned = True
                warn_not_labels(
                    labels,
                    f"touching pixels of different values ({found.joined[0]} and "
                    f"{found.joined[1]}) were joined into one object; labels that are objects "
                    "already are filtered (objects filter) and measured (objects measure) as "
                    "they are; of class labels, label one class (--class, class_=)",
                )
            if split is None:
                found.write(put, dtype=np.uint32, offset=offset)
                return found.n_objects
            return _split_stack(found, work, put, offset, split, connectivity, rules, progress)

    def finish(n_objects: int) -> None:
        if require_class and class_id is not None and not found_any:
            raise InvalidRequestError(
                f"no label value {class_id} in these labels (values present: "
                f"{present_values(labels, tile_size)}); choose one with class_= (--class)",
                path=labels.path,
            )

    return write_label_image(
        labels, output, label_stack, name="objects", connectivity=connectivity,
        tile_size=tile_size, overwrite=overwrite, finish=finish, progress=progress,
    )  # fmt: skip


#: Largest object id :func:`filter_image` takes (its records hold ~50 bytes per id).
MAX_FILTER_ID = 2**24


def filter_image(
    labels: Image,
    output: str | os.PathLike[str],
    *,
    min_size: int = 0,
    max_size: int | None = None,
    remove_border: bool = False,
    split: Split | None = None,
    connectivity: int = 1,
    tile_size: int | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: Progress = None,
) -> Image:
    """Labels that are objects already (StarDist, cellpose, ``segment``'s instances), each
    kept as it is however it touches the others, filtered by size and the image's edge and,
    with ``split``, each split on its own (:func:`~scopeml.objects.split.split_objects`);
    ids renumbered ``1..n`` by first pixels, unique across time points; out of core as
    :func:`label_image`. CellProfiler's FilterObjects, which ``label_image`` cannot be: it
    joins touching objects.
    """
    _check_sizes(min_size, max_size, remove_border)

    def filter_stack(stack: Any, work: Path, tiles: tuple[int, ...], put: Any, offset: int) -> int:
        try:
            return split_objects(
                stack, put, split=split, work=work, tiles=tiles, connectivity=connectivity,
                min_size=min_size, max_size=max_size, remove_border=remove_border,
                offset=offset, progress=progress, max_id=MAX_FILTER_ID,
            )  # fmt: skip
        except InvalidLabelsError as err:  # the ids' bound: the file's
            raise InvalidLabelsError(err.problem, path=labels.path) from None

    return write_label_image(
        labels, output, filter_stack, name="objects", connectivity=connectivity,
        tile_size=tile_size, overwrite=overwrite, progress=progress,
    )  # fmt: skip


def _split_stack(
    found: ProvisionalLabels,
    work: Path,
    put: Any,
    offset: int,
    split: Split,
    connectivity: int,
    rules: dict[str, Any],
    progress: Progress,
) -> int:
    """Write a stack's connected components to scratch, split them, then put the pieces."""
    import zarr

    whole = zarr.open_array(
        str(work) + ".whole", mode="w", shape=found.shape, chunks=found.tiles, dtype=np.uint32,
        fill_value=0,
    )  # fmt: skip
    try:
        found.write(whole.__setitem__, dtype=np.uint32)
        return split_objects(
            whole, put, split=split, work=Path(str(work) + ".pieces"), tiles=found.tiles,
            connectivity=connectivity, offset=offset, progress=progress, **rules,
        )  # fmt: skip
    finally:
        for scratch in (".whole", ".pieces"):
            shutil.rmtree(str(work) + scratch, ignore_errors=True)


def warn_not_labels(labels: Image, found: str) -> None:
    """The one warning of labelling and measuring where the labels look like an intensity
    image (``found`` says what was seen), which they take without error but make nonsense of."""
    warnings.warn(
        f"{labels.path or 'labels'}: {found}; an intensity image is no mask: segment it first "
        "(segment, analyze)",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def present_values(labels: Image, tile_size: int | Sequence[int] | None = None) -> str:
    """The label values that occur in every scene and time point, summarised for a message.

    One pass over the image tile by tile; at most :data:`VALUES_KEPT` distinct values are kept.

    Examples
    --------
    >>> present_values(Image(np.array([0, 3, 3, 1], np.uint8).reshape(1, 1, 1, 1, 2, 2)))
    '0, 1, 3'
    """
    ndim = 2 if labels.sizes["Z"] == 1 else 3
    tiles = tile_sizes(tile_size, tuple(labels.spatial_shape[-ndim:]))
    values = np.zeros(0, np.int64)
    more = False
    for _, _, stack in iter_stacks(labels):
        for region, _ in iter_regions(stack.shape, tiles):
            values = np.union1d(values, np.unique(np.asarray(stack[region])))
            if values.size > VALUES_KEPT:
                values, more = values[:VALUES_KEPT], True
    shown = summarize(values.tolist())
    return shown.replace(" in all)", "+ in all)") if more else shown


def write_label_image(
    labels: Image,
    output: str | os.PathLike[str],
    label_stack: Any,
    *,
    name: str,
    connectivity: int,
    tile_size: int | Sequence[int] | None,
    overwrite: bool,
    finish: Any = None,
    progress: Progress = None,
) -> Image:
    """The one life of an objects store, shared by :func:`label_image` and
    :func:`~scopeml.objects.instances.instance_image`: checks, a temporary store moved into
    place when complete, one ``(scene, time point)`` stack at a time.

    ``label_stack(stack, work, tiles, put, offset)`` labels one stack (``work`` a scratch folder
    it may use), writes its ids plus ``offset`` through ``put(region, ids)`` and returns how
    many objects it wrote, so ids are unique in the whole output. Each scene's array records
    ``n_objects`` (the whole output's) and ``time_offsets``: per time point, the id its objects
    are numbered after. ``finish(n_objects)``, if
    given, is called when every stack is labelled, before the store is moved into place: it
    may refuse the result by raising (nothing is then left behind). ``progress`` gets stage
    ``NAME (planes)`` where there are several stacks (:func:`~scopeml.objects.stacks.iter_stacks`).
    """
    from scopeml.io import open_image
    from scopeml.io.pyramid import add_levels

    check_store_name(output)
    check_label_image(labels)
    output = Path(output)
    if output.exists() and not overwrite:
        raise InvalidRequestError(
            "output exists; pass --overwrite (overwrite=True) to replace it", path=output
        )
    check_replaceable_store(output, inputs=(labels.path,) if labels.path else ())
    ndim = 2 if labels.sizes["Z"] == 1 else 3
    _structure(ndim, connectivity)
    tiles = tile_sizes(tile_size, tuple(labels.spatial_shape[-ndim:]))
    temp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.partial.zarr")
    try:
        arrays, several_times = create_label_arrays(labels, temp, tiles, name=name)
        carry_source(labels, temp)
        n_objects = 0
        offsets: list[list[int]] = [[] for _ in arrays]
        for scene, time, stack in iter_stacks(labels, progress=progress, stage=f"{name} (planes)"):
            offsets[scene].append(n_objects)
            work = temp.with_name(temp.name + f".{scene}.{time}.tmp")
            array, at = arrays[scene], (time,) if several_times else ()
            try:
                found = label_stack(
                    stack, work, tiles,
                    lambda region, ids, a=array, t=at: a.__setitem__((*t, *region), ids),
                    n_objects,
                )  # fmt: skip
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if n_objects + found >= 2**32:
                raise InvalidLabelsError("more than 2³² − 1 objects", path=labels.path)
            n_objects += found
        if finish is not None:
            finish(n_objects)
        for array, starts in zip(arrays, offsets, strict=True):
            array.attrs.update({"n_objects": n_objects, "time_offsets": starts, WRITER: writer()})
        for scene in range(len(arrays)):  # levels a viewer shows a huge one whole from
            add_levels(temp if len(arrays) == 1 else temp / str(scene), "mode", progress)
        if output.exists():
            shutil.rmtree(output)
        os.replace(temp, output)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return open_image(output)


def carry_source(labels: Image, store: Path) -> None:
    """Record in ``store`` the image file the ``labels``' own store says it was made from (a
    segment run's, or one such record carried along), so ``objects measure`` of the objects
    finds the intensities as it does for the segment store: it measured shapes only after
    ``segment → post → objects label``."""
    import zarr

    from scopeml.segmentation import SOURCE_KEY, run_read_near

    read = run_read_near(labels.path) if labels.path else None
    if read is not None:
        source = {"image": read.image, "axes": read.axes, "scene": read.scene}
        zarr.open_group(str(store), mode="r+").attrs[SOURCE_KEY] = source


def create_label_arrays(
    labels: Image, path: Path, tiles: tuple[int, ...], *, name: str
) -> tuple[list[Any], bool]:
    """Empty ``uint32`` OME-Zarr arrays for the objects of every scene of ``labels`` at
    ``path``: axes ``[T][Z]YX``, chunks ``tiles``, the labels' pixel sizes, one NGFF image per
    scene where there are several. Returns the arrays and whether they have a ``T`` axis."""
    import zarr

    from scopeml.io.omezarr import create_ome_zarr, mark_label_image

    sizes = labels.sizes
    ndim = 2 if sizes["Z"] == 1 else 3
    spatial = tuple(labels.spatial_shape[-ndim:])
    axes = ("T" if sizes["T"] > 1 else "") + ("Z" if ndim == 3 else "") + "YX"
    lead = (sizes["T"],) if sizes["T"] > 1 else ()
    pixel_sizes = {a: v for a, v in labels.pixel_sizes.items() if a in "TZYX"}  # T: s
    arrays = [
        create_ome_zarr(
            path if sizes["S"] == 1 else path / str(scene),
            shape=(*lead, *spatial), dtype=np.uint32, axes=axes,
            chunks=(1,) * len(lead) + tiles,
            pixel_sizes=pixel_sizes, name=name, root=path, channel_names=[name],
        )
        for scene in range(sizes["S"])
    ]  # fmt: skip
    for scene in range(sizes["S"]):  # napari and other NGFF viewers open them as labels
        mark_label_image(zarr.open_group(str(path if sizes["S"] == 1 else path / str(scene))), ())
    return arrays, bool(lead)


def measure_image(
    labels: Image,
    image: Image | None = None,
    *,
    pixel_sizes: Mapping[str, float] | None = None,
    shape_features: bool = True,
    tile_size: int | Sequence[int] | None = None,
    margin: int = 128,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    workers: int = 2,
) -> pd.DataFrame | Path:
    """Measure every object of every scene and time point; one row per object per time point.

    Parameters
    ----------
    labels
        Instance labels (one channel; 0 = background).
    image
        Intensities of the same ``S``, ``T``, ``Z``, ``Y``, ``X`` sizes (any channels).
    pixel_sizes
        Micrometres per pixel by axis; default the label image's, else the intensity image's.
    shape_features, tile_size, margin, workers
        As in :func:`~scopeml.objects.measure_tiled.measure_objects_tiled`.
    output
        Stream the rows to this ``.csv``/``.parquet`` instead of returning a table.
    overwrite
        Replace an existing ``output`` file (else it is refused before any work).
    progress
        See :mod:`scopeml.progress`; stages ``find objects`` and ``measure`` per stack.

    Returns
    -------
    pandas.DataFrame or pathlib.Path
        ``t`` (and ``scene`` when there are several, or the image is one scene of its file,
        numbered as the file does, with ``scene_name`` where the file names its scenes, a
        plate's wells; ``time_s``, the time point's time in seconds, where the images record
        their time step) in front of the columns of
        :func:`~scopeml.objects.measure.measure_objects`; sorted by them and ``label``.

    Examples
    --------
    >>> labels = np.zeros((1, 2, 1, 1, 4, 4), np.uint8)
    >>> labels[0, 0, 0, 0, :2, :2] = 1
    >>> labels[0, 1, 0, 0, 1:, 1:] = 2
    >>> measure_image(Image(labels))[["t", "label", "area"]].values.tolist()
    [[0.0, 1.0, 4.0], [1.0, 2.0, 9.0]]
    """
    check_label_image(labels)
    ndim = 2 if labels.sizes["Z"] == 1 else 3
    if image is not None:
        check_same_sizes(labels, image, "image", "labels", InvalidImageError)
    sizes = pixel_sizes or labels.pixel_sizes or (image.pixel_sizes if image is not None else {})
    spacing = _parse_spacing(sizes, ndim)
    if not pixel_sizes:  # the files' own (a pixel size given is resolved, and warned of, before)
        source = labels if labels.pixel_sizes or image is None else image
        warn_no_z_step(sizes, ndim, source.path)
    names = image.channel_names if image is not None else None
    tiles = tile_sizes(tile_size, labels.spatial_shape[-ndim:])
    # the file's scene number where the image is one scene of a file (``--scene 2``)
    chosen = image.view()["scene"] if image is not None and labels.sizes["S"] == 1 else None
    several_scenes = labels.sizes["S"] > 1 or chosen is not None
    named = tuple(getattr(image, "scene_names", ()) or ())  # the file's: a plate's wells
    step = float(sizes.get("T") or 0)  # seconds between time points
    sink = TableSink(output, overwrite=overwrite)
    reader = None
    try:
        for scene, time, stack in iter_stacks(labels, progress=progress, stage="measure (planes)"):
            number = scene if chosen is None else chosen
            sink.keys = {"scene": number, "t": time} if several_scenes else {"t": time}
            if several_scenes and number < len(named):  # beside its number, as analyze has it
                sink.keys = {"scene": number, "scene_name": str(named[number]), "t": time}
            if step:  # the time point's time, where the file says its time step
                sink.keys["time_s"] = time * step
            reader = None
            if image is not None:
                intensities = StackView(image, scene=scene, time=time, channel=None)
                reader = lambda region, view=intensities: view[(slice(None), *region)]  # noqa: E731
            measure_stack(stack, reader, sink, spacing, names, shape_features, tiles, margin,
                          progress, workers)  # fmt: skip
        if sink.empty:
            sink.add(empty_table(ndim, reader, spacing, names, shape_features))
    except BaseException:
        sink.abort()
        raise
    warn_nonfinite(sink.nonfinite, sink.rows, image.path if image is not None else None)
    if sink.cover > SCATTERED:  # grey values: each one's pixels all over the image
        warn_not_labels(labels, f"the boxes of its {sink.rows} objects cover the image "
                        f"{sink.cover:.0f} times over, as grey values' pixels do")  # fmt: skip
    return sink.close()


def warn_no_z_step(sizes: Mapping[str, float], ndim: int, path: Any = None) -> None:
    """Warn that a Z stack whose file records Y and X but no Z step is measured in voxels, as
    a pixel size given without one is (:func:`~scopeml.pixel_size.resolve_pixel_sizes`):
    the table would lack its µm columns unsaid."""
    if ndim == 3 and sizes.get("Y") and sizes.get("X") and not sizes.get("Z"):
        warnings.warn(
            f"{path or 'the image'}: a Z stack without a Z step (its file records Y and X "
            "only): its objects are measured in voxels; give the pixel size as Z,Y,X "
            "(--pixel-size Z,Y,X, pixel_size=)",
            UserWarning,
            stacklevel=find_stack_level(),
        )


def open_labels(path: str | os.PathLike[str]) -> Image:
    """A label image as a lazy :class:`~scopeml.io.image.Image`: any image file, an OME-Zarr,
    or a plain ``.npy`` / zarr array (see :func:`array_image`)."""
    path = Path(path)
    if not path.exists():
        raise ImageNotFoundError(not_found(path), path=path)
    if path.suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as err:
            raise InvalidImageError(f"cannot read labels: {err}", path=path) from err
        return array_image(array, path=path)
    if is_zarr_store(path):
        import zarr

        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Array) and not getattr(node.metadata, "dimension_names", None):
            return array_image(node, path=path)
    from scopeml.io import open_image

    return open_image(path)


def array_image(
    array: Any, axes: str | None = None, *, path: str | os.PathLike[str] | None = None
) -> Image:
    """An array (numpy, zarr, memmap) as a lazy 6-D :class:`Image`.

    ``axes`` names its axes, in order (``"CYX"``); by default a 2-D array is ``Y×X``, a 3-D one
    ``Z×Y×X`` and a 6-D one ``S×T×C×Z×Y×X``; anything else must be named.

    Examples
    --------
    >>> array_image(np.zeros((3, 4, 5))).sizes["Z"], array_image(np.zeros((2, 4, 5)), "CYX").shape
    (3, (1, 1, 2, 1, 4, 5))
    """
    shape = tuple(array.shape)
    axes = axes or {2: "YX", 3: "ZYX", 6: "STCZYX"}.get(len(shape))
    if axes is None or len(axes) != len(shape):
        raise InvalidImageError(
            f"an array of shape {shape} needs its axes named: Y×X, Z×Y×X and S×T×C×Z×Y×X are "
            "read without (store other layouts as OME-TIFF or OME-Zarr)",
            path=path,
        )
    check_not_empty(shape, axes, "array", path=path)
    return Image(AxesView(array, axes, path=None if path is None else str(path)), path=path)


def check_not_empty(
    shape: Sequence[int], axes: str, what: str, *, path: str | os.PathLike[str] | None = None
) -> None:
    """Refuse an array with a zero-size axis as the image's fault, before a model, a tile plan
    or a store sees it (they would blame themselves: "tile size along Y must be >= 1").

    Examples
    --------
    >>> check_not_empty((0, 5), "YX", "image")
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidImageError: image has an empty axis Y (size 0): shape (0, 5) read as Y×X
    """
    empty = [axis for axis, size in zip(axes, shape, strict=True) if size == 0]
    if empty:
        raise InvalidImageError(
            f"{what} has {'empty axes' if len(empty) > 1 else 'an empty axis'} {', '.join(empty)} "
            f"(size 0): shape {tuple(shape)} read as {'×'.join(axes)}",
            path=path,
        )
