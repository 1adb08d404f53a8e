"""``scopeml segment`` ends with one line on what it wrote: the outputs, the object count the
instances record, the table, the OME-TIFF copies, and the time taken."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.synthetic import synthetic_nuclei


def test_the_last_line_names_the_outputs_the_object_count_and_the_time(tmp_path, capsys):
    image, instances = synthetic_nuclei((128, 128), density=0.003, seed=3)
    truth = (instances > 0).astype(np.uint8) + 1
    scribbles = np.zeros_like(truth)
    scribbles[::5, ::5] = truth[::5, ::5]
    tifffile.imwrite(tmp_path / "img.tif", image[0])
    model = sm.train_pixel_classifier(
        image, scribbles, classes=["background", "nucleus"], n_estimators=10, workers=1
    ).save(tmp_path / "m.czseg")
    out, table = tmp_path / "out.ome.zarr", tmp_path / "t.csv"
    args = ["segment", str(tmp_path / "img.tif"), "-m", str(model), "-o", str(out), "-q"]
    assert main([*args, "--outputs", "labels,instances", "--measure", str(table)]) == 0
    lines = capsys.readouterr().out.splitlines()
    objects = sm.open_image(out / "instances").read()
    count = len(np.unique(objects)) - 1
    assert count > 5 and count == len(pd.read_csv(table))
    expected = (
        rf"labels, instances \({count} objects\) → {re.escape(str(out))}; "
        rf"table → {re.escape(str(table))}; \d+\.\d s"
    )
    assert len(lines) == 1 and re.fullmatch(expected, lines[0]), lines
    # without instances: the outputs asked for, no count, no table; the OME-TIFF copies
    plain = tmp_path / "plain.ome.zarr"
    more = ["-o", str(plain), "--outputs", "labels,confidence", "--ome-tiff"]
    assert main([*args[:-3], *more]) == 0  # with progress bars: the line is still the last
    line = capsys.readouterr().out.strip()
    tiffs = ", ".join(str(tmp_path / f"plain.{name}.ome.tiff") for name in ("labels", "confidence"))
    assert re.fullmatch(
        rf"labels, confidence → {re.escape(str(plain))}; OME-TIFF → {re.escape(tiffs)}; \d+\.\d s",
        line,
    ), line


def test_a_time_series_count_says_it_sums_the_time_points(tmp_path, capsys):
    """The count is over all time points (each nucleus of each frame is one object): it says so."""
    frames = [synthetic_nuclei((96, 96), density=0.003, seed=s)[0][0] for s in (4, 5)]
    tifffile.imwrite(tmp_path / "movie.tif", np.stack(frames))
    out = tmp_path / "out.ome.zarr"
    args = ["segment", str(tmp_path / "movie.tif"), "--axes", "TYX", "-m", "nuclei"]
    assert main([*args, "-o", str(out), "-q", "--outputs", "labels,instances"]) == 0
    objects = sm.open_image(out / "instances").read()
    count = sum(len(np.unique(objects[0, t])) - 1 for t in range(2))
    line = capsys.readouterr().out.strip()
    assert count > 5 and f"instances ({count} objects in 2 time points) →" in line, line
