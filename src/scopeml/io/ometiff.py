"""Stream an image or array into a tiled OME-TIFF, a band of tiles at a time.

tifffile writes tiles from an iterator in row-major order; the iterator reads one band (one tile
high, a few source chunks wide) at a time, so memory is bounded by the band, never by the
image. The file is written beside the target and renamed when complete.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from scopeml.errors import InvalidRequestError
from scopeml.io.image import AXES, Image
from scopeml.io.replace import atomic_write

_BIGTIFF_BYTES = 2**31  # classic TIFF offsets are 32-bit; stay well clear of 4 GiB
#: Namespace of the OME-XML map annotation that marks an image as labels (label value → class
#: name), read back by :func:`scopeml.io.tiff.ome_label_classes`.
LABELS_NAMESPACE = "scopeml/labels"


def _tiles(
    source: Any, shape: tuple[int, ...], tile: tuple[int, int], piece_width: int
) -> Iterator[np.ndarray]:
    """Tiles of ``source`` (``…×Y×X``) in TIFF order: planes, tile rows, tile columns."""
    th, tw = tile
    height, width = shape[-2:]
    for plane in itertools.product(*(range(n) for n in shape[:-2])):
        for y in range(0, height, th):
            band_y = slice(y, min(y + th, height))
            for x0 in range(0, width, piece_width):
                piece = np.asarray(
                    source[(*plane, band_y, slice(x0, min(x0 + piece_width, width)))]
                )
                for x in range(0, piece.shape[-1], tw):
                    yield piece[..., x : x + tw]


def _ome_metadata(
    axes: str,
    pixel_sizes: Mapping[str, float] | None,
    channel_names: Sequence[str] | None,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"axes": axes}
    if labels is not None:  # label value → class name; none for object ids
        names = {str(value): str(name) for value, name in enumerate(labels, 1)}
        metadata["MapAnnotation"] = {"Namespace": LABELS_NAMESPACE, "Value": names}
    for axis in "XYZ":
        size = (pixel_sizes or {}).get(axis)
        if size and axis in axes:
            metadata[f"PhysicalSize{axis}"] = float(size)
            metadata[f"PhysicalSize{axis}Unit"] = "µm"
    step = (pixel_sizes or {}).get("T")
    if step and "T" in axes:  # the time step, in seconds as pixel sizes hold it
        metadata["TimeIncrement"] = float(step)
        metadata["TimeIncrementUnit"] = "s"
    if channel_names:
        metadata["Channel"] = {"Name": [str(n) for n in channel_names]}
    return metadata


def copy_to_ome_tiff(group: str | Path, target: str | Path, name: str) -> None:
    """An NGFF image group's full resolution and levels copied to a pyramidal OME-TIFF at
    ``target``, with its axes, pixel sizes, channel names (an image without channels: one
    named ``name``) and, for labels, their class names (:func:`write_ome_tiff`)."""
    from scopeml.io.omezarr import label_classes, open_ome_zarr_array
    from scopeml.io.pyramid import lower_levels
    from scopeml.io.registry import open_image

    array = open_ome_zarr_array(group, mode="r")
    axes = "".join(str(a) for a in array.metadata.dimension_names or ()).upper()
    with open_image(group) as image:  # metadata only
        pixel_sizes = {a: v for a, v in image.pixel_sizes.items() if a in axes and v}
        channels = list(image.channel_names) if "C" in axes else [name]
    write_ome_tiff(target, array, axes=axes, pixel_sizes=pixel_sizes, channel_names=channels,
                   levels=lower_levels(group), labels=label_classes(group))  # fmt: skip


def write_ome_tiff(
    path: str | Path,
    source: Any,
    *,
    axes: str | None = None,
    pixel_sizes: Mapping[str, float] | None = None,
    channel_names: Sequence[str] | None = None,
    tile: tuple[int, int] = (256, 256),
    compression: str | None = "zlib",
    levels: Sequence[Any] = (),
    labels: Sequence[str] | None = None,
) -> None:
    """Write ``source`` to a tiled OME-TIFF at ``path`` without holding it in memory.

    Parameters
    ----------
    source
        An :class:`Image` (each scene becomes one OME image series, axes ``TCZYX``; its pixel
        sizes and channel names are used unless given), or an array such as a ``zarr.Array``
        whose axes are ``axes`` (default: the zarr ``dimension_names``).
    axes
        For an array: a subset of ``"TCZYX"`` in that order, ending in ``"YX"``.
    tile
        Tile height and width, multiples of 16 (a TIFF rule).
    levels
        Lower resolutions of an array ``source`` (same axes, smaller Y and X), written as
        each plane's sub-resolutions: a pyramidal OME-TIFF, which QuPath and Bio-Formats
        show whole without reading the full resolution.
    labels
        The image holds labels: the class names of label values 1, 2, … (``()``: object ids),
        recorded as an OME map annotation (:data:`LABELS_NAMESPACE`) that scopeml's readers
        (the napari plugin) take to open it as labels, with its class names.

    Examples
    --------
    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "out.ome.tif"
    >>> write_ome_tiff(file, np.ones((2, 40, 50), np.uint16), axes="CYX",
    ...                pixel_sizes={"X": 0.5, "Y": 0.5}, channel_names=["a", "b"], tile=(16, 16))
    >>> tifffile.imread(file).shape
    (2, 40, 50)
    """
    if len(tile) != 2 or any(t < 16 or t % 16 for t in tile):
        raise InvalidRequestError(f"tile {tuple(tile)} must be two multiples of 16")
    if levels and isinstance(source, Image):
        raise InvalidRequestError("levels= goes with an array source, not an Image")
    if isinstance(source, Image):
        series = [_SceneView(source, s) for s in range(source.shape[0])]
        axes = AXES[1:]
        pixel_sizes = source.pixel_sizes if pixel_sizes is None else pixel_sizes
        channel_names = source.channel_names if channel_names is None else channel_names
    else:
        if axes is None:
            names = getattr(getattr(source, "metadata", None), "dimension_names", None) or ()
            axes = "".join(str(n).upper() for n in names if n is not None)
        series = [source]
    if not re.fullmatch("T?C?Z?YX", axes or "") or len(axes) != len(series[0].shape):
        raise InvalidRequestError(
            f"axes {axes!r} must be a subset of TCZYX in that order, one per axis of shape "
            f"{tuple(series[0].shape)}"
        )
    if channel_names is not None:
        n_channels = series[0].shape[axes.index("C")] if "C" in axes else 1
        if len(channel_names) != n_channels:
            raise InvalidRequestError(
                f"{len(channel_names)} channel names given for {n_channels} channels"
            )
    path = Path(path)
    dtype = np.dtype(series[0].dtype)
    nbytes = sum(math.prod(s.shape) for s in series) * dtype.itemsize
    chunk_width = (getattr(series[0], "chunks", None) or (tile[1],))[-1]
    piece_width = max(tile[1], math.ceil(chunk_width / tile[1]) * tile[1])
    metadata = _ome_metadata(axes, pixel_sizes, channel_names, labels)
    with (
        atomic_write(path) as temp,
        tifffile.TiffWriter(temp, bigtiff=nbytes > _BIGTIFF_BYTES, ome=True) as writer,
    ):
        for data in series:
            shape = tuple(int(n) for n in data.shape)
            writer.write(
                _tiles(data, shape, tile, piece_width),
                shape=shape,
                dtype=dtype,
                tile=tuple(tile),
                compression=compression,
                photometric="minisblack",
                metadata=metadata,
                subifds=len(levels) if data is source else 0,
            )
        for level in levels:  # each a series of sub-resolutions, as many pages as the first
            shape = tuple(int(n) for n in level.shape)
            writer.write(_tiles(level, shape, tile, piece_width), shape=shape, dtype=dtype,
                         tile=tuple(tile), compression=compression, photometric="minisblack",
                         subfiletype=1, metadata=None)  # fmt: skip


class _SceneView:
    """Scene ``s`` of an :class:`Image` as a 5-D ``T C Z Y X`` array."""

    def __init__(self, image: Image, scene: int) -> None:
        self.image, self.scene = image, scene
        self.shape = image.shape[1:]
        self.dtype = image.dtype

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        block = self.image[(slice(self.scene, self.scene + 1), *key)]
        return block[0]
