"""The batch's summary: tables over all images, counts, failures, plots and ``index.html``.

Plots are small PNG bar charts drawn with Pillow (no plotting library needed): objects per
class per image, and per class the distributions of area and of mean intensity.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeml.analysis.outputs import CLASS_COLOURS, parquet_available
from scopeml.analysis.settings import AnalysisSettings
from scopeml.io.replace import atomic_write, write_atomically

__all__ = ["bar_chart", "write_report"]


def write_report(
    settings: AnalysisSettings, records: Sequence[dict[str, Any]], output: Path
) -> Path:
    """Write ``tables/``, ``summary/`` and ``index.html`` for the records of a batch."""
    tables = output / "tables"
    summary = output / "summary"
    tables.mkdir(exist_ok=True)
    summary.mkdir(exist_ok=True)
    done = [r for r in records if r["status"] == "done"]
    names = [c.name for c in settings.classes]
    colours = {n: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, n in enumerate(names)}
    counts = pd.DataFrame(
        [{"image": r["name"], "file": r["image"], **{n: r["counts"].get(n, 0) for n in names}}
         for r in done], columns=["image", "file", *names],
    )  # fmt: skip
    _write_csv(counts, summary / "counts.csv")
    failures = pd.DataFrame(
        [{"image": r["name"], "file": r["image"], "reason": r["reason"]}
         for r in records if r["status"] != "done"], columns=["image", "file", "reason"],
    )  # fmt: skip
    _write_csv(failures, summary / "failures.csv")
    plots: list[tuple[str, str]] = []
    if settings.outputs.summary:
        for name in names:
            bar_chart(counts["image"].tolist(), counts[name].to_numpy(float),
                      f"{name}: objects per image", summary / f"{name}_counts.png",
                      colours[name])  # fmt: skip
            plots.append((f"{name}: objects per image", f"summary/{name}_counts.png"))
    for name in names:
        combined = _combine(output, done, name, tables, settings.outputs.parquet)
        if settings.outputs.summary and combined is not None:
            plots += _distributions(combined, name, summary, colours[name])
    index = output / "index.html"
    write_atomically(index, _html(settings, records, counts, failures, plots))
    return index


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_write(path, fsync=False) as temp:
        table.to_csv(temp, index=False)


def _combine(
    output: Path, done: Sequence[dict[str, Any]], name: str, tables: Path, parquet: bool
) -> pd.DataFrame | None:
    """Append a class's per-image tables into ``tables/NAME.csv`` (and ``.parquet``) one image
    at a time, so memory holds one image's table, not the batch's; return the columns the plots
    need (area and the first mean intensity), which are small."""
    parts = [output / "images" / r["name"] / f"{name}.csv" for r in done]
    parts = [p for p in parts if p.is_file()]
    write_parquet = parquet and parquet_available()
    columns: list[str] | None = None
    plotted: list[pd.DataFrame] = []
    with ExitStack() as stack:
        csv_temp = stack.enter_context(atomic_write(tables / f"{name}.csv", fsync=False))
        csv_temp.write_text("")
        parquet_temp = None
        if write_parquet:
            parquet_temp = stack.enter_context(atomic_write(tables / f"{name}.parquet",
                                                            fsync=False))  # fmt: skip
        writer = None
        first = b""
        for index, part in enumerate(parts):
            with open(part, "rb") as file:
                header, body = file.readline(), file.read()
            if columns is None:
                first, columns = header, list(pd.read_csv(part, nrows=0).columns)
            keep = _plotted_columns(columns)
            frame = None
            if header == first:  # the same columns: the rows as written, not parsed again
                with open(csv_temp, "ab") as out:
                    out.write(header * (index == 0) + body)
            else:
                frame = pd.read_csv(part).reindex(columns=columns)
                frame.to_csv(csv_temp, index=False, header=index == 0, mode="a")
            if parquet_temp is not None:
                frame = pd.read_csv(part).reindex(columns=columns) if frame is None else frame
                if len(frame):
                    writer = _append_parquet(writer, frame, parquet_temp)
            wanted = frozenset(keep).__contains__
            plotted.append(pd.read_csv(part, usecols=wanted).reindex(columns=keep))
        if writer is not None:
            writer.close()
        elif parquet_temp is not None:  # no objects at all
            pd.DataFrame(columns=columns or []).to_parquet(parquet_temp, index=False)
    table = pd.concat(plotted, ignore_index=True) if plotted else pd.DataFrame()
    return table if len(table.columns) else None


def _plotted_columns(columns: Sequence[str]) -> list[str]:
    """The size column (in µm² or µm³ where the image has a pixel size, else pixels) and the
    first mean intensity: what the summary plots.

    >>> _plotted_columns(["label", "area", "area_um2", "intensity_mean_DAPI"])
    ['area_um2', 'intensity_mean_DAPI']
    """
    size = next((c for c in ("area_um2", "volume_um3", "area") if c in columns), None)
    intensity = next((c for c in columns if c.startswith("intensity_mean_")), None)
    return [c for c in (size, intensity) if c is not None]


def _append_parquet(writer: Any, frame: pd.DataFrame, path: Path) -> Any:
    """Append ``frame`` to a Parquet file, opening the writer with the first frame's schema
    (later frames are cast to it: an image without objects has the same columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if writer is None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = pq.ParquetWriter(str(path), table.schema)
    else:
        table = pa.Table.from_pandas(frame, schema=writer.schema, preserve_index=False, safe=False)
    writer.write_table(table)
    return writer


def _distributions(
    table: pd.DataFrame, name: str, folder: Path, colour: tuple[int, int, int]
) -> list[tuple[str, str]]:
    plots = []
    for column in table.columns:
        values = table[column].to_numpy(float)
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        counts, edges = np.histogram(values, bins=30)
        labels = [f"{edges[0]:.4g}", *[""] * 28, f"{edges[-1]:.4g}"]
        title = f"{name}: {column} ({values.size} objects)"
        file = folder / f"{name}_{column}.png"
        bar_chart(labels, counts.astype(float), title, file, colour)
        plots.append((title, f"summary/{file.name}"))
    return plots


def bar_chart(
    labels: Sequence[str],
    values: np.ndarray,
    title: str,
    path: Path,
    colour: tuple[int, int, int] = (80, 140, 255),
) -> Path:
    """A PNG bar chart (640×360) of ``values`` with a title and the first and last labels.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> out = bar_chart(["a", "b"], np.array([1.0, 3.0]), "t", Path(tempfile.mkdtemp()) / "c.png")
    >>> Image.open(out).size
    (640, 360)
    """
    from PIL import Image, ImageDraw

    width, height, left, bottom, top = 640, 360, 50, 40, 30
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((left, 8), title[:90], fill="black")
    values = np.asarray(values, float)
    peak = float(values.max()) if values.size and values.max() > 0 else 1.0
    draw.line([(left, top), (left, height - bottom), (width - 10, height - bottom)], fill="black")
    draw.text((4, top), f"{peak:.4g}", fill="black")
    draw.text((4, height - bottom - 10), "0", fill="black")
    n = max(len(values), 1)
    step = (width - 10 - left) / n
    for i, value in enumerate(values):
        x0 = left + i * step + 1
        y0 = height - bottom - (height - bottom - top) * value / peak
        draw.rectangle([x0, y0, max(x0, x0 + step - 2), height - bottom], fill=tuple(colour))
    shown = [(0, labels[0]), (len(labels) - 1, labels[-1])] if len(labels) > 1 else list(
        enumerate(labels))  # fmt: skip
    for i, label in shown:
        draw.text((left + i * step, height - bottom + 6), str(label)[:30], fill="black")
    with atomic_write(path, fsync=False) as temp:
        canvas.save(temp, format="PNG", compress_level=1)
    return path


def _html(
    settings: AnalysisSettings,
    records: Sequence[dict[str, Any]],
    counts: pd.DataFrame,
    failures: pd.DataFrame,
    plots: Sequence[tuple[str, str]],
) -> str:
    esc = html.escape
    names = [c.name for c in settings.classes]
    rows = "".join(
        "<tr><td><a href='images/{0}/'>{0}</a></td>{1}<td>{2}</td></tr>".format(
            esc(r["name"]),
            "".join(f"<td>{r['counts'].get(n, '')}</td>" for n in names),
            "ok" if r["status"] == "done" else "failed: " + esc(r["reason"]),
        )
        for r in records
    )
    overviews = "".join(
        f"<figure><a href='images/{esc(r['name'])}/overview.png'><img width=256 "
        f"src='images/{esc(r['name'])}/overview.png'></a><figcaption>{esc(r['name'])}"
        "</figcaption></figure>"
        for r in records
        if r["status"] == "done" and settings.outputs.overview
    )
    figures = "".join(f"<figure><img src='{esc(p)}'><figcaption>{esc(t)}</figcaption></figure>"
                      for t, p in plots)  # fmt: skip
    tables = " ".join(f"<a href='tables/{esc(n)}.csv'>{esc(n)}.csv</a>" for n in names)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>scopeml analysis</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px}} figure{{display:inline-block}}
</style></head><body>
<h1>Analysis of {len(records)} image(s)</h1>
<p>{len(counts)} done, {len(failures)} failed. Settings: <a href="settings.yaml">settings.yaml</a>.
Tables over all images: {tables}. <a href="summary/counts.csv">counts.csv</a>,
<a href="summary/failures.csv">failures.csv</a>.</p>
<table><tr><th>image</th>{"".join(f"<th>{esc(n)}</th>" for n in names)}<th>status</th></tr>
{rows}</table>
<h2>Plots</h2>{figures}
<h2>Overviews</h2>{overviews}
</body></html>
"""
