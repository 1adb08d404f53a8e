"""The live preview: class labels of the region on screen, as ``sm.segment`` writes them.

The prediction itself is :func:`scopeml.predict.predict_region` (``sm.predict_region``); this
module adds what only the viewer needs: the region a layer shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scopeml.predict import predict_region, region_normalization

__all__ = ["predict_region", "region_normalization", "visible_region"]


def visible_region(layer: Any) -> dict[str, tuple[int, int]]:
    """The ``Y``/``X`` span of a napari layer that is on screen (the whole layer when napari
    has not drawn it yet), in the layer's data coordinates (full resolution)."""
    shape = layer.data[0].shape if getattr(layer, "multiscale", False) else layer.data.shape
    corners = np.asarray(getattr(layer, "corner_pixels", np.zeros((2, 0))), dtype=float)
    if getattr(layer, "multiscale", False):
        corners = corners * np.asarray(layer.downsample_factors[layer.data_level])
    ny, nx = shape[-2], shape[-1]
    if corners.shape != (2, len(shape)) or np.any(corners[1, -2:] - corners[0, -2:] < 1):
        return {"Y": (0, ny), "X": (0, nx)}
    (y0, x0), (y1, x1) = corners[0, -2:], corners[1, -2:]
    return {
        "Y": (max(0, int(y0)), min(ny, int(np.ceil(y1)) + 1)),
        "X": (max(0, int(x0)), min(nx, int(np.ceil(x1)) + 1)),
    }
