"""npe2 readers: images open as lazy multiscale layers; a model file opens in the widget.

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

from scopeml.napari._layers import image_layer_data, open_levels

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
    name = str(path).rstrip("/\\").lower()
    return read_image if name.endswith(IMAGE_SUFFIXES) else None


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
    return [image_layer_data(levels, path=path, scene=scene)]


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
