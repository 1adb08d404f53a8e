"""The axes a user names for a file whose own metadata does not say (``axes="TYX"``,
``--axes TYX``): checked here without the file, against the file by its reader.

A plain multi-page TIFF does not say whether its pages are planes or time points; scopeml reads
them as Z (as bioio/aicsimageio and napari do) and warns; these letters say otherwise. Cheap to
import (the command line's option help comes from here).
"""

from __future__ import annotations

from scopeml.errors import InvalidRequestError

#: The option help, the same wherever the command line takes an image file.
AXES_HELP = (
    "The image file's axes, one letter of T,C,Z,Y,X per axis in the file's order, e.g. TYX: "
    "a plain multi-page TIFF is read as a Z stack unless told (TIFF files only)."
)


#: Axis letters a user may give for a file's axes (``axes="TYX"``, ``--axes TYX``).
USER_AXES = "TCZYX"


def check_axes_text(axes: str) -> str:
    """``axes`` as the file axis letters a user gives them (any case), checked for what does
    not need the file: known letters, none twice, ``Y`` and ``X`` present.

    Examples
    --------
    >>> check_axes_text("tyx")
    'TYX'
    >>> check_axes_text("TQX")
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: axes 'TQX': unknown letter Q; use T, C, Z, Y, X (one \
per axis of the file, in its order)
    """
    if not isinstance(axes, str) or not axes.strip():
        raise InvalidRequestError(f"axes must be letters such as 'TYX'; got {axes!r}")
    letters = axes.strip().upper()
    odd = [a for a in letters if a not in USER_AXES]
    if odd:
        raise InvalidRequestError(
            f"axes {axes!r}: unknown letter {', '.join(odd)}; use {', '.join(USER_AXES)} "
            "(one per axis of the file, in its order)"
        )
    twice = sorted({a for a in letters if letters.count(a) > 1})
    if twice:
        raise InvalidRequestError(f"axes {axes!r}: {', '.join(twice)} given twice")
    if "Y" not in letters or "X" not in letters:
        raise InvalidRequestError(f"axes {axes!r} must include Y and X")
    return letters


def files_told(axes: str | None, *paths: object) -> list[object]:
    """Which of ``paths`` (``None`` for no file) ``axes`` applies to: the TIFF files among
    them, for a command that reads several files (labels and an image, say) and takes one
    ``--axes``. None at all when ``axes`` is ``None``; given but fitting none of them, it is
    refused.

    Examples
    --------
    >>> files_told("TYX", "labels.ome.zarr", "cells.tif"), files_told(None, "cells.tif")
    (['cells.tif'], [])
    >>> files_told("TYX", "labels.ome.zarr")
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: --axes TYX applies to TIFF files; labels.ome.zarr \
names its own axes
    """
    if axes is None:
        return []
    from scopeml.io.registry import takes_axes

    given = [p for p in paths if p is not None]
    told = [p for p in given if takes_axes(p)]  # type: ignore[arg-type]
    if not told:
        raise InvalidRequestError(
            f"--axes {axes} applies to TIFF files; {', '.join(map(str, given))} "
            f"name{'s' * (len(given) == 1)} {'its' if len(given) == 1 else 'their'} own axes"
        )
    return told
