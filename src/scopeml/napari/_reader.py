"""npe2 readers: images open as lazy multiscale layers; a model file opens in the widget.

A ``segment`` store (``OUT.ome.zarr`` with its outputs as sub-groups), or one output's
sub-folder (``OUT.ome.zarr/labels``), opens as its outputs: labels, mask and instances as
Labels layers, probabilities and confidence as images. npe2 offers every folder to a reader
that accepts directories, whatever its name; the reader tells a store by its run record.

A file with several scenes opens scene 0 and says so; the scene is chosen in the
"scopeml: open scene" widget (or ``viewer.open(path, plugin="scopeml", scene=…)`` is not
possible in npe2, hence the widget). Errors are scopeml's one-line messages.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.napari._layers import image_layer_data, labels_layer_data, open_levels

log = logging.getLogger(__name__)

LayerData = list[tuple[Any, ...]]


def get_image_reader(path: str | list[str]) -> Callable[[str], LayerData] | None:
    """npe2 reader contribution: a reader for one image file that scopeml opens, else ``None``.

    The suffixes are :mod:`scopeml.io.registry`'s (napari.yaml's patterns narrow what napari
    offers); imported here so that loading the plugin stays light.
    """
    from scopeml.io.registry import IMAGE_SUFFIXES

    if isinstance(path, list):
        return None
    if segmentation_output(path) is not None:
        return read_segmentation
    name = str(path).rstrip("/\\").lower()
    return read_image if name.endswith(IMAGE_SUFFIXES) else None


def segmentation_output(path: str | os.PathLike[str]) -> tuple[str, tuple[str, ...] | None] | None:
    """``(store, outputs)`` when ``path`` is a ``segment`` store (outputs ``None``: all of
    them) or one output's sub-folder of one (``OUT.ome.zarr/labels``); else ``None``."""
    from scopeml.napari._layers import STORE_OUTPUTS, segmentation_record

    path = os.fspath(path).rstrip("/\\") or os.fspath(path)
    if segmentation_record(path) is not None:
        return path, None
    parent, name = os.path.split(path)
    if name in STORE_OUTPUTS and segmentation_record(parent) is not None:
        return parent, (name,)
    return None


def read_segmentation(path: str) -> LayerData:
    """The outputs of a ``segment`` store (or the one output of its sub-folder) as layers:
    labels, mask and instances as Labels (with class names), the others as images."""
    from scopeml.napari._layers import segmentation_layer_data

    found = segmentation_output(path)
    if found is None:  # gone since napari asked
        return read_image(path)
    store, outputs = found
    return list(segmentation_layer_data(store, outputs))


def read_image(path: str, *, scene: int | None = None) -> LayerData:
    """Layer data of one scene (``None``: every scene when they agree in size, else scene 0).

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> file = tempfile.mkdtemp() + "/a.ome.tif"
    >>> tifffile.imwrite(file, np.zeros((2, 8, 8), np.uint8), metadata={"axes": "CYX"})
    >>> [(kind, kwargs["name"]) for _, kwargs, kind in read_image(file)]
    [('image', ['C0', 'C1'])]
    """
    from scopeml.errors import InvalidImageError

    path = os.fspath(path)
    try:
        levels = open_levels(path, scene=scene)
    except InvalidImageError as err:
        if scene is not None or "scene" not in str(err):
            raise
        log.warning("%s; showing scene 0 (choose another in 'scopeml: open scene')", err)
        scene = 0
        levels = open_levels(path, scene=0)
    if is_label_image(path, levels[0], scene=scene):
        name = os.path.basename(path.rstrip("/\\"))
        name = name[: -len(".ome.zarr")] if name.lower().endswith(".ome.zarr") else name
        return [labels_layer_data(levels, name=name, path=path)]
    return [image_layer_data(levels, path=path, scene=scene)]


def is_label_image(path: str, image: Any, *, scene: int | None = None) -> bool:
    """Whether an OME-Zarr holds labels: one integer channel in an image marked as an NGFF
    ``image-label`` (as ``analyze``, ``post`` and ``objects label`` write them; with several
    scenes, the scene's image ``path/N``), opened as a Labels layer rather than an image."""
    if not path.rstrip("/\\").lower().endswith(".zarr") or image.sizes["C"] != 1:
        return False
    if not np.issubdtype(image.dtype, np.integer):
        return False
    import zarr

    try:
        group = zarr.open_group(path, mode="r")
        attrs = group.attrs.asdict()
        if "multiscales" not in attrs.get("ome", attrs) and str(scene or 0) in group:
            attrs = group[str(scene or 0)].attrs.asdict()  # several scenes
    except Exception:
        return False
    return "image-label" in attrs.get("ome", attrs)


def get_model_reader(path: str | list[str]) -> Callable[[str], LayerData] | None:
    """npe2 reader contribution for ``.czann``/``.czseg``: opens the model in the widget."""
    from scopeml.model.container import CONTAINER_SUFFIXES

    if isinstance(path, list) or not str(path).lower().endswith(CONTAINER_SUFFIXES):
        return None
    return read_model


def read_model(path: str) -> LayerData:
    """Open the model in the pixel classifier widget of the current viewer; no layer."""
    import napari
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    viewer = napari.current_viewer()
    if viewer is None:
        return [(None,)]
    _, widget = viewer.window.add_plugin_dock_widget("scopeml", "Pixel classifier")
    if not isinstance(widget, PixelClassifierWidget):  # napari may wrap it
        widget = getattr(widget, "widget", lambda: widget)()
    widget.load_model(Path(path))
    return [(None,)]  # napari's "nothing to add" sentinel
