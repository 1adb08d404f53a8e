"""``scopeml pixel features``: a preset named as the argument works as ``--features`` does; missing
ImageNet weights are the error ``pixel train`` gives, never a silent success; ``--list`` says
which deep presets need downloaded weights and whether they are here. ``pixel train`` with
hundreds of classes lists a few of their counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.features import _vgg


@pytest.mark.parametrize("spec", ["basic25", "vgg19-random-64", "gaussian_smoothing:1,3.5"])
def test_a_preset_as_the_argument_works_as_features_does(spec, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path / "cache"))
    assert main(["pixel", "features", "--features", spec]) == 0
    expected = capsys.readouterr()
    assert main(["pixel", "features", spec]) == 0
    got = capsys.readouterr()
    assert got.out == expected.out and got.out and got.err == expected.err


def test_a_name_that_is_neither_points_to_features(capsys):
    assert main(["pixel", "features", "basic26"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such network file" in err and "--features" in err


def test_missing_weights_are_the_error_pixel_train_gives(no_address, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "i.tif", np.zeros((16, 16), np.uint16))
    tifffile.imwrite(tmp_path / "l.tif", np.ones((16, 16), np.uint8))
    train = ["pixel", "train", str(tmp_path / "i.tif"), str(tmp_path / "l.tif")]
    assert main([*train, "-o", str(tmp_path / "m.czseg"), "--features", "vgg19-64"]) == 2
    trained = capsys.readouterr().err.strip()
    assert "ImageNet weights are not in" in trained and "vgg19-random-64" in trained
    for args in (["--features", "vgg19-64"], ["vgg19-64"]):
        assert main(["pixel", "features", *args]) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.strip() == trained


def test_list_marks_the_presets_that_need_downloaded_weights(no_address, capsys):
    assert main(["pixel", "features", "--list"]) == 0
    lines = {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    for preset in ("vgg19-64", "vgg19-256", "vgg16-convpaint"):
        assert "needs ImageNet weights: not downloaded" in lines[preset]
    assert "vgg16-random-convpaint needs none" in lines["vgg16-convpaint"]
    assert "no download address known" in lines["vgg19-256"]  # not "fetched on first use"
    no_address.mkdir(parents=True)
    (no_address / _vgg.WEIGHT_FILES["vgg19"]).write_bytes(b"")  # a copied-in file counts
    assert main(["pixel", "features", "--list"]) == 0
    lines = {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert "ImageNet weights: downloaded" in lines["vgg19-256"]
    assert "not downloaded" in lines["vgg16-convpaint"]
    assert "ImageNet" not in lines["basic25"]


def test_list_says_weights_are_fetched_where_an_address_is_known(no_address, monkeypatch, capsys):
    monkeypatch.setenv("SCOPEML_WEIGHTS_URL", "https://example.org/weights")
    assert main(["pixel", "features", "--list"]) == 0
    lines = {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines()}
    assert "not downloaded, fetched on first use" in lines["vgg19-256"]


def test_train_lists_the_counts_of_a_few_of_many_classes(tmp_path: Path, capsys):
    labels = np.zeros((40, 40), np.uint16)
    labels.flat[::5] = np.r_[np.arange(1, 301), np.ones(20)]  # 300 classes, class 1 21 pixels
    image = (labels * 7 % 251).astype(np.uint16)
    tifffile.imwrite(tmp_path / "i.tif", image)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    out = tmp_path / "m.czseg"
    names = ",".join(f"c{k}" for k in range(1, 301))  # over 255 classes are named
    args = ["pixel", "train", str(tmp_path / "i.tif"), str(tmp_path / "l.tif"), "-o", str(out)]
    args += ["--classes", names, "--features", "gaussian_smoothing:1", "--n-estimators", "1"]
    assert main([*args, "-q"]) == 0, capsys.readouterr().err
    line = capsys.readouterr().out.strip()
    assert "300 classes (c1 21, c2 1, " in line and "c10 1, … (300 in all)" in line
    assert "c11 " not in line and len(line) < 400
    assert main([*args, "-q"]) == 0  # retrained: the changes are listed as briefly
    changed = capsys.readouterr().out.strip().splitlines()[-1]
    assert changed.startswith("replaced ") and "(300 in all)" in changed and len(changed) < 400
