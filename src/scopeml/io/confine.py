"""Confinement: every file an image reader opens must resolve below one of the allowed roots.

A server job may name only images under its allowed root, and an uploaded image must not
reach beyond its upload folder. Checking the top-level path is not enough: a multi-file
OME-TIFF names companion files in its OME-XML (``../secret.tif``, ``/etc/…``) and an OME-Zarr
folder may hold an array folder or a single chunk file that is a symlink to data elsewhere.
So each reader checks the real path (``os.path.realpath``: symlinks followed) of every file
*where it opens it*: :class:`Confinement` is held by the reader or store object, not by a
context variable, because engine workers read tiles from the lazy image in other threads long
after :func:`~scopeml.io.open_image` returned (the zarr store that does so is
:class:`~scopeml.io.confined_store.ConfinedStore`). Without roots nothing is checked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import PurePosixPath, PureWindowsPath

from scopeml.errors import OutsideRootError


def not_from_root(name: str) -> str | None:
    r"""What keeps a path a client gives from naming a file from the allowed root: a ``..``
    part or an absolute form (POSIX, or Windows' ``C:`` and ``\``), else ``None``. Each
    is refused alike whatever lies there (one that led into the root was taken, any other
    refused: a client could find where the root lies); for ``image_path`` and the model
    files a server analysis's settings name.

    >>> not_from_root("plate/a.tif") is None, not_from_root("/srv/a.tif")
    (True, 'an absolute path is not allowed; name the file from the allowed root')
    >>> not_from_root("a\\..\\b.tif")
    "'..' is not allowed; name the file from the allowed root"
    """
    unusable = unusable_name(name)
    if unusable is not None:
        return unusable
    windows, posix = PureWindowsPath(name), PurePosixPath(name)
    if ".." in posix.parts or ".." in windows.parts:
        return DOT_DOT
    if posix.is_absolute() or windows.drive or windows.root:
        return ABSOLUTE
    return None


def unusable_name(name: str) -> str | None:
    """Why ``name`` can name no file anywhere (empty, a NUL, a lone surrogate, a part over
    255 bytes or all over 4096): opening it raised ValueError, UnicodeEncodeError or "File
    name too long" (a server's 500).

    >>> unusable_name("a" * 300), unusable_name("m.czann" + chr(0)), unusable_name("ok/b.tif")
    ('a part of the path is longer than 255 bytes', 'it contains a NUL character', None)
    """
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid text (a lone surrogate)"
    if not name:
        return "it is empty"
    if "\x00" in name:
        return "it contains a NUL character"
    if len(encoded) > MAX_PATH_BYTES:
        return f"it is longer than {MAX_PATH_BYTES} bytes"
    if any(_name_length(part) > MAX_NAME_BYTES for part in re.split(r"[/\\]", name)):
        return f"a part of the path is longer than {MAX_NAME_BYTES} bytes"
    return None


def _name_length(part: str) -> int:
    """A path part's length as the file system counts it: bytes on POSIX (NAME_MAX), UTF-16
    units on Windows (NTFS and exFAT take 255 of them, 96 CJK characters among them)."""
    encoded = part.encode("utf-8" if os.name == "posix" else "utf-16-le")
    return len(encoded) if os.name == "posix" else len(encoded) // 2


#: The longest path (bytes) and path part a client may name (Linux's PATH_MAX and NAME_MAX).
MAX_PATH_BYTES, MAX_NAME_BYTES = 4096, 255
DOT_DOT = "'..' is not allowed; name the file from the allowed root"
ABSOLUTE = "an absolute path is not allowed; name the file from the allowed root"


@dataclass(frozen=True)
class Confinement:
    """The folders (real paths) below which a reader may open files.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> inside = Confinement.of([root]).check(root / "a" / ".." / "b.tif")
    >>> inside == os.path.realpath(root / "b.tif")
    True
    >>> Confinement.of([root]).check(root / ".." / "secret.tif")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    scopeml.errors.OutsideRootError: .../../secret.tif: resolves to ...
    """

    roots: tuple[str, ...]

    @classmethod
    def of(cls, roots: Sequence[str | PathLike[str]] | None) -> Confinement | None:
        """A confinement to ``roots``, or ``None`` (no checks) when ``roots`` is ``None``.

        An empty sequence allows nothing.
        """
        if roots is None:
            return None
        if isinstance(roots, (str, PathLike)):  # one folder given bare: not its characters
            roots = [roots]
        return cls(tuple(os.path.realpath(root) for root in roots))

    def allows(self, real: str) -> bool:
        """Whether the real path ``real`` lies at or below one of the roots."""
        return any(
            real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots
        )

    def check(self, path: str | PathLike[str], *, named_by: str | None = None) -> str:
        """The real path of ``path``; :class:`OutsideRootError` naming it when outside the roots.

        ``named_by`` is the file that referred to ``path`` (an OME-TIFF naming a companion).
        """
        real = os.path.realpath(path)
        if not self.allows(real):
            by = f" (named in {named_by})" if named_by else ""
            raise OutsideRootError(
                f"resolves to {real}, outside the allowed folders{by}",
                path=path,
            )
        return real
