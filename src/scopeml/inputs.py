"""What the facade accepts besides files and ``Image`` objects: pixel arrays, names given as
one string, and output names checked before any work."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from scopeml.io.image import Image

#: How an image array's axes are read (channels first, as scikit-image's ``channel_axis=0``).
ARRAY_AXES = {2: "YX", 3: "CYX", 4: "CZYX", 6: "STCZYX"}


def image_of_array(array: Any) -> Image:
    """A pixel array as a lazy 6-D :class:`Image`, its axes read by :data:`ARRAY_AXES`.

    Examples
    --------
    >>> import numpy as np
    >>> image_of_array(np.zeros((2, 4, 5))).sizes["C"], image_of_array(np.zeros((4, 5))).shape
    (2, (1, 1, 1, 1, 4, 5))
    """
    import numpy as np

    from scopeml.errors import InvalidImageError
    from scopeml.objects.images import array_image, check_not_empty

    array = np.asarray(array)
    if array.ndim not in ARRAY_AXES:
        raise InvalidImageError(
            f"an image array of shape {array.shape} has {array.ndim} axes; expected Y×X (one "
            "channel), C×Y×X, C×Z×Y×X or S×T×C×Z×Y×X"
        )
    axes = ARRAY_AXES[array.ndim]
    check_not_empty(array.shape, axes, "image")  # the image's fault, not the model's
    return array_image(array, axes)


def check_output_name(output: Path) -> None:
    """Refuse an image-file name (``out.tif``) for a new store, which is a folder: it would be
    an OME-Zarr folder that no TIFF reader opens (an existing file is the engine's to refuse).

    Examples
    --------
    >>> check_output_name(Path("cells.ome.zarr"))  # a store: fine
    >>> check_output_name(Path("cells.ome.tif"))
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: cells.ome.tif: the output is an OME-Zarr store (a \
folder), not a .ome.tif file; name it cells.ome.zarr (ome_tiff=True, --ome-tiff, also writes \
OME-TIFF files beside it)
    """
    from scopeml.io.registry import IMAGE_SUFFIXES

    suffix = next((s for s in IMAGE_SUFFIXES if output.name.lower().endswith(s)), None)
    if suffix is not None and not suffix.endswith(".zarr") and not output.exists():
        from scopeml.errors import InvalidRequestError

        raise InvalidRequestError(
            f"the output is an OME-Zarr store (a folder), not a {suffix} file; name it "
            f"{output.name[: -len(suffix)]}.ome.zarr (ome_tiff=True, --ome-tiff, also writes "
            "OME-TIFF files beside it)",
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
