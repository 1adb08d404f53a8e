"""``--axes`` wherever the command line takes an image file, and ``axes:`` in analysis
settings: a plain multi-page TIFF time-lapse (tifffile axes ``QYX``) read as time points,
objects per frame instead of one object linked through the frames."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.io import open_image

N_FRAMES = 5


@pytest.fixture
def timelapse(tmp_path):
    """A square that moves by 3 px a frame: the squares of neighbouring frames overlap, so
    read as Z they are one 3-D object; read as T, one object per frame."""
    frames = np.zeros((N_FRAMES, 16, 24), np.uint16)
    for t in range(N_FRAMES):
        frames[t, 2 + t : 6 + t, 3 * t : 3 * t + 4] = 100 * (t + 1)
    image, labels = tmp_path / "tl.tif", tmp_path / "tl_labels.tif"
    tifffile.imwrite(image, frames)
    tifffile.imwrite(labels, (frames > 0).astype(np.uint8))
    return image, labels


def _rows(table):
    with open(table, newline="") as f:
        return list(csv.DictReader(f))


def test_objects_label_reads_a_page_sequence_as_frames_with_axes(tmp_path, timelapse, capsys):
    _, labels = timelapse
    as_z, as_t = tmp_path / "z.ome.zarr", tmp_path / "t.ome.zarr"
    assert main(["objects", "label", str(labels), "-o", str(as_z), "-q"]) == 0
    assert main(["objects", "label", str(labels), "-o", str(as_t), "-q", "--axes", "TYX"]) == 0
    out = capsys.readouterr()
    assert f"1 objects (3-D) → {as_z}" in out.out
    assert f"{N_FRAMES} objects ({N_FRAMES} time points × 2-D) → {as_t}" in out.out
    assert "pages of unknown kind read as Z" in out.err  # said for the run without --axes
    with open_image(as_t) as written:
        assert written.sizes["T"] == N_FRAMES and written.sizes["Z"] == 1


def test_objects_measure_applies_axes_to_the_tiff_files_given(tmp_path, timelapse, capsys):
    image, labels = timelapse
    store = tmp_path / "t.ome.zarr"
    assert main(["objects", "label", str(labels), "-o", str(store), "-q", "--axes", "tyx"]) == 0
    table = tmp_path / "m.csv"
    args = ["objects", "measure", str(store), "--image", str(image), "-o", str(table), "-q"]
    assert main([*args, "--axes", "TYX"]) == 0  # to the TIFF image; the store has its axes
    rows = _rows(table)
    assert [int(r["t"]) for r in rows] == list(range(N_FRAMES))
    means = [float(r["intensity_mean_C0"]) for r in rows]
    assert means == [100.0 * (t + 1) for t in range(N_FRAMES)]
    capsys.readouterr()
    args = ["objects", "measure", str(store), "-o", str(tmp_path / "n.csv"), "-q"]
    assert main([*args, "--axes", "TYX"]) == 2  # no file it could apply to
    assert "--axes TYX applies to TIFF files" in capsys.readouterr().err


def test_pixel_train_takes_axes_for_its_images(tmp_path, timelapse, capsys):
    image, _ = timelapse
    channels = tmp_path / "two_channels.tif"  # two pages that are channels, not planes
    tifffile.imwrite(channels, tifffile.imread(image)[:2])
    labels = tmp_path / "plane_labels.tif"
    sparse = np.zeros((16, 24), np.uint8)
    sparse[0, 0], sparse[3, 1] = 1, 2
    tifffile.imwrite(labels, sparse)
    out = tmp_path / "m.czseg"
    base = ["pixel", "train", str(channels), str(labels), "-o", str(out), "--n-estimators", "5"]
    assert main(base) == 2  # read as a Z stack of 2 planes: the 2-D labels do not fit
    assert "labels are Z×Y×X 1×16×24; the image is 2×16×24" in capsys.readouterr().err
    assert main([*base, "--axes", "CZYX"]) == 2
    assert (
        "axes 'CZYX' name 4 axes; the file has 3 (2 pages, Y=16, X=24)" in capsys.readouterr().err
    )
    assert main([*base, "--axes", "CYX", "--channels", "C1"]) == 0
    one = capsys.readouterr().out
    assert main([*base, "--axes", "CYX"]) == 0
    two = capsys.readouterr().out
    n_features = [int(text.split(" features")[0].rsplit(" ", 1)[1]) for text in (one, two)]
    assert n_features[1] == 2 * n_features[0]  # the features of both channels


SETTINGS = """version: 1
channels: [C0]
{axes}
classes:
  - name: blob
    segmenter: {{kind: threshold, channel: C0, method: fixed, value: 50}}
"""


@pytest.mark.parametrize(
    ("axes", "count"),
    [
        ("", 1),
        ("axes: TYX", N_FRAMES),
        ("axes: {'tl.*': tyx}", N_FRAMES),
        ("axes: {'x*': TYX}", 1),
        ("axes: {'*.tif': TYX, 'tl.tif': ZYX}", 1),  # the file's own name wins (the first did)
        ("axes: {'tl*': ZYX, '*.tif': TYX}", 1),  # else the first: specific, then a catch-all
        ("axes: {'*tmp*': TYX}", N_FRAMES),  # a pattern without a folder names the path too
    ],
)
def test_analyze_settings_name_the_axes_for_all_or_some_images(tmp_path, timelapse, axes, count):
    image, _ = timelapse
    settings = tmp_path / "a.yaml"
    settings.write_text(SETTINGS.format(axes=axes))
    out = tmp_path / "out"
    assert main(["analyze", str(settings), str(image), "-o", str(out), "-q"]) == 0
    (row,) = _rows(out / "summary" / "counts.csv")
    assert int(row["blob"]) == count


def test_analyze_settings_with_bad_axes_are_refused_with_exit_2(tmp_path, timelapse, capsys):
    image, _ = timelapse
    settings = tmp_path / "a.yaml"
    settings.write_text(SETTINGS.format(axes="axes: TQX"))
    assert main(["analyze", str(settings), str(image), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "unknown letter Q" in capsys.readouterr().err


def test_analyze_warns_of_an_axes_pattern_naming_no_image(tmp_path, timelapse, capsys):
    image, _ = timelapse
    settings = tmp_path / "a.yaml"
    settings.write_text(SETTINGS.format(axes="axes: {'tl.tif': TYX, 'x*': TYX}"))
    assert main(["analyze", str(settings), str(image), "-o", str(tmp_path / "o"), "-q"]) == 0
    assert "'x*' names none of the 1 images" in capsys.readouterr().err  # a typo, said


def test_info_takes_axes(tmp_path, timelapse, capsys):
    image, _ = timelapse
    assert main(["info", str(image), "--axes", "TYX"]) == 0
    out = capsys.readouterr()
    assert "shape: S=1 T=5 C=1 Z=1 Y=16 X=24" in out.out
    assert "unknown kind" not in out.err
