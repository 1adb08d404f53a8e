"""What the facade accepts besides files and ``Image`` objects: pixel arrays, names given as
one string, and output names checked before any work."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from os import PathLike
from pathlib import Path
from typing import Any

from scopeml.io.image import ARRAY_AXES, Image

__all__ = [
    "ARRAY_AXES",
    "check_output_name",
    "image_of_array",
    "names_of",
    "open_training_pair",
    "refuse_axes_of_open",
    "scheduler_address",
]


def image_of_array(array: Any, axes: str | None = None) -> Image:
    """A pixel array as a lazy 6-D :class:`Image`, its axes read by :data:`ARRAY_AXES`, or as
    ``axes`` name them (``"TYX"``: a movie's frames, which the default reads as channels).

    An array that reads its pixels on demand (a dask or zarr array: ``shape``, ``dtype`` and
    slicing) stays lazy: the engine reads it tile by tile, never whole. Anything else (a
    list, a numpy array) is taken as numpy.

    Examples
    --------
    >>> import numpy as np
    >>> image_of_array(np.zeros((2, 4, 5))).sizes["C"], image_of_array(np.zeros((4, 5))).shape
    (2, (1, 1, 1, 1, 4, 5))
    >>> image_of_array(np.zeros((3, 4, 5)), axes="tyx").sizes["T"]
    3
    """
    import numpy as np

    from scopeml.errors import InvalidImageError
    from scopeml.objects.images import array_image, check_not_empty

    if not _is_lazy_array(array):
        given, array = array, np.asarray(array)
        if isinstance(given, np.ndarray) and given.ndim and given.dtype.kind not in "biufc":
            raise InvalidImageError(  # an array of strings or objects: say its pixels' type
                f"image pixels are {given.dtype}; scopeml computes with integer or float pixels"
            )
        if array.dtype.kind in "OUS" or array.ndim == 0:  # a model, paths, a number
            swapped = " (the image comes first, then the model)" if hasattr(given, "spec") else ""
            raise InvalidImageError(
                f"the image must be an array, an Image or a file, not {type(given).__name__}"
                + swapped
            )
    if axes is not None:
        from scopeml.io.axes import check_axes_text

        axes = check_axes_text(axes)
        if len(axes) != array.ndim:
            raise InvalidImageError(
                f"axes {axes!r} name {len(axes)} axes; the image array of shape "
                f"{tuple(array.shape)} has {array.ndim}"
            )
    elif array.ndim not in ARRAY_AXES:
        raise InvalidImageError(
            f"an image array of shape {array.shape} has {array.ndim} axes; expected Y×X (one "
            "channel), C×Y×X, C×Z×Y×X or S×T×C×Z×Y×X, or name them with axes= ('TYX')"
        )
    elif array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4:
        import warnings

        from scopeml.errors import find_stack_level

        warnings.warn(
            f"an image array of shape {tuple(array.shape)} is read as C×Y×X ({array.shape[0]} "
            "channels); an RGB(A) array Y×X×C, as tifffile and scikit-image give it, needs "
            "axes='YXC'",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    axes = axes or ARRAY_AXES[array.ndim]
    check_not_empty(array.shape, axes, "image")  # the image's fault, not the model's
    return array_image(array, axes)


def _is_lazy_array(array: Any) -> bool:
    """Whether ``array`` is an array-like that is not numpy but can be sliced into numpy
    blocks (dask, zarr, h5py); such arrays are read region by region."""
    import numpy as np

    if isinstance(array, np.ndarray):
        return False
    return all(hasattr(array, name) for name in ("shape", "dtype", "ndim", "__getitem__"))


def scheduler_address(scheduler: Any) -> str | None:
    """The dask scheduler address that ``scheduler=`` names: an address as it is, or that
    of a ``distributed.Client``, a ``LocalCluster`` (any cluster object) or a scheduler.

    The engine connects its own client to the address, so the object itself never has to
    travel with the run's options (a client cannot be pickled).

    Examples
    --------
    >>> scheduler_address("tcp://10.0.0.1:8786"), scheduler_address(None)
    ('tcp://10.0.0.1:8786', None)
    >>> scheduler_address(3)
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: scheduler= takes a dask scheduler address \
('tcp://host:8786'), a distributed.Client or a cluster (LocalCluster); got int
    """
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    for found in (
        getattr(scheduler, "scheduler_address", None),  # a LocalCluster, any cluster
        getattr(getattr(scheduler, "scheduler", None), "address", None),  # a Client
        getattr(scheduler, "address", None),  # a Scheduler
    ):
        if isinstance(found, str) and found:
            return found
    from scopeml.errors import InvalidRequestError

    raise InvalidRequestError(
        "scheduler= takes a dask scheduler address ('tcp://host:8786'), a distributed.Client "
        f"or a cluster (LocalCluster); got {type(scheduler).__name__}"
    )


#: What ``segment`` adds to the refusal of an image-file name: the OME-TIFF copies it writes.
OME_TIFF_NOTE = " (ome_tiff=True, --ome-tiff, also writes OME-TIFF files beside it)"


def check_output_name(output: Any, *, note: str = OME_TIFF_NOTE, tables: bool = False) -> None:
    """Refuse an image-file name (``out.tif``) for a new store, which is a folder: it would be
    an OME-Zarr folder that no TIFF reader opens (an existing file is the engine's to refuse).
    ``note`` ends the message (``segment``'s: its OME-TIFF copies); ``tables``: a table's name
    (``out.csv``) is refused too, for a store of objects.

    Examples
    --------
    >>> check_output_name(Path("cells.ome.zarr"))  # a store: fine
    >>> check_output_name(None)
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: segment writes its outputs into a store: give output= \
a path (out.ome.zarr); for arrays in memory use predict_region(image, model, \
outputs='labels' or 'instances')
    >>> check_output_name(Path("cells.ome.tif"))
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: cells.ome.tif: the output is an OME-Zarr store (a \
folder), not a .ome.tif file; name it cells.ome.zarr (ome_tiff=True, --ome-tiff, also writes \
OME-TIFF files beside it)
    """
    from scopeml.io.registry import IMAGE_SUFFIXES

    if not isinstance(output, (str, PathLike)):
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            "segment writes its outputs into a store: give output= a path (out.ome.zarr); for "
            "arrays in memory use predict_region(image, model, outputs='labels' or 'instances')"
        )
    from scopeml.objects.table import TABLE_SUFFIXES

    output = Path(output)
    suffixes = (*IMAGE_SUFFIXES, *(TABLE_SUFFIXES if tables else ()))
    suffix = next((s for s in suffixes if output.name.lower().endswith(s)), None)
    if suffix is not None and not suffix.endswith(".zarr") and not output.exists():
        from scopeml.errors import InvalidRequestError

        if suffix in TABLE_SUFFIXES:
            note = " (a table of objects: scopeml objects measure)"
        raise InvalidRequestError(
            f"the output is an OME-Zarr store (a folder), not a {suffix} file; name it "
            f"{output.name[: -len(suffix)]}.ome.zarr{note}",
            path=output,
        )


def names_of(names: Sequence[Any] | str | int | None) -> tuple[Any, ...] | None:
    """Names given as one string (``"labels"``, ``"DAPI"``, ``"labels,confidence"``), one
    index (``1``) or a sequence, as a tuple; a string is never taken letter by letter.

    Examples
    --------
    >>> names_of("labels, confidence"), names_of(["DAPI", 0]), names_of(1), names_of(None)
    (('labels', 'confidence'), ('DAPI', 0), (1,), None)
    """
    if isinstance(names, str):
        return tuple(name.strip() for name in names.split(",") if name.strip())
    if names is None:
        return None
    return tuple(names) if isinstance(names, Iterable) else (names,)


def refuse_axes_of_open(image: Image, axes: str | None) -> None:
    """``axes=`` with an image opened already: its axes were read when it was opened."""
    if axes is not None:
        from scopeml.errors import InvalidRequestError

        where = f" ({image.path})" if image.path else ""
        raise InvalidRequestError(
            f"axes={axes!r} names a file's axes; this image{where} is open already: pass "
            "the file's path with axes=, or open it with open_image(path, axes=...)"
        )


def open_training_pair(
    image: Any,
    labels: Any,
    opened: ExitStack,
    *,
    axes: str | None = None,
    scene: int | None = None,
    channels: Any = None,
) -> tuple[Image, Any]:
    """One training image (a file, an ``Image`` or an array) as an ``Image``, its scene and
    channels chosen, and its labels, a label file read by the one rule for label files (a
    plain T×Y×X TIFF of a series is its time points). The pixel classifier and the U-Net read
    their training pairs through it, so a file trains either the same way. Files opened here
    are closed with ``opened``; labels given as an array or ``Image`` are returned as given."""
    if isinstance(image, (str, PathLike)):
        from scopeml.io import open_image

        image = opened.enter_context(open_image(image, axes=axes, scene=scene))
    else:
        if not isinstance(image, Image):
            image = image_of_array(image, axes)
        else:
            refuse_axes_of_open(image, axes)
        image = image if scene is None else image.select_scene(scene)
    if channels is not None:
        image = image.select_channels(names_of(channels) or ())
    if isinstance(labels, (str, PathLike)):
        from scopeml.pixel._labels import open_training_labels

        labels = opened.enter_context(open_training_labels(labels, image.sizes))
    return image, labels
