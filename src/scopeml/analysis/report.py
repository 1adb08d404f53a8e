"""The batch's summary: tables over all images, counts, failures, plots and ``index.html``.

``summary/counts.csv`` has per image the objects of each class, the imaged area
(``area_mm2``; ``volume_mm3`` for Z stacks), its time points, and the objects per mm² (per mm³)
where the image has a pixel size, else per megapixel — per time point (``nucleus_per_mm2``:
a still image is one time point, so a batch's column names never depend on what it holds) —
and each class's mean object size in the table's units
(``nucleus_area_um2_mean``; in a batch where some image has no pixel size, also in pixels for
every image, ``nucleus_area_mean``, so no image's sizes are left out), and for each model
class the scale its model ran at (``nucleus_scale``; scenes at different factors are joined by
``;``) with, where ``auto`` chose it, the estimate it chose by (``nucleus_scale_auto``:
``objects ~43 px, model 20 px``), for a class cut at an automatic pooled threshold the level
(``nucleus_threshold``: :func:`threshold_level`), and where a class has an object classifier or
rules, its objects of each ``object_class`` (``nucleus_class_mitotic``).
``summary/counts_per_time_point.csv`` (in a batch with a time series or an image of several
scenes) has per image, scene and time point the objects of each class; where some image has
more than one time point, ``summary/CLASS_counts_over_time.png`` draws them, a line per image
(scene) over the time in seconds where the files say their time step, else the time point.
``summary/CLASS_per_image.csv`` has per image the mean, median,
quartiles and 5th/95th percentiles of what is plotted: the size and each measured channel's
mean intensity.

Plots are PNG charts drawn with Pillow (:mod:`scopeml.analysis.charts`, no plotting library):
per class the objects per image (every image labelled), and for the size and every mean
intensity a histogram over all images and a box per image (quartiles, median, whiskers at the
5th and 95th percentiles), with axis titles in the table's units (µm² where the image has a
pixel size; a batch where some image has none plots the area in pixels too). The tables are
read one image at a time (twice: the second pass bins the histograms on the batch's range), so
memory holds one image's table and a few numbers per image, not the batch's objects.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from scopeml.analysis.charts import bar_chart, box_chart, histogram, line_chart
from scopeml.analysis.outputs import CLASS_COLOURS, parquet_available
from scopeml.analysis.settings import AnalysisSettings, file_name_part
from scopeml.analysis.tables import time_seconds
from scopeml.errors import find_stack_level
from scopeml.io.replace import atomic_write, write_atomically
from scopeml.tiling.store import writer

__all__ = ["axis_title", "write_report"]

#: Most images in one chart; more go on further charts (``…_2.png``), each still one label a bar.
CHART_IMAGES = 400
#: The column an object classifier writes its class into.
PREDICTED = "object_class"
#: Bins of the histograms.
BINS = 30
#: Percentiles per image in ``CLASS_per_image.csv`` (the box plot's whiskers, box and median).
PERCENTILES = {"p5": 5, "q1": 25, "median": 50, "q3": 75, "p95": 95}


#: The density column of each imaged-size unit.
_DENSITY = {"area_mm2": "per_mm2", "megapixels": "per_megapixel", "volume_mm3": "per_mm3",
            "megavoxels": "per_megavoxel"}  # fmt: skip


@dataclass
class _ClassSummary:
    """What the report keeps of one class: the plotted columns, a row of statistics per
    image, and the histograms over all images."""

    columns: list[str]
    per_image: pd.DataFrame
    histograms: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    three_d: bool = False
    #: Per image (rows), the objects of each ``object_class`` (a classifier's or rules').
    predicted: pd.DataFrame | None = None
    #: Per image, its objects in each scene and time point (a Series indexed by both).
    planes: dict[str, pd.Series] = field(default_factory=dict)
    #: Per image, its objects of each ``object_class`` in each scene and time point.
    predicted_planes: dict[str, pd.Series] = field(default_factory=dict)


#: Columns read as text from an image's table, whatever one image's hold or lack: an image
#: named ``001`` is not the number 1 in the Parquet table (whose schema, taken from the first
#: image, then refused an image named ``a``), and a plain TIFF's missing ``scene_name`` is
#: not a number column that a plate's OME-TIFF's names then break.
TEXT_COLUMNS = ("image", "scene_name", "class", "parent_class", PREDICTED)


def text_dtypes(columns: Sequence[str]) -> dict[str, type]:
    """The columns read as text whatever they hold: names, classes and the image's metadata
    (a site ``2`` of one image and a site ``2b`` of another make one column of one type)."""
    return {c: str for c in columns if c in TEXT_COLUMNS or c.startswith("metadata_")}


def write_report(
    settings: AnalysisSettings,
    records: Sequence[dict[str, Any]],
    output: Path,
    left_out: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write ``tables/``, ``summary/`` and ``index.html`` for the records of a batch. With
    settings ``outputs: {summary: false}`` the plots are left out; the tables are written
    still: ``scopeml info``, :meth:`~scopeml.analysis.AnalysisResult.counts_table` and the
    command line's last line read them. ``left_out``: the files the inputs found and left out,
    each with why (``summary/left_out.csv``), so a batch whose log was lost still says so."""
    tables = output / "tables"
    summary = output / "summary"
    tables.mkdir(exist_ok=True)
    summary.mkdir(exist_ok=True)
    done = [r for r in records if r["status"] == "done"]
    names = [c.name for c in settings.classes]
    colours = {n: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, n in enumerate(names)}
    failures = pd.DataFrame(
        [{"image": r["name"], "file": r["image"], "reason": r["reason"]}
         for r in records if r["status"] != "done"], columns=["image", "file", "reason"],
    )  # fmt: skip
    _write_csv(failures, summary / "failures.csv")
    _write_csv(_warnings_table(records, settings.channels), summary / "warnings.csv")
    left = pd.DataFrame(list(left_out), columns=["file", "reason"])
    _write_csv(left, summary / "left_out.csv")
    plotted = settings.outputs.summary  # false: no plots, nor the histograms' second pass
    classes = {n: _combine(output, done, n, tables, settings.outputs.parquet, bins=plotted)
               for n in names}  # fmt: skip
    for name, found in classes.items():
        _order_predicted(found, list(_rules_of(settings, name)), [r["name"] for r in done])
    counts = _counts(done, names, classes, settings)
    _write_csv(counts, summary / "counts.csv")
    over_time = _counts_per_time_point(done, names, classes)
    if over_time is not None:
        _write_csv(_with_metadata(over_time, settings), summary / "counts_per_time_point.csv")
    plots: list[tuple[str, str]] = []
    for name, found in classes.items():
        _write_csv(_with_metadata(found.per_image, settings), summary / f"{name}_per_image.csv")
        if plotted:
            plots += _time_plot(name, over_time, summary)
            plots += _plots(name, counts, found, summary, colours[name])
    index = output / "index.html"
    more = {r["name"]: sorted(p.name for p in (output / "images" / r["name"]).glob("overview_*"))
            for r in done}  # fmt: skip
    write_atomically(index, _html(settings, records, counts, failures, plots, more, len(left)))
    return index


def _warnings_table(records: Sequence[dict[str, Any]], channels: Sequence[str]) -> pd.DataFrame:
    """A row per warning an image's analysis gave (its record's ``warnings``; a record from
    before they were kept, or from a dask worker's thread, has none), so a batch whose log was
    lost still says which images were read by a guess (pages read as Z…; channels read in
    order, which the batch says in one line)."""
    from scopeml.analysis.image import unnamed_warning

    rows = [{"image": r["name"], "file": r["image"], "warning": text}
            for r in records
            for text in [*(r.get("warnings") or ()), unnamed_warning([r], channels)]
            if text is not None]  # fmt: skip
    return pd.DataFrame(rows, columns=["image", "file", "warning"])


def _with_metadata(frame: pd.DataFrame, settings: AnalysisSettings) -> pd.DataFrame:
    """``frame`` (a row per image, or per image and time point) with the settings'
    ``metadata`` columns after its ``image``."""
    columns = settings.metadata_columns()
    if not columns or frame.empty:
        return frame
    values = pd.DataFrame([settings.metadata_row(str(name)) for name in frame["image"]],
                          index=frame.index, columns=columns)  # fmt: skip
    return pd.concat([frame[["image"]], values, frame.drop(columns="image")], axis=1)


def _counts(
    done: Sequence[dict[str, Any]],
    names: Sequence[str],
    classes: dict[str, _ClassSummary],
    settings: AnalysisSettings | None = None,
) -> pd.DataFrame:
    """Per image: objects per class, the imaged area (volume) and the objects per mm² (mm³) —
    per megapixel (megavoxel) where the image has no pixel size — and each class's mean size
    (in a batch where some image has no pixel size, also in pixels for every image).

    A time series counts its objects over all its time points (``nucleus``) and says how many
    there are (``time_points``); its densities are per time point, the objects divided by the
    time points and the area, under the same name as a still image's (``nucleus_per_mm2``),
    so runs with and without a time series combine. Records of results from before
    scopeml recorded image sizes leave the area, time points and densities empty.
    """
    rows, sized = [], [_imaged(record) for record in done]
    for record, (size, unit, times) in zip(done, sized, strict=True):
        row: dict[str, Any] = {"image": record["name"], "file": record["image"]}
        row.update(settings.metadata_row(record["name"]) if settings else {})
        row.update({n: int(record["counts"].get(n, 0)) for n in names})
        if unit is not None:
            row["time_points"] = times
            row[unit] = size
            for n in names:
                row[f"{n}_{_DENSITY[unit]}"] = row[n] / times / size if size else np.nan
        rows.append(row)
    order = ["image", "file", *(settings.metadata_columns() if settings else ()), *names]
    if any("time_points" in row for row in rows):
        order.append("time_points")
    for unit, per in _DENSITY.items():
        if any(unit in row for row in rows):
            order += [unit, *[f"{n}_{per}" for n in names]]
    for n in names:
        if any(record.get("scales", {}).get(n) for record in done):
            for row, record in zip(rows, done, strict=True):
                row[f"{n}_scale"], row[f"{n}_scale_auto"] = scale_cells(record, n)
            order += [f"{n}_scale", f"{n}_scale_auto"]
        if any((record.get("thresholds") or {}).get(n) for record in done):
            for row, record in zip(rows, done, strict=True):
                row[f"{n}_threshold"] = threshold_level(record, n)
            order.append(f"{n}_threshold")
    table = pd.DataFrame(rows, columns=order)
    for name, found in classes.items():
        for size in [c for c in found.columns if not c.startswith("intensity_")]:
            means = found.per_image.set_index("image")[f"{size}_mean"]
            table[f"{name}_{size}_mean"] = table["image"].map(means).astype(float)
        values = [] if found.predicted is None else list(found.predicted.columns)
        for value in values:
            column = table["image"].map(found.predicted[value]).fillna(0).astype(np.int64)
            table[f"{name}_class_{value}"] = column  # 0 in an image without objects
        if _rules_of(settings, name):  # those no rule named: counted, so the classes add up
            named = [f"{name}_class_{v}" for v in values]
            table[f"{name}_unclassified"] = table[name] - table[named].sum(axis=1)
    return table


def _order_predicted(found: _ClassSummary, rules: list[str], images: list[str]) -> None:
    """Put a class's object classes in its rules' order, every rule a column (0 where no
    object met it: a plate's batches have the same columns), else a classifier's by name."""
    if rules:
        found.predicted = found.predicted if found.predicted is not None else (
            pd.DataFrame(index=images))  # fmt: skip
    if found.predicted is not None:
        others = sorted(v for v in found.predicted.columns if v not in rules)
        found.predicted = found.predicted.reindex(columns=[*rules, *others], fill_value=0)
        found.predicted = found.predicted.astype(np.int64)


def _rules_of(settings: AnalysisSettings | None, name: str) -> dict[str, Any]:
    """Class ``name``'s rules in the settings (their order is the summary's), else none."""
    found = [c.rules for c in (settings.classes if settings else ()) if c.name == name]
    return found[0] if found else {}


def _counts_per_time_point(
    done: Sequence[dict[str, Any]], names: Sequence[str], classes: dict[str, _ClassSummary]
) -> pd.DataFrame | None:
    """Per image, scene and time point, the objects of each class: for a batch with a time
    series or an image of several scenes (else ``None``: ``counts.csv`` says it all). Every
    plane of an image gets a row, 0 where it has no objects; ``scene_name`` where a file names
    its scenes, ``time_s`` (the time point's time in seconds) where it says its time step."""
    sizes = [record.get("sizes") or {} for record in done]
    if not any(int(s.get("T", 1)) > 1 or int(s.get("S", 1)) > 1 for s in sizes):
        return None
    rows = []
    thresholded = {n for n in names for r in done if (r.get("thresholds") or {}).get(n)}
    for record in done:
        image, first = record["name"], int(record.get("scene") or 0)  # one scene of the file
        named = record.get("scene_names") or {}
        for scene, size in enumerate(scene_sizes(record), start=first):
            for t in range(int(size.get("T", 1))):
                row: dict[str, Any] = {"image": image, "scene": scene}
                row["scene_name"], row["t"] = named.get(str(scene)), t
                row["time_s"] = time_seconds(t, record.get("pixel_sizes"))  # as the tables'
                for name in names:
                    planes = classes[name].planes.get(image)
                    row[name] = int(planes.get((scene, t), 0)) if planes is not None else 0
                    if name in thresholded:
                        row[f"{name}_threshold"] = threshold_level(record, name, (scene, t))
                    row.update(_classes_at(classes[name], name, image, (scene, t)))
                rows.append(row)
    levels = [f"{n}_threshold" for n in names if n in thresholded]
    kinds = [f"{n}_class_{v}" for n in names if classes[n].predicted is not None
             for v in classes[n].predicted.columns]  # fmt: skip
    table = pd.DataFrame(rows, columns=["image", "scene", "scene_name", "t", "time_s", *names,
                                        *levels, *kinds])  # fmt: skip
    table[kinds] = table[kinds].fillna(0).astype(np.int64)
    unsaid = [c for c in ("scene_name", "time_s") if table[c].isna().all()]
    return table.drop(columns=unsaid)


def scale_cells(record: dict[str, Any], name: str) -> tuple[Any, str]:
    """The scale class ``name``'s model ran at in an image (``"0.5;1"`` where its scenes
    differ; ``None`` in a record from before scopeml recorded it), and what ``auto`` chose it
    by (``""`` for a factor given).

    Examples
    --------
    >>> scale_cells({"scales": {"n": [{"scale": 0.5, "diameter": 43.2,
    ...                                "model_diameter": 20.0, "auto": True}]}}, "n")
    (0.5, 'objects ~43 px, model 20 px')
    >>> scale_cells({"scales": {"n": [{"scale": 1.0}, {"scale": 2.0}]}}, "n")
    ('1;2', '')
    """
    from scopeml.tiling.size import AutoScale

    runs = (record.get("scales") or {}).get(name) or []
    if not runs:
        return None, ""
    factors = list(dict.fromkeys(float(run["scale"]) for run in runs))
    estimates = []
    for run in runs:
        chosen = AutoScale.from_dict(run) if run.get("auto") else None
        if chosen is not None:
            estimates.append(chosen.text().removeprefix("auto: "))
    factor = factors[0] if len(factors) == 1 else ";".join(f"{f:g}" for f in factors)
    return factor, "; ".join(dict.fromkeys(estimates))


def _classes_at(found: _ClassSummary, name: str, image: str, plane: tuple[int, int]) -> dict:
    """Class ``name``'s objects of each ``object_class`` in one plane of an image (0 where
    none), as ``counts_per_time_point.csv`` columns (``nucleus_class_mitotic``)."""
    if found.predicted is None:
        return {}
    counted = found.predicted_planes.get(image)
    return {f"{name}_class_{value}": int(counted.get((*plane, value), 0)) if counted is not None
            else 0 for value in found.predicted.columns}  # fmt: skip


def threshold_level(
    record: dict[str, Any], name: str, plane: tuple[int, int] | None = None
) -> float:
    """The automatic threshold level class ``name``'s objects were cut at in an image: on
    ``plane`` (scene, t), else the mean over its planes (NaN: none, as in a blank plane or a
    record from before scopeml recorded them).

    >>> record = {"thresholds": {"n": [{"scene": 0, "t": 0, "level": 10.0},
    ...                                {"scene": 0, "t": 1, "level": 20.0}]}}
    >>> threshold_level(record, "n"), threshold_level(record, "n", (0, 1))
    (15.0, 20.0)
    """
    entries = (record.get("thresholds") or {}).get(name) or ()
    found = [e["level"] for e in entries
             if e["level"] is not None and plane in (None, (e["scene"], e["t"]))]  # fmt: skip
    return float(np.mean(found)) if found else np.nan


def scene_sizes(record: dict[str, Any]) -> list[dict[str, int]]:
    """The sizes of each scene an image's record says were analysed: as recorded where they
    differ (each scene opened on its own), else its ``sizes`` once per scene.

    >>> scene_sizes({"sizes": {"S": 2, "T": 1, "Y": 4, "X": 5}})
    [{'S': 1, 'T': 1, 'Y': 4, 'X': 5}, {'S': 1, 'T': 1, 'Y': 4, 'X': 5}]
    >>> [s["Y"] for s in scene_sizes({"sizes": {"S": 2, "Y": 4}, "scene_sizes": [
    ...     {"S": 1, "Y": 4}, {"S": 1, "Y": 9}]})]
    [4, 9]
    """
    sizes = record.get("sizes") or {}
    return record.get("scene_sizes") or [{**sizes, "S": 1}] * int(sizes.get("S", 1))


def _imaged(record: dict[str, Any]) -> tuple[float, str | None, int]:
    """The area (mm²; volume in mm³ for Z stacks, megapixels or megavoxels without a pixel
    size) an image's objects were found in, over all its scenes, and its time points.

    >>> _imaged({"sizes": {"S": 1, "T": 2, "Z": 1, "Y": 1000, "X": 2000},
    ...          "pixel_sizes": {"X": 0.5, "Y": 0.5}})
    (0.5, 'area_mm2', 2)
    >>> _imaged({"sizes": {"S": 2, "T": 1, "Z": 1, "Y": 1000, "X": 500}, "pixel_sizes": {}})
    (1.0, 'megapixels', 1)
    >>> _imaged({"counts": {}})
    (nan, None, 1)
    """
    sizes, pixel = record.get("sizes"), record.get("pixel_sizes") or {}
    if not sizes:
        return float("nan"), None, 1
    scenes, times = scene_sizes(record), max(int(sizes.get("T", 1)), 1)
    axes = "ZYX" if int(sizes.get("Z", 1)) > 1 else "YX"
    count = sum(float(np.prod([int(scene.get(a, 1)) for a in axes])) for scene in scenes)
    if all(pixel.get(a) for a in axes):
        size = count * float(np.prod([pixel[a] for a in axes])) / 1e3 ** len(axes)  # µm → mm
        return size, "volume_mm3" if len(axes) == 3 else "area_mm2", times
    return count / 1e6, "megavoxels" if len(axes) == 3 else "megapixels", times


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_write(path, fsync=False) as temp:
        table.to_csv(temp, index=False, float_format="%.10g")


def _combine(
    output: Path,
    done: Sequence[dict[str, Any]],
    name: str,
    tables: Path,
    parquet: bool,
    *,
    bins: bool = True,
) -> _ClassSummary:
    """Append a class's per-image tables into ``tables/NAME.csv`` (and ``.parquet``) one image
    at a time, so memory holds one image's table, not the batch's; keep per image the
    statistics of the plotted columns, then (``bins``: for the plots) bin them over the
    batch's range in a second pass."""
    parts = [(r["name"], output / "images" / r["name"] / f"{name}.csv") for r in done]
    parts = [(image, path) for image, path in parts if path.is_file()]
    write_parquet = parquet and parquet_available()
    headers = [list(pd.read_csv(part, nrows=0).columns) for _, part in parts]
    columns = _union(headers, tables / f"{name}.csv")
    shared = set.intersection(*map(set, headers)) if headers else set()
    ragged = [column for column in columns if column not in shared]  # some image lacks them
    # an image without a pixel size has no µm column: its sizes in pixels are kept for all
    keep = _plotted_columns(columns, pixels=not all(_PHYSICAL & set(h) for h in headers))
    rows: list[dict[str, Any]] = []
    counted: dict[str, dict[str, pd.Series]] = {}  # per image: small tallies, not its rows
    with ExitStack() as stack:
        csv_temp = stack.enter_context(atomic_write(tables / f"{name}.csv", fsync=False))
        csv_temp.write_text("")
        parquet_temp = None
        if write_parquet:
            parquet_temp = stack.enter_context(atomic_write(tables / f"{name}.parquet",
                                                            fsync=False))  # fmt: skip
        writer = None
        for index, ((image, part), header) in enumerate(zip(parts, headers, strict=True)):
            frame = None
            if header == columns:  # the batch's columns: the rows as written, not parsed again
                with open(part, "rb") as file, open(csv_temp, "ab") as out:
                    line, body = file.readline(), file.read()
                    out.write(line * (index == 0) + body)
            else:
                frame = _widened(pd.read_csv(part, dtype=text_dtypes(columns)), columns, ragged)
                frame.to_csv(csv_temp, index=False, header=index == 0, mode="a")
            if parquet_temp is not None:
                if frame is None:
                    frame = _widened(pd.read_csv(part, dtype=text_dtypes(columns)), columns, ragged)
                if len(frame):
                    writer = _append_parquet(writer, frame, parquet_temp)
            read = keep + [c for c in (PREDICTED, "scene", "t") if c in columns]
            plotted = _read_plotted(part, read) if frame is None else frame.reindex(columns=read)
            rows.append(_statistics(image, plotted[keep]))
            counted[image] = _tallies(plotted)
        if writer is not None:
            writer.close()
        elif parquet_temp is not None:  # no objects at all
            pd.DataFrame(columns=columns).to_parquet(parquet_temp, index=False)
    order = ["image", "objects", *[f"{c}_{s}" for c in keep for s in ("mean", *PERCENTILES)]]
    per_image = pd.DataFrame(rows).reindex(columns=order + [f"{c}_{e}" for c in keep
                                                            for e in ("min", "max")])  # fmt: skip
    found = _ClassSummary(keep, per_image[order], three_d="centroid-2" in columns)
    predicted = {image: c[PREDICTED] for image, c in counted.items() if PREDICTED in c}
    if predicted:  # every image a row, every class predicted anywhere a column (0 where none)
        frame = pd.DataFrame(predicted).T.fillna(0).astype(np.int64)
        found.predicted = frame[sorted(frame.columns)] if len(frame.columns) else frame
    found.planes = {image: c["planes"] for image, c in counted.items() if "planes" in c}
    found.predicted_planes = {image: c["classes"] for image, c in counted.items()
                              if "classes" in c}  # fmt: skip
    table = tables / f"{name}.parquet" if writer is not None else None
    if bins:
        _histograms(found, per_image, table, [part for _, part in parts])
    return found


def _union(headers: Sequence[list[str]], table: Path) -> list[str]:
    """Every column of the images' tables, in the order they first appear, so the combined
    ``table`` drops none (a Z stack's ``volume_um3`` beside a plane's ``area_um2``); a batch
    mixing planes and Z stacks is warned about, as their position columns differ in meaning.

    >>> _union([["a", "b"], ["a", "c", "b"]], Path("t.csv"))
    ['a', 'b', 'c']
    """
    columns = list(dict.fromkeys(name for header in headers for name in header))
    if len({"centroid-2" in header for header in headers}) > 1:
        warnings.warn(
            f"{table.parent.name}/{table.name}: the batch mixes 2-D images and Z stacks; in a Z "
            "stack's rows (those with a centroid-2) centroid-0..2 are z, y, x and bbox-0..5 "
            "min z, y, x, max z, y, x, in a 2-D image's centroid-0..1 are y, x and bbox-0..3 "
            "min y, x, max y, x; sizes are volume_um3 and area_um2",
            UserWarning, stacklevel=find_stack_level(),
        )  # fmt: skip
    return columns


def _widened(frame: pd.DataFrame, columns: list[str], ragged: list[str]) -> pd.DataFrame:
    """An image's table with the batch's ``columns`` (empty where it has none); a number
    column some image lacks (``ragged``) is float, so the Parquet table's one type holds its
    gaps."""
    frame = frame.reindex(columns=columns)
    text = text_dtypes(columns)
    for column in ragged:
        if column in text:  # text where present, missing (None) where not: never a number
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(np.float64)
    return frame


def _tallies(table: pd.DataFrame) -> dict[str, pd.Series]:
    """An image's objects counted by predicted ``object_class`` and by ``(scene, t)``
    (``planes``), for the columns the table has.

    >>> tallies = _tallies(pd.DataFrame({"object_class": ["a", "b", "a"], "scene": [0, 0, 0],
    ...                                  "t": [0, 1, 1]}))
    >>> tallies["object_class"].to_dict(), tallies["planes"].to_dict()
    ({'a': 2, 'b': 1}, {(0, 0): 1, (0, 1): 2})
    """
    tallies = {}
    if PREDICTED in table:
        tallies[PREDICTED] = table[PREDICTED].dropna().astype(str).value_counts()
    if "scene" in table and "t" in table:
        tallies["planes"] = table.groupby(["scene", "t"]).size()
        if PREDICTED in table:  # a mitotic index over time
            tallies["classes"] = table.dropna(subset=[PREDICTED]).astype(
                {PREDICTED: str}).groupby(["scene", "t", PREDICTED]).size()  # fmt: skip
    return tallies


def _histograms(
    found: _ClassSummary, per_image: pd.DataFrame, parquet: Path | None, parts: list[Path]
) -> None:
    """Bin each plotted column over the batch's range: a second pass over the ``parquet``
    table (its columns, a row group at a time) where one was written, else over the images'
    CSV ``parts``."""
    keep = found.columns
    for column in keep:
        low, high = per_image[f"{column}_min"].min(), per_image[f"{column}_max"].max()
        if np.isfinite(low) and np.isfinite(high):
            found.histograms[column] = (np.zeros(BINS, np.int64),
                                        np.histogram_bin_edges([low, high], BINS))  # fmt: skip
    if not found.histograms:
        return
    if parquet is not None:
        import pyarrow.parquet as pq

        with pq.ParquetFile(parquet, pre_buffer=False) as table:
            chunks = (table.read_row_group(i, columns=keep).to_pandas()
                      for i in range(table.num_row_groups))  # fmt: skip
            _bin(found.histograms, chunks)
    else:
        _bin(found.histograms, (_read_plotted(part, keep) for part in parts))


def _bin(
    histograms: dict[str, tuple[np.ndarray, np.ndarray]], chunks: Iterable[pd.DataFrame]
) -> None:
    """Add the finite values of each chunk's columns to their histograms' counts."""
    for chunk in chunks:
        for column, (counts, edges) in histograms.items():
            values = chunk[column].to_numpy(float)
            counts += np.histogram(values[np.isfinite(values)], edges)[0]


def _read_plotted(part: Path, keep: Sequence[str]) -> pd.DataFrame:
    wanted = frozenset(keep).__contains__
    return pd.read_csv(part, usecols=wanted).reindex(columns=keep)


def _statistics(image: str, table: pd.DataFrame) -> dict[str, Any]:
    """One image's row of ``CLASS_per_image.csv``: objects, and per plotted column the mean,
    the percentiles (NaN without objects), and the range (for the histograms' bins).

    >>> row = _statistics("a", pd.DataFrame({"area": [1.0, 2, 3, 4, 5]}))
    >>> row["objects"], row["area_mean"], row["area_median"], row["area_q1"], row["area_max"]
    (5, 3.0, 3.0, 2.0, 5.0)
    """
    row: dict[str, Any] = {"image": image, "objects": len(table)}
    for column in table.columns:
        values = table[column].to_numpy(float)
        values = values[np.isfinite(values)]
        found = values.size > 0
        row[f"{column}_mean"] = float(values.mean()) if found else np.nan
        quantiles = np.percentile(values, list(PERCENTILES.values())) if found else [np.nan] * 5
        row.update({f"{column}_{k}": float(q) for k, q in zip(PERCENTILES, quantiles,
                                                              strict=True)})  # fmt: skip
        row[f"{column}_min"] = float(values.min()) if found else np.nan
        row[f"{column}_max"] = float(values.max()) if found else np.nan
    return row


#: The size columns in µm (an image with a pixel size has one of them).
_PHYSICAL = frozenset({"area_um2", "volume_um3"})


def _plotted_columns(columns: Sequence[str], *, pixels: bool = False) -> list[str]:
    """The size columns (in µm² or µm³ where the images have a pixel size, else pixels; both
    µm columns in a batch of planes and Z stacks, so neither's sizes go unplotted; with
    ``pixels``, a batch where some image has no pixel size, also ``area`` in pixels, so that
    image's sizes are not left out) and the mean intensity of every channel measured: what
    the summary plots.

    >>> _plotted_columns(["label", "area", "area_um2", "intensity_mean_DAPI",
    ...                   "intensity_max_DAPI", "intensity_mean_GFP"])
    ['area_um2', 'intensity_mean_DAPI', 'intensity_mean_GFP']
    >>> _plotted_columns(["area", "area_um2", "volume_um3"])
    ['area_um2', 'volume_um3']
    >>> _plotted_columns(["area", "area_um2"], pixels=True)
    ['area_um2', 'area']
    """
    sizes = [c for c in ("area_um2", "volume_um3") if c in columns]
    sizes += [c for c in ("area",) if c in columns and (pixels or not sizes)]
    intensities = [c for c in columns if c.startswith("intensity_mean_")]
    return [*sizes, *intensities]


def axis_title(column: str, *, three_d: bool = False) -> str:
    """What a plotted column is, with its unit.

    >>> axis_title("area_um2"), axis_title("area"), axis_title("area", three_d=True)
    ('area (µm²)', 'area (pixels)', 'volume (voxels)')
    >>> axis_title("intensity_mean_GFP")
    'mean intensity, GFP (grey value)'
    """
    if column.startswith("intensity_mean_"):
        return f"mean intensity, {column.removeprefix('intensity_mean_')} (grey value)"
    known = {"area_um2": "area (µm²)", "volume_um3": "volume (µm³)",
             "area": "volume (voxels)" if three_d else "area (pixels)"}  # fmt: skip
    return known.get(column, column)


def _append_parquet(writer: Any, frame: pd.DataFrame, path: Path) -> Any:
    """Append ``frame`` to a Parquet file, opening the writer with the first frame's schema
    (later frames are cast to it: an image without objects has the same columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if writer is None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        text = text_dtypes(list(frame.columns))  # text even where the first image has none
        schema = pa.schema([pa.field(f.name, pa.string()) if f.name in text else f
                            for f in table.schema], metadata=table.schema.metadata)  # fmt: skip
        table = table.cast(schema)
        writer = pq.ParquetWriter(str(path), table.schema)
    else:
        table = pa.Table.from_pandas(frame, schema=writer.schema, preserve_index=False, safe=False)
    writer.write_table(table)
    return writer


def _plots(
    name: str,
    counts: pd.DataFrame,
    found: _ClassSummary,
    folder: Path,
    colour: tuple[int, int, int],
) -> list[tuple[str, str]]:
    """A class's charts: objects per image; per plotted column a histogram over all images
    and a box per image. Return ``(caption, path under the results)`` of each."""
    plots = []
    images = counts["image"].tolist()
    for part, suffix, note in _pages(len(images)):
        title = f"{name}: objects per image{note}"
        file = folder / f"{name}_counts{suffix}.png"
        bar_chart(images[part], counts[name].to_numpy(float)[part], file, title=title,
                  y_title=f"{name} objects", colour=colour)  # fmt: skip
        plots.append((title, f"summary/{file.name}"))
    stats = found.per_image.set_index("image").reindex(images)
    both = "area" in found.columns and bool(_PHYSICAL & set(found.columns))  # µm² and pixels
    for column in found.columns:
        quantity = axis_title(column, three_d=found.three_d)
        what = quantity.split(" (")[0]
        if both and not column.startswith("intensity_"):  # area in µm², area in pixels
            what = quantity.replace(" (", " in ").removesuffix(")")
        if column in found.histograms:
            bins, edges = found.histograms[column]
            title = f"{name}: {what} ({int(bins.sum())} objects, all images)"
            file = folder / f"{name}_{file_name_part(column)}.png"  # a channel: untrusted
            histogram(bins, edges, file, title=title, x_title=quantity,
                      y_title=f"{name} objects", colour=colour)  # fmt: skip
            plots.append((title, f"summary/{file.name}"))
        boxes = stats[[f"{column}_{k}" for k in PERCENTILES]].to_numpy(float)
        for part, suffix, note in _pages(len(images)):
            title = f"{name}: {what} per image{note}"
            file = folder / f"{name}_{file_name_part(column)}_per_image{suffix}.png"
            box_chart(images[part], boxes[part], file, title=title, y_title=quantity,
                      colour=colour)  # fmt: skip
            plots.append((title, f"summary/{file.name}"))
    return plots


def _time_plot(name: str, over_time: pd.DataFrame | None, folder: Path) -> list[tuple[str, str]]:
    """A class's objects over time, a line per image (and scene), where some image has more
    than one time point: a live-cell movie's first look. The x axis is the time in seconds
    where every series of several time points has one, else the time point (one axis for
    all, never both). Return ``[(caption, path under the results)]``, or none."""
    if over_time is None or not (over_time["t"] > 0).any():
        return []
    keys = ["image", "scene"]
    moving = over_time.groupby(keys, sort=False)["t"].transform("nunique") > 1
    timed = "time_s" in over_time and bool(over_time.loc[moving, "time_s"].notna().all())
    # a single time point without a time step is at 0 s, as t = 0 is
    x = over_time["time_s"].fillna(over_time["t"]) if timed else over_time["t"]
    scenes = over_time.groupby("image", sort=False)["scene"].nunique()
    series = {}
    for (image, scene), rows in over_time.groupby(keys, sort=False):
        label = str(image)
        if scenes[image] > 1:  # a scene name (a well) where the file has one, else s1
            named = rows["scene_name"].iloc[0] if "scene_name" in rows else None
            label += f" {named}" if isinstance(named, str) and named else f" s{scene}"
        label += f" s{scene}" if label in series else ""  # two scenes of one name
        series[label] = (x[rows.index].to_numpy(float), rows[name].to_numpy(float))
    # the time series first, so the legend names them and the grey "+ N more" are stills
    series = dict(sorted(series.items(), key=lambda item: len(item[1][0]) < 2))
    title = f"{name}: objects over time"
    file = folder / f"{name}_counts_over_time.png"
    line_chart(series, file, title=title, x_title="time (s)" if timed else "time point",
               y_title=f"{name} objects", integer_x=not timed,
               legend_title="image, scene" if (scenes > 1).any() else "image")  # fmt: skip
    return [(title, f"summary/{file.name}")]


def _pages(count: int) -> list[tuple[slice, str, str]]:
    """The images of each chart (at most :data:`CHART_IMAGES`): their slice, the file name's
    suffix and what the title adds.

    >>> _pages(3)
    [(slice(0, 400, None), '', '')]
    >>> [(s, n) for _, s, n in _pages(500)]
    [('', ' (images 1–400 of 500)'), ('_2', ' (images 401–500 of 500)')]
    """
    pages = []
    for page, start in enumerate(range(0, max(count, 1), CHART_IMAGES)):
        stop = min(start + CHART_IMAGES, count)
        note = f" (images {start + 1}–{stop} of {count})" if count > CHART_IMAGES else ""
        pages.append((slice(start, start + CHART_IMAGES), f"_{page + 1}" if page else "", note))
    return pages


def _scales_text(record: dict[str, Any], names: Sequence[str]) -> str:
    """``nucleus 0.5 (auto: objects ~43 px, model 20 px)``: each model class's scale in an
    image, for the index's table."""
    parts = []
    for name in names:
        factor, estimate = scale_cells(record, name)
        if factor is not None:
            shown = f"{factor:g}" if isinstance(factor, float) else factor
            parts.append(f"{name} {shown}" + (f" (auto: {estimate})" if estimate else ""))
    return ", ".join(parts)


def predicted_text(counts: pd.DataFrame, record: dict[str, Any], name: str) -> str:
    """`` (big 3, small 9)``: an image's objects of class ``name`` by the class its object
    classifier or rules gave it, for the index's table (``""`` without either).

    >>> counts = pd.DataFrame({"image": ["a"], "cell_class_big": [3], "cell_class_small": [9]})
    >>> predicted_text(counts, {"name": "a"}, "cell")
    ' (big 3, small 9)'
    """
    prefix, left = f"{name}_class_", f"{name}_unclassified"
    row = counts[counts["image"] == record["name"]]
    parts = [f"{c.removeprefix(prefix)} {int(row[c].iloc[0])}" for c in counts.columns
             if c.startswith(prefix) and len(row)]  # fmt: skip
    if left in counts and len(row) and int(row[left].iloc[0]):  # objects no rule named
        parts.append(f"unclassified {int(row[left].iloc[0])}")
    return f" ({', '.join(parts)})" if parts else ""


def _overview_figure(name: str, more: Sequence[str]) -> str:
    """An image's first overview on the index, its others (scenes, time points) linked under
    it by their plane (``s1_t0``)."""
    esc, folder = html.escape, f"images/{html.escape(quote(name))}"  # a link: "A9 p5d" → A9%20p5d
    links = "".join(f" <a href='{folder}/{esc(quote(file))}'>"
                    f"{esc(file.removeprefix('overview_').removesuffix('.png'))}</a>"
                    for file in more)  # fmt: skip
    return (f"<figure><a href='{folder}/overview.png'><img width=256 src='{folder}/overview.png'>"
            f"</a><figcaption>{esc(name)}{links}</figcaption></figure>")  # fmt: skip


def _planes_text(record: dict[str, Any]) -> str:
    """An image's planes as the index says them: ``20 time points``, ``2 scenes`` …

    >>> _planes_text({"status": "done", "sizes": {"S": 2, "T": 20}})
    '2 scenes, 20 time points'
    >>> _planes_text({"status": "failed"})
    ''
    """
    if record["status"] != "done":
        return ""
    each = scene_sizes(record)
    times = max(int(sizes.get("T", 1)) for sizes in each)
    said = [f"{len(each)} scenes"] if len(each) > 1 else []
    said += [f"{times} time points"] if times > 1 else []
    return ", ".join(said) or "1"


def _pixel_size_text(record: dict[str, Any]) -> str:
    """The pixel size an image was measured with, as the index says it, and where it came from
    where the settings gave it (the tables' µm columns rest on it; ``record.json`` has it all).

    >>> _pixel_size_text({"pixel_sizes": {"Y": 0.5, "X": 0.5, "T": 30.0},
    ...                   "pixel_size_source": {"Y": "settings", "X": "settings", "T": "file"}})
    '0.5 µm, 30 s a time point (from the settings: Y, X)'
    >>> _pixel_size_text({"pixel_sizes": {}})
    'none: sizes in pixels'
    """
    sizes = record.get("pixel_sizes") or {}
    if "Y" not in sizes or "X" not in sizes:
        return "none: sizes in pixels" if record.get("status", "done") == "done" else ""
    y, x = sizes["Y"], sizes["X"]
    said = f"{y:g} µm" if y == x else f"{y:g} × {x:g} µm (Y × X)"
    said += f", Z {sizes['Z']:g} µm" if "Z" in sizes else ""
    said += f", {sizes['T']:g} s a time point" if "T" in sizes else ""
    source = record.get("pixel_size_source") or {}
    given = [axis for axis in "ZYXT" if axis in sizes and source.get(axis) == "settings"]
    return said + (f" (from the settings: {', '.join(given)})" if given else "")


def _density_text(counts: pd.DataFrame) -> str:
    """The densities of ``counts.csv`` in the index's words, as its columns have them (mm² in
    2-D, mm³ in Z stacks, megapixels where an image has no pixel size; per time point in a
    batch with a time series), with ``", "`` after; ``""`` where it has none.

    >>> _density_text(pd.DataFrame(columns=["image", "volume_mm3", "megapixels"]))
    'objects per mm³ (per megapixel where an image has no pixel size), '
    """
    sized = [w for u, w in (("area_mm2", "mm²"), ("volume_mm3", "mm³")) if u in counts]
    bare = [w for u, w in (("megapixels", "megapixel"), ("megavoxels", "megavoxel")) if u in counts]
    series = "time_points" in counts and bool((counts["time_points"] > 1).any())
    per = "per time point and " if series else "per "
    said = [per + " or ".join(sized)] if sized else []
    if bare:
        whose = "an image has" if sized else "the images have"
        said.append(f"{per}{' or '.join(bare)} where {whose} no pixel size")
    if not said:
        return ""
    return f"objects {said[0]}{f' ({said[1]})' if len(said) > 1 else ''}, "


def _row(
    record: dict[str, Any],
    names: Sequence[str],
    counts: pd.DataFrame,
    planes: bool,
    scaled: bool,
    warned: bool,
) -> str:
    """An image's row of the index's table, linking its folder (a failed image has none);
    ``warned``: with a column of what it warned of (a record from before they were kept has
    none: an empty cell)."""
    esc, r = html.escape, record
    name = esc(r["name"])
    done = r["status"] == "done"
    cells = [f"<td><a href='images/{esc(quote(r['name']))}/'>{name}</a></td>" if done
             else f"<td>{name}</td>"]  # fmt: skip
    cells += [f"<td>{esc(_planes_text(r))}</td>"] if planes else []
    cells += [f"<td>{r['counts'].get(n, '')}{esc(predicted_text(counts, r, n))}</td>"
              for n in names]  # fmt: skip
    cells += [f"<td>{esc(_scales_text(r, names))}</td>"] if scaled else []
    cells += [f"<td>{esc(_pixel_size_text(r))}</td>"]
    cells += ["<td>ok</td>" if done else f"<td>failed: {esc(r['reason'])}</td>"]
    cells += [f"<td>{'<br>'.join(map(esc, r.get('warnings') or []))}</td>"] if warned else []
    return f"<tr>{''.join(cells)}</tr>"


def _html(
    settings: AnalysisSettings,
    records: Sequence[dict[str, Any]],
    counts: pd.DataFrame,
    failures: pd.DataFrame,
    plots: Sequence[tuple[str, str]],
    more: Mapping[str, Sequence[str]],
    left_out: int = 0,
) -> str:
    """The index page; ``more``: per image, its overviews after the first (other scenes and
    time points), linked under it; ``left_out``: how many files the inputs left out."""
    esc = html.escape
    names = [c.name for c in settings.classes]
    scaled = any(r.get("scales") for r in records)  # a model class: the scale it ran at
    planes = any(_planes_text(r) not in ("", "1") for r in records)  # a series: say them
    warned = any(r.get("warnings") for r in records)
    rows = "".join(_row(r, names, counts, planes, scaled, warned) for r in records)
    overviews = "".join(
        _overview_figure(r["name"], more.get(r["name"], ()))
        for r in records
        if r["status"] == "done" and settings.outputs.overview
    )
    figures = "".join(f"<figure><img src='{esc(p)}'><figcaption>{esc(t)}</figcaption></figure>"
                      for t, p in plots)  # fmt: skip
    tables = " ".join(f"<a href='tables/{esc(n)}.csv'>{esc(n)}.csv</a>" for n in names)
    series = [(r.get("sizes") or {}).get(k, 1) for r in records if r["status"] == "done"
              for k in "ST"]  # fmt: skip
    per_time = (
        "\n<a href='summary/counts_per_time_point.csv'>counts_per_time_point.csv</a> "
        "(objects per scene and time point),"
        if max(series, default=1) > 1
        else ""
    )
    per_image = " ".join(f"<a href='summary/{esc(n)}_per_image.csv'>{esc(n)}_per_image.csv</a>"
                         for n in names)  # fmt: skip
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>scopeml analysis</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px}} figure{{display:inline-block;
max-width:100%;overflow-x:auto}}
</style></head><body>
<h1>Analysis of {len(records)} image(s)</h1>
<p>{len(counts)} done, {len(failures)} failed (this report by {writer()}; each image's
<code>record.json</code> names the scopeml that analysed it).
Settings: <a href="settings.yaml">settings.yaml</a>.
Tables over all images: {tables}. <a href="summary/counts.csv">counts.csv</a> (objects,
{_density_text(counts)}mean size per image,
objects per object class where a class has an object classifier or rules),{per_time}
<a href="summary/failures.csv">failures.csv</a>, <a href="summary/warnings.csv">warnings.csv</a>
(what each image's analysis warned of), <a href="summary/left_out.csv">left_out.csv</a>
({left_out} file{"" if left_out == 1 else "s"} the inputs found and left out, each with why).
Per image: {per_image} (mean, median, quartiles, 5th and 95th percentiles of size and mean
intensities).</p>
<table><tr><th>image</th>{"<th>planes</th>" if planes else ""}\
{"".join(f"<th>{esc(n)}{' (all planes)' if planes else ''}</th>" for n in names)}\
{"<th>model scale</th>" if scaled else ""}<th>pixel size</th><th>status</th>\
{"<th>warnings</th>" if warned else ""}</tr>
{rows}</table>
<h2>Plots</h2>
<p>Boxes per image: the box spans the quartiles, the line is the median, the whiskers reach the
5th and 95th percentiles.</p>{figures}
<h2>Overviews</h2>{overviews}
</body></html>
"""
