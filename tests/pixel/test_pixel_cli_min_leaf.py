"""``scopeml pixel train --min-samples-leaf``: the library's ``min_samples_leaf`` (as napari's
min leaf size), passed to the forest unchanged; below 1 it is the option's one-line error."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.io import open_image
from scopeml.pixel import load_classifier, read_metadata, train_classifier
from scopeml.synthetic import synthetic_nuclei

from .conftest import sparse_labels

FEATURES = "gaussian_smoothing:1;laplacian_of_gaussian:1"
FAST = ["--features", FEATURES, "--n-estimators", "4", "--jobs", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("minleaf")
    image, instances = synthetic_nuclei((64, 72), density=0.004, seed=3)
    truth = (instances > 0).astype(np.uint8) + 1
    tifffile.imwrite(folder / "image.tif", image[0])
    tifffile.imwrite(folder / "labels.tif", sparse_labels(truth, 0.2, seed=3))
    return folder / "image.tif", folder / "labels.tif"


def most_leaves(path: Path) -> int:
    arrays = load_classifier(path).forest.arrays()
    return max(
        int((arrays["left"][lo:hi] == -1).sum()) for lo, hi in itertools.pairwise(arrays["offsets"])
    )


def test_min_samples_leaf_reaches_the_forest(files, tmp_path, capsys) -> None:
    image, labels = files
    free, leafy = tmp_path / "free.czseg", tmp_path / "leafy.czseg"
    assert main(["pixel", "train", str(image), str(labels), "-o", str(free), *FAST]) == 0
    args = ["pixel", "train", str(image), str(labels), "-o", str(leafy), *FAST]
    assert main([*args, "--min-samples-leaf", "30"]) == 0
    capsys.readouterr()
    n = read_metadata(leafy).Training["n_samples"]
    assert read_metadata(free).Training["min_samples_leaf"] == 1
    assert read_metadata(leafy).Training["min_samples_leaf"] == 30
    # every leaf holds ≥ 30 of a tree's n bootstrap draws; the default grows far more leaves
    assert most_leaves(leafy) <= n // 30 < most_leaves(free)
    # the very forest the library trains with min_samples_leaf=30
    with open_image(image) as img, open_image(labels) as lab:
        same = train_classifier(
            img, lab, features=FEATURES, n_estimators=4, min_samples_leaf=30, n_jobs=1
        )
    for name, array in same.forest.arrays().items():
        np.testing.assert_array_equal(load_classifier(leafy).forest.arrays()[name], array)


def test_min_samples_leaf_below_one_is_the_options_error(files, tmp_path, capsys) -> None:
    image, labels = files
    out = tmp_path / "m.czseg"
    args = ["pixel", "train", str(image), str(labels), "-o", str(out), *FAST]
    assert main([*args, "--min-samples-leaf", "0"]) == 2
    err = capsys.readouterr().err
    assert "--min-samples-leaf" in err and not out.exists(), err
