"""The live preview: class labels of the region on screen, as ``sm.segment`` writes them.

The prediction itself is :func:`scopeml.predict.predict_region` (``sm.predict_region``); this
module adds what only the viewer needs: the region a layer shows (the ``Y``/``X`` span on
screen and, for a ``Z`` stack, a time series or a layer of several scenes, the plane and the
scene the sliders are at) and where the result of such a region goes in the layer's world
coordinates.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from scopeml.predict import predict_region, region_normalization

__all__ = [
    "capped",
    "layer_axes",
    "layer_placement",
    "placement_differences",
    "predict_region",
    "preview_request",
    "region_normalization",
    "region_placement",
    "region_text",
    "split_scene",
    "visible_region",
]


def _shape(layer: Any) -> tuple[int, ...]:
    """The layer's full-resolution shape over its dimensions (an RGB layer's colour axis left
    out)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return tuple(int(n) for n in data.shape[: layer.ndim])


def layer_axes(layer: Any) -> str:
    """The axis names of a layer's dimensions: as the scopeml reader recorded them
    (``"ZYX"``, ``"TZYX"`` …), an in-memory layer's by its axis labels where they name axes
    (:func:`~scopeml.napari._source.memory_axes`), else ``YX`` / ``ZYX`` / ``TZYX`` by its
    number of dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> class Layer:
    ...     data, ndim, metadata = np.zeros((3, 4, 5)), 3, {}
    >>> layer_axes(Layer())
    'ZYX'
    """
    from scopeml.napari._layers import SOURCE_KEY

    source = getattr(layer, "metadata", {}).get(SOURCE_KEY)
    axes = source.get("axes") if isinstance(source, dict) else None
    if isinstance(axes, str) and len(axes) == layer.ndim:
        return axes
    if not isinstance(source, dict):  # in-memory: as the apply widget reads it (axis labels)
        from scopeml.napari._source import memory_axes

        with contextlib.suppress(Exception):
            named = memory_axes(layer)
            if len(named) == layer.ndim:
                return named
    return "TZYX"[-layer.ndim :] if layer.ndim <= 4 else "?" * (layer.ndim - 4) + "TZYX"


def visible_region(layer: Any, dims: Any = None) -> dict[str, tuple[int, int]]:
    """The part of a napari layer on screen, in the layer's data coordinates (full
    resolution): ``{axis: (start, stop)}``.

    ``Y`` and ``X`` are the span napari draws (the whole layer when it has not drawn it yet).
    Given the viewer's ``dims``, every other axis (``S``, ``T``, ``Z``) is the one scene or
    plane its slider is at, also in 3-D display (the preview is a plane; a volume would be
    predicted whole at each stroke); an axis shown on screen in 2-D display (dimensions rolled)
    is taken whole. Without ``dims`` those axes are taken whole. :func:`split_scene` turns
    the ``S`` of a layer of several scenes into the scene to predict.
    """
    shape = _shape(layer)
    axes = layer_axes(layer)
    corners = np.asarray(getattr(layer, "corner_pixels", np.zeros((2, 0))), dtype=float)
    if getattr(layer, "multiscale", False) and corners.shape == (2, len(shape)):
        corners = corners * np.asarray(layer.downsample_factors[layer.data_level])[: len(shape)]
    corners_ok = corners.shape == (2, len(shape))
    at = _data_point(layer, dims) if dims is not None else None
    displayed = _displayed(layer, dims) if dims is not None else set(range(len(shape)))
    volume = dims is not None and int(getattr(dims, "ndisplay", 2)) == 3
    region: dict[str, tuple[int, int]] = {}
    for i, (axis, n) in enumerate(zip(axes, shape, strict=True)):
        if axis not in "STZYX":
            continue
        plane = at is not None and (i not in displayed or (volume and axis in "STZ"))
        if plane:
            index = int(np.clip(np.round(at[i]), 0, n - 1))  # type: ignore[index]
            region[axis] = (index, index + 1)
        elif axis in "YX" and corners_ok and corners[1, i] - corners[0, i] >= 1:
            region[axis] = (max(0, int(corners[0, i])), min(n, int(np.ceil(corners[1, i])) + 1))
        else:
            region[axis] = (0, n)
    return region


#: Largest ``Y``/``X`` tile edge (pixels) of a 3-D model's preview: up to it the plane on
#: screen is one tile, so the model runs once on the view and its halo. ``predict_region``'s
#: 3-D default (128 px cubes) runs it once per 128 px of the view, each run on every plane of
#: the ``Z`` halo again (measured: a 256² view of a 32-plane stack, basic25, 27 s → 15 s). The
#: bound keeps a tile's input at (2 halo + 1) × (512 + 2 halo)² pixels.
PLANE_TILE = 512


#: Largest ``Y``/``X`` edge (pixels) a preview predicts: zoomed out on a large image the view
#: is the whole image, and a preview of all of it cost as much as Apply (an 8192² view: 36 s
#: against Apply's 40 s, at every stroke with live preview). 2048² takes about 2 s.
PREVIEW_EDGE = 2048


def capped(region: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """``region`` with its ``Y`` and ``X`` cut to their middle :data:`PREVIEW_EDGE` pixels.

    >>> capped({"Z": (3, 4), "Y": (0, 8192), "X": (100, 900)})
    {'Z': (3, 4), 'Y': (3072, 5120), 'X': (100, 900)}
    """
    cut = dict(region)
    for axis in "YX":
        if axis in cut and cut[axis][1] - cut[axis][0] > PREVIEW_EDGE:
            start = (cut[axis][0] + cut[axis][1] - PREVIEW_EDGE) // 2
            cut[axis] = (start, start + PREVIEW_EDGE)
    return cut


def preview_request(
    model: Any, region: dict[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], Any]:
    """What to ask ``predict_region`` for the preview of ``region``: the region without its
    ``S`` and the options with that scene (:func:`split_scene`); for a 3-D model (without a
    fixed input) tiles of one plane as wide as the view and its halo, up to
    :data:`PLANE_TILE` (the result is the same whatever the tiles: only the speed changes).

    Examples
    --------
    >>> from scopeml.model.spec import ModelSpec
    >>> class Volume:
    ...     spec = ModelSpec(spatial_dims=3, in_channels=1, classes=("a", "b"), halo=(4, 4, 4))
    >>> region, options = preview_request(Volume(), {"S": (1, 2), "Z": (3, 4), "Y": (0, 300),
    ...                                              "X": (10, 900)})
    >>> region, options.scene, options.tile_size
    ({'Z': (3, 4), 'Y': (0, 300), 'X': (10, 900)}, 1, (1, 308, 512))
    """
    from scopeml.tiling.options import SegmentOptions

    region, scene = split_scene(region)
    spec = model.spec
    tile = None
    if spec.spatial_dims == 3 and spec.tile_shape is None and "Y" in region and "X" in region:
        # the view grown by the halo, as predict_region grows it: one tile covers it all
        halo = dict(zip("ZYX", spec.halo, strict=True))
        grown = [region[a][1] - region[a][0] + 2 * halo[a] for a in "YX"]
        tile = (1, *(min(PLANE_TILE, n) for n in grown))
    return region, SegmentOptions(workers=1, scene=scene, tile_size=tile)


def split_scene(
    region: dict[str, tuple[int, int]],
) -> tuple[dict[str, tuple[int, int]], int | None]:
    """``region`` without its ``S`` span, and the one scene that span names (``None``: the
    region has no ``S``, the layer is of one scene): ``predict_region`` takes the scene as
    ``options.scene``, not as a span, and predicts one scene at a time.

    Examples
    --------
    >>> split_scene({"S": (1, 2), "Y": (0, 8), "X": (0, 8)})
    ({'Y': (0, 8), 'X': (0, 8)}, 1)
    >>> split_scene({"Y": (0, 8), "X": (0, 8)})
    ({'Y': (0, 8), 'X': (0, 8)}, None)
    """
    rest = {axis: span for axis, span in region.items() if axis != "S"}
    if "S" not in region:
        return rest, None
    start, stop = region["S"]
    if stop - start != 1:
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            f"the preview is of one scene; the region spans scenes {start} to {stop - 1} "
            "(move the S slider to the scene to preview)"
        )
    return rest, int(start)


def _data_point(layer: Any, dims: Any) -> np.ndarray:
    """The viewer's slider position in the layer's data coordinates (one value per layer
    dimension)."""
    point = np.asarray(layer.world_to_data(tuple(dims.point)), dtype=float)
    return point[-layer.ndim :]


def _displayed(layer: Any, dims: Any) -> set[int]:
    """The layer's dimensions on screen (napari lines a layer up with the viewer's last
    dimensions)."""
    offset = int(dims.ndim) - layer.ndim
    return {int(w) - offset for w in dims.displayed if int(w) >= offset}


def region_placement(
    layer: Any, region: dict[str, tuple[int, int]]
) -> tuple[tuple[int, ...], dict[str, Any]]:
    """Where the prediction of ``region`` goes over ``layer``: the shape it has over the
    layer's dimensions and its placement (:func:`layer_placement`, its ``translate`` moved to
    the region's first pixel), so that a preview layer of that data lies exactly on the
    pixels predicted (a single ``Z`` plane at its plane), however the layer is scaled,
    moved, rotated or sheared. A layer's ``C`` axis (named by its axis labels) is the model's
    input and has no place in the labels: left out, as from the scribbles.

    Examples
    --------
    >>> import numpy as np
    >>> class Layer:
    ...     data, ndim, metadata = np.zeros((3, 40, 50)), 3, {}
    ...     scale, translate = np.array([2.0, 0.5, 0.5]), np.array([10.0, 0.0, 0.0])
    >>> shape, placed = region_placement(Layer(), {"Z": (2, 3), "Y": (4, 8)})
    >>> shape, placed["translate"].tolist()
    ((1, 4, 50), [14.0, 2.0, 0.0])
    >>> Layer.axis_labels = ("c", "y", "x")  # channels: not a dimension of the labels
    >>> region_placement(Layer(), {"Y": (4, 8)})[0]
    (4, 50)
    """
    axes = layer_axes(layer)
    kept = "".join(axis for axis in axes if axis != "C")  # the model's input, not its output
    full = dict(zip(axes, _shape(layer), strict=True))
    spans = [region.get(axis, (0, full[axis])) for axis in kept]
    shape = tuple(int(stop - start) for start, stop in spans)
    placed = layer_placement(layer, kept)
    start = np.asarray([start for start, _ in spans], float)
    linear = placed["rotate"] @ placed["shear"] @ np.diag(placed["scale"])  # napari's order
    placed["translate"] = placed["translate"] + linear @ start
    return shape, placed


#: The keywords of a layer's placement in the world that :func:`placement_differences` compares.
PLACEMENT = ("scale", "translate", "rotate", "shear", "affine")


def layer_placement(layer: Any, axes: str) -> dict[str, Any]:
    """napari's ``scale``, ``translate``, ``rotate``, ``shear``, ``affine`` (and ``units``)
    of ``layer``'s dimensions named ``axes`` (its last ``len(axes)`` where it has not all of
    them): a layer of those axes made or set with them (scribbles, a preview, Apply's
    outputs) lies on the layer's pixels where the user sees them. Strokes painted on
    scribbles placed otherwise labelled other pixels than those under the brush.

    Examples
    --------
    >>> import numpy as np
    >>> class Layer:
    ...     data, ndim, metadata = np.zeros((3, 40, 50)), 3, {}
    ...     scale, translate = np.array([2.0, 0.5, 0.5]), np.array([10.0, 30.0, 40.0])
    >>> placed = layer_placement(Layer(), "YX")
    >>> placed["scale"].tolist(), placed["translate"].tolist(), placed["affine"].shape
    ([0.5, 0.5], [30.0, 40.0], (3, 3))
    """
    names = layer_axes(layer)
    n = len(names)
    if set(axes) <= set(names):
        index = [names.index(axis) for axis in axes]
    else:
        index = list(range(max(0, n - len(axes)), n))
    pick = np.ix_(index, index)
    rotate = np.asarray(getattr(layer, "rotate", np.eye(n)), float).reshape(n, n)
    shear = np.asarray(getattr(layer, "shear", np.zeros(n * (n - 1) // 2)), float)
    if shear.ndim == 1:  # napari's upper triangle, row by row
        values, shear = shear, np.eye(n)
        shear[np.triu_indices(n, 1)] = values
    affine = getattr(layer, "affine", None)
    matrix = np.eye(n + 1) if affine is None else np.asarray(affine.affine_matrix, float)
    placed = {
        "scale": np.asarray(layer.scale, float)[-n:][index],
        "translate": np.asarray(layer.translate, float)[-n:][index],
        "rotate": rotate[pick],
        "shear": shear[pick],
        "affine": matrix[np.ix_([*index, n], [*index, n])],
    }
    units = getattr(layer, "units", None)
    if units is not None and len(units) == n:
        placed["units"] = tuple(str(units[i]) for i in index)
    return placed


def placement_differences(one: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The keys in which two :func:`layer_placement` s differ (none: they put a pixel at the
    same place in the world)."""
    return [
        key
        for key in PLACEMENT
        if np.shape(one[key]) != np.shape(other[key]) or not np.allclose(one[key], other[key])
    ]


def region_text(region: dict[str, tuple[int, int]]) -> str:
    """``scene 1, Z 7, Y 0–255, X 0–255``: a scene or plane by its index, a span by its first
    and last pixel (as napari's coordinates show them).

    Examples
    --------
    >>> region_text({"Z": (7, 8), "Y": (0, 256), "X": (3, 9)})
    'Z 7, Y 0–255, X 3–8'
    >>> region_text({"S": (1, 2), "T": (2, 3), "Y": (0, 4), "X": (0, 4)})
    'scene 1, T 2, Y 0–3, X 0–3'
    """
    parts = []
    for axis in "STZYX":
        if axis in region:
            start, stop = region[axis]
            name = "scene" if axis == "S" else axis
            single = stop - start == 1 and axis in "STZ"
            parts.append(f"{name} {start}" if single else f"{name} {start}–{stop - 1}")
    return ", ".join(parts)
