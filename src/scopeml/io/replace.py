"""Guards for replacing an existing output (``overwrite=True``, ``--overwrite``).

Overwriting must never delete what is not an output of the same kind: ``-o image.tif
--overwrite`` or ``-o ~/data --overwrite`` by mistake would otherwise remove an input image or a
whole folder. A store output may replace only a zarr store (a folder with ``zarr.json``, or a
zarr v2 ``.zgroup``/``.zarray``); anything else is refused with a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

from scopeml.errors import InvalidRequestError

_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def is_zarr_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding a zarr store (v3 or v2) at its top.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> is_zarr_store(folder)
    False
    >>> _ = (folder / "zarr.json").write_text("{}")
    >>> is_zarr_store(folder)
    True
    """
    path = Path(path)
    return path.is_dir() and any((path / marker).is_file() for marker in _ZARR_MARKERS)


def check_replaceable_store(
    path: str | os.PathLike[str], *, inputs: tuple[str | os.PathLike[str] | None, ...] = ()
) -> None:
    """Refuse to replace ``path`` unless it is an existing zarr store that is not an input.

    Raises
    ------
    InvalidRequestError
        ``path`` exists and is a file, a folder that is not a zarr store, or one of ``inputs``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_replaceable_store(folder / "new.ome.zarr")   # nothing there: fine
    >>> check_replaceable_store(folder)
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: ...: refusing to overwrite: it is not a zarr store ...
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    resolved = path.resolve()
    for source in inputs:
        if source is None:
            continue
        source = Path(source).resolve()
        if source == resolved or resolved in source.parents:
            raise InvalidRequestError(
                f"refusing to overwrite: the output holds the input {source}", path=path
            )
    if not is_zarr_store(path) or path.is_symlink():
        kind = "a file" if path.is_file() else "a folder without zarr.json"
        raise InvalidRequestError(
            f"refusing to overwrite: it is not a zarr store ({kind}); remove it yourself "
            "or choose another output",
            path=path,
        )
