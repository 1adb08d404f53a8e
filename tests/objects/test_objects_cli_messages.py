"""``objects`` and ``post`` after a new user's trial: an image-file or table name for an OME-Zarr
output is refused before any work, as ``segment`` refuses it; an intensity image measured as
labels is warned of, as labelling it is; mistyped class and column names get a "did you mean";
swapped classify arguments are said to be swapped; a colour image as labels names what the
command line can do."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.inputs import check_output_name
from scopeml.io.omezarr import create_ome_zarr


def _mask(path: Path) -> Path:
    """A mask of two squares, as a plain TIFF."""
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 5:15] = mask[20:35, 25:45] = 1
    tifffile.imwrite(path, mask)
    return path


def _classes(path: Path) -> Path:
    """Class labels naming their classes (background, nucleus), as a segment store's are."""
    store = path / "seg.ome.zarr"
    labels = create_ome_zarr(store / "labels", shape=(30, 30), dtype="uint8", axes="YX",
                             chunks=(30, 30))  # fmt: skip
    values = np.ones((30, 30), np.uint8)
    values[4:12, 4:12] = 2
    labels[:] = values
    import zarr

    group = zarr.open_group(str(store), mode="a")
    group.attrs["scopeml"] = {"model": {"classes": ["background", "nucleus"]}}
    return store


# --- 1. an image-file or table name for an OME-Zarr output --------------------------------


@pytest.mark.parametrize(
    ("command", "name", "suffix"),
    [(["objects", "label"], "o6.tif", ".tif"), (["objects", "label"], "o4.csv", ".csv"),
     (["post"], "p.tif", ".tif")],
)  # fmt: skip
def test_a_file_name_for_a_store_is_refused_before_any_work(tmp_path, capsys, command, name,
                                                           suffix):  # fmt: skip
    mask = _mask(tmp_path / "mask.tif")
    steps = ["--step", "opening:1"] if command == ["post"] else []
    out = tmp_path / name
    assert main([*command, str(mask), "-o", str(out), *steps, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    stem = name.removesuffix(suffix)
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {out}: ")
    assert f"not a {suffix} file; name it {stem}.ome.zarr" in err
    assert "--ome-tiff" not in err  # segment's alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif"]  # nothing made


def test_the_refusal_is_segments_own_words(tmp_path, capsys):
    with pytest.raises(InvalidRequestError) as segment:
        check_output_name(tmp_path / "o.tif", note="")  # less segment's --ome-tiff
    assert main(["objects", "label", str(_mask(tmp_path / "m.tif")), "-o",
                 str(tmp_path / "o.tif")]) == 2  # fmt: skip
    said = capsys.readouterr().err.strip().removeprefix("error: ")
    assert said == str(segment.value)
    assert main(["objects", "label", str(tmp_path / "m.tif"), "-o",
                 str(tmp_path / "o.ome.zarr"), "-q"]) == 0  # fmt: skip


# --- 2. an intensity image measured as labels ----------------------------------------------


def _grey(path: Path) -> Path:
    """A smooth intensity image of many grey values, as a plain TIFF."""
    y, x = np.mgrid[:64, :64]
    rng = np.random.default_rng(0)
    pixels = 100 + 50 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 8, (64, 64))
    tifffile.imwrite(path, np.clip(pixels, 0, None).astype(np.uint16))
    return path


def test_measuring_an_intensity_image_warns_as_labelling_it_does(tmp_path, capsys):
    grey = _grey(tmp_path / "grey.tif")
    assert main(["objects", "measure", str(grey), "-o", str(tmp_path / "o.csv"), "-q"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {grey}: the boxes of its" in err
    assert "an intensity image is no mask: segment it first (segment, analyze)" in err
    assert main(["objects", "label", str(grey), "-o", str(tmp_path / "o.ome.zarr"), "-q"]) == 0
    assert "an intensity image is no mask: segment it first" in capsys.readouterr().err


def test_touching_objects_are_measured_without_a_warning(tmp_path):
    labels = np.zeros((60, 60), np.uint16)  # a dense grid of touching objects
    for k in range(36):
        labels[(k // 6) * 10 : (k // 6) * 10 + 10, (k % 6) * 10 : (k % 6) * 10 + 10] = k + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(sm.measure_objects(labels)) == 36


# --- 8. messages -----------------------------------------------------------------------------


def test_a_mistyped_class_gets_a_did_you_mean(tmp_path, capsys):
    store = _classes(tmp_path)
    out = tmp_path / "o.ome.zarr"
    assert main(["objects", "label", str(store), "-o", str(out), "--class", "nuclei"]) == 2
    assert "no class 'nuclei' (did you mean 'nucleus'?)" in capsys.readouterr().err
    assert not out.exists()


def _annotated(tmp_path: Path) -> Path:
    labels = np.zeros((60, 60), np.uint16)
    for k in range(8):
        side = 4 if k % 2 else 9
        labels[5 + (k // 4) * 25 : 5 + (k // 4) * 25 + side, 3 + (k % 4) * 14 :][:, :side] = k + 1
    table = sm.measure_objects(labels)
    table["kind"] = np.where(table["area"] > 30, "big", "small")
    path = tmp_path / "annotated.csv"
    table.to_csv(path, index=False)
    return path


def test_a_mistyped_class_column_gets_a_did_you_mean(tmp_path, capsys):
    table = _annotated(tmp_path)
    train = ["objects", "train", str(table), "-o", str(tmp_path / "k.zip"), "--n-estimators", "3"]
    assert main([*train, "--class-column", "Kind"]) == 2
    assert "no column 'Kind' in the table (did you mean 'kind'?)" in capsys.readouterr().err


def test_swapped_classify_arguments_are_said_to_be_swapped(tmp_path, capsys):
    table, model, out = _annotated(tmp_path), tmp_path / "k.zip", tmp_path / "c.csv"
    assert main(["objects", "train", str(table), "--class-column", "kind", "-o", str(model),
                 "--n-estimators", "3"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["objects", "classify", str(table), str(model), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the order is MODEL TABLE" in err
    assert f"scopeml objects classify {model} {table}" in err and "zip" not in err.split("(")[0]
    assert main(["objects", "classify", str(model), str(table), "-o", str(out)]) == 0
    assert pd.read_csv(out)["class"].notna().all()


@pytest.mark.parametrize("command", ["measure", "label"])
def test_a_colour_image_as_labels_names_what_the_command_line_can_do(tmp_path, capsys, command):
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((20, 24, 3), np.uint8), photometric="rgb")
    out = tmp_path / ("o.csv" if command == "measure" else "o.ome.zarr")
    assert main(["objects", command, str(rgb), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "label image has 3 channels" in err and "Image.select_channels" in err
    assert "segment it first (segment, analyze)" in err


def test_a_missing_store_is_named_before_its_class_is_looked_for(tmp_path, capsys):
    """It said "class 'nucleus' given by name, but these labels carry no class names"."""
    missing = tmp_path / "nonexist.ome.zarr" / "labels"
    assert main(["objects", "label", str(missing), "-o", str(tmp_path / "o.ome.zarr"),
                 "--class", "nucleus"]) == 2  # fmt: skip
    assert capsys.readouterr().err.strip() == f"error: {missing}: no such file or folder"
    with pytest.raises(FileNotFoundError):
        sm.label_objects(missing, tmp_path / "p.ome.zarr", class_="nucleus")


def test_labelling_one_class_of_a_model_with_a_boundary_class_warns(tmp_path):
    """The nuclei class without its boundary ring: touching nuclei joined and 40 % small on
    BBBC007, without a word (the analysis settings warned of it)."""
    from scopeml.synthetic import realistic_nuclei

    image = realistic_nuclei((96, 96), seed=1)[0][0]
    seg = sm.segment(image, "nuclei", tmp_path / "s.ome.zarr", scale=1)
    with pytest.warns(UserWarning, match="nucleus pixels alone: .* lacks the boundary ring"):
        sm.label_objects(seg, tmp_path / "n.ome.zarr", class_="nucleus")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sm.label_objects(seg, tmp_path / "b.ome.zarr", class_="boundary")
