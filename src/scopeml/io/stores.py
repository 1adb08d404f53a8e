"""The one test for "this folder is a zarr store": its metadata markers, v3 and v2.

Opening (:func:`~scopeml.io.registry.reader_for`), replacing an output
(:func:`~scopeml.io.replace.check_replaceable_store`) and finding the root group of a new
store (:func:`~scopeml.io.omezarr.create_ome_zarr`) all ask it, so they agree on what a store is.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Files whose presence at the top of a folder makes it a zarr node: v3 ``zarr.json``, v2
#: group, array and attributes.
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zattrs")


def is_zarr_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding a zarr node (v3 or v2) at its top.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> is_zarr_store(folder)
    False
    >>> _ = (folder / "zarr.json").write_text("{}")
    >>> is_zarr_store(folder), is_zarr_store(folder / "zarr.json")
    (True, False)
    """
    path = Path(path)
    return path.is_dir() and any((path / marker).is_file() for marker in ZARR_MARKERS)
