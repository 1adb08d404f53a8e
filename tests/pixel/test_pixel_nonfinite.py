"""NaN and infinite pixels in training: they are 0 for the filters (the tiling engine's rule),
scribbled ones are left out with one warning that counts them, an image whose scribbled pixels
are all NaN is refused naming it, and no bare NumPy "invalid value" warning escapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.errors import InvalidImageError
from scopeml.features import compute_features
from scopeml.pixel import train_classifier
from scopeml.synthetic import synthetic_nuclei

from .conftest import sparse_labels

FEATURES = "gaussian_smoothing:1;difference_of_gaussians:1.6"


@pytest.fixture(scope="module")
def scribbled():
    image, instances = synthetic_nuclei((80, 96), density=0.003, seed=2)
    image = image.astype(np.float32)
    labels = sparse_labels((instances > 0).astype(np.uint8) + 1, 0.08, seed=2)
    return image, labels


def test_nan_scribbles_are_left_out_with_one_warning_and_neighbours_see_them_as_zero(scribbled):
    image, labels = scribbled
    image = image.copy()
    image[0, 10:20, 10:30] = np.nan
    image[0, 50, 60] = np.inf
    image[0, 51, 61] = -np.inf  # inf - inf in a difference of Gaussians: NumPy's "invalid value"
    invalid = ~np.isfinite(image).all(axis=0)
    nan_pixels = int(np.count_nonzero((labels > 0) & invalid))
    # scribbles whose filters reach a NaN pixel are trained on, not dropped
    raw = np.isfinite(compute_features(image, FEATURES)).all(axis=0)
    assert np.count_nonzero((labels > 0) & ~raw) > nan_pixels > 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = train_classifier(image, labels, features=FEATURES, n_estimators=3, n_jobs=1)
    messages = [str(w.message) for w in caught]
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], messages
    assert len(messages) == 1 and caught[0].filename == __file__, messages
    labelled = int(np.count_nonzero(labels))
    assert messages[0] == (
        f"{nan_pixels} of {labelled} labelled pixels left out of training "
        f"({nan_pixels} are NaN or infinite)"
    )
    assert sum(clf.info["samples_per_class"]) == labelled - nan_pixels
    # the engine's rule: NaN/inf pixels are 0 for the filters; the same as training on that
    # image without the NaN scribbles
    zeroed = np.where(invalid, np.float32(0), image)
    alone = train_classifier(zeroed, np.where(invalid, 0, labels), features=FEATURES,
                             n_estimators=3, n_jobs=1)  # fmt: skip
    assert clf.info["samples_per_class"] == alone.info["samples_per_class"]
    predicted = clf.predict_labels(image)
    np.testing.assert_array_equal(predicted[invalid], 0)
    np.testing.assert_array_equal(predicted[~invalid], alone.predict_labels(zeroed)[~invalid])


def test_all_nan_image_is_refused_naming_it(scribbled, tmp_path, capsys):
    image, labels = scribbled
    nan = np.full_like(image[0], np.nan)
    tifffile.imwrite(tmp_path / "allnan.tif", nan)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    args = ["pixel", "train", str(tmp_path / "allnan.tif"), str(tmp_path / "labels.tif")]
    code = main([*args, "-o", str(tmp_path / "m.czseg"), "--features", FEATURES])
    err = capsys.readouterr().err
    labelled = int(np.count_nonzero(labels))
    assert code == 2 and not (tmp_path / "m.czseg").exists()
    *stages, said = err.splitlines()  # in a log, each stage ended writes its line first
    assert said == (
        f"error: {tmp_path / 'allnan.tif'}: all {labelled} labelled pixels are NaN or infinite; "
        "label pixels with values"
    )
    assert all(line.startswith("features: 100%") for line in stages), stages


def test_a_class_whose_scribbles_are_all_nan_is_refused(scribbled):
    image, labels = scribbled
    image = image.copy()
    image[0][labels == 2] = np.nan
    refused = pytest.raises(InvalidImageError, match=r"^class 2: every labelled pixel is NaN")
    with refused, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the count of pixels left out
        train_classifier(image, labels, features=FEATURES, n_estimators=3, n_jobs=1)
