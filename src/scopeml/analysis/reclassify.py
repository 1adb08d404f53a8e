"""New rules on finished results: a resume whose settings differ only in ``rules`` applies them
to the finished images' tables instead of segmenting the images again.

Rules read nothing but a table's own columns, so new cutoffs (a mitotic nucleus brighter than
50, not 40) need no new segmentation: each finished image's ``object_class`` is worked out
again from its table. Every table is checked before any is written (a rule naming a column an
image's table lacks refuses the resume and changes nothing), and only a table whose classes
change is rewritten, atomically, every other cell as it was; so a resume stopped half-way and
run again leaves every table as the settings say.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from scopeml.analysis.resume import finished_images
from scopeml.analysis.rules import COLUMN, classify_by_rules
from scopeml.analysis.settings import AnalysisSettings, ClassSettings
from scopeml.errors import InvalidRequestError, ScopeMLError
from scopeml.io.replace import atomic_write

__all__ = ["reapply_rules"]


def reapply_rules(settings: AnalysisSettings, previous: str, output: Path) -> tuple[int, list[str]]:
    """Give every finished image in ``output`` the object classes ``settings``' rules name
    (dropping them for a class whose rules ``previous``, the earlier settings YAML, had and
    ``settings`` have not); return how many images are finished and the names of those whose
    classes changed."""
    had = _classes_with_rules(previous)
    classes = [c for c in settings.classes if c.rules or c.name in had]
    if not classes:
        return 0, []
    folders = [output / "images" / name for name in finished_images(output)]
    tables = [(folder, cls) for folder in folders for cls in classes
              if (folder / f"{cls.name}.csv").is_file()]  # fmt: skip
    changed = [(folder, cls) for folder, cls in tables if _changed(folder, cls)]
    for folder, cls in changed:  # every table checked: now written
        _rewrite(folder, cls)
    return len(folders), list(dict.fromkeys(folder.name for folder, _ in changed))


def _classes_with_rules(text: str) -> set[str]:
    """The names of the classes with rules in a settings YAML text."""
    data = yaml.safe_load(text)
    classes = data.get("classes") if isinstance(data, dict) else None
    return {c.get("name") for c in classes or () if isinstance(c, dict) and c.get("rules")}


def _classes(folder: Path, cls: ClassSettings) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A table's object classes as written and as ``cls``'s rules name them (``""`` where
    none; ``None`` for a table without the column, or a class without rules)."""
    path = folder / f"{cls.name}.csv"
    header = pd.read_csv(path, nrows=0).columns
    named = dict.fromkeys(c for bounds in cls.rules.values() for c in bounds)
    read = ["object_id", *[c for c in named if c in header], *[COLUMN] * (COLUMN in header)]
    frame = pd.read_csv(path, usecols=read, dtype={COLUMN: str})  # numbers read back exactly
    was = frame[COLUMN].fillna("").to_numpy(object) if COLUMN in frame else None
    if not cls.rules:
        return was, None
    try:
        now = classify_by_rules(frame, cls.rules, cls.name)[COLUMN]
    except ScopeMLError as err:  # a column this image's table lacks
        raise InvalidRequestError(
            f"cannot apply the new rules to this finished image's table: {err}; "
            "analyse into a new results folder, or --overwrite to replace this one",
            path=path,
        ) from None
    return was, now.fillna("").to_numpy(object)


def _changed(folder: Path, cls: ClassSettings) -> bool:
    was, now = _classes(folder, cls)
    if was is None or now is None:
        return (was is None) != (now is None)
    return not np.array_equal(was, now)


def _rewrite(folder: Path, cls: ClassSettings) -> None:
    """Write a table's new ``object_class`` (in place, else last; none without rules) into
    its CSV, every other cell as it was read, and into its Parquet copy where there is one."""
    _, now = _classes(folder, cls)
    csv = folder / f"{cls.name}.csv"
    table = _with_classes(pd.read_csv(csv, dtype=str, keep_default_na=False), now, "")
    with atomic_write(csv, fsync=False) as temp:
        table.to_csv(temp, index=False)
    parquet = csv.with_suffix(".parquet")
    if parquet.is_file():
        table = _with_classes(pd.read_parquet(parquet), now, None)
        with atomic_write(parquet, fsync=False) as temp:
            table.to_parquet(temp, index=False)


def _with_classes(
    table: pd.DataFrame, classes: np.ndarray | None, none: str | None
) -> pd.DataFrame:
    """``table`` with ``classes`` as its ``object_class`` (``none`` where an object has
    none), or without the column (``classes`` ``None``)."""
    if classes is None:
        return table.drop(columns=COLUMN, errors="ignore")
    table = table.copy()
    # in its place where the table has it, else last
    table[COLUMN] = np.where(classes == "", none, classes).astype(object)
    return table
