"""Settings ``pixel_size`` / ``analyze --pixel-size``: µm for images whose file records none.

A plain TIFF has no calibration: with ``pixel_size`` its objects get ``area_um2`` and the
summary objects per mm²; a calibrated OME-TIFF keeps its own size (warned of where they
differ); a resume with another size is refused; a batch mixing both keeps every image's sizes
in pixels in the summary.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image as PILImage

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter, run_analysis
from scopeml.analysis.settings import InvalidSettingsError, dump_settings, parse_settings
from scopeml.cli import main
from scopeml.errors import InvalidRequestError

#: Two blobs (36 and 48 px) on a 64 × 64 plane.
AREAS = [36, 48]


def _plane() -> np.ndarray:
    pixels = np.zeros((64, 64), np.uint8)
    pixels[4:10, 4:10] = pixels[20:28, 3:9] = 200
    return pixels


def _settings(**more: object) -> AnalysisSettings:
    blob = ClassSettings(name="blob", segmenter=ThresholdSegmenter(channel="C0", method="otsu"))
    return AnalysisSettings(channels=["C0"], classes=[blob], **more)


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    tifffile.imwrite(tmp_path / "plain.tif", _plane())  # no calibration
    return tmp_path / "plain.tif"


@pytest.fixture
def calibrated(tmp_path: Path) -> Path:
    path = tmp_path / "calibrated.ome.tif"
    calibration = {"axes": "YX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2}
    tifffile.imwrite(path, _plane(), ome=True, metadata=calibration)
    return path


def _record(results: Path, name: str) -> dict:
    return json.loads((results / "images" / name / "record.json").read_text())


def test_an_uncalibrated_tiff_is_measured_in_um(plain: Path, tmp_path: Path) -> None:
    results = tmp_path / "res"
    run_analysis(_settings(pixel_size=0.5), [plain], results)
    table = pd.read_csv(results / "tables" / "blob.csv").sort_values("area")
    assert table["area"].tolist() == AREAS
    np.testing.assert_allclose(table["area_um2"], np.array(AREAS) * 0.25)
    counts = pd.read_csv(results / "summary" / "counts.csv")
    area_mm2 = 64 * 64 * 0.25 / 1e6
    np.testing.assert_allclose(counts["area_mm2"], [area_mm2])
    np.testing.assert_allclose(counts["blob_per_mm2"], [2 / area_mm2])
    assert "megapixels" not in counts  # no image without a pixel size
    record = _record(results, "plain")
    assert record["pixel_sizes"] == {"Y": 0.5, "X": 0.5}  # Z only in a Z stack
    assert record["pixel_size_source"] == {"Y": "settings", "X": "settings"}
    overview = PILImage.open(results / "images" / "plain" / "overview.png")
    assert overview.text["scale_bar"].endswith("µm = 10.0 px")  # 5 µm of 0.5 µm pixels
    assert "pixel_size: 0.5" in (results / "settings.yaml").read_text()
    index = (results / "index.html").read_text()  # the tables' µm rest on it: said there too
    assert "<td>0.5 µm (from the settings: Y, X)</td>" in index


def test_a_file_keeps_its_own_size_with_a_warning(calibrated: Path, tmp_path: Path) -> None:
    results = tmp_path / "res"
    with pytest.warns(UserWarning, match=r"records its own pixel size \(Y 0.2 µm, X 0.2 µm\), "
                      r"not the Y 0.5 µm, X 0.5 µm given: the file's is used"):  # fmt: skip
        run_analysis(_settings(pixel_size=0.5), [calibrated], results)
    table = pd.read_csv(results / "tables" / "blob.csv").sort_values("area")
    np.testing.assert_allclose(table["area_um2"], np.array(AREAS) * 0.04)
    record = _record(results, "calibrated")
    assert record["pixel_sizes"] == {"Y": 0.2, "X": 0.2}
    assert record["pixel_size_source"] == {"Y": "file", "X": "file"}
    with warnings.catch_warnings():  # within 1 %: the same size, nothing to say
        warnings.simplefilter("error")
        run_analysis(_settings(pixel_size=0.201), [calibrated], tmp_path / "close")


def test_a_z_stack_takes_z_y_x(tmp_path: Path) -> None:
    stack = np.zeros((3, 32, 32), np.uint8)
    stack[0:2, 4:10, 4:10] = 200  # 2 × 6 × 6 = 72 voxels
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")  # pages: Z
    results = tmp_path / "res"
    run_analysis(_settings(pixel_size="2,0.5,0.5", axes="ZYX"), [tmp_path / "stack.tif"], results)
    table = pd.read_csv(results / "tables" / "blob.csv")
    assert table["area"].tolist() == [72]
    np.testing.assert_allclose(table["volume_um3"], [72 * 2 * 0.25])
    assert _record(results, "stack")["pixel_size_source"] == dict.fromkeys("ZYX", "settings")
    with pytest.warns(UserWarning, match="a Z stack without a Z step"):  # Y,X only: voxels
        run_analysis(_settings(pixel_size=[0.5, 0.5], axes="ZYX"), [tmp_path / "stack.tif"],
                     tmp_path / "yx")  # fmt: skip
    assert "volume_um3" not in pd.read_csv(tmp_path / "yx" / "tables" / "blob.csv")


def test_the_forms_it_takes_are_one_setting() -> None:
    forms = [0.5, "0.5", [0.5], {"x": 0.5, "y": 0.5, "z": 0.5}]
    assert {_settings(pixel_size=form).pixel_size for form in forms} == {0.5}
    per_axis = _settings(pixel_size="0.3,0.2")
    assert per_axis.pixel_size == {"Y": 0.3, "X": 0.2}
    assert parse_settings(dump_settings(per_axis)) == per_axis
    text = "version: 1\nchannels: [C0]\nclasses: [{name: b, segmenter: {kind: threshold, "
    text += "channel: C0}}]\npixel_size: 0\n"
    with pytest.raises(InvalidSettingsError, match="line 4: pixel_size: takes positive"):
        parse_settings(text, path="s.yaml")


def test_the_option_replaces_the_settings(plain: Path, tmp_path: Path, capsys) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text(dump_settings(_settings(pixel_size=0.5)))
    results = tmp_path / "res"
    args = ["analyze", str(settings), str(plain), "-o", str(results), "-q"]
    assert main([*args, "--pixel-size", "0.25"]) == 0
    assert "pixel_size 0.25 given for this run replaces the settings' pixel_size: 0.5" in (
        capsys.readouterr().err
    )
    assert _record(results, "plain")["pixel_sizes"] == {"Y": 0.25, "X": 0.25}
    assert "pixel_size: 0.25" in (results / "settings.yaml").read_text()
    assert main([*args, "--pixel-size", "0.5,x", "--overwrite"]) == 2
    assert "--pixel-size" in capsys.readouterr().err


def test_a_resume_with_another_size_is_refused(plain: Path, tmp_path: Path) -> None:
    results = tmp_path / "res"
    run_analysis(_settings(), [plain], results)  # in pixels
    assert run_analysis(_settings(), [plain], results, resume=True).resumed == 1
    with pytest.raises(InvalidRequestError, match=r"pixel_size: \(not set\) → 0.5"):
        run_analysis(_settings(), [plain], results, resume=True, pixel_size=0.5)
    again = run_analysis(_settings(pixel_size=0.5), [plain], results, overwrite=True)
    assert again.resumed == 0 and _record(results, "plain")["pixel_sizes"] == {"Y": 0.5, "X": 0.5}


def test_a_mixed_batch_keeps_every_images_sizes_in_pixels(
    plain: Path, calibrated: Path, tmp_path: Path
) -> None:
    results = tmp_path / "res"
    run_analysis(_settings(), [plain, calibrated], results)  # no pixel_size: plain in pixels
    counts = pd.read_csv(results / "summary" / "counts.csv").set_index("image")
    assert counts["blob_area_mean"].tolist() == [42.0, 42.0]  # every image, in pixels
    assert np.isnan(counts.loc["plain", "blob_area_um2_mean"])
    assert counts.loc["calibrated", "blob_area_um2_mean"] == pytest.approx(42 * 0.04)
    assert np.isnan(counts.loc["calibrated", "megapixels"])  # densities: each its own unit
    per_image = pd.read_csv(results / "summary" / "blob_per_image.csv").set_index("image")
    assert per_image["area_median"].tolist() == [42.0, 42.0]
    summary = results / "summary"
    for chart in ("blob_area.png", "blob_area_per_image.png", "blob_area_um2.png"):
        assert (summary / chart).is_file()
    titles = (results / "index.html").read_text()
    assert "blob: area in pixels" in titles and "blob: area in µm²" in titles
    one_unit = tmp_path / "calibrated_only"
    run_analysis(_settings(), [calibrated], one_unit)  # as before: µm² only
    assert "area_mean" not in pd.read_csv(one_unit / "summary" / "blob_per_image.csv")
    assert not (one_unit / "summary" / "blob_area.png").exists()


def test_the_server_passes_the_key_through(plain: Path, tmp_path: Path) -> None:
    """A server job runs ``run_analysis`` on the settings file it saved: the key is read."""
    settings = tmp_path / "s.yaml"
    settings.write_text(dump_settings(_settings(pixel_size=0.5)))
    run_analysis(settings, [plain], tmp_path / "res", resume=True)
    assert _record(tmp_path / "res", "plain")["pixel_size_source"]["X"] == "settings"


def test_a_size_that_leaves_out_y_or_x_is_refused_and_one_number_for_a_stack_is_said() -> None:
    """``{X: 0.5}`` alone would leave the tables in pixels without a word: refused. One
    number fills a Z stack's Z step too, which a warning says (it is usually the XY size)."""
    from scopeml.pixel_size import parse_pixel_size, resolve_pixel_sizes

    for only in ({"X": 0.5}, {"Z": 2.0}, {"z": 2.0, "y": 0.5}):
        with pytest.raises(ValueError, match="by axis: Y and X"):
            parse_pixel_size(only)
    sizes, sources, notes = resolve_pixel_sizes({}, parse_pixel_size(0.65), stack=True, name="s")
    assert sizes == {"Z": 0.65, "Y": 0.65, "X": 0.65} and sources["Z"] == "settings"
    assert notes == ["s: the Z step is taken as 0.65 µm, the one number given for every axis; "
                     "give the pixel size as Z,Y,X if it differs"]  # fmt: skip
    assert resolve_pixel_sizes({}, parse_pixel_size("2,0.65,0.65"), stack=True, name="s")[2] == []
    assert resolve_pixel_sizes({}, parse_pixel_size(0.65), stack=False, name="s")[2] == []


def test_a_plain_time_series_takes_its_time_step_from_the_settings(tmp_path: Path) -> None:
    """A plain TIFF movie records no time step: ``pixel_size: {T: 60, Y: 0.5, X: 0.5}`` was
    refused ("Y and X (and Z)"), so its counts over time had frame numbers only."""
    movie = np.full((3, 64, 64), 10, np.uint8)
    for t in range(3):
        for i in range(t + 1):
            movie[t, 4 + 15 * i : 12 + 15 * i, 4:12] = 200
    tifffile.imwrite(tmp_path / "movie.tif", movie, metadata={"axes": "TYX"})
    settings = _settings(pixel_size={"T": 60, "Y": 0.5, "X": 0.5})
    results = tmp_path / "res"
    run_analysis(settings, [tmp_path / "movie.tif"], results)
    record = _record(results, "movie")
    assert record["pixel_sizes"] == {"T": 60.0, "Y": 0.5, "X": 0.5}
    assert record["pixel_size_source"] == {"T": "settings", "Y": "settings", "X": "settings"}
    over_time = pd.read_csv(results / "summary" / "counts_per_time_point.csv")
    assert over_time["time_s"].tolist() == [0.0, 60.0, 120.0]
    assert over_time["blob"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("key", ["ZY", "", "t z"])
def test_an_axis_name_that_is_no_axis_is_refused(key):
    from scopeml.pixel_size import parse_pixel_size

    with pytest.raises(ValueError, match="by axis: Y and X"):
        parse_pixel_size({key: 1.0, "Y": 0.5, "X": 0.5})
