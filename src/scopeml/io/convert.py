"""Copy any :class:`Image` into an OME-Zarr store, chunk by chunk (CZI/TIFF → OME-Zarr).

Axes of size 1 other than C are left out (a 2-D gray image becomes ``CYX``); pixel sizes and
channel names carry over, and each channel's display window is its own values' range (a
12-bit camera's ``uint16`` pixels are not shown against 0–65535, nearly black). An image with
several scenes becomes one NGFF image per scene in groups ``0, 1, …`` (the bioformats2raw
layout, which :func:`~scopeml.io.open_image` reads back as scenes). Each image gets the lower
resolutions a viewer needs to show it whole (:func:`~scopeml.io.pyramid.levels_for`). The
store is written beside the target and renamed when complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import zarr

from scopeml.errors import InvalidRequestError
from scopeml.io.image import AXES, Image
from scopeml.io.omezarr import create_ome_zarr, mark_label_image, set_display_window
from scopeml.io.pyramid import levels_for, write_pyramid
from scopeml.io.regions import iter_regions
from scopeml.io.replace import atomic_write, check_replaceable_store
from scopeml.progress import Progress, track

DEFAULT_CHUNKS = {"T": 1, "C": 1, "Z": 1, "Y": 512, "X": 512}


def write_ome_zarr(
    path: str | Path,
    image: Image | Sequence[Image | Callable[[], Image]],
    *,
    chunks: Mapping[str, int] | None = None,
    levels: int | None = None,
    method: str | None = None,
    labels: bool = False,
    classes: Sequence[str] = (),
    overwrite: bool = False,
    progress: Progress = None,
    stage: str = "convert",
) -> Path:
    """Write ``image`` to a new OME-Zarr store at ``path``, one chunk-aligned block at a time;
    or a list of images, each a scene of its own size (a file whose scenes differ in size), one
    NGFF image each: an image, or a function opening one scene, which is opened, written and
    closed in turn (a plate of hundreds of positions holds one file open at a time).

    Parameters
    ----------
    chunks
        Chunk size per axis letter; missing axes use ``DEFAULT_CHUNKS`` (one plane, 512×512).
    levels
        Pyramid levels, level 0 included (see :func:`~scopeml.io.write_pyramid`); ``None``:
        halved until Y and X fit in 1024 px (:func:`~scopeml.io.pyramid.levels_for`).
    method
        Downsampling of the levels (``"mean"``, ``"mode"``, ``"nearest"``); ``None``: ``"mode"``
        for labels, else ``"mean"``.
    labels
        The image holds labels (one channel of integers, else refused): its lower resolutions
        take each block's most frequent value (a mean would invent labels), it has no channel
        axis and is marked as an NGFF ``image-label``, so viewers show it as labels.
    classes
        Labels' class names, value 1 first, recorded in the ``image-label`` mark.
    progress
        Stage ``stage`` (one unit per block copied), then ``pyramid``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from scopeml.io import open_image
    >>> image = Image(np.arange(20, dtype=np.uint8).reshape(1, 1, 1, 1, 4, 5),
    ...               pixel_sizes={"X": 0.5, "Y": 0.5})
    >>> out = write_ome_zarr(Path(tempfile.mkdtemp()) / "copy.ome.zarr", image)
    >>> open_image(out).read()[0, 0, 0, 0, 1].tolist()
    [5, 6, 7, 8, 9]
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidRequestError("output exists; remove it or pass overwrite=True", path=path)
    images = [image] if isinstance(image, Image) else list(image)
    opened = [one for one in images if isinstance(one, Image)]
    check_replaceable_store(path, inputs=tuple(one.path for one in opened))
    for one in opened if labels else ():
        _check_labels(one)
    parts = [(one, scene) for one in images
             for scene in (range(one.sizes["S"]) if isinstance(one, Image) else [0])]  # fmt: skip
    options = dict(chunks={**DEFAULT_CHUNKS, **(chunks or {})}, levels=levels, labels=labels,
                   method=method or ("mode" if labels else "mean"), classes=classes,
                   progress=progress, stage=stage)  # fmt: skip
    with atomic_write(path, folder=True) as partial:
        for number, (one, scene) in enumerate(parts):
            group = partial if len(parts) == 1 else partial / str(number)
            with contextlib.nullcontext(one) if isinstance(one, Image) else one() as each:
                if labels and each is not one:  # opened only now, one scene at a time
                    _check_labels(each)
                name = _scene_name(each, scene, path, several=len(parts) > 1)
                _write_scene(each, scene, group, partial, name=name, **options)
        if len(parts) > 1:  # mark the layout, as bioformats2raw does (NGFF transitional spec)
            root = zarr.open_group(str(partial), mode="r+")
            root.attrs.update({"ome": {"version": "0.5", "bioformats2raw.layout": 3}})
    return path


def _check_labels(image: Image) -> None:
    from scopeml.objects.images import check_label_image

    check_label_image(image)


def _write_scene(image: Image, scene: int, group: Path, root: Path, *, name: str,
                 chunks: Mapping[str, int], levels: int | None, labels: bool, method: str,
                 classes: Sequence[str], progress: Progress, stage: str) -> None:  # fmt: skip
    """One scene of ``image`` as the NGFF image ``group`` of the store at ``root``, with its
    own axes, chunks and levels (scenes may differ in size)."""
    sizes = image.sizes
    axes = "".join(a for a in AXES[1:] if a in ("YX" if labels else "CYX") or sizes[a] > 1)
    block = {a: max(1, min(int(chunks[a]), sizes[a])) for a in axes}
    levels = levels_for(sizes["Y"], sizes["X"]) if levels is None else levels
    array = create_ome_zarr(
        group,
        shape=[sizes[a] for a in axes],
        dtype=image.dtype,
        axes=axes,
        chunks=[block[a] for a in axes],
        pixel_sizes=image.pixel_sizes,
        channel_names=image.channel_names if "C" in axes else None,
        name=name,
        overwrite=True,
        root=root,
    )
    spans = _copy(image, scene, array, axes, block, progress, stage)
    if labels:  # shown over the ids or classes written (a class image: 1–3, not 0–255)
        mark_label_image(zarr.open_group(str(group), mode="r+"), classes)
        set_display_window(zarr.open_group(str(group), mode="r+"), spans[0][1])
    else:  # each channel shown over its own values, not its type's whole range
        set_display_window(zarr.open_group(str(group), mode="r+"), spans)
    if levels > 1:
        write_pyramid(group, levels=levels, method=method, progress=progress)


def _scene_name(image: Image, scene: int, path: Path, *, several: bool) -> str:
    """A scene's NGFF name: its name in the source (a CZI's well, ``B2``), which
    :func:`~scopeml.io.omezarr.read_ome_zarr` gives back as the scene's name; else the
    store's. ``image`` may be one scene of its file (``open_scenes``): named by its number
    there."""
    names = getattr(image, "scene_names", ())
    number = image.view()["scene"] if image.sizes["S"] == 1 else None
    number = scene if number is None else number
    return str(names[number]) if several and 0 <= number < len(names) else path.name


def _copy(image: Image, scene: int, array: zarr.Array, axes: str, block: dict[str, int],
          progress: Progress, stage: str) -> list[tuple[float, float]]:  # fmt: skip
    """Copy one scene block by block (every block is whole chunks, so each is written once);
    returns each channel's finite value range, ``(0, 1)`` where it has none."""
    shape = [image.sizes[a] for a in axes]
    regions = list(iter_regions(shape, [block[a] for a in axes]))
    low = np.full(image.sizes["C"], np.inf)
    high = np.full(image.sizes["C"], -np.inf)
    for key, _ in track(regions, progress, stage, unit="block"):
        region = dict(zip(axes, key, strict=True))
        pixels = image.read(S=scene, **region)  # 6-D, the axes not in `axes` have size 1
        array[key] = pixels.reshape([s.stop - s.start for s in key])
        first = region["C"].start if "C" in region else 0
        for index, plane in enumerate(np.moveaxis(pixels, 2, 0), start=first):
            finite = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
            if finite.size:
                low[index] = min(low[index], finite.min())
                high[index] = max(high[index], finite.max())
    return [(lo, hi) if lo <= hi else (0.0, 1.0) for lo, hi in zip(low, high, strict=True)]
