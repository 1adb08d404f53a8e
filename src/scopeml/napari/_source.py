"""The scopeml :class:`~scopeml.io.Image` behind a napari layer.

A layer opened by the scopeml reader records its file and scene (``layer.metadata["scopeml"]``):
the file is reopened lazily at full resolution with *all* its channels, so training, preview
and apply see what ``sm.segment`` on that file sees. Any other layer (in-memory arrays, the
sample) is wrapped as it is: its channel axis (RGB, a ``C`` named in its axis labels, or none)
and its dimensions named by :func:`memory_axes` (``[T×][Z×]Y×X`` unless its axis labels say).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import scopeml as sm
from scopeml.napari._layers import SOURCE_KEY

#: The reader's warning that a TIFF's pages were read by guess (as planes, or as channels).
GUESSED_PAGES = "(?s).*pages (of unknown kind|stored as colours)"


@contextlib.contextmanager
def guess_said_here() -> Iterator[None]:
    """Open a file for the reader, which says the guessed-pages warning in the GUI's words:
    the library's own is caught (and so counts as said: a widget opening the file again gives
    it no more, without a filter of its own, which raced with worker threads' warnings) and
    any other warning passes on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        if not is_guess(str(warning.message)):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def is_guess(text: str) -> bool:
    """Whether a warning's ``text`` is the guessed-pages one (:data:`GUESSED_PAGES`)."""
    return re.match(GUESSED_PAGES, text) is not None


def name_for_file(layer: Any, default: str) -> str:
    """A layer's name as a file name (``cells DAPI`` → ``cells_DAPI``; ``default`` where
    nothing is left), for the stores the widgets write for it.

    >>> class Layer:
    ...     name = "plate A1 / DAPI"
    >>> name_for_file(Layer(), "image"), name_for_file(object(), "image")
    ('plate_A1_DAPI', 'image')
    """
    import re

    return re.sub(r"[^\w.-]+", "_", str(getattr(layer, "name", ""))).strip("._") or default


def layer_source(layer: Any) -> dict[str, Any] | None:
    """``{"path", "scene", "axes"}`` of a layer the scopeml reader made, else ``None``."""
    source = getattr(layer, "metadata", {}).get(SOURCE_KEY)
    return source if isinstance(source, dict) and source.get("path") else None


def scene_label(path: str, scene: int | None, axes: str | None = None) -> str:
    """``"scene 1"``, ``"scene 1: A1-Pos3"`` where the file names it, for a scene of a file
    that has several; ``""`` otherwise (a file of one scene has no "scene 0" to speak of).
    The metadata is read again: a cheap open."""
    if scene is None:
        return ""
    try:
        return _scene_label(str(path), scene, axes, file_stamp(path))
    except OSError:  # the file gone: no name to give
        return ""


@functools.lru_cache(maxsize=64)
def _scene_label(path: str, scene: int, axes: str | None, stamp: tuple[Any, ...]) -> str:
    """:func:`scene_label`, read once per file version (``stamp``): a live preview asks on
    every stroke."""
    names: tuple[str, ...] = ()
    try:
        with sm.open_image(path, scene=scene, axes=axes) as image:
            names = tuple(getattr(image, "scene_names", ()) or ())
        several = scene > 0 or len(names) > 1
        if not several and not names:  # a reader that lists no names: is there a scene 1?
            with sm.open_image(path, scene=1, axes=axes):
                several = True
    except Exception:  # no such scene (or the file says no more than it did)
        several = scene > 0
    if not several:
        return ""
    name = names[scene] if scene < len(names) else ""
    return f"scene {scene}: {name}" if name and name != str(scene) else f"scene {scene}"


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
    rgb = bool(getattr(layer, "rgb", False))
    dims = memory_axes(layer)
    axes = dims + ("C" if rgb else "")
    sizes = layer_pixel_sizes(layer, dims)
    names: list[str] | None = None
    if rgb:  # named as scopeml's reader names an RGB file's channels
        names = list("RGBA"[: data.shape[-1]])
    elif "C" not in dims:
        names = [str(getattr(layer, "name", "C0"))]
    return sm.Image(AxesView(data, axes), pixel_sizes=sizes, channel_names=names)


def layer_pixel_sizes(layer: Any, dims: str) -> dict[str, float]:
    """Micrometres per pixel along the layer's last ``len(dims)`` dimensions named ``dims``:
    its ``scale`` where its ``units`` are lengths (converted from nm, mm …), none where they
    are napari's default ``pixel`` (a scale there is a display factor, not a size). An object
    without ``units`` (older napari) has its scale taken as µm.

    Examples
    --------
    >>> class Layer:
    ...     scale, units = (2.0, 0.5, 0.5), ("pixel", "nanometer", "nanometer")
    >>> layer_pixel_sizes(Layer(), "ZYX")
    {'Y': 0.0005, 'X': 0.0005}
    """
    import pint

    scale = [float(s) for s in layer.scale[-len(dims) :]]
    units = list(getattr(layer, "units", None) or ["micrometer"] * len(dims))[-len(dims) :]
    registry = pint.get_application_registry()
    sizes = {}
    for axis, size, unit in zip(dims, scale, units, strict=True):
        quantity = size * registry.Unit(str(unit))
        if axis in "ZYX" and quantity.check("[length]"):
            sizes[axis] = float(quantity.to("micrometer").magnitude)
    return sizes


#: The axes of an in-memory layer's dimensions whose ``axis_labels`` name none, by its
#: number of dimensions (an RGB layer's colour axis not counted): a 4-D layer is a time
#: series of stacks, as :func:`scopeml.napari._preview.layer_axes` shows it.
LAYER_AXES = {2: "YX", 3: "ZYX", 4: "TZYX"}


def memory_axes(layer: Any) -> str:
    """The axes of an in-memory layer's dimensions (an RGB layer's colour axis left out):
    its ``axis_labels`` where they are axis letters (``("t", "z", "y", "x")``; ``S T C Z``
    and ``Y X`` last), else :data:`LAYER_AXES` by its number of dimensions. A ``T`` axis is
    applied time point by time point and ``C``, first or refused, is the image's
    channels.

    Examples
    --------
    >>> class Layer:
    ...     data, rgb, axis_labels = np.zeros((3, 2, 4, 5)), False, ("-4", "-3", "-2", "-1")
    >>> memory_axes(Layer())
    'TZYX'
    >>> Layer.axis_labels = ("c", "time", "y", "x")
    >>> memory_axes(Layer())
    'CTYX'
    """
    from scopeml.errors import InvalidImageError

    named = labelled_axes(layer)
    if named is not None and named.find("C") > 0:
        # napari lines a layer of fewer dimensions (scribbles, labels) up with the last ones:
        # T×Y×X labels of a T×C×Y×X layer would move with its C slider, not its T slider
        raise InvalidImageError(
            f"layer {getattr(layer, 'name', '')!r} has axis labels {named}: its channel axis "
            f"must come first ({'C' + named.replace('C', '')}) for labels to line up with it, "
            "or add the channels as layers (viewer.add_image(data, channel_axis=...))"
        )
    if named is not None:
        return named
    ndim = _layer_ndim(layer)
    if ndim in LAYER_AXES:
        return LAYER_AXES[ndim]
    raise InvalidImageError(
        f"layer {getattr(layer, 'name', '')!r} has {ndim} dimensions; name them with its "
        "axis labels (layer.axis_labels = ('t', 'c', 'z', 'y', 'x'); letters of S T C Z, then "
        "Y X) or open the file with the scopeml reader"
    )


def labelled_axes(layer: Any) -> str | None:
    """The axes an in-memory layer's ``axis_labels`` name (one letter of ``S T C Z Y X`` or
    ``time``/``channel``/``scene`` each, any case, ``Y X`` last; no ``C`` for an RGB
    layer), else ``None`` (napari's default labels, ``"-4"`` …, name none)."""
    ndim = _layer_ndim(layer)
    words = {"time": "T", "channel": "C", "scene": "S", "position": "S"}
    labels = [str(label).strip() for label in getattr(layer, "axis_labels", ())][-ndim:]
    letters = [words.get(label.lower(), label.upper()) for label in labels]
    named = "".join(letters)
    rgb = bool(getattr(layer, "rgb", False))
    if len(labels) != ndim or any(len(a) != 1 or a not in "STCZYX" for a in letters):
        return None
    if len(set(named)) != ndim or not named.endswith("YX") or (rgb and "C" in named):
        return None
    return named


def _layer_ndim(layer: Any) -> int:
    """A layer's number of dimensions, an RGB layer's colour axis not counted."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return len(data.shape) - (1 if getattr(layer, "rgb", False) else 0)


#: An in-memory array is digested in slabs of at most this many bytes (bounded memory).
SLAB_BYTES = 64 << 20


def data_digest(data: Any) -> tuple[Any, ...]:
    """What an array's pixels are, to tell an edited array from the one a result was made of:
    a dask array's name (a token of its graph; an assignment into it makes a new one), else
    shape, dtype and a BLAKE2 digest of its bytes (a NumPy array edited in place, as
    ``layer.data[...] = v`` does, digests differently), read in slabs of at most
    :data:`SLAB_BYTES`.

    Examples
    --------
    >>> data = np.zeros((4, 5), np.uint16)
    >>> first = data_digest(data)
    >>> data[2, 3] = 7  # edited in place: the same object
    >>> data_digest(data) == first, data_digest(np.zeros((4, 5), np.uint16)) == first
    (False, True)
    """
    import hashlib

    shape, dtype = tuple(int(n) for n in data.shape), str(np.dtype(data.dtype))
    if hasattr(data, "dask") and isinstance(getattr(data, "name", None), str):
        return ("dask", data.name, shape, dtype)
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(data, np.ndarray) or not shape:
        digest.update(np.ascontiguousarray(np.asarray(data)).reshape(-1).view(np.uint8).data)
    else:  # zarr and other lazy arrays: slabs along the first axis
        row = max(1, int(np.prod(shape[1:])) * np.dtype(dtype).itemsize)
        step = max(1, SLAB_BYTES // row)
        for start in range(0, shape[0], step):
            slab = np.ascontiguousarray(np.asarray(data[start : start + step]))
            digest.update(slab.reshape(-1).view(np.uint8).data)
    return ("bytes", shape, dtype, digest.hexdigest())


def content_key(layer: Any) -> tuple[Any, ...]:
    """What the pixels behind a layer are now: a file-backed layer's file fingerprinted as
    ``segment`` records it (size, time and sampled content; every file of an OME-Zarr
    listed), an in-memory layer's full-resolution data digested (:func:`data_digest`), with
    what :func:`layer_image` takes from the layer (name, RGB, scale). Costs a pass over an
    in-memory array (milliseconds per megabyte): call it in a worker thread."""
    from scopeml.tiling.identity import fingerprint

    source = layer_source(layer)
    if source is not None:
        return ("file", fingerprint(source["path"]))
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    sizes = tuple(float(s) for s in layer.scale)
    rgb = bool(getattr(layer, "rgb", False))
    return ("memory", str(getattr(layer, "name", "")), rgb, sizes, data_digest(data))


#: Facts read from files, by path, scene, axes and :func:`file_stamp` (the newest kept).
_FACTS: dict[tuple[Any, ...], tuple[list[str], tuple[int, ...], str]] = {}
FACTS_KEPT = 64


def file_stamp(path: str | os.PathLike[str]) -> tuple[Any, ...]:
    """When a file last changed, cheaply: its size and modification time; for a folder (an
    OME-Zarr), those of the files at its top and at the top of its first level (``0/``),
    where its metadata lives (channel names, shape), not its chunks."""
    path = Path(path)
    if not path.is_dir():
        stat = path.stat()
        return (stat.st_size, stat.st_mtime_ns)
    stamp: list[tuple[str, int, int]] = []
    for folder in (path, path / "0"):
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_file():
                    stat = entry.stat()
                    stamp.append((f"{folder.name}/{entry.name}", stat.st_size, stat.st_mtime_ns))
    stat = path.stat()
    return (stat.st_mtime_ns, tuple(stamp))


def layer_facts(layer: Any) -> tuple[list[str], tuple[int, ...], str]:
    """The channel names of the image behind a layer, as :func:`layer_image` has them, and
    the shape and axes its scribbles have (:func:`scribble_axes`: ``T×Y×X`` for a time
    series). A file's are read once per path, scene, axes and :func:`file_stamp` (choosing a
    layer again, or another channel's layer of the same file, parses no metadata: a large
    CZI's takes seconds); an in-memory layer's come from it."""
    source = layer_source(layer)
    key = None
    if source is not None:
        path = os.path.abspath(source["path"])
        key = (path, source.get("scene"), source.get("file_axes"), file_stamp(path))
        if key in _FACTS:
            _FACTS[key] = _FACTS.pop(key)  # the newest
            names, shape, axes = _FACTS[key]
            return list(names), shape, axes
    with layer_image(layer) as image:
        axes = scribble_axes(image)
        facts = [str(name) for name in image.channel_names], image_shape(image, axes), axes
    if key is not None:
        _FACTS[key] = facts
        while len(_FACTS) > FACTS_KEPT:
            del _FACTS[next(iter(_FACTS))]
    return list(facts[0]), facts[1], facts[2]


def scribble_axes(image: sm.Image) -> str:
    """The axes of an image's scribbles (and of its class labels in napari): ``Y X`` and every
    other axis but ``C`` longer than one (the dimensions its layer has), so that each scene,
    time point and plane is painted apart.

    Examples
    --------
    >>> scribble_axes(sm.Image(np.zeros((1, 5, 2, 1, 4, 4), np.uint8)))
    'TYX'
    """
    return "".join(a for a in "STZ" if image.sizes[a] > 1) + "YX"


def image_shape(image: sm.Image, axes: str) -> tuple[int, ...]:
    """The image's sizes along ``axes`` (``"TZYX"`` …)."""
    return tuple(int(image.sizes[a]) for a in axes)
