"""Post-processing of a label image tile by tile, from one OME-Zarr store into another.

Peak memory depends on the tile size and the steps' halo, never on the image size: each
``(Z×)Y×X`` tile is read with the halo of its steps (:func:`~scopeml.post.steps.steps_halo`),
processed, and only its core written, so the result equals the whole-image result exactly.
The output is written to a temporary store and moved into place when complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io.image import Image
from scopeml.io.regions import core_region, iter_regions
from scopeml.post.steps import PostStep, apply_steps, steps_halo
from scopeml.progress import Progress, track

#: Default tile edge (pixels) along Y and X; Z is read whole up to this size too.
TILE_SIZE = 1024


def post_process_tiled(
    image: Image,
    steps: Sequence[PostStep],
    out: np.ndarray,
    *,
    tile_size: int = TILE_SIZE,
    progress: Progress = None,
) -> None:
    """Run ``steps`` over every plane stack of a 6-D label ``image`` into the 6-D ``out``.

    ``out`` is any array-like with ``image.shape`` that takes slice assignment (a zarr array).
    Each scene, time point and channel is processed on its own as a ``Z×Y×X`` volume (the steps
    work in 3-D when Z > 1), tile by tile.

    Examples
    --------
    >>> labels = np.zeros((1, 1, 1, 1, 30, 30), np.uint8); labels[..., 5:25, 5:25] = 1
    >>> labels[..., 10, 10] = 0; labels[..., 2, 2] = 1
    >>> out = np.empty_like(labels)
    >>> post_process_tiled(Image(labels), [PostStep.parse("fill_holes"),
    ...                    PostStep.parse("remove_small:2")], out, tile_size=8)
    >>> int(out[0, 0, 0, 0, 10, 10]), int(out[0, 0, 0, 0, 2, 2]), int(out.sum())
    (1, 0, 400)
    """
    if not np.issubdtype(image.dtype, np.integer):
        raise InvalidImageError(
            f"post-processing takes integer labels; the image is {image.dtype}", path=image.path
        )
    _check_tile_size(tile_size)
    halo = steps_halo(steps)
    volume = image.sizes["Z"] > 1  # a single plane is 2-D: in 3-D its faces would be border
    spatial = image.spatial_shape if volume else image.spatial_shape[1:]
    tiles = list(iter_regions(spatial, tile_size, halo))
    work = [(stack, tile) for stack in np.ndindex(*image.shape[:3]) for tile in tiles]
    for (s, t, c), (read, core) in track(work, progress, "post", unit="tile"):
        zyx = read if volume else (slice(0, 1), *read)
        window = image.read(S=s, T=t, C=c, Z=zyx[0], Y=zyx[1], X=zyx[2])[0, 0, 0]
        result = apply_steps(window if volume else window[0], steps)[core]
        where = core_region(read, core)
        out[(s, t, c, *(where if volume else (slice(0, 1), *where)))] = result.reshape(
            [w.stop - w.start for w in where] if volume else (1, *result.shape)
        )


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
    written to a temporary store and moved into place when complete.

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
                image, steps, _SixD(array, axes), tile_size=tile_size, progress=progress
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
