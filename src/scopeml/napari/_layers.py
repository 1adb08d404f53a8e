"""scopeml images as napari layer data: lazy dask pyramids with names, colours and scale.

napari shows a multiscale image by reading only the visible chunks of the level it needs, so a
huge file opens at once. Each pyramid level is one lazily opened :class:`~scopeml.io.Image`
wrapped in :func:`dask.array.from_array`; nothing is read until napari draws.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

import scopeml as sm
from scopeml.tiling.outputs import probability_scale

#: Chunk edge (pixels) of the dask arrays napari slices; a drawn tile reads whole chunks.
CHUNK = 1024
#: Pyramid levels are opened until one is smaller than this along Y and X.
MIN_LEVEL_SIZE = 256
MAX_LEVELS = 16
#: A plane larger than this along Y or X in a file with no lower resolutions gets strided views
#: as levels (:func:`with_virtual_levels`): napari otherwise holds the whole plane (1.5 GB for
#: a 12k² uint16 image).
VIRTUAL_LEVEL_EDGE = 4096
#: Metadata key on layers made by scopeml: the file, scene and axes behind the layer.
SOURCE_KEY = "scopeml"


def open_levels(path: str | os.PathLike[str], *, scene: int | None = None) -> list[sm.Image]:
    """The pyramid levels napari shows of an image file (:func:`scopeml.io.registry.open_levels`),
    down to one smaller than :data:`MIN_LEVEL_SIZE`; full resolution first."""
    from scopeml.io.registry import open_levels as opened

    return opened(path, scene=scene, smallest=MIN_LEVEL_SIZE, most=MAX_LEVELS)


def as_dask(image: sm.Image) -> Any:
    """The image's 6-D ``S T C Z Y X`` pixels as a lazy dask array (chunks of one plane)."""
    import dask.array as da

    chunks = (1, 1, 1, 1, min(CHUNK, image.sizes["Y"]), min(CHUNK, image.sizes["X"]))
    # a name of our own: dask would otherwise hash the reader object (pickling it) on every open
    return da.from_array(
        image.data,
        chunks=chunks,
        name=f"scopeml-{uuid.uuid4().hex}",
        asarray=True,
        fancy=False,
        meta=np.empty((0,) * 6, image.dtype),
    )


def with_virtual_levels(data: list[Any]) -> list[Any]:
    """``data`` (a layer's dask arrays, Y and X last, full resolution first), with every other
    pixel of each level as the next where a file has one large level only (halved until Y and
    X fit in :data:`VIRTUAL_LEVEL_EDGE`): napari then holds only a level the size of the
    screen. Showing a small level still reads every chunk of the file once, in bounded memory.

    >>> import dask.array as da
    >>> [level.shape for level in with_virtual_levels([da.zeros((3, 9000, 5000), chunks=1024)])]
    [(3, 9000, 5000), (3, 4500, 2500), (3, 2250, 1250)]
    """
    from scopeml.io.pyramid import levels_for

    if len(data) > 1:
        return data
    count = levels_for(*data[0].shape[-2:], smallest=VIRTUAL_LEVEL_EDGE)
    return [data[0][..., :: 2**k, :: 2**k] for k in range(count)]


def kept_axes(image: sm.Image) -> str:
    """The non-channel axes a layer shows: ``Y X`` and every other axis longer than one."""
    return "".join(a for a in "STZ" if image.sizes[a] > 1) + "YX"


def image_layer_data(
    levels: list[sm.Image], *, path: str | None = None, scene: int | None = None
) -> tuple[Any, dict[str, Any], str]:
    """One napari ``image`` layer tuple: channels split into layers, named, coloured, scaled.

    Singleton ``S``/``T``/``Z`` axes are dropped; the channel axis is given to napari as
    ``channel_axis`` so each channel becomes its own layer with its own contrast.
    """
    base = levels[0]
    axes = kept_axes(base)
    index = tuple(slice(None) if a in axes + "C" else 0 for a in "STCZYX")
    data = with_virtual_levels([as_dask(level)[index] for level in levels])
    channel_axis = [a for a in "STCZYX" if a in axes + "C"].index("C")
    scale = [base.pixel_sizes.get(a, 1.0) if a in "ZYX" else 1.0 for a in axes]  # T: 1 step
    n_channels = base.sizes["C"]
    metadata = {
        SOURCE_KEY: {
            "path": path if path is not None else base.path,
            "scene": scene,
            "axes": axes,
        }
    }
    kwargs: dict[str, Any] = {
        "name": list(base.channel_names) if n_channels > 1 else base.channel_names[0],
        "scale": scale,
        "axis_labels": tuple(axes.lower()),  # the sliders say t, z (not -3, -2)
        "metadata": metadata,
        "multiscale": len(data) > 1,
        "blending": "additive" if n_channels > 1 else "translucent",
    }
    if any(a in base.pixel_sizes for a in "ZYX"):  # not the time step (seconds)
        kwargs["units"] = axis_units(axes)
    colors = channel_colors(path or base.path, n_channels) or _rgb_colors(base.channel_names)
    if colors:
        kwargs["colormap"] = colors if n_channels > 1 else colors[0]
    if n_channels > 1:
        kwargs["channel_axis"] = channel_axis
    else:
        data = [d[_drop(channel_axis)] for d in data]
    return (data if len(data) > 1 else data[0]), kwargs, "image"


def axis_units(axes: str) -> tuple[str, ...]:
    """A layer's units: µm along ``Z Y X``; a scene or time point is a step, napari's
    ``pixel`` (not a length in µm, which its scale bar and rulers would say).

    >>> axis_units("SZYX")
    ('pixel', 'micrometer', 'micrometer', 'micrometer')
    """
    return tuple("micrometer" if axis in "ZYX" else "pixel" for axis in axes)


def _drop(axis: int) -> tuple[Any, ...]:
    return (slice(None),) * axis + (0,)


def channel_colors(path: str | None, n_channels: int) -> list[str] | None:
    """Display colours stored with an OME-Zarr image (``omero`` channels), as ``#rrggbb``;
    ``None`` when the file records none (napari then picks its own), or all are white."""
    if path is None or not str(path).rstrip("/").endswith(".zarr"):
        return None
    import zarr

    try:
        attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    except Exception:
        return None
    omero = attrs.get("ome", attrs).get("omero", {})
    channels = omero.get("channels", []) if isinstance(omero, dict) else []
    colors = [str(c.get("color", "")) for c in channels if isinstance(c, dict)]
    if len(colors) != n_channels or not all(len(c) == 6 for c in colors):
        return None
    if all(c.upper() == "FFFFFF" for c in colors):
        return None
    return [_colormap(c) for c in colors]


def _rgb_colors(names: Sequence[str]) -> list[str] | None:
    """Red, green and blue for the channels of an RGB file (named ``R, G, B``): napari's own
    picks for three channels, cyan, magenta and yellow, added up, showed a pink and purple
    H&E slide as white and green.

    >>> _rgb_colors(["R", "G", "B"]), _rgb_colors(["DAPI", "GFP"])
    (['red', 'green', 'blue'], None)
    """
    return ["red", "green", "blue"] if list(names) == ["R", "G", "B"] else None


def _colormap(hex_color: str) -> Any:
    """A black-to-colour napari colormap for an ``RRGGBB`` colour."""
    from napari.utils.colormaps import Colormap

    rgb = [int(hex_color[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return Colormap([[0, 0, 0, 1], [*rgb, 1]], name=f"#{hex_color.lower()}")


def labels_layer_data(
    levels: list[sm.Image],
    *,
    name: str,
    path: str | None = None,
    classes: list[str] | None = None,
) -> tuple[Any, dict[str, Any], str]:
    """A labels layer tuple (class labels or instances) from a single-channel image's levels;
    ``classes``: the name of each label value from 1 (napari shows it under the cursor)."""
    base = levels[0]
    axes = kept_axes(base)
    index = tuple(slice(None) if a in axes else 0 for a in "STCZYX")
    if max(base.sizes["Y"], base.sizes["X"]) <= VIRTUAL_LEVEL_EDGE:
        levels = levels[:1]  # napari edits (and shows objects' features on) one level only
    data = with_virtual_levels([as_dask(level)[index] for level in levels])
    metadata = {SOURCE_KEY: {"path": path or base.path, "scene": None, "axes": axes}}
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": [base.pixel_sizes.get(a, 1.0) if a in "ZYX" else 1.0 for a in axes],
        "axis_labels": tuple(axes.lower()),  # as the image layers: t, z, y, x (not -3, -2)
        "metadata": metadata,
        "multiscale": len(data) > 1,
    }
    if any(a in base.pixel_sizes for a in "ZYX"):  # as the image layers: the same units
        kwargs["units"] = axis_units(axes)
    if classes:  # napari shows "class: NAME" under the cursor
        kwargs["features"] = class_features(classes)
        kwargs["colormap"] = class_colormap(classes)
    return (data if len(data) > 1 else data[0]), kwargs, "labels"


def class_features(classes: Sequence[str]) -> dict[str, Any]:
    """A class labels layer's napari ``features``: the name of each label value from 1, shown
    under the cursor and read back by :func:`layer_classes`."""
    return {"index": np.arange(1, len(classes) + 1), "class": list(classes)}


def layer_classes(layer: Any) -> list[str]:
    """The class names a class labels layer carries (:func:`class_features`: Apply's, the
    reader's, the pixel classifier's preview); none for any other layer (an objects layer's
    features are its measurements, a classified one's ``class`` among them).

    >>> class Layer:
    ...     import pandas as pd
    ...     features = pd.DataFrame(class_features(["background", "cell"]))
    >>> layer_classes(Layer()), layer_classes(object())
    (['background', 'cell'], [])
    """
    features = getattr(layer, "features", None)
    if features is None or set(features.columns) != {"index", "class"}:
        return []
    return [str(name) for name in features.sort_values("index")["class"]]


def class_colormap(
    classes: Sequence[str], colors: Sequence[str] | None = None, *, clear_background: bool = True
) -> Any:
    """Class ``k``'s colour (``colors``, else a new classifier's ``k``-th class's, so a store
    looks as its preview did), but the background class left clear (unless not
    ``clear_background``: scribbles show every class painted): painted, it hid the whole image
    under the labels. The background is the class named so (or ``bg``), else the first, as
    ``segment`` takes it (ZEN's convention): classes "other, nuclei" tinted the whole image.
    (napari's own cyclic colours, mapped by value, made the first class after background almost
    black, invisible on fluorescence.)"""
    from napari.utils.colormaps import DirectLabelColormap

    from scopeml.palette import colour_of
    from scopeml.post.tiled import background_value

    colors = list(colors or [colour_of(k) for k in range(len(classes))])
    clear = background_value(None, classes) if clear_background and len(classes) > 1 else None
    color_dict: dict[Any, Any] = {None: "transparent", 0: "transparent"}
    for value, (_, color) in enumerate(zip(classes, colors, strict=True), 1):
        color_dict[value] = "transparent" if value == clear else color
    return DirectLabelColormap(color_dict=color_dict)


#: Outputs of a ``segment`` store that open as Labels layers; the others open as images.
LABEL_OUTPUTS = ("labels", "mask", "instances")
#: Every output a ``segment`` store may hold, each a sub-group (``OUT.ome.zarr/labels`` …).
STORE_OUTPUTS = ("probabilities", "confidence", "image", *LABEL_OUTPUTS)


def segmentation_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run record of a ``segment`` store (its ``scopeml`` attributes: model, options …);
    ``None`` for any other folder or file."""
    import zarr

    if not os.path.isdir(path):
        return None
    try:
        attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    except Exception:
        return None
    record = attrs.get("scopeml")
    if not isinstance(record, dict) or not isinstance(record.get("model"), dict):
        return None
    if not any(os.path.isdir(os.path.join(path, name)) for name in STORE_OUTPUTS):
        return None
    return record


def segmentation_layer_data(
    store: str | os.PathLike[str],
    outputs: tuple[str, ...] | None = None,
    colors: list[str] | None = None,
) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer tuples of a ``segment`` store's outputs (``outputs``: only these, if written).

    ``labels`` (with the model's class names, in ``colors`` where the model that made them is
    known: a pixel classifier's, as its preview showed them), ``mask`` (named after the
    extracted class) and ``instances`` become Labels layers; ``probabilities`` (one layer per
    class), ``confidence`` and a regression ``image`` become image layers. Layers are named
    ``STEM OUTPUT``; the images come first, so the labels are drawn over them.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from scopeml.model.spec import ModelSpec
    >>> class Threshold:
    ...     spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))
    ...     def predict(self, batch):
    ...         fg = (batch > 5).astype(np.float32)
    ...         return np.concatenate([1 - fg, fg], axis=1)
    >>> out = tempfile.mkdtemp() + "/cells.ome.zarr"
    >>> _ = sm.segment(np.arange(100.0).reshape(10, 10) % 10, Threshold(), out,
    ...                outputs=("labels", "probabilities"))
    >>> [(kwargs["name"], kind) for _, kwargs, kind in segmentation_layer_data(out)]
    [(['cells bg probability', 'cells fg probability'], 'image'), ('cells labels', 'labels')]
    """
    store = os.fspath(store)
    record = segmentation_record(store) or {}
    classes = [str(c) for c in record.get("model", {}).get("classes", ())]
    extracted = (record.get("options") or {}).get("extract_class")
    stem = os.path.basename(store.rstrip("/\\"))
    for suffix in (".ome.zarr", ".zarr"):
        stem = stem[: -len(suffix)] if stem.lower().endswith(suffix) else stem
    present = [n for n in STORE_OUTPUTS if os.path.isdir(os.path.join(store, n))]
    layers = []
    for output in present if outputs is None else [n for n in present if n in outputs]:
        path = os.path.join(store, output)
        levels = open_levels(path)
        if output in LABEL_OUTPUTS:
            names = {"labels": classes, "mask": [extracted] if extracted else []}.get(output)
            labels = labels_layer_data(levels, name=f"{stem} {output}", path=path, classes=names)
            if output == "labels" and classes and colors and len(colors) == len(classes):
                labels[1]["colormap"] = class_colormap(classes, colors)
            layers.append(labels)
            continue
        data, kwargs, kind = image_layer_data(levels, path=path)
        top = probability_scale(levels[0].dtype)  # probability_dtype uint8: 0..255
        if output == "probabilities":
            names = list(levels[0].channel_names)
            kwargs["name"] = [f"{stem} {name} probability" for name in names]
            if len(names) == 1:
                kwargs["name"] = kwargs["name"][0]
            kwargs["contrast_limits"] = [[0.0, top]] * len(names) if len(names) > 1 else (0, top)
        elif output == "confidence":
            kwargs.update(name=f"{stem} confidence", colormap="magma", contrast_limits=(0, top))
        else:
            kwargs["name"] = f"{stem} {output}"
        layers.append((data, kwargs, kind))
    return layers
