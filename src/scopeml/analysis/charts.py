"""The summary's PNG charts, drawn with Pillow (no plotting library): bars per image, a
histogram, boxes per image, and lines over time, each with a title, axis titles and labelled
ticks.

Every category (image) gets its label under its bar: names longer than :data:`LABEL_CHARS`
are shortened in the middle (the start and end, where batch names differ, stay) and written
upright when they do not fit across; the chart grows wider with the number of images (at
least :data:`MIN_STEP` pixels an image), so 400 images are still one label each. The title,
the axis titles, the full labels and the bars' x centres are stored in the PNG's text chunks
(``title``, ``x_title``, ``y_title``, ``labels``, ``bars``; a line chart's ``series``,
``points`` and ``legend``), so what a chart shows can be checked without reading its pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.palette import PALETTE as CLASS_COLOURS
from scopeml.palette import rgb

__all__ = [
    "bar_chart",
    "box_chart",
    "category_labels",
    "font",
    "histogram",
    "line_chart",
    "nice_ticks",
    "shorten",
    "text",
]

#: Longest category label drawn (longer ones are shortened in the middle).
LABEL_CHARS = 28
#: Narrowest room per category in pixels (a label's line height, upright).
MIN_STEP = 16
#: Plot area height in pixels.
PLOT_HEIGHT = 260
#: Narrowest chart.
MIN_WIDTH = 640
#: Most series a line chart draws in colours of their own and names in its legend; the
#: others are drawn grey, counted in one legend entry, so a plate of wells stays readable.
LEGEND_SERIES = 10
#: The named series' colours (Tableau 10, its grey swapped for navy: grey is the others').
PALETTE = tuple((0, 0, 128) if c == "#7f7f7f" else rgb(c) for c in CLASS_COLOURS)
#: The colour of the series past :data:`LEGEND_SERIES`.
OTHERS = (190, 190, 190)

_ASCII = {"µ": "u", "²": "^2", "³": "^3", "…": "..", "–": "-", "—": "-", "×": "x"}


@cache
def font(size: int = 12) -> Any:
    """A TrueType font: DejaVu Sans where installed (it has µ, ², ³), else Pillow's own."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a bitmap font without sizes
        return ImageFont.load_default()


@cache
def _has_glyph(face: Any, char: str) -> bool:
    missing = face.getmask("\U0010ffff")
    mask = face.getmask(char)
    return (mask.size, bytes(mask)) != (missing.size, bytes(missing))


def text(value: str, face: Any = None) -> str:
    """``value`` with the characters ``face`` lacks written in ASCII (``µm²`` → ``um^2``).

    >>> text("area (µm²)")  in ("area (µm²)", "area (um^2)")
    True
    """
    face = face or font()
    return "".join(c if c not in _ASCII or _has_glyph(face, c) else _ASCII[c] for c in value)


def shorten(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` cut to ``limit`` characters in the middle, keeping its start and end.

    >>> shorten("plate01_wellB07_field003_DAPI-GFP", 20)
    'plate01_we…_DAPI-GFP'
    """
    if len(label) <= limit:
        return label
    head = limit // 2
    tail = limit - 1 - head
    return label[:head] + "…" + (label[-tail:] if tail else "")


def category_labels(names: Sequence[str]) -> tuple[list[str], str]:
    """The labels drawn under the bars and what they share: where a name is longer than
    :data:`LABEL_CHARS`, the start and end that every name shares are left out (and returned,
    as ``start…end``, for the axis title), the rest shortened in the middle.

    >>> category_labels(["plate1_wellA01_f3_DAPI-GFP_stitched", "plate1_wellB12_f3_DAPI-GFP_"
    ...                  "stitched"])
    (['A01', 'B12'], 'plate1_well…_f3_DAPI-GFP_stitched')
    >>> category_labels(["a", "b"])
    (['a', 'b'], '')
    """
    names = [str(n) for n in names]
    if len(names) < 2 or max(map(len, names)) <= LABEL_CHARS:
        return [shorten(n) for n in names], ""
    shortest = min(map(len, names))
    start = _shared_start(names)
    end = _shared_start([n[::-1] for n in names])
    start = min(start, shortest - 1)
    end = max(min(end, shortest - start - 1), 0)
    shared = names[0][:start] + "…" + (names[0][len(names[0]) - end :] if end else "")
    if not start and not end:
        return [shorten(n) for n in names], ""
    return [shorten(n[start : len(n) - end]) for n in names], shared


def _shared_start(names: Sequence[str]) -> int:
    """How many leading characters all ``names`` share."""
    first, last = min(names), max(names)
    return next(
        (i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first)
    )


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values from at most ``low`` to at least ``high`` (steps of 1, 2, 2.5 or 5
    ×10ⁿ; ``integer``: whole steps, no 2.5, for counts).

    >>> nice_ticks(0, 87)
    [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    >>> nice_ticks(0, 11, integer=True)
    [0.0, 5.0, 10.0, 15.0]
    >>> nice_ticks(3.2, 4.1)
    [3.2, 3.4, 3.6, 3.8, 4.0, 4.2]
    """
    low, high = float(low), float(high)
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * power for m in steps if m * power >= raw)
    step = max(step, 1.0) if integer else step
    first = math.floor(low / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < high - step * 1e-9 or len(ticks) < 2:
        ticks.append(first + len(ticks) * step)
    return [round(t, 12) + 0.0 for t in ticks]


def _number(value: float) -> str:
    """A tick label: ``1200``, ``0.25``, ``1.5e+06``."""
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.3g}"


class _Chart:
    """The frame of one chart: title, y axis with ticks and title, x axis title, and the
    category labels; ``x(i)`` and ``y(value)`` map to pixels."""

    def __init__(
        self,
        title: str,
        x_title: str,
        y_title: str,
        ticks: list[float],
        labels: Sequence[str] | None = None,
    ) -> None:
        from PIL import Image, ImageDraw

        self.face, self.small = font(12), font(11)
        self.low, self.high = ticks[0], ticks[-1]
        self.ticks = ticks
        self.labels = list(labels) if labels is not None else None
        shown, shared = category_labels(self.labels or [])
        self.shown = [text(n, self.small) for n in shown]
        x_title = f"{x_title} ({shared})" if shared else x_title
        measure = ImageDraw.Draw(Image.new("L", (1, 1)))
        tick_width = max(measure.textlength(_number(t), font=self.small) for t in ticks)
        self.left = int(tick_width) + 34  # tick labels, then the upright y title
        n = len(self.shown)
        room = max(MIN_WIDTH - self.left - 16, 1)
        self.step = max(room / n, MIN_STEP) if n else room
        widths = [measure.textlength(s, font=self.small) for s in self.shown] or [0.0]
        self.upright = max(widths) > self.step - 4
        label_band = int(max(widths)) + 8 if self.upright else 18
        self.top, self.plot_width = 34, int(self.step * n) if n else room
        self.bottom = self.top + PLOT_HEIGHT
        width = max(MIN_WIDTH, self.left + self.plot_width + 16)
        height = self.bottom + label_band + 24
        self.canvas = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.canvas)
        self.draw.text((self.left, 8), text(title, self.face), fill="black", font=self.face)
        self._axes(x_title, y_title, label_band)
        self.texts = {"title": title, "x_title": x_title, "y_title": y_title}
        self.data: dict[str, Any] = {}  # JSON text chunks beyond the labels and bars

    def x(self, index: float) -> float:
        return self.left + (index + 0.5) * self.step

    def y(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        clipped = min(max(value, self.low), self.high)
        return self.bottom - (clipped - self.low) / span * PLOT_HEIGHT

    def numeric_x(
        self, ticks: Sequence[float], left: float, right: float
    ) -> Callable[[float], float]:
        """A numeric x axis from ``left`` to ``right`` (a histogram's bins, a time axis): the
        ``ticks`` within it labelled under the axis. Return the value → pixel map."""
        span = (right - left) or 1.0

        def at(value: float) -> float:
            return self.left + (value - left) / span * self.plot_width

        for tick in ticks:
            if left - 1e-9 * span <= tick <= right + 1e-9 * span:
                x = at(tick)
                self.draw.line([(x, self.bottom), (x, self.bottom + 4)], fill="black")
                label = _number(tick)
                w = self.draw.textlength(label, font=self.small)
                self.draw.text((x - w / 2, self.bottom + 5), label, fill="black", font=self.small)
        return at

    def extend(self, height: int) -> int:
        """Add ``height`` white pixels under the chart (a legend's room, known only once the
        frame has its width); return where they start."""
        from PIL import Image, ImageDraw

        start = self.canvas.height
        canvas = Image.new("RGB", (self.canvas.width, start + height), "white")
        canvas.paste(self.canvas, (0, 0))
        self.canvas, self.draw = canvas, ImageDraw.Draw(canvas)
        return start

    def _axes(self, x_title: str, y_title: str, label_band: int) -> None:
        draw, right = self.draw, self.left + self.plot_width
        for tick in self.ticks:
            y = self.y(tick)
            draw.line([(self.left, y), (right, y)], fill=(225, 225, 225))
            draw.line([(self.left - 4, y), (self.left, y)], fill="black")
            label = _number(tick)
            w = draw.textlength(label, font=self.small)
            draw.text((self.left - 6 - w, y - 7), label, fill="black", font=self.small)
        draw.line([(self.left, self.top), (self.left, self.bottom), (right, self.bottom)],
                  fill="black")  # fmt: skip
        self._upright_text(text(y_title, self.face), 11, (self.top + self.bottom) / 2, centre=True)
        x_text = text(x_title, self.face)
        w = draw.textlength(x_text, font=self.face)
        draw.text((self.left + (self.plot_width - w) / 2, self.bottom + label_band + 4), x_text,
                  fill="black", font=self.face)  # fmt: skip
        for i, label in enumerate(self.shown):
            if self.upright:
                self._upright_text(label, self.x(i), self.bottom + 4, font=self.small)
            else:
                w = draw.textlength(label, font=self.small)
                draw.text((self.x(i) - w / 2, self.bottom + 3), label, fill="black",
                          font=self.small)  # fmt: skip

    def _upright_text(
        self, value: str, x: float, y: float, *, centre: bool = False, font: Any = None
    ) -> None:
        """``value`` rotated to read upwards, its line centred on ``x``, its end at ``y`` (or
        centred on ``y``)."""
        from PIL import Image, ImageDraw

        face = font or self.face
        box = self.draw.textbbox((0, 0), value, font=face)
        line = self.draw.textbbox((0, 0), "Hgj_|", font=face)  # the line's height, every label
        mask = Image.new("L", (int(box[2]) + 2, int(max(box[3], line[3])) + 2), 0)
        ImageDraw.Draw(mask).text((0, 0), value, fill=255, font=face)
        mask = mask.crop((0, int(line[1]), mask.width, int(line[3]) + 1)).rotate(90, expand=True)
        top = y - mask.size[1] / 2 if centre else y
        x -= mask.size[0] / 2
        self.canvas.paste((0, 0, 0), (int(x), int(top)), mask)

    def save(self, path: Path) -> Path:
        from PIL.PngImagePlugin import PngInfo

        from scopeml.io.replace import atomic_write

        info = PngInfo()
        for key, value in self.texts.items():
            info.add_itxt(key, value)  # UTF-8: µm²
        data = dict(self.data)
        if self.labels is not None:
            data["labels"] = [str(n) for n in self.labels]
            data["bars"] = [round(self.x(i), 1) for i in range(len(self.labels))]
        for key, value in data.items():
            dumped = json.dumps(value)  # ASCII: Latin-1 tEXt holds it
            info.add_text(key, dumped, zip=len(dumped) > 4096)  # a movie's points: zTXt
        with atomic_write(path, fsync=False) as temp:
            self.canvas.save(temp, format="PNG", pnginfo=info, compress_level=1)
        return path


def bar_chart(
    labels: Sequence[str],
    values: np.ndarray,
    path: Path,
    *,
    title: str,
    x_title: str = "image",
    y_title: str = "objects",
    colour: tuple[int, int, int] = (80, 140, 255),
    integer: bool = True,
) -> Path:
    """A PNG with one bar per label (``values``, NaN drawn as no bar), each label under its bar;
    ``integer``: whole-number ticks (counts).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> out = bar_chart(["a", "b"], np.array([1.0, 3.0]), Path(tempfile.mkdtemp()) / "c.png",
    ...                 title="t")
    >>> Image.open(out).width, json.loads(Image.open(out).text["labels"])
    (640, ['a', 'b'])
    """
    values = np.asarray(values, float)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 1.0
    chart = _Chart(
        title,
        x_title,
        y_title,
        nice_ticks(min(0.0, float(finite.min(initial=0))), top, integer=integer),
        labels,
    )
    width = min(chart.step * 0.7, 60)
    for i, value in enumerate(values):
        if np.isfinite(value):
            x, base = chart.x(i), chart.y(0) - 1
            top = min(chart.y(value), base)
            chart.draw.rectangle([x - width / 2, top, x + width / 2, base], fill=tuple(colour))
    return chart.save(path)


def histogram(
    counts: np.ndarray,
    edges: np.ndarray,
    path: Path,
    *,
    title: str,
    x_title: str,
    y_title: str = "objects",
    colour: tuple[int, int, int] = (80, 140, 255),
) -> Path:
    """A PNG histogram: ``counts`` of the bins between ``edges`` (``np.histogram``'s), on a
    numeric x axis with round ticks.

    Examples
    --------
    >>> import tempfile
    >>> counts, edges = np.histogram([1.0, 2, 2, 3], bins=3)
    >>> out = histogram(counts, edges, Path(tempfile.mkdtemp()) / "h.png", title="t", x_title="x")
    """
    counts = np.asarray(counts, float)
    chart = _Chart(
        title, x_title, y_title, nice_ticks(0, float(counts.max(initial=0)) or 1, integer=True)
    )
    left, right = float(edges[0]), float(edges[-1])
    at = chart.numeric_x(nice_ticks(left, right), left, right)
    for count, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
        if count > 0:
            base = chart.y(0) - 1
            top = min(chart.y(count), base)
            chart.draw.rectangle([at(a), top, max(at(a), at(b) - 1), base], fill=tuple(colour))
    return chart.save(path)


def box_chart(
    labels: Sequence[str],
    stats: np.ndarray,
    path: Path,
    *,
    title: str,
    x_title: str = "image",
    y_title: str,
    colour: tuple[int, int, int] = (80, 140, 255),
) -> Path:
    """A PNG with one box per label: ``stats`` is ``len(labels)×5`` — whisker low, lower
    quartile, median, upper quartile, whisker high — a row of NaN draws no box (no objects).

    Examples
    --------
    >>> import tempfile
    >>> stats = np.percentile([[1.0, 2, 3, 4], [2, 3, 5, 9]], [5, 25, 50, 75, 95], axis=1).T
    >>> out = box_chart(["a", "b"], stats, Path(tempfile.mkdtemp()) / "b.png", title="t",
    ...                 y_title="y")
    """
    stats = np.asarray(stats, float).reshape(len(labels), 5)
    finite = stats[np.isfinite(stats).all(axis=1)]
    low = float(finite[:, 0].min()) if finite.size else 0.0
    high = float(finite[:, 4].max()) if finite.size else 1.0
    chart = _Chart(title, x_title, y_title, nice_ticks(low, high), labels)
    half = min(chart.step * 0.35, 30)
    for i, row in enumerate(stats):
        if not np.isfinite(row).all():
            continue
        x = chart.x(i)
        lo, q1, median, q3, hi = (chart.y(v) for v in row)
        chart.draw.line([(x, lo), (x, q1)], fill="black")
        chart.draw.line([(x, q3), (x, hi)], fill="black")
        for end in (lo, hi):
            chart.draw.line([(x - half / 2, end), (x + half / 2, end)], fill="black")
        chart.draw.rectangle([x - half, q3, x + half, q1], fill=tuple(colour), outline="black")
        chart.draw.line([(x - half, median), (x + half, median)], fill="black", width=2)
    return chart.save(path)


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    *,
    title: str,
    x_title: str = "time point",
    y_title: str = "objects",
    legend_title: str = "image",
    integer_x: bool = True,
) -> Path:
    """A PNG with one line per series (``name: (x, y)``: an image's objects per time point),
    on round ticks from 0 objects; ``integer_x``: whole-number x ticks (time point indices).

    The first :data:`LEGEND_SERIES` series get colours of their own and are named in a legend
    under the plot (shortened as the bars' labels are, what all names share in its heading);
    the others are drawn grey under them and counted in one entry, so a plate stays readable.

    Examples
    --------
    >>> import tempfile
    >>> out = line_chart({"a": ([0, 1, 2], [3, 4, 6]), "b": ([0, 1, 2], [1, 1, 2])},
    ...                  Path(tempfile.mkdtemp()) / "l.png", title="t")
    >>> from PIL import Image
    >>> json.loads(Image.open(out).text["series"]), json.loads(Image.open(out).text["legend"])
    (['a', 'b'], ['a', 'b'])
    """
    names = [str(name) for name in series]
    lines = []
    for x, y in series.values():
        x, y = np.asarray(x, float), np.asarray(y, float)
        keep = np.isfinite(x) & np.isfinite(y)
        order = np.argsort(x[keep], kind="stable")
        lines.append((x[keep][order], y[keep][order]))
    xs = np.concatenate([x for x, _ in lines] or [np.zeros(0)])
    ys = np.concatenate([y for _, y in lines] or [np.zeros(0)])
    low, high = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    x_ticks = nice_ticks(low, high, integer=integer_x)
    y_ticks = nice_ticks(0, float(ys.max(initial=0)) or 1, integer=True)
    chart = _Chart(title, x_title, y_title, y_ticks)
    at = chart.numeric_x(x_ticks, x_ticks[0], x_ticks[-1])
    for i in reversed(range(len(lines))):  # the named series on top of the grey ones
        x, y = lines[i]
        named = i < LEGEND_SERIES
        points = [(at(a), chart.y(b)) for a, b in zip(x, y, strict=True)]
        colour = PALETTE[i % len(PALETTE)] if named else OTHERS
        if len(points) > 1:
            chart.draw.line(points, fill=colour, width=2 if named else 1, joint="curve")
        if len(points) == 1 or (named and len(points) <= 40):  # few points: each seen
            for px, py in points:
                chart.draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    _legend(chart, names, legend_title)
    chart.data["series"] = names
    chart.data["points"] = [[[float(a), float(b)] for a, b in zip(x, y, strict=True)]
                            for x, y in lines]  # fmt: skip
    return chart.save(path)


def _legend(chart: _Chart, names: Sequence[str], heading: str) -> None:
    """The line chart's legend under its x axis title: a heading with what the names share,
    then a line of each named series' colour and its shortened name, in columns."""
    shown, shared = category_labels(names)
    entries = [text(n, chart.small) for n in shown[:LEGEND_SERIES]]
    if len(names) > LEGEND_SERIES:
        entries.append(f"+ {len(names) - LEGEND_SERIES} more (grey)")
    heading = shorten(f"{heading} ({shared})" if shared else heading, 90)
    column = max((chart.draw.textlength(e, font=chart.small) for e in entries), default=0) + 34
    room = chart.canvas.width - chart.left - 16
    columns = max(int(room // column), 1)
    rows = -(-len(entries) // columns)
    top = chart.extend(18 + 16 * rows + 6) - 4
    chart.draw.text((chart.left, top), text(heading, chart.small), fill="black", font=chart.small)
    for i, entry in enumerate(entries):
        x, y = chart.left + (i % columns) * column, top + 18 + 16 * (i // columns)
        colour = PALETTE[i % len(PALETTE)] if i < LEGEND_SERIES else OTHERS
        chart.draw.line([(x, y + 7), (x + 18, y + 7)], fill=colour, width=3)
        chart.draw.text((x + 24, y), entry, fill="black", font=chart.small)
    chart.texts["legend_title"] = heading
    chart.data["legend"] = entries
