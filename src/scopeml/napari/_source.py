"""The scopeml :class:`~scopeml.io.Image` behind a napari layer.

A layer opened by the scopeml reader records its file and scene (``layer.metadata["scopeml"]``):
the file is reopened lazily at full resolution with *all* its channels, so training, preview
and apply see what ``sm.segment`` on that file sees. Any other layer (in-memory arrays, the
sample) is wrapped as it is: its channel axis (RGB, or none) and ``[Z×]Y×X``.
"""

from __future__ import annotations

from typing import Any

import scopeml as sm
from scopeml.napari._layers import SOURCE_KEY


def layer_source(layer: Any) -> dict[str, Any] | None:
    """``{"path", "scene", "axes"}`` of a layer the scopeml reader made, else ``None``."""
    source = getattr(layer, "metadata", {}).get(SOURCE_KEY)
    return source if isinstance(source, dict) and source.get("path") else None


def layer_image(layer: Any) -> sm.Image:
    """The layer's pixels as a lazy 6-D image (file-backed layers: the whole file's scene).

    Examples
    --------
    >>> import numpy as np
    >>> class Layer:  # any object with data, scale and metadata, as napari layers have
    ...     data, scale, metadata, rgb = np.zeros((4, 5), np.uint8), (0.5, 0.5), {}, False
    >>> image = layer_image(Layer())
    >>> image.shape, image.pixel_sizes
    ((1, 1, 1, 1, 4, 5), {'Y': 0.5, 'X': 0.5})
    """
    from scopeml.io._view import AxesView

    source = layer_source(layer)
    if source is not None:
        # axes: a TIFF's axes as chosen in the open widget ("CYX"), else the file's own
        axes = source.get("file_axes")
        return sm.open_image(source["path"], scene=source.get("scene"), axes=axes)
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    ndim = len(data.shape) - (1 if getattr(layer, "rgb", False) else 0)
    if ndim not in (2, 3):
        from scopeml.errors import InvalidImageError

        raise InvalidImageError(
            f"layer {getattr(layer, 'name', '')!r} has {ndim} dimensions; "
            "scopeml takes Y×X or Z×Y×X layers (open files with the scopeml reader)"
        )
    axes = ("ZYX" if ndim == 3 else "YX") + ("C" if getattr(layer, "rgb", False) else "")
    scale = [float(s) for s in layer.scale[-2:]]
    sizes = {"Y": scale[0], "X": scale[1]}
    if ndim == 3:
        sizes["Z"] = float(layer.scale[-3])
    if getattr(layer, "rgb", False):  # named as scopeml's reader names an RGB file's channels
        names = list("RGBA"[: data.shape[-1]])
    else:
        names = [str(getattr(layer, "name", "C0"))]
    return sm.Image(AxesView(data, axes), pixel_sizes=sizes, channel_names=names)


def spatial_shape(image: sm.Image) -> tuple[int, ...]:
    """``[Z×]Y×X`` of an image: the shape scribbles and previews have."""
    z, y, x = image.spatial_shape
    return (z, y, x) if z > 1 else (y, x)
