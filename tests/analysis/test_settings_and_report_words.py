"""``analyze`` after a new user's trial: the objects-over-time chart names the time series of a
mixed batch; ``--axes`` is checked whole before a results folder is made; the example names
``dark``; ``channels: C0`` is one channel; the index says the densities in the units of
``counts.csv`` (mm³ for Z stacks)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from scopeml.analysis.charts import LEGEND_SERIES
from scopeml.analysis.example import EXAMPLE_SETTINGS
from scopeml.analysis.report import _time_plot
from scopeml.analysis.runner import run_analysis
from scopeml.analysis.settings import (
    InvalidSettingsError,
    ThresholdSegmenter,
    parse_settings,
)
from scopeml.cli import main
from tests.analysis.test_counts_time_series import SETTINGS

# --- 3. the objects-over-time chart of a mixed batch ---------------------------------------


def test_the_chart_names_the_time_series_before_single_time_points(tmp_path):
    stills = [{"image": f"still{i:02d}", "scene": 0, "t": 0, "nucleus": i} for i in range(12)]
    movies = [{"image": name, "scene": 0, "t": t, "nucleus": n + t}
              for n, name in ((3, "movie_a"), (7, "movie_b")) for t in range(5)]  # fmt: skip
    over_time = pd.DataFrame(stills + movies)  # the stills sort first, as a batch may list them
    [(_, file)] = _time_plot("nucleus", over_time, tmp_path)
    with Image.open(tmp_path / Path(file).name) as chart:
        chart.load()
        texts = dict(chart.text)
    series, legend = json.loads(texts["series"]), json.loads(texts["legend"])
    assert series[:2] == ["movie_a", "movie_b"] and len(series) == 14
    assert json.loads(texts["points"])[1] == [[t, 7 + t] for t in range(5)]
    named = legend[:LEGEND_SERIES]
    assert "movie_a" in named[0] and "movie_b" in named[1]  # coloured and named, not grey
    assert legend[-1] == f"+ {14 - LEGEND_SERIES} more (grey)"


# --- 4. --axes checked before any folder is made -----------------------------------------


@pytest.mark.parametrize(
    ("axes", "said"),
    [("XY", "Y comes just before X"), ("QYX", "unknown letter Q"), ("YYX", "Y given twice"),
     ("TZ", "must include Y and X")],
)  # fmt: skip
def test_bad_axes_stop_the_run_before_a_results_folder(tmp_path, capsys, axes, said):
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, np.zeros((16, 16), np.uint16))
    out = tmp_path / "res"
    assert main(["analyze", str(settings), str(image), "-o", str(out), "--axes", axes, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --axes: ") and said in err
    assert not out.exists()


def test_the_settings_axes_are_checked_as_the_option_is():
    with pytest.raises(InvalidSettingsError, match="Y comes just before X"):
        parse_settings(SETTINGS + "axes: XY\n")
    assert parse_settings(SETTINGS + "axes: {'*_t.tif': tyx}\n").axes == {"*_t.tif": "TYX"}


# --- 6. the example names dark ----------------------------------------------------------


def test_the_example_names_every_threshold_key_and_dark_validates_uncommented():
    for key in ThresholdSegmenter.model_fields:
        assert re.search(rf"\b{key}:", EXAMPLE_SETTINGS), key
    line = next(line for line in EXAMPLE_SETTINGS.splitlines() if "dark: true" in line)
    assert "darker than the background" in line and line.strip().startswith("#")
    text = EXAMPLE_SETTINGS.replace(line, line.replace("# dark", "dark"), 1)
    assert parse_settings(text).classes[0].segmenter.dark is True


# --- 7. one channel name for a list -----------------------------------------------------------


def test_one_channel_name_is_a_list_of_one():
    text = SETTINGS.replace("channels: [C0]", "channels: C0")
    assert text != SETTINGS
    settings = parse_settings(text)
    assert settings.channels == ["C0"] and settings == parse_settings(SETTINGS)
    model = text.replace("{kind: threshold, channel: C0, method: otsu, sigma: 0.5}",
                         "{kind: instances, model: nuclei}")  # fmt: skip
    assert parse_settings(model).classes[0].segmenter.channels == ["C0"]  # the settings' one
    measured = text + "    measurements: {intensity: C0}\n"
    assert parse_settings(measured).classes[0].measurements.intensity == ["C0"]


# --- 9. the index's densities in the table's units ---------------------------------------


def test_the_index_says_densities_per_mm3_for_z_stacks(tmp_path):
    stack = np.zeros((6, 40, 40), np.float32)  # 3 or 4 pages would read as RGB(A)
    stack[1:4, 10:20, 10:20] = 5.0
    sized = {"PhysicalSizeZ": 2.0, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    tifffile.imwrite(tmp_path / "b.tif", stack, ome=True, metadata={"axes": "ZYX", **sized})
    blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0", "method": "fixed",
                                          "value": 1.0}}  # fmt: skip
    settings = parse_settings({"version": 1, "channels": ["C0"], "classes": [blob]})
    run_analysis(settings, [tmp_path / "b.tif"], tmp_path / "out")
    counts = pd.read_csv(tmp_path / "out" / "summary" / "counts.csv")
    assert "blob_per_mm3" in counts and "blob_per_mm2" not in counts
    index = (tmp_path / "out" / "index.html").read_text()
    assert "objects per mm³" in index and "mm²" not in index
