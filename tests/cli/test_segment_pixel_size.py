"""``scopeml segment --pixel-size`` (``segment(pixel_size=)``): µm for a file without one.

The store's outputs record the size used, so the ``--measure`` table and a later ``objects
measure`` of the store agree; a file's own size is kept; a resume with another is refused.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture(scope="module")
def nuclei() -> np.ndarray:
    pixels, _ = synthetic_nuclei((64, 80), density=0.004, seed=5)
    return pixels[0]


@pytest.fixture
def plain(tmp_path, nuclei):
    tifffile.imwrite(tmp_path / "n.tif", nuclei)  # no calibration
    return tmp_path / "n.tif"


def _segment(image, out, table, *more):
    args = ["segment", str(image), "-m", "nuclei", "-o", str(out), "--measure", str(table)]
    return main([*args, "-q", *more])


def test_measure_takes_the_pixel_size(plain, tmp_path, capsys):
    store, table = tmp_path / "s.ome.zarr", tmp_path / "t.csv"
    assert _segment(plain, store, table, "--pixel-size", "0.5") == 0
    measured = pd.read_csv(table)
    assert len(measured) > 3
    np.testing.assert_allclose(measured["area_um2"], measured["area"] * 0.25)
    seg = sm.Segmentation(store)
    assert seg.instances.pixel_sizes == {"Y": 0.5, "X": 0.5}  # the store records it
    assert main(["objects", "measure", str(store), "-o", str(tmp_path / "again.csv"), "-q"]) == 0
    again = pd.read_csv(tmp_path / "again.csv")
    np.testing.assert_allclose(again["area_um2"], measured["area_um2"])
    capsys.readouterr()
    assert _segment(plain, store, table, "--pixel-size", "0.4", "--resume") == 2
    assert "pixel_size.X: 0.5 (recorded) vs 0.4 (now)" in capsys.readouterr().err
    assert _segment(plain, store, table, "--pixel-size", "0.5", "--resume") == 0  # the same


def test_without_it_the_table_is_in_pixels(plain, tmp_path):
    table = tmp_path / "t.csv"
    assert _segment(plain, tmp_path / "s.ome.zarr", table) == 0
    assert "area_um2" not in pd.read_csv(table)


def test_a_files_own_size_is_kept(tmp_path, nuclei):
    image = tmp_path / "n.ome.tif"
    calibration = {"axes": "YX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2}
    tifffile.imwrite(image, nuclei, ome=True, metadata=calibration)
    table = tmp_path / "t.csv"
    with pytest.warns(UserWarning, match=r"its own pixel size \(Y 0.2 µm, X 0.2 µm\)"):
        sm.segment(image, "nuclei", tmp_path / "s.ome.zarr", measure=table, pixel_size=0.5)
    measured = pd.read_csv(table)
    np.testing.assert_allclose(measured["area_um2"], measured["area"] * 0.04)


def test_an_array_gets_it_too(tmp_path, nuclei):
    seg = sm.segment(nuclei, "nuclei", tmp_path / "s.ome.zarr", measure=tmp_path / "t.csv",
                     pixel_size={"x": 0.3, "y": 0.3})  # fmt: skip
    assert seg.labels.pixel_sizes == {"Y": 0.3, "X": 0.3}
    measured = pd.read_csv(tmp_path / "t.csv")
    np.testing.assert_allclose(measured["area_um2"], measured["area"] * 0.09)


def test_a_bad_size_is_refused_before_any_work(plain, tmp_path, capsys):
    store = tmp_path / "s.ome.zarr"
    assert _segment(plain, store, tmp_path / "t.csv", "--pixel-size", "0.5,-1") == 2
    assert "--pixel-size" in capsys.readouterr().err and not store.exists()
    with pytest.raises(InvalidRequestError, match="pixel_size takes positive"):
        sm.segment(plain, "nuclei", store, pixel_size="abc")
    assert not store.exists()
