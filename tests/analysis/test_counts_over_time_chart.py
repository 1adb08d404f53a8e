"""``summary/CLASS_counts_over_time.png``: a batch with a time series gets a line per image of
its objects over time (seconds where the file says its time step), drawn from the numbers in
``counts_per_time_point.csv``; a batch of single time points gets none; many series stay
readable (ten named, the rest grey)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

import scopeml as sm
from scopeml.analysis.charts import LEGEND_SERIES, OTHERS, PALETTE, line_chart
from tests.analysis.test_counts_time_series import SETTINGS

STEP = 30.0  # seconds between time points


def _frame(squares: int) -> np.ndarray:
    plane = np.full((100, 120), 100, np.uint16)
    for i in range(squares):
        plane[10 + 30 * i : 25 + 30 * i, 20:40] = 3000
    return plane


def _movie(path: Path, squares: list[int], step: float | None) -> Path:
    metadata = {"axes": "TYX" if len(squares) > 1 else "YX"}
    if step:
        metadata.update(TimeIncrement=step, TimeIncrementUnit="s")
    frames = np.stack([_frame(n) for n in squares])
    tifffile.imwrite(path, frames if len(squares) > 1 else frames[0], ome=True, metadata=metadata)
    return path


def _texts(path: Path) -> dict[str, str]:
    with Image.open(path) as image:
        image.load()
        return dict(image.text)


def _analyze(tmp_path: Path, images: list[Path]) -> Path:
    settings = tmp_path / "nuclei.yaml"
    settings.write_text(SETTINGS)
    sm.analyze(settings, images, tmp_path / "res")
    return tmp_path / "res"


def test_a_time_series_gets_a_line_per_image_matching_the_table(tmp_path):
    images = [_movie(tmp_path / "rising.ome.tif", [1, 2, 3], STEP),
              _movie(tmp_path / "falling.ome.tif", [3, 2, 1], STEP),
              _movie(tmp_path / "still.ome.tif", [2], None)]  # fmt: skip
    out = _analyze(tmp_path, images)
    chart = out / "summary" / "nucleus_counts_over_time.png"
    texts = _texts(chart)
    assert texts["title"] == "nucleus: objects over time"
    assert texts["x_title"] == "time (s)" and texts["y_title"] == "nucleus objects"
    table = pd.read_csv(out / "summary" / "counts_per_time_point.csv")
    series = json.loads(texts["series"])
    assert series == table["image"].drop_duplicates().tolist() == ["rising", "falling", "still"]
    assert json.loads(texts["legend"]) == series
    points = dict(zip(series, json.loads(texts["points"]), strict=True))
    for image, rows in table.groupby("image"):
        times = rows["time_s"].fillna(0).tolist()  # the still: one point, at 0 s
        assert points[image] == [[t, n] for t, n in zip(times, rows["nucleus"], strict=True)]
    assert points["rising"] == [[0, 1], [STEP, 2], [2 * STEP, 3]]
    assert points["falling"] == [[0, 3], [STEP, 2], [2 * STEP, 1]]
    assert "summary/nucleus_counts_over_time.png" in (out / "index.html").read_text()


def test_without_a_time_step_the_x_axis_is_the_time_point(tmp_path):
    out = _analyze(tmp_path, [_movie(tmp_path / "movie.ome.tif", [2, 1, 3, 3], None)])
    texts = _texts(out / "summary" / "nucleus_counts_over_time.png")
    assert texts["x_title"] == "time point"
    assert json.loads(texts["points"]) == [[[0, 2], [1, 1], [2, 3], [3, 3]]]


def test_a_batch_of_single_time_points_has_no_chart_over_time(tmp_path):
    out = _analyze(tmp_path, [_movie(tmp_path / f"still{i}.ome.tif", [i], None) for i in (1, 2)])
    assert (out / "summary" / "nucleus_counts.png").is_file()  # the summary's other charts
    assert not list((out / "summary").glob("*over_time*"))
    assert "over_time" not in (out / "index.html").read_text()


def test_many_series_name_ten_and_draw_the_rest_grey(tmp_path):
    names = [f"experiment7_plate{p}_well{w:03d}_field2_stitched" for p in "AB" for w in range(30)]
    times = np.arange(12) * 600.0
    series = {name: (times, np.arange(12) + i) for i, name in enumerate(names)}
    path = line_chart(series, tmp_path / "lines.png", title="t", x_title="time (s)",
                      integer_x=False)  # fmt: skip
    texts = _texts(path)
    assert json.loads(texts["series"]) == names
    assert json.loads(texts["points"])[59] == [[t, n + 59] for n, t in enumerate(times)]
    legend = json.loads(texts["legend"])
    assert len(legend) == LEGEND_SERIES + 1 and legend[-1] == f"+ {60 - LEGEND_SERIES} more (grey)"
    assert legend[:3] == ["A_well000", "A_well001", "A_well002"]  # what all share: the heading
    assert texts["legend_title"] == "image (experiment7_plate…_field2_stitched)"
    with Image.open(path) as image:
        assert image.width == 640  # the legend wraps in columns, the chart does not widen
        colours = {c for _, c in image.convert("RGB").getcolors(1 << 16)}
    assert OTHERS in colours and set(PALETTE) <= colours


@pytest.mark.parametrize("series", [{}, {"one": ([5.0], [0.0])}])
def test_an_empty_or_single_point_chart_still_draws(tmp_path, series):
    texts = _texts(line_chart(series, tmp_path / "l.png", title="t"))
    assert json.loads(texts["series"]) == list(series)
