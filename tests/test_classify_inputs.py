"""``classify`` takes labels and pixels as ``segment`` and ``objects measure`` take them: float
labels (TypeError, exit 1, before), uint64 ids of 2**63 and more (OverflowError) and negative
ids are refused with measure's words, naming the label file; a complex image is refused (its
real part was classified, with only numpy's ComplexWarning); a plane without a finite pixel
gets an empty row and a warning, not the first class with an empty probability."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.classify import classify_images, classify_object_crops
from scopeml.cli import main
from scopeml.errors import InvalidImageError, InvalidLabelsError
from scopeml.io import open_image
from scopeml.io.image import Image
from tests.test_classify import bright_model  # noqa: F401  (the fixture: a trained .czann)


def cells(dtype: type = np.int32) -> np.ndarray:
    labels = np.zeros((40, 40), dtype)
    labels[5:12, 5:12], labels[25:33, 20:30] = 1, 2
    return labels


def write(path, array):
    tifffile.imwrite(path, array)
    return path


BAD_LABELS = [
    (cells(np.float32), "labels must be integers; got dtype float32"),
    (-cells(), "labels must be non-negative; found -2"),
    (cells(np.uint64) * np.uint64(2**63 + 1), "object ids up to 9223372036854775809; ids must"),
]


@pytest.mark.parametrize(("labels", "problem"), BAD_LABELS)
def test_the_command_line_refuses_bad_labels(bright_model, tmp_path, capsys, labels, problem):  # noqa: F811
    image = write(tmp_path / "img.tif", np.full((40, 40), 2.0, np.float32))
    source = write(tmp_path / "labels.tif", labels)
    out = tmp_path / "t.csv"
    args = ["classify", str(image), "--labels", str(source), "-m", str(bright_model)]
    assert main([*args, "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert problem in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {source}: "), err  # the label file, not the image
    assert not out.exists()


@pytest.mark.parametrize(("labels", "problem"), BAD_LABELS)
def test_an_opened_label_file_is_named(bright_model, tmp_path, labels, problem):  # noqa: F811
    source = write(tmp_path / "labels.tif", labels)
    pixels = np.full((40, 40), 2.0, np.float32)
    with open_image(source) as opened, pytest.raises(InvalidLabelsError) as caught:
        classify_object_crops(opened, pixels, bright_model)
    assert caught.value.path == str(source)
    assert str(caught.value) == f"{source}: {caught.value.problem}"
    assert caught.value.problem.startswith(problem)


def test_large_sparse_ids_are_classified_by_id(bright_model):  # noqa: F811
    labels = cells(np.uint64)
    labels[labels == 2] = 2**62  # find_objects sized a list by the largest id
    pixels = np.where(labels > 0, 25.0, 2.0).astype(np.float32)
    table = classify_object_crops(labels, pixels, bright_model)
    assert table["label"].tolist() == [1, 2**62]
    assert table["class"].tolist() == ["bright", "bright"]


def test_a_complex_image_is_refused(bright_model, tmp_path, capsys):  # noqa: F811
    image = write(tmp_path / "c.tif", np.full((32, 32), 2 + 1j, np.complex64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way
        with pytest.raises(InvalidImageError, match="complex64"):
            classify_images([image], bright_model)
        with pytest.raises(InvalidImageError, match="complex64"):
            classify_object_crops(cells(), np.full((40, 40), 1j, np.complex64), bright_model)
    out = tmp_path / "t.csv"
    assert main(["classify", str(image), "-m", str(bright_model), "-o", str(out), "-q"]) == 2
    assert f"error: {image}: image pixels are complex64" in capsys.readouterr().err


def test_a_plane_without_a_finite_pixel_gets_no_class(bright_model, tmp_path):  # noqa: F811
    planes = np.full((2, 32, 32), 6.0, np.float32)
    planes[0] = np.nan
    planes[0, 0, 0] = np.inf
    with pytest.warns(UserWarning, match="t 0, z 0: every pixel is NaN or infinite") as heard:
        table = classify_images([Image(planes.reshape(1, 2, 1, 1, 32, 32))], bright_model)
    assert len(heard) == 1
    assert table["class"].isna().tolist() == [True, False]
    assert table["probability"].isna().tolist() == [True, False]
    assert table["class"][1] == "bright"
    out = tmp_path / "t.csv"
    source = write(tmp_path / "nan.tif", np.full((32, 32), np.nan, np.float32))
    with pytest.warns(UserWarning, match="nan.tif: scene 0, t 0, z 0: every pixel"):
        classify_images([source], bright_model, output=out)
    assert pd.read_csv(out)["class"].isna().all()


def test_a_plane_with_some_nan_pixels_is_classified_from_the_others(bright_model):  # noqa: F811
    plane = np.full((32, 32), 6.0, np.float32)
    plane[:4] = np.nan
    with pytest.warns(UserWarning, match="128 of 1024 pixels are NaN or infinite"):
        table = classify_images([Image(plane.reshape(1, 1, 1, 1, 32, 32))], bright_model)
    assert table["class"].tolist() == ["bright"]
    assert np.isfinite(table["probability"]).all()


def test_a_segment_stores_instances_are_its_objects_and_other_classifiers_are_named(
    bright_model,  # noqa: F811
    tmp_path,
    capsys,
):
    """``--labels`` takes a segment store as ``objects measure`` does (its instances); an
    object classifier given as the model is named as such, not by the member it lacks."""
    import scopeml as sm
    from scopeml.synthetic import synthetic_nuclei

    pixels, _ = synthetic_nuclei((96, 96), density=0.003, seed=1)
    image = write(tmp_path / "img.tif", pixels[0])
    store, plain = tmp_path / "s.ome.zarr", tmp_path / "l.ome.zarr"
    sm.segment(image, "nuclei", store, outputs=("labels", "instances"))
    sm.segment(image, "nuclei", plain)
    args = ["classify", str(image), "-m", str(bright_model), "-q", "--labels"]
    assert main([*args, str(store), "-o", str(tmp_path / "a.csv")]) == 0
    assert main([*args, str(store / "instances"), "-o", str(tmp_path / "b.csv")]) == 0
    table = pd.read_csv(tmp_path / "a.csv")
    assert len(table) > 3 and table.equals(pd.read_csv(tmp_path / "b.csv"))
    capsys.readouterr()
    assert main([*args, str(plain), "-o", str(tmp_path / "c.csv")]) == 2
    assert "holds no instances, only class labels" in capsys.readouterr().err
    table["kind"] = ["big" if area > table["area"].median() else "small" for area in table["area"]]
    classifier = sm.train_object_classifier(table, "kind", n_estimators=5)
    classifier.save(tmp_path / "objects.zip")
    command = ["classify", str(image), "-m", str(tmp_path / "objects.zip"), "-o", "d.csv"]
    assert main(command) == 2
    assert (
        "an object classifier, not a classification model (it goes to scopeml objects "
        "classify)" in capsys.readouterr().err
    )
