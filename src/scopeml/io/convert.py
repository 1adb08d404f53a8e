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

from collections.abc import Mapping, Sequence
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
    image: Image,
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
    """Write ``image`` to a new OME-Zarr store at ``path``, one chunk-aligned block at a time.

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
    check_replaceable_store(path, inputs=(image.path,))
    if labels:
        from scopeml.objects.images import check_label_image

        check_label_image(image)
    sizes = image.sizes
    axes = "".join(a for a in AXES[1:] if a in ("YX" if labels else "CYX") or sizes[a] > 1)
    chunk_of = {**DEFAULT_CHUNKS, **(chunks or {})}
    block = {a: max(1, min(int(chunk_of[a]), sizes[a])) for a in axes}
    levels = levels_for(sizes["Y"], sizes["X"]) if levels is None else levels
    method = method or ("mode" if labels else "mean")
    with atomic_write(path, folder=True) as partial:
        scenes = range(sizes["S"])
        for scene in scenes:
            group = partial if len(scenes) == 1 else partial / str(scene)
            array = create_ome_zarr(
                group,
                shape=[sizes[a] for a in axes],
                dtype=image.dtype,
                axes=axes,
                chunks=[block[a] for a in axes],
                pixel_sizes=image.pixel_sizes,
                channel_names=image.channel_names if "C" in axes else None,
                name=_scene_name(image, scene, path),
                overwrite=True,
                root=partial,
            )
            spans = _copy(image, scene, array, axes, block, progress, stage)
            if labels:
                mark_label_image(zarr.open_group(str(group), mode="r+"), classes)
            else:  # each channel shown over its own values, not its type's whole range
                set_display_window(zarr.open_group(str(group), mode="r+"), spans)
            if levels > 1:
                write_pyramid(group, levels=levels, method=method, progress=progress)
        if len(scenes) > 1:  # mark the layout, as bioformats2raw does (NGFF transitional spec)
            root = zarr.open_group(str(partial), mode="r+")
            root.attrs.update({"ome": {"version": "0.5", "bioformats2raw.layout": 3}})
    return path


def _scene_name(image: Image, scene: int, path: Path) -> str:
    """An image's NGFF name: its scene's name in the source (a CZI's well, ``B2``), which
    :func:`~scopeml.io.omezarr.read_ome_zarr` gives back as the scene's name; else the
    store's."""
    names = getattr(image, "scene_names", ())
    several = image.sizes["S"] > 1 and len(names) == image.sizes["S"]
    return str(names[scene]) if several else path.name


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
