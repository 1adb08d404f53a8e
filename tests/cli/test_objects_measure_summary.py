"""``scopeml objects measure`` says how many objects it measured and where the table is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from scopeml.cli import main
from scopeml.synthetic import synthetic_nuclei


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_measure_prints_the_object_count_and_the_table(tmp_path, capsys, suffix):
    _, labels = synthetic_nuclei((160, 160), density=0.003, seed=11)
    instances, expected = ndi.label(labels > 0)
    assert expected > 5
    np.save(tmp_path / "objects.npy", instances)
    table = tmp_path / f"objects{suffix}"
    args = ["objects", "measure", str(tmp_path / "objects.npy"), "-o", str(table)]
    assert main([*args, "-q", "--tile-size", "64", "--no-shape-features"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    rows = len(pd.read_csv(table) if suffix == ".csv" else pd.read_parquet(table))
    assert rows == expected
    assert out == [f"{expected} objects measured (2-D; shapes only, no --image) → {table}"]


def test_no_objects_is_said_as_zero(tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((40, 40), np.uint16))
    table = tmp_path / "none.csv"
    assert main(["objects", "measure", str(tmp_path / "empty.npy"), "-o", str(table), "-q"]) == 0
    assert capsys.readouterr().out.startswith("0 objects measured (2-D; shapes only")
    assert len(pd.read_csv(table)) == 0


def test_objects_made_from_a_segment_store_are_measured_on_its_image(tmp_path, capsys):
    """``segment → post → objects label → objects filter → objects measure`` measured shapes
    only: the label stores did not say which image their objects came from."""
    import tifffile

    image, _ = synthetic_nuclei((128, 128), density=0.003, seed=4)
    tifffile.imwrite(tmp_path / "img.tif", image[0])
    s, p, o, f = (str(tmp_path / f"{name}.ome.zarr") for name in "spof")
    run = [["segment", str(tmp_path / "img.tif"), "-m", "nuclei", "-o", s],
           ["post", s, "-o", p, "--step", "fill_holes"],
           ["objects", "label", p, "-o", o, "--class", "nucleus"],
           ["objects", "filter", o, "-o", f, "--min-size", "5"]]  # fmt: skip
    for args in run:
        assert main([*args, "-q"]) == 0, args
    capsys.readouterr()
    table = tmp_path / "t.csv"
    assert main(["objects", "measure", str(tmp_path / "f.ome.zarr"), "-o", str(table), "-q"]) == 0
    assert "intensities of img.tif, the image its run read" in capsys.readouterr().out
    assert pd.read_csv(table)["intensity_mean_C0"].notna().all()
    tifffile.imwrite(tmp_path / "img.tif", image[0] // 2)  # changed since: not measured on it
    again = ["objects", "measure", str(tmp_path / "f.ome.zarr"), "-o", str(tmp_path / "u.csv")]
    assert main([*again, "-q"]) == 0
    assert "shapes only" in capsys.readouterr().out
