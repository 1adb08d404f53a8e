"""Objects painted by their class: a class label image from instance labels and the table
that classified them (``objects classify``'s ``class``, an analysis's ``object_class``).

It is the picture of an object classification that ZEN draws and CellProfiler makes with
ConvertObjectsToImage: each object's pixels take its class's value (1, 2, … in the classes'
order, recorded by name in the store), so a viewer colours objects by class and ``objects
label --class NAME`` takes one class's objects again. Block by block, as ``convert`` copies.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeml.errors import InvalidRequestError, count, find_stack_level
from scopeml.io.image import Image
from scopeml.progress import Progress

__all__ = ["class_column", "paint_image"]

#: The class columns looked for, in order, where none is named: an analysis's predicted
#: classes (its ``class`` is the class tree's), then ``objects classify``'s.
CLASS_COLUMNS = ("object_class", "class")
#: The class of rows without one (an analysis's objects that met no rule), painted after the
#: others so that every object in the table shows.
UNCLASSIFIED = "unclassified"
#: The objects' id columns: regionprops' (``objects measure``), then an analysis's.
ID_COLUMNS = ("label", "object_id")
#: Objects of the image missing from the table that a warning counts exactly (then "≥").
MISSING_KEPT = 100_000


def class_column(table: pd.DataFrame, column: str | None) -> str:
    """The table's class column: ``column``, else the first of :data:`CLASS_COLUMNS` it has.

    Examples
    --------
    >>> class_column(pd.DataFrame({"object_id": [1], "class": ["nucleus"],
    ...                            "object_class": ["mitotic"]}), None)
    'object_class'
    """
    found = [column] if column else [c for c in CLASS_COLUMNS if c in table.columns][:1]
    if not found or found[0] not in table.columns:
        wanted = f"no column {column!r}" if column else "no class column (object_class, class)"
        text = [str(c) for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
        hint = f"; its text columns: {', '.join(text)}" if text else ""
        raise InvalidRequestError(f"{wanted}{hint}")
    return found[0]


class _Tally:
    """What painting met over every plane: the table's rows found in the image, and how many
    of the image's objects the table lacks (ids kept per lookup, :data:`MISSING_KEPT` in all,
    then counted as "at least")."""

    def __init__(self, rows: int) -> None:
        self.seen = np.zeros(rows, bool)
        self.missing = 0
        self.full = False


class _Lookup:
    """Objects of some planes (one, or every plane where the table does not say which): their
    ids sorted, each one's class value (0: none) and row of the table."""

    def __init__(self, ids: np.ndarray, values: np.ndarray, rows: np.ndarray, tally: _Tally):
        order = np.argsort(ids, kind="stable")
        self.ids, self.values, self.rows = ids[order], values[order], rows[order]
        self.tally = tally
        self.missing = np.zeros(0, np.uint64)  # ids of the image's objects not in the table

    def paint(self, labels: np.ndarray, dtype: np.dtype) -> np.ndarray:
        flat = labels.reshape(-1).astype(np.uint64)
        at = np.minimum(np.searchsorted(self.ids, flat), max(len(self.ids) - 1, 0))
        hit = self.ids[at] == flat if len(self.ids) else np.zeros(flat.shape, bool)
        self.tally.seen[self.rows[at[hit]]] = True
        if not self.tally.full:
            before = self.missing.size
            self.missing = np.union1d(self.missing, flat[~hit & (flat > 0)])
            self.tally.missing += self.missing.size - before
            self.tally.full = self.tally.missing >= MISSING_KEPT
        out = np.where(hit, self.values[at] if len(self.ids) else 0, 0)
        return out.astype(dtype).reshape(labels.shape)


class _Painted:
    """The 6-D class image of ``labels``, read lazily: each plane through its lookup, keyed by
    its scene and time point where the table says them (``by``), else shared (-1)."""

    def __init__(self, labels: Image, lookups: dict[tuple[int, int], _Lookup],
                 by: tuple[bool, bool], tally: _Tally, dtype: Any) -> None:  # fmt: skip
        self.labels, self.lookups, self.by, self.tally = labels, lookups, by, tally
        self.shape, self.dtype = labels.shape, np.dtype(dtype)

    def lookup(self, scene: int, time: int) -> _Lookup:
        key = (scene if self.by[0] else -1, time if self.by[1] else -1)
        if key not in self.lookups:  # a plane the table has no rows of
            none = np.zeros(0, np.uint64)
            self.lookups[key] = _Lookup(none, none.astype(np.int64), none.astype(np.intp),
                                        self.tally)  # fmt: skip
        return self.lookups[key]

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        block = np.asarray(self.labels.data[key])
        out = np.zeros(block.shape, self.dtype)
        scenes, times = (range(*k.indices(n)) for k, n in zip(key[:2], self.shape, strict=False))
        for i, scene in enumerate(scenes):
            for j, time in enumerate(times):
                out[i, j] = self.lookup(scene, time).paint(block[i, j], self.dtype)
        return out


def paint_image(
    labels: Image,
    table: pd.DataFrame,
    output: str | os.PathLike[str],
    *,
    column: str | None = None,
    classes: Sequence[str] | None = None,
    tile_size: int | None = None,
    overwrite: bool = False,
    progress: Progress = None,
    table_path: str | os.PathLike[str] | None = None,
) -> Image:
    """Write ``labels``' objects painted by the class each has in ``table`` (rows: ``label``
    or ``object_id``, the class ``column`` (:func:`class_column`), and ``t``/``scene`` where
    the labels have several) as an OME-Zarr
    label image at ``output``: class ``k`` of ``classes`` (default: the table's class names,
    sorted) as value ``k``, then :data:`UNCLASSIFIED` where a row has no class (as an
    analysis counts them); objects not in the table stay 0, with a warning.
    ``table_path``: the table's file, which its errors name.

    Examples
    --------
    >>> import tempfile
    >>> labels = Image(np.array([[1, 1, 0, 2], [3, 0, 0, 2]], np.uint16))
    >>> table = pd.DataFrame({"label": [1, 2, 3], "class": ["b", "a", "b"]})
    >>> out = paint_image(labels, table, f"{tempfile.mkdtemp()}/c.ome.zarr")
    >>> out.read()[0, 0, 0, 0].tolist()
    [[2, 2, 0, 1], [2, 0, 0, 1]]
    """
    from scopeml.io import open_image
    from scopeml.io.convert import write_ome_zarr
    from scopeml.objects.images import check_label_image, check_store_name

    check_store_name(output)
    if Path(output).exists() and not overwrite:
        raise InvalidRequestError(
            "output exists; pass --overwrite (overwrite=True) to replace it", path=output
        )
    check_label_image(labels)
    given = _given_classes(classes)
    try:
        table = _analysis_rows(table, column, labels)
        column = class_column(table, column)
        names = _class_names(table[column], given, column)
        tally = _Tally(len(table))
        lookups, by = _lookups(labels, table, column, names, tally)
    except InvalidRequestError as err:  # the table's fault: named, as a file or "the table"
        problem = err.problem if table_path else f"the table: {err.problem}"
        raise InvalidRequestError(problem, path=table_path) from None
    dtype = np.uint8 if len(names) < 2**8 else np.uint16
    painted = Image(_Painted(labels, lookups, by, tally, dtype), pixel_sizes=labels.pixel_sizes,
                    path=labels.path)  # fmt: skip
    painted.scene_names = labels.scene_names
    tiles = {"Y": tile_size, "X": tile_size} if tile_size else {}
    write_ome_zarr(output, painted, chunks={"Z": 1, **tiles}, labels=True, classes=names,
                   overwrite=overwrite, progress=progress, stage="paint")  # fmt: skip
    _warn_unmatched(tally, labels, Path(table_path).name if table_path else "the table")
    return open_image(output)


def _analysis_rows(table: pd.DataFrame, column: str | None, labels: Image) -> pd.DataFrame:
    """The rows of an analysis's table (``object_id``, ``class``: the class tree's) that are
    its objects store's, ``images/IMAGE/CLASS.ome.zarr`` (``tables/CLASS.csv`` holds every
    image's): another image's or class's rows painted its ids with classes of other objects,
    and its ``class`` column alone is one class for every object. Any other table as it is."""
    if not {"object_id", "class"} <= set(table.columns):
        return table
    if column is None and "object_class" not in table.columns:
        tree = ", ".join(sorted({str(c) for c in table["class"].dropna()}))
        raise InvalidRequestError(
            f"an analysis table without object classes (its class column is the class tree's: "
            f"{tree}): give the class rules or a classifier, or name a column (--column)"
        )
    store = Path(labels.path).resolve() if labels.path else Path()
    if store.parent.parent.name != "images" or not store.name.endswith(".ome.zarr"):
        return table  # not where an analysis keeps its objects: nothing to compare
    kind, image = store.name.removesuffix(".ome.zarr"), store.parent.name
    for name, mine in (("class", kind), ("image", image)):
        theirs = table[name].astype(str) if name in table.columns else None
        if theirs is not None and not (theirs == mine).any():
            shown = ", ".join(sorted(set(theirs))[:3])
            raise InvalidRequestError(
                f"it holds the objects of {name} {shown}; these are {image}'s {kind} objects: "
                f"give images/{image}/{kind}.csv"
            )
        if theirs is not None:
            table = table[(theirs == mine).to_numpy()]
    return table


def _given_classes(classes: Sequence[str] | None) -> list[str] | None:
    """The classes given (``--classes``), checked: named, each once."""
    if classes is None:
        return None
    names = [str(c) for c in classes]
    if not names or not all(n.strip() for n in names):
        raise InvalidRequestError(f"classes: a class without a name ({', '.join(names)!r})")
    if len(set(names)) < len(names):
        raise InvalidRequestError(f"classes: a class is named twice ({', '.join(names)})")
    return names


def _class_names(values: pd.Series, given: list[str] | None, column: str) -> list[str]:
    """The classes in their label values' order: ``given`` (each of the table's among them),
    else the table's own, sorted (as numbers where all are: 2 before 10); then
    :data:`UNCLASSIFIED` for rows without one."""
    found = {str(v) for v in values.dropna() if str(v).strip()}
    empty = bool(values.isna().any() or (values.astype(str).str.strip() == "").any())
    try:
        names = sorted(found, key=float)
    except ValueError:
        names = sorted(found)
    if given is not None:
        unknown = [c for c in names if c not in given]
        if unknown:
            raise InvalidRequestError(
                f"its {column} column has classes not among those given: "
                f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''} "
                f"(given: {', '.join(given)})"
            )
        names = list(given)
    if empty and UNCLASSIFIED not in names:
        names.append(UNCLASSIFIED)
    if len(names) >= 2**16:
        raise InvalidRequestError(f"{len(names)} classes; at most 65,535 paint")
    return names


def _lookups(
    labels: Image, table: pd.DataFrame, column: str, names: list[str], tally: _Tally
) -> tuple[dict[tuple[int, int], _Lookup], tuple[bool, bool]]:
    """The table's objects by ``(scene, time point)``, where the labels have several and the
    table says which (``by``), else in one lookup for every plane (an objects store's ids are
    unique over its time points): each row once, whatever the planes."""
    ids = _ids(table)
    value_of = {name: value for value, name in enumerate(names, 1)}
    none = value_of.get(UNCLASSIFIED, 0)
    values = table[column].map(
        lambda v: value_of.get(str(v), none) if pd.notna(v) and str(v).strip() else none
    )
    scenes = _plane_numbers(labels.sizes["S"], table, "scene")
    times = _plane_numbers(labels.sizes["T"], table, "t")
    frame = pd.DataFrame({"label": ids, "S": scenes, "T": times})
    twice = frame.duplicated(["S", "T", "label"])
    if twice.any():
        raise InvalidRequestError(f"object {frame['label'][twice].iloc[0]} has two rows")
    values = values.to_numpy(np.int64)
    lookups = {
        (int(s), int(t)): _Lookup(ids[rows], values[rows], rows, tally)
        for (s, t), rows in frame.groupby(["S", "T"]).indices.items()
    }
    return lookups, (bool((scenes >= 0).any()), bool((times >= 0).any()))


def _ids(table: pd.DataFrame) -> np.ndarray:
    """The objects' ids (``label``, else ``object_id``) as ``uint64``: exact when stored as
    integers, whatever their size."""
    id_column = next((c for c in ID_COLUMNS if c in table.columns), None)
    if id_column is None:
        raise InvalidRequestError("no label column (the objects' ids; an analysis's object_id)")
    given = table[id_column]
    if pd.api.types.is_integer_dtype(given) and (given > 0).all():
        return given.to_numpy().astype(np.uint64)
    ids = pd.to_numeric(given, errors="coerce").to_numpy(np.float64)
    whole = np.isfinite(ids).all() and (ids == np.round(ids)).all() and (ids > 0).all()
    if not whole or (ids > 2**53).any():  # beyond, a float is no exact id
        raise InvalidRequestError(f"a {id_column} is not an object id (1, 2, …)")
    return ids.astype(np.uint64)


def _plane_numbers(size: int, table: pd.DataFrame, name: str) -> np.ndarray:
    """Each row's scene (or time point) among the labels' ``size``; -1: any, where the labels
    have one, or the table does not say (an objects store's ids are unique over them)."""
    if size == 1 or name not in table.columns:
        if size == 1 and name in table.columns and table[name].nunique() > 1:
            raise InvalidRequestError(
                f"it holds objects of several {name} values; the labels have one "
                f"{'scene' if name == 'scene' else 'time point'}: give that one's rows"
            )
        return np.full(len(table), -1, np.int64)
    numbers = pd.to_numeric(table[name], errors="coerce").to_numpy(np.float64)
    whole = np.isfinite(numbers).all() and (numbers == np.round(numbers)).all()
    if not (whole and ((numbers >= 0) & (numbers < size)).all()):
        raise InvalidRequestError(f"a {name} value is not one of the labels' (0–{size - 1})")
    return numbers.astype(np.int64)


def _warn_unmatched(tally: _Tally, labels: Image, table_name: str) -> None:
    """Say what was left unpainted: objects of the image not in the table, and rows naming
    no object of the image (the table of other labels?)."""
    if tally.missing:
        more = "≥ " if tally.full else ""
        where = Path(labels.path).name if labels.path else "the labels"
        said = f"{more}{count(tally.missing, 'object')} not in {table_name}"
        warnings.warn(f"{where}: {said}: left as background (0)", UserWarning,
                      stacklevel=find_stack_level())  # fmt: skip
    unseen = int(np.count_nonzero(~tally.seen))
    if unseen:
        warnings.warn(f"{table_name}: {count(unseen, 'row')} name objects the image does not "
                      "have: is it the table of these labels?", UserWarning,
                      stacklevel=find_stack_level())  # fmt: skip
