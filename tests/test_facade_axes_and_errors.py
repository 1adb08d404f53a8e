"""Axis names and bad inputs at the facade, as a Python user (cellpose, CellProfiler) writes
them: every axis key is read (``"y"`` is ``Y``) or refused, never ignored; every bad input is
a :class:`~scopeml.errors.ScopeMLError`; settings and schedulers come as objects too.

Each test is a call from a user's trial that failed before: a region or pixel size with
lowercase keys silently ignored, a region past the image clipped, a misspelt model name as a
bare ``FileNotFoundError``, ``segment(..., None)`` as a pathlib ``TypeError``, ``analyze``
of a ``dict`` as a ``TypeError``, a ``Client`` or ``LocalCluster`` as a pickling error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

import scopeml as sm
from scopeml.analysis import AnalysisSettings, dump_settings, parse_settings
from scopeml.analysis.settings import InvalidSettingsError
from scopeml.errors import InvalidRequestError, ModelNotFoundError
from scopeml.synthetic import synthetic_nuclei
from tests.test_facade import Threshold  # foreground above 5 in the first channel


def _cells() -> np.ndarray:
    """A 12×16 plane with two bright cells (values 7 and 9)."""
    plane = np.zeros((12, 16), np.uint16)
    plane[1:4, 1:4] = 9
    plane[6:10, 8:14] = 7
    return plane


# ---------------------------------------------------------------- axis names (#3)


def test_a_lowercase_region_is_the_uppercase_one():
    plane = _cells()
    upper = sm.predict_region(plane, Threshold(), {"Y": (1, 8), "X": (2, 12)})
    lower = sm.predict_region(plane, Threshold(), {"y": (1, 8), "x": (2, 12)})
    assert lower.shape == (7, 10)  # not the whole 12×16 image
    np.testing.assert_array_equal(lower, upper)
    np.testing.assert_array_equal(lower == 2, plane[1:8, 2:12] > 5)


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ({"W": (0, 4)}, r"region: unknown axes \['W'\]; valid axes are T, Z, Y, X"),
        ({"C": (0, 1), "Y": (0, 4)}, r"unknown axes \['C'\]"),  # channels: channels=
        ({"Y": (0, 10000)}, r"region Y \(0, 10000\) is empty or reaches outside the image"),
        ({"X": (-2, 4)}, r"region X \(-2, 4\) .* \(X is 0 to 16"),
        ({"Y": (5, 5)}, r"region Y \(5, 5\) is empty"),
        ({"y": (0, 2), "Y": (0, 3)}, r"axis Y given twice"),
    ],
)
def test_a_region_is_never_ignored_or_clipped(region, message):
    with pytest.raises(InvalidRequestError, match=message):
        sm.predict_region(_cells(), Threshold(), region)


def test_pixel_sizes_are_read_in_any_case_and_unknown_keys_refused():
    objects = np.zeros((6, 8), np.int32)
    objects[1:3, 1:5] = 1
    upper = sm.measure_objects(objects, pixel_sizes={"Y": 0.5, "X": 0.25})
    lower = sm.measure_objects(objects, pixel_sizes={"y": 0.5, "x": 0.25})
    assert lower["area_um2"].tolist() == [8 * 0.5 * 0.25]  # not left out without a word
    pd.testing.assert_frame_equal(lower, upper)
    with pytest.raises(InvalidRequestError, match=r"pixel_sizes: unknown axes \['W'\]"):
        sm.measure_objects(objects, pixel_sizes={"W": 0.5, "X": 0.5})


@pytest.mark.parametrize("given", [0.5, "0.5", "0.5,0.5", [0.5, 0.5], {"y": 0.5, "X": 0.5}])
def test_measure_objects_takes_pixel_size_as_segment_does(given):
    objects = np.zeros((6, 8), np.int32)
    objects[1:3, 1:5] = 1
    table = sm.measure_objects(objects, pixel_size=given)
    assert table["area_um2"].tolist() == [8 * 0.25]
    pd.testing.assert_frame_equal(table, sm.measure_objects(objects, pixel_sizes=given))
    with pytest.raises(InvalidRequestError, match="pixel_size takes positive micrometres"):
        sm.measure_objects(objects, pixel_size="0.5,x")
    with pytest.raises(InvalidRequestError, match="give pixel_size or pixel_sizes"):
        sm.measure_objects(objects, pixel_size=0.5, pixel_sizes={"Y": 0.5, "X": 0.5})


def test_measure_objects_pixel_size_keeps_a_files_own_size_as_segment_does(tmp_path):
    import tifffile

    objects = np.zeros((6, 8), np.uint16)
    objects[1:3, 1:5] = 1
    path = tmp_path / "objects.ome.tif"
    sizes = {"PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2}
    tifffile.imwrite(path, objects, ome=True, metadata={"axes": "YX", **sizes})
    with pytest.warns(UserWarning, match="0.2"):
        table = sm.measure_objects(path, pixel_size=0.5)
    assert table["area_um2"].tolist() == pytest.approx([8 * 0.04])  # the file's, not 0.25
    assert sm.measure_objects(path, pixel_sizes={"Y": 0.5, "X": 0.5})["area_um2"].tolist() == [2]
    stack = np.stack([objects] * 3).astype(np.int32)
    with pytest.warns(UserWarning, match="give the pixel size as Z,Y,X"):
        sm.measure_objects(stack, pixel_size="0.5,0.5")


def test_measure_objects_refuses_complex_intensities_in_one_line(tmp_path, capsys):
    """As segment does: not a cast's warnings, then a TypeError ("internal error", exit 1)."""
    import tifffile

    from scopeml.cli import main

    objects = np.ones((10, 10), np.uint16)
    with pytest.raises(sm.ScopeMLError, match="pixels are complex64"):
        sm.measure_objects(objects, np.ones((10, 10), np.complex64))
    tifffile.imwrite(tmp_path / "objects.tif", objects)
    tifffile.imwrite(tmp_path / "complex.tif", np.ones((10, 10), np.complex64))
    args = ["objects", "measure", str(tmp_path / "objects.tif"), "-o", str(tmp_path / "t.csv")]
    assert main([*args, "--image", str(tmp_path / "complex.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'complex.tif'}: image pixels are complex64"), err
    assert "\n" not in err and not (tmp_path / "t.csv").exists()


def test_image_read_and_pixel_sizes_take_axis_names_in_any_case():
    pixels = np.arange(60, dtype=np.uint8).reshape(1, 1, 1, 1, 6, 10)
    image = sm.Image(pixels, pixel_sizes={"y": 0.5, "X": 0.25})
    assert image.pixel_sizes == {"Y": 0.5, "X": 0.25}
    np.testing.assert_array_equal(image.read(y=slice(1, 3), x=4), image.read(Y=slice(1, 3), X=4))
    assert image.read(y=slice(1, 3), x=4).ravel().tolist() == [14, 24]
    with pytest.raises(InvalidRequestError, match=r"Image.read: unknown axes \['W'\]"):
        image.read(W=1)
    with pytest.raises(InvalidRequestError, match=r"pixel_sizes: unknown axes \['Q'\]"):
        sm.Image(pixels, pixel_sizes={"Q": 1.0})


# ---------------------------------------------------------------- bad input is ScopeMLError (#4)


def test_a_misspelt_model_name_says_which_built_in_it_is_close_to():
    with pytest.raises(ModelNotFoundError, match=r"nucleii: .*did you mean 'nuclei'\?") as err:
        sm.open_model("nucleii")
    assert isinstance(err.value, sm.ScopeMLError)
    assert isinstance(err.value, FileNotFoundError)  # except FileNotFoundError keeps working
    assert err.value.filename == "nucleii"
    with pytest.raises(ModelNotFoundError, match="built-in models: nuclei") as far:
        sm.open_model("mitochondria.czann")
    assert "did you mean" not in str(far.value)


def test_segment_without_an_output_points_to_the_in_memory_call(tmp_path):
    with pytest.raises(InvalidRequestError, match=r"give output= a path .*predict_region"):
        sm.segment(_cells(), Threshold(), None)  # type: ignore[arg-type]


def _settings() -> dict:
    """Settings as a dict, the content of a settings file."""
    segmenter = {"kind": "threshold", "channel": "C0", "method": "fixed", "value": 5}
    return {"version": 1, "channels": ["C0"], "classes": [{"name": "cell", "segmenter": segmenter}]}


def test_analyze_and_parse_settings_take_a_dict(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _cells())
    parsed = parse_settings(_settings())
    assert parsed == AnalysisSettings.model_validate(_settings())
    (tmp_path / "s.yaml").write_text(dump_settings(parsed))
    from_dict = sm.analyze(_settings(), [tmp_path / "a.tif"], tmp_path / "d")
    from_file = sm.analyze(tmp_path / "s.yaml", [tmp_path / "a.tif"], tmp_path / "f")
    assert from_dict.counts == from_file.counts == {"a": {"cell": 2}}
    bad = _settings()
    bad["classes"][0]["segmenter"]["valu"] = 5
    with pytest.raises(InvalidSettingsError, match=r"classes\[0\]\.segmenter\.valu: unknown key"):
        sm.analyze(bad, [tmp_path / "a.tif"], tmp_path / "b")
    with pytest.raises(InvalidSettingsError, match="got int"):
        parse_settings(3)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cluster():
    """One in-process worker: a real scheduler, small and quick."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local, client


def test_segment_and_analyze_take_a_client_or_a_cluster(tmp_path, cluster):
    local, client = cluster
    pixels, _ = synthetic_nuclei((40, 48), seed=3)
    here = sm.segment(pixels, "nuclei", tmp_path / "here.ome.zarr", tile_size=32)
    for name, scheduler in (("cluster", local), ("client", client)):
        there = sm.segment(
            pixels, "nuclei", tmp_path / f"{name}.ome.zarr", tile_size=32, scheduler=scheduler
        )
        np.testing.assert_array_equal(there.labels.read(), here.labels.read())
    options = sm.SegmentOptions(scheduler=client, tile_size=32)  # in the options as well
    there = sm.segment(pixels, "nuclei", tmp_path / "options.ome.zarr", options)
    np.testing.assert_array_equal(there.labels.read(), here.labels.read())
    tifffile.imwrite(tmp_path / "a.tif", _cells())
    result = sm.analyze(_settings(), [tmp_path / "a.tif"], tmp_path / "an", scheduler=client)
    assert result.counts == {"a": {"cell": 2}}
    with pytest.raises(InvalidRequestError, match="scheduler= takes a dask scheduler address"):
        sm.segment(pixels, "nuclei", tmp_path / "bad.ome.zarr", scheduler=3)


def test_a_decimal_comma_is_refused_and_a_mistyped_point_warned_of():
    from scopeml.pixel_size import parse_pixel_size

    with pytest.raises(ValueError, match=r"X 65 µm: for 0.65 write a point$"):
        parse_pixel_size("0,65")
    with pytest.raises(ValueError, match=r"for Y and X, write them with points \(6.0,5.0\)"):
        parse_pixel_size("6,5")
    with pytest.warns(UserWarning, match="pixels 10 times longer than wide"):
        assert parse_pixel_size("0.65,6.5") == {"Y": 0.65, "X": 6.5}  # taken, said
    assert parse_pixel_size("2,2") == {"Y": 2.0, "X": 2.0}
