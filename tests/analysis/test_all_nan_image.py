"""An image whose every pixel is NaN or infinite holds no data: it is listed as failed, saying
so, rather than finished with 0 objects and exit 0, a count that the summary would take for a
real zero (new-user trial). An image of zeros, or with some finite pixels, is analysed."""

from __future__ import annotations

import numpy as np
import tifffile

from scopeml.analysis.runner import run_analysis
from scopeml.analysis.settings import parse_settings
from scopeml.cli import main

BLOB = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0", "sigma": 1.0}}
SETTINGS = {"version": 1, "channels": ["C0"], "classes": [BLOB]}


def float_images(folder):
    folder.mkdir()
    blob = np.zeros((64, 64), np.float32)
    blob[20:30, 20:30] = 5.0
    partly = blob.copy()
    partly[40:] = np.nan  # some pixels missing: the others are analysed
    nan = np.full((64, 64), np.nan, np.float32)
    nan[0, 0] = np.inf
    for name, pixels in {"blob": blob, "partly": partly, "nan": nan,
                         "zeros": np.zeros((64, 64), np.float32)}.items():  # fmt: skip
        tifffile.imwrite(folder / f"{name}.tif", pixels)
    return folder


def test_an_image_without_a_finite_pixel_fails_saying_so(tmp_path):
    folder = float_images(tmp_path / "in")
    result = run_analysis(parse_settings(SETTINGS), [folder], tmp_path / "res")
    assert result.counts == {"blob": {"blob": 1}, "partly": {"blob": 1}, "zeros": {"blob": 0}}
    (failure,) = result.failures
    assert failure["name"] == "nan"
    assert failure["reason"] == (
        "every pixel of channel C0 is NaN or infinite: nothing to "
        "analyse (listed as failed, not counted as 0 objects)"
    )


def test_the_command_line_exits_1_naming_the_image(tmp_path, capsys):
    import yaml

    folder = float_images(tmp_path / "in")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SETTINGS))
    code = main(["analyze", str(tmp_path / "s.yaml"), str(folder / "nan.tif"), "-o",
                 str(tmp_path / "res"), "-q"])  # fmt: skip
    assert code == 1
    assert "nan.tif: every pixel of channel C0 is NaN or infinite" in capsys.readouterr().err


def test_it_fails_before_a_model_runs_on_it(tmp_path, capsys):
    """Checked before any class runs: the model does not first warn of 4096 NaN pixels, nor
    ``auto`` of finding nothing to measure; the failure is the one line about the image."""
    import yaml

    folder = float_images(tmp_path / "in")
    nuclei = {"name": "nucleus", "segmenter": {"kind": "instances", "model": "nuclei",
                                               "class": "nucleus", "channels": ["C0"]}}  # fmt: skip
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SETTINGS, "classes": [nuclei]}))
    code = main(["analyze", str(tmp_path / "s.yaml"), str(folder / "nan.tif"), "-o",
                 str(tmp_path / "res"), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "nan.tif: every pixel of channel C0 is NaN or infinite" in err
    assert "warning" not in err.lower(), err


def test_a_finite_pixel_in_the_last_tile_is_found(tmp_path):
    """The check reads tile by tile (rows and columns) to the last tile, not just the first."""
    pixels = np.full((40, 40), np.nan, np.float32)
    pixels[35:, 35:] = 5.0  # only the last of 3 × 3 tiles of 16 holds data
    tifffile.imwrite(tmp_path / "corner.tif", pixels)
    settings = parse_settings({**SETTINGS, "tile_size": 16})
    result = run_analysis(settings, [tmp_path / "corner.tif"], tmp_path / "res")
    assert result.counts == {"corner": {"blob": 1}} and not result.failures


def test_a_z_stack_is_checked_plane_by_plane_to_the_last(tmp_path):
    """In a Z stack the window is one plane's (memory bounded by the tile, not the stack):
    a finite pixel in the last plane's last tile is found; a stack without one fails."""
    stack = np.full((5, 40, 40), np.nan, np.float32)  # 3 or 4 pages would read as RGB(A)
    tifffile.imwrite(tmp_path / "empty.tif", stack)
    stack[4, 30:36, 30:36] = 5.0
    tifffile.imwrite(tmp_path / "deep.tif", stack)
    settings = parse_settings({**SETTINGS, "tile_size": 16})
    result = run_analysis(settings, [tmp_path / "deep.tif", tmp_path / "empty.tif"],
                          tmp_path / "res")  # fmt: skip
    assert result.counts == {"deep": {"blob": 1}}
    assert [f["name"] for f in result.failures] == ["empty"]
