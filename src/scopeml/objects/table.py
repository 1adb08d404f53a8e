"""Measurement tables on disk: CSV or Parquet, chosen by the file name, written atomically.

A table never replaces a file that is already there unless asked (``overwrite=True``, the
command line's ``--overwrite``): every writer checks with :func:`check_table_output` before its
work and again as it moves the finished file into place (:func:`place_table`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scopeml.errors import InputNotFoundError, InvalidRequestError
from scopeml.io.replace import atomic_write

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: The suffixes a table is written and read under.
TABLE_SUFFIXES = tuple(_FORMATS)


def write_table(
    table: pd.DataFrame, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write ``table`` as CSV or Parquet (by suffix) to a temporary file, then move it into place.

    An existing file at ``path`` is refused unless ``overwrite``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_table(pd.DataFrame({"label": [1, 2]}), f"{tmp}/t.csv")
    ...     read_table(path)["label"].tolist()
    [1, 2]
    """
    path = Path(path)
    kind = check_table_output(path, overwrite=overwrite)
    with atomic_write(path, overwrite=overwrite) as temp:
        if kind == "csv":
            table.to_csv(temp, index=False)
        else:
            table.to_parquet(temp, index=False)
    return path


def check_table_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """The format of a table to write at ``path`` (:func:`table_format`), checked before any
    work: a folder is refused, and so is an existing file unless ``overwrite``.

    Examples
    --------
    >>> import tempfile
    >>> existing = Path(tempfile.mkdtemp()) / "mine.csv"
    >>> _ = existing.write_text("label\\n1\\n")
    >>> check_table_output(existing, overwrite=True)
    'csv'
    >>> check_table_output(existing)
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: ...mine.csv: output exists; pass --overwrite (overwrite...
    """
    from scopeml.io.replace import check_output_file

    kind = table_format(path)
    check_output_file(path, overwrite=overwrite)
    return kind


def temporary_table(path: str | os.PathLike[str]) -> Path:
    """A new empty file for a table streamed to ``path``, moved there by :func:`place_table`.

    It is in ``path``'s folder (made if missing), so the move is one rename, and named for this
    writer alone (:func:`scopeml.io.replace.create_temporary`: a random name, created
    exclusively): two writers of one table, in one process or several, never share one.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "objects.csv"
    >>> first, second = temporary_table(path), temporary_table(path)
    >>> first != second and first.parent == second.parent == path.parent
    True
    >>> first.name.startswith(".objects.csv."), first.stat().st_size
    (True, 0)
    """
    from scopeml.io.replace import create_temporary

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return create_temporary(path)


def place_table(temp: Path, path: Path, *, overwrite: bool = False) -> Path:
    """Move a finished temporary table onto ``path`` in one step; a file that appeared there
    since :func:`check_table_output` is kept unless ``overwrite``. Whatever fails, ``temp`` is
    removed and ``path`` left as it was."""
    try:
        check_table_output(path, overwrite=overwrite)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def read_table(path: str | os.PathLike[str], *, text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet table written by :func:`write_table` (or any tool); the CSV's
    ``text`` columns, where it has them, as text (an image named ``001`` is not the number 1)."""
    path = Path(path)
    kind = table_format(path)
    if not path.is_file():
        raise InputNotFoundError("no such file", path=path)
    try:
        if kind == "csv":
            return pd.read_csv(path, dtype=dict.fromkeys(text, str))
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InvalidRequestError(f"cannot read table: {err}", path=path) from err


def table_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"``, from the suffix; any other suffix is refused (checked before
    any work, so a long run does not fail at its end).

    Examples
    --------
    >>> table_format("objects.CSV"), table_format(Path("objects.pq"))
    ('csv', 'parquet')
    >>> table_format("csv")
    Traceback (most recent call last):
    scopeml.errors.InvalidRequestError: csv: a table is a file name: give objects.csv
    """
    path = Path(path)
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None and not path.suffix and f".{path.name.lower()}" in _FORMATS:
        raise InvalidRequestError(  # --measure csv: the format, not a file
            f"a table is a file name: give objects.{path.name}", path=path
        )
    if kind is None:
        raise InvalidRequestError(
            f"unknown table format {path.suffix!r}; known: {sorted(_FORMATS)}", path=path
        )
    if kind == "parquet":
        from scopeml.extras import require

        require("pyarrow", "a Parquet table", path)
    return kind
