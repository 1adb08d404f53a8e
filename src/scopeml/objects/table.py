"""Measurement tables on disk: CSV or Parquet, chosen by the file name, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from scopeml.errors import InvalidRequestError
from scopeml.io.replace import atomic_write

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def write_table(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` as CSV or Parquet (by suffix) to a temporary file, then move it into place.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_table(pd.DataFrame({"label": [1, 2]}), f"{tmp}/t.csv")
    ...     read_table(path)["label"].tolist()
    [1, 2]
    """
    path = Path(path)
    kind = table_format(path)
    with atomic_write(path) as temp:
        if kind == "csv":
            table.to_csv(temp, index=False)
        else:
            table.to_parquet(temp, index=False)
    return path


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV or Parquet table written by :func:`write_table` (or any tool)."""
    path = Path(path)
    kind = table_format(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        return pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InvalidRequestError(f"cannot read table: {err}", path=path) from err


def table_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"``, from the suffix; any other suffix is refused (checked before
    any work, so a long run does not fail at its end).

    Examples
    --------
    >>> table_format("objects.CSV"), table_format(Path("objects.pq"))
    ('csv', 'parquet')
    """
    path = Path(path)
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InvalidRequestError(
            f"unknown table format {path.suffix!r}; known: {sorted(_FORMATS)}", path=path
        )
    return kind
