"""New rules or a retrained object classifier on finished results: a resume whose settings
differ only in classes' ``rules`` or ``classifier`` (or whose classifier file changed) applies
them to the finished images' tables instead of segmenting the images again.

Rules and classifiers read nothing but a table's own columns, so new cutoffs (a mitotic
nucleus brighter than 50, not 40) or a classifier trained on more annotated objects need no
new segmentation: each finished image's ``object_class`` is worked out again from its table.
Every table is worked out before any is written (a rule or classifier that cannot be applied
to one refuses the resume and changes nothing), and only a table whose classes differ (in its
CSV or its Parquet copy) is rewritten, atomically, every other cell as it was: worked out again
as it is written, not held, its CSV a bounded number of rows at a time. Rules, and the absence
of object classes, are checked on every resume, so one stopped half-way and run again leaves
every table as the settings say; a classifier where an image's record names another file than
the run's. Each record is updated after its tables: the settings digest, the classifier files
and the classifier's warnings. Numbers are read from the CSV as Python reads them (exactly
what was written, whatever the pandas version), so a value on a bound falls where the image's
own run put it.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeml.analysis.image import RECORD
from scopeml.analysis.model_files import same_content
from scopeml.analysis.report import PREDICTED, TEXT_COLUMNS
from scopeml.analysis.resume import finished_images
from scopeml.analysis.rules import classify_by_rules
from scopeml.analysis.settings import AnalysisSettings, ClassSettings
from scopeml.errors import InvalidRequestError, ScopeMLError
from scopeml.io.replace import atomic_write, write_atomically
from scopeml.progress import Progress, track

__all__ = ["reapply_object_classes"]

#: The columns an object classifier writes (rules write the first only).
COLUMNS = (PREDICTED, f"{PREDICTED}_probability")
#: Rows of a table rewritten at a time.
ROWS = 65_536


def reapply_object_classes(
    settings: AnalysisSettings,
    output: Path,
    resources: Any,
    files: Mapping[str, Mapping[str, Any]] | None,
    digest: str,
    skip: Collection[str] = (),
    progress: Progress = None,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Give every finished image in ``output`` (but those named in ``skip``, about to be
    analysed again) the object classes ``settings``' rules and classifiers (opened in
    ``resources``; their files' fingerprints ``files``) name, and none to a class without
    either; return the images' records as updated (by name: the settings ``digest``, the
    classifier files and their warnings) and the names of those whose classes changed.
    ``progress``: stage ``reclassify`` in unit ``image``; a callback may cancel between
    images, before any table is written."""
    records = {n: r for n, r in finished_images(output).items() if n not in skip}
    planned, updated = [], {}
    for name in track(list(records), progress, "reclassify", unit="image"):
        record = updated[name] = _updated(records[name], digest)
        for cls in settings.classes:
            table = output / "images" / name / f"{cls.name}.csv"
            classifier = resources.classifiers.get(cls.name)
            classified = cls.name in record.get("model_files", {}).get("classifiers", {})
            if not table.is_file() or _kept(record, cls.name, classifier, resources, files):
                continue
            with warnings.catch_warnings(record=True) as caught:  # the classifier's, recorded
                warnings.simplefilter("always")
                if _new_columns(table, cls, classifier) is not None:
                    planned.append((table, cls, classifier))
            if classifier is not None or classified:  # its warnings replace the earlier's
                _said(record, [str(w.message) for w in caught])
    for table, cls, classifier in planned:  # every table worked out: now written
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said as they were worked out
            _rewrite(table, _new_columns(table, cls, classifier) or {})
    for name, record in updated.items():  # after its tables: a stop before redoes them
        if record != records[name]:
            write_atomically(output / "images" / name / RECORD, json.dumps(record, indent=2))
    return updated, list(dict.fromkeys(table.parent.name for table, _, _ in planned))


def _updated(record: Mapping[str, Any], digest: str) -> dict[str, Any]:
    """A copy of an image's record with the settings ``digest`` (a record from before rules
    and classifiers were left out of it then resumes the next time too)."""
    copied = json.loads(json.dumps(record))
    copied["settings"] = digest
    return copied


def _kept(record: dict[str, Any], name: str, classifier: Any, resources: Any, files: Any) -> bool:
    """Whether class ``name``'s table keeps its classes as they are: classified by the file
    the run opened (by content, as its record says; a file the run could not fingerprint is
    gone, and opening it again says so). Otherwise the record is made to say what the table
    is about to be classified by (no classifier: none)."""
    held = record.setdefault("model_files", {}).setdefault("classifiers", {})
    if classifier is None:
        held.pop(name, None)  # rules or none: a classifier given back is applied again
        return False
    current = (files or {}).get("classifiers", {}).get(name)
    if current is None:
        return True
    earlier = held.get(name)
    if earlier is not None and same_content(earlier, current, resources.classifier_paths[name]):
        return True
    held[name] = current
    return False


#: The lines a classifier's classification warns of (an image's record keeps them).
_CLASSIFIER_SAID = re.compile(
    r"\d+ of \d+ objects (?:lie far outside the range of|have NaN or infinite features)"
)


def _said(record: dict[str, Any], lines: list[str]) -> None:
    """Put a classification's warnings in an image's record in place of an earlier one's."""
    kept = [line for line in record.get("warnings") or () if not _CLASSIFIER_SAID.match(line)]
    said = list(dict.fromkeys([*kept, *lines]))
    if said or "warnings" in record:
        record["warnings"] = said


def _new_columns(path: Path, cls: ClassSettings, classifier: Any) -> dict[str, pd.Series] | None:
    """A table's object class columns as ``cls``'s rules or ``classifier`` give them (``{}``:
    none); ``None`` where its CSV and Parquet copy hold them already."""
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
        if classifier is not None:  # its features, and the counts that excuse a child's mean
            wanted = [*classifier.features, *[c for c in header if c.endswith("_count")]]
            table = _numbers(_read(path, header, wanted))
            new = classifier.classify(table.drop(columns=list(COLUMNS), errors="ignore"),
                                      column=PREDICTED)  # fmt: skip
        elif cls.rules:
            table = _numbers(_read(path, header, [c for b in cls.rules.values() for c in b]))
            new = classify_by_rules(table.drop(columns=list(COLUMNS), errors="ignore"),
                                    cls.rules, cls.name)  # fmt: skip
        else:
            table, new = _read(path, header, []), pd.DataFrame()
        columns = {c: new[c] for c in COLUMNS if c in new}
        written = all(table[c].tolist() == _cells(v) for c, v in columns.items() if c in table)
        same = written and set(columns) == set(COLUMNS) & set(table.columns)
        return None if same and _same_parquet(path, columns) else columns
    except (ScopeMLError, ValueError, UnicodeDecodeError) as err:  # a table edited since
        said = err if isinstance(err, ScopeMLError) else f"it does not read as a table ({err})"
        raise InvalidRequestError(
            f"cannot apply the {'classifier' if classifier else 'rules'} to this finished "
            f"image's table: {str(said).splitlines()[0]}; analyse into a new results folder, "
            "or --overwrite to replace this one",
            path=path,
        ) from None


def _read(path: Path, header: list[str], wanted: list[str]) -> pd.DataFrame:
    """The ``wanted`` columns a table has and its object class columns, as the text written
    (a missing value ``""``); a column it lacks is left to the classifier or rules to name."""
    read = [c for c in dict.fromkeys([*wanted, *COLUMNS]) if c in header] or header[:1]
    return pd.read_csv(path, usecols=read, dtype=str, keep_default_na=False)


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    """A table read as text with its number columns as numbers, converted as Python reads them:
    exactly the value written (pandas 2's own parser was off by a unit in the last place)."""
    numbers = {c: table[c].replace({"": "nan"}).astype(np.float64) for c in table.columns
               if c not in (*COLUMNS, *TEXT_COLUMNS) and not c.startswith("metadata_")}  # fmt: skip
    return table.assign(**numbers)


def _same_parquet(path: Path, columns: Mapping[str, pd.Series]) -> bool:
    """Whether a table's Parquet copy (if any) holds the object class ``columns`` (only)."""
    parquet = path.with_suffix(".parquet")
    if not parquet.is_file():
        return True
    import pyarrow.parquet as pq

    names = set(pq.read_schema(parquet).names)
    if set(columns) != set(COLUMNS) & names:
        return False
    held = pd.read_parquet(parquet, columns=list(columns))
    return all(_cells(held[c]) == _cells(v) for c, v in columns.items())


def _cells(values: pd.Series) -> list[str]:
    """``values`` as a CSV written by pandas holds them (``""`` where missing)."""
    if pd.api.types.is_float_dtype(values):  # pandas' own digits: the bytes a run writes
        lines = values.to_frame().to_csv(index=False, header=False).splitlines()
        return ["" if line == '""' else line for line in lines]  # one column's missing cell
    return values.astype(object).where(values.notna(), "").astype(str).tolist()


def _rewrite(path: Path, new: Mapping[str, pd.Series]) -> None:
    """Write a table's new object class columns (in place, else last; ``{}``: without them)
    into its CSV, every other cell as it was read, and into its Parquet copy if it has one."""
    cells = {c: _cells(v) for c, v in new.items()}
    with atomic_write(path, fsync=False) as temp:
        _in_chunks(path, lambda chunk, start: _with_columns(
            chunk, {c: v[start : start + len(chunk)] for c, v in cells.items()}), temp)  # fmt: skip
    parquet = path.with_suffix(".parquet")
    if parquet.is_file():
        table = _with_columns(pd.read_parquet(parquet), {c: v.to_numpy() for c, v in new.items()})
        with atomic_write(parquet, fsync=False) as temp:
            table.to_parquet(temp, index=False)


def _in_chunks(path: Path, change: Callable[[pd.DataFrame, int], pd.DataFrame], temp: Path) -> None:
    """Copy a CSV table to ``temp`` as text, ``ROWS`` rows at a time, each chunk ``change``d
    (given its first row's number)."""
    start = 0
    for chunk in pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=ROWS):
        change(chunk, start).to_csv(temp, index=False, header=start == 0, mode="a")
        start += len(chunk)
    if start == 0:  # no objects: the header alone
        change(pd.read_csv(path, dtype=str, nrows=0), 0).to_csv(temp, index=False)


def _with_columns(table: pd.DataFrame, new: Mapping[str, Any]) -> pd.DataFrame:
    """``table`` with the ``new`` object class columns, in their places where it has them,
    else last; without any (``{}``)."""
    table = table.drop(columns=[c for c in COLUMNS if c not in new], errors="ignore")
    for column, values in new.items():
        table[column] = list(values)
    return table
