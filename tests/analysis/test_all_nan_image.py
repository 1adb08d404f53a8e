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
