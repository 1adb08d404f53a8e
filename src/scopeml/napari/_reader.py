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
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import find_stack_level
from scopeml.napari._layers import SOURCE_KEY, image_layer_data, labels_layer_data, open_levels
from scopeml.napari._source import guess_said_here

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


def read_image(path: str, *, scene: int | None = None, axes: str | None = None) -> LayerData:
    """Layer data of one scene (``None``: every scene when they agree in size, else scene 0).

    ``axes`` names a TIFF's axes (``"CYX"``: its pages are channels), as
    ``sm.open_image(path, axes=)``; the layers record it, so the widgets reopen the file so.
    Layers are told apart by the file: a single channel is named by the file's stem
    (``"cells"``, or ``"cells DAPI"`` for a named channel), unnamed channels ``"cells C0"``…;
    named channels of a multi-channel file keep their names (``"DAPI"``).

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> file = tempfile.mkdtemp() + "/a.ome.tif"
    >>> tifffile.imwrite(file, np.zeros((2, 8, 8), np.uint8), metadata={"axes": "CYX"})
    >>> [(kind, kwargs["name"]) for _, kwargs, kind in read_image(file)]
    [('image', ['a C0', 'a C1'])]
    """
    from scopeml.errors import InvalidImageError

    path = os.fspath(path)
    try:
        with guess_said_here():  # said below in the GUI's words (ambiguous_pages)
            levels = _open_levels(path, scene, axes)
    except InvalidImageError as err:
        if scene is not None or "scene" not in str(err):
            raise
        log.warning("%s; showing scene 0 (choose another in 'scopeml: open scene')", err)
        scene = 0
        levels = _open_levels(path, 0, axes)
    classes = label_classes(path, levels[0], scene=scene)
    if classes is not None:
        name = os.path.basename(path.rstrip("/\\"))
        name = re.sub(r"\.ome\.(zarr|tiff?)$", "", name, flags=re.IGNORECASE)
        return [labels_layer_data(levels, name=name, path=path, classes=classes or None)]
    data, kwargs, kind = image_layer_data(levels, path=path, scene=scene)
    kwargs["name"] = layer_names(path, kwargs["name"])
    source = kwargs["metadata"][SOURCE_KEY]
    if axes is not None:
        source["file_axes"] = axes
    else:
        note = ambiguous_pages(path, scene)
        if note:
            source["note"] = note
            warnings.warn(note, UserWarning, stacklevel=find_stack_level())
    return [(data, kwargs, kind)]


#: Where a TIFF's axes are chosen in napari (the open widget, in the Plugins menu).
REOPEN = "Plugins › scopeml › Open image scene"


def _open_levels(path: str, scene: int | None, axes: str | None) -> list[Any]:
    """:func:`open_levels`, with the TIFF's axes named by the user when ``axes`` is given."""
    if axes is None:
        return open_levels(path, scene=scene)
    import scopeml as sm
    from scopeml.errors import InvalidImageError

    if not path.lower().endswith((".tif", ".tiff")):
        raise InvalidImageError(
            "the axes choice is for TIFF files (other formats name their axes); choose (automatic)",
            path=path,
        )
    levels = [sm.open_image(path, scene=scene, axes=axes)]
    while len(levels) < 16 and min(levels[-1].sizes["Y"], levels[-1].sizes["X"]) > 256:
        try:
            level = sm.open_image(path, scene=scene, level=len(levels), axes=axes)
        except InvalidImageError:
            break  # no such level
        if level.sizes["Y"] >= levels[-1].sizes["Y"]:
            level.close()
            break
        levels.append(level)
    return levels


def file_stem(path: str) -> str:
    """The file's name without its image suffix (``cells.ome.tif`` → ``cells``).

    >>> file_stem("/data/cells.ome.tif"), file_stem("/data/plate_A1.v2.tiff")
    ('cells', 'plate_A1.v2')
    """
    from scopeml.io.registry import IMAGE_SUFFIXES

    name = os.path.basename(path.rstrip("/\\")) or path
    for suffix in IMAGE_SUFFIXES:  # longest first: .ome.tif before .tif
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def layer_names(path: str, names: str | list[str]) -> str | list[str]:
    """Names that tell files apart: a channel without a name of its own (``C0``, ``C1``…) and a
    single channel get the file's stem; named channels of several keep their names.

    >>> layer_names("/d/a.tif", "C0"), layer_names("/d/a.tif", "DAPI")
    ('a', 'a DAPI')
    >>> layer_names("/d/a.tif", ["C0", "C1"]), layer_names("/d/a.tif", ["DAPI", "GFP"])
    (['a C0', 'a C1'], ['DAPI', 'GFP'])
    """
    stem = file_stem(path)
    if isinstance(names, str):
        return stem if re.fullmatch(r"C\d+", names) else f"{stem} {names}"
    return [f"{stem} {n}" if re.fullmatch(r"C\d+", str(n)) else n for n in names]


def ambiguous_pages(
    path: str, scene: int | None = None, *, how: str = f"reopen it in {REOPEN} with axes"
) -> str | None:
    """What to say when a plain TIFF's pages were read by guess (as Z planes or time points;
    3–4 pages stored as colours, as channels), in the GUI's words; ``None`` for any other
    file."""
    if not path.lower().endswith((".tif", ".tiff")):
        return None
    import tifffile

    from scopeml.io.tiff import guessed_axes, map_axes

    try:
        with tifffile.TiffFile(path) as tf:
            if tf.is_ome:  # OME-XML names its axes: nothing was guessed
                return None
            series = tf.series[scene or 0]
            tiff_axes, shape = series.axes, tuple(series.shape)
        guessed = guessed_axes(tiff_axes, shape, map_axes(tiff_axes, shape, path=path))
    except Exception:  # it opened above; a problem here only loses the note
        return None
    if not guessed:
        return None
    words = {"Z": "planes (Z)", "T": "time points (T)", "C": "channels (C)"}
    index, size, read, ways = guessed[0]
    kind = "stored as colours" if tiff_axes[index] == "S" else "of unknown kind"
    if len(guessed) > 1:  # both guesses said: 20 time points (T) of 5 planes (Z)
        sizes = " × ".join(str(g[1]) for g in guessed)
        shown = " of ".join(f"{g[1]} {words[g[2]]}" for g in guessed)
        hints = dict.fromkeys(h for g in guessed for _, h in g[3])
        return (
            f"{os.path.basename(path)}: its {sizes} pages are {kind} and are shown as "
            f"{shown}; if they are otherwise, {how} {' or '.join(hints)}"
        )
    return (
        f"{os.path.basename(path)}: its {size} pages are {kind} and are shown as "
        f"{words[read]}; if they are {' or '.join(k for k, _ in ways)}, {how} "
        f"{' or '.join(h for _, h in ways)}"
    )


def label_classes(path: str, image: Any, *, scene: int | None = None) -> list[str] | None:
    """The class names of an image that holds labels, opened as a Labels layer rather than an
    image (``[]``: object ids, or classes without names); ``None``: not labels. Labels are one
    integer channel in an OME-Zarr image marked as an NGFF ``image-label`` (as ``segment``,
    ``analyze``, ``post``, ``objects label`` and ``convert --labels`` write them; with several
    scenes, the scene's image ``path/N``), or in an OME-TIFF marked by scopeml's labels
    annotation (segment's ``--ome-tiff`` copies of its labels and instances)."""
    if image.sizes["C"] != 1 or not np.issubdtype(image.dtype, np.integer):
        return None
    name = path.rstrip("/\\").lower()
    if name.endswith((".tif", ".tiff")):
        return _tiff_label_classes(path, scene)
    if not name.endswith(".zarr"):
        return None
    import zarr

    from scopeml.io.omezarr import label_classes as classes_of

    try:
        attrs = zarr.open_group(path, mode="r").attrs.asdict()
    except Exception:
        return None
    one_image = "multiscales" in attrs.get("ome", attrs)  # else scenes: the scene's image
    return classes_of(path if one_image else os.path.join(path, str(scene or 0)))


def _tiff_label_classes(path: str, scene: int | None) -> list[str] | None:
    """:func:`label_classes` of an OME-TIFF, from its OME-XML."""
    import tifffile

    from scopeml.io.tiff import ome_label_classes

    try:
        with tifffile.TiffFile(path) as tiff:
            xml = tiff.ome_metadata if tiff.is_ome else None
    except Exception:
        return None
    return ome_label_classes(xml, scene or 0) if xml else None


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
