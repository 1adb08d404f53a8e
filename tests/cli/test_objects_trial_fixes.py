"""``scopeml objects`` after a user trial on real images: a Z stack whose file has no Z step
is warned of (item 2); an ImageJ stack of one time point has no time step (item 3); a class
lost to NaN features is named (item 4); a model given as labels is said to be one (item 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.cli import main
from scopeml.objects import ObjectClassifier


@pytest.fixture
def stack(tmp_path):
    """An ImageJ Z stack as BBBC032's: XY 0.202 µm, no Z step, a finterval and one time point;
    its labels as a plain TIFF."""
    labels = np.zeros((5, 24, 24), np.uint8)
    labels[1:4, 3:9, 3:10] = 1
    labels[0:3, 12:20, 13:21] = 2
    image = (labels * 50 + 10).astype(np.uint8)
    tifffile.imwrite(tmp_path / "image.tif", image, imagej=True, resolution=(1 / 0.202, 1 / 0.202),
                     metadata={"axes": "ZYX", "unit": "micron", "finterval": 0.03})  # fmt: skip
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    return tmp_path


def _measure(folder, *more):
    args = ["objects", "measure", str(folder / "labels.tif"), "--image", str(folder / "image.tif")]
    return main([*args, "-o", str(folder / "t.csv"), "-q", *more])


def test_a_z_stack_without_a_z_step_is_warned_of(stack, capsys):
    assert _measure(stack) == 0
    err = capsys.readouterr().err
    assert "image.tif: a Z stack without a Z step" in err and "give the pixel size as Z,Y,X" in err
    assert "volume_um3" not in pd.read_csv(stack / "t.csv")
    assert _measure(stack, "--pixel-size", "1,0.202,0.202", "--overwrite") == 0
    assert "without a Z step" not in capsys.readouterr().err
    assert "axis_major_length_um" in pd.read_csv(stack / "t.csv")


def test_one_time_point_has_no_time_step(stack, capsys):
    assert main(["info", str(stack / "image.tif")]) == 0
    said = capsys.readouterr().out
    assert "Y=0.202 X=0.202" in said and "time step" not in said
    assert _measure(stack) == 0
    assert list(pd.read_csv(stack / "t.csv").columns[:2]) == ["t", "label"]  # no time_s


def test_a_class_lost_to_infinite_features_is_named(tmp_path, capsys):
    table = pd.DataFrame({"area_um2": [1.0, 1.2, 1.1, 1.3] + [np.inf] * 4,
                          "solidity": [0.9, 0.8, 0.85, 0.9, 0.7, 0.75, 0.7, 0.72],
                          "kind": ["bright"] * 4 + ["dim"] * 4})  # fmt: skip
    table.to_csv(tmp_path / "table.csv", index=False)
    args = ["objects", "train", str(tmp_path / "table.csv"), "--class-column", "kind"]
    assert main([*args, "-o", str(tmp_path / "k.zip")]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("error: ") and "table.csv: one class (bright) is left once" in last
    assert "(area_um2)" in last and "every object of dim has them" in last
    assert not (tmp_path / "k.zip").exists()


@pytest.mark.parametrize("command", ["label", "filter", "measure", "measure-image"])
def test_a_model_given_as_labels_is_said_to_be_one(tmp_path, capsys, command):
    table = pd.DataFrame({"area": [10, 12, 11, 50, 55, 52], "kind": list("sssLLL")})
    ObjectClassifier.train(table, "kind", n_estimators=3).save(tmp_path / "kinds.zip")
    np.save(tmp_path / "labels.npy", np.ones((8, 8), np.uint8))
    model, out = str(tmp_path / "kinds.zip"), str(tmp_path / "x.ome.zarr")
    args = {
        "label": ["label", model, "-o", out],
        "filter": ["filter", model, "-o", out],
        "measure": ["measure", model, "-o", str(tmp_path / "x.csv")],
        "measure-image": ["measure", str(tmp_path / "labels.npy"), "--image", model, "-o",
                          str(tmp_path / "x.csv")],
    }[command]  # fmt: skip
    assert main(["objects", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {model}: a model (object-classifier), not an image: describe it "
                   f"with scopeml model inspect {model}")  # fmt: skip


def test_a_float_label_image_is_said_how_to_save_it(tmp_path, capsys):
    """Fiji's 32-bit label exports are common: the error says how to make them labels."""
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(path, np.arange(16, dtype=np.float32).reshape(4, 4))
    assert main(["objects", "measure", str(path), "-o", str(tmp_path / "t.csv")]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: labels must be integers; got dtype float32; a float label image (such "
        "as Fiji's 32-bit) is read once saved as integers (numpy: labels.astype(np.uint32))\n"
    )
