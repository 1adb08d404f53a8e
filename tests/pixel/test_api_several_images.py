"""``sm.train_pixel_classifier([a, b], [la, lb])`` trains one classifier on every pair, as
``scopeml pixel train A LA B LB`` does (it refused a list: "not list")."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidLabelsError


def pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.normal(10, 1, (48, 48)).astype(np.float32)
    image[10:30, 10:30] += 20
    labels = np.zeros((48, 48), np.uint8)
    labels[40:46, 2:20], labels[15:25, 15:25] = 1, 2
    return image, labels


def test_a_list_of_images_trains_as_the_cli_trains_them(tmp_path):
    (a, la), (b, lb) = pair(1), pair(2)
    for name, array in {"a": a, "la": la, "b": b, "lb": lb}.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", array)
    files = [str(tmp_path / f"{name}.tif") for name in ("a", "la", "b", "lb")]
    assert main(["pixel", "train", *files, "-o", str(tmp_path / "cli.czseg"), "-q",
                 "--n-estimators", "10"]) == 0  # fmt: skip
    from_cli = sm.open_model(tmp_path / "cli.czseg")
    both = sm.train_pixel_classifier([tmp_path / "a.tif", b], [la, tmp_path / "lb.tif"],
                                     n_estimators=10)  # fmt: skip
    one = sm.train_pixel_classifier(a, la, n_estimators=10)
    assert both.info["samples_per_class"] == from_cli.info["samples_per_class"]
    assert both.info["samples_per_class"] == [2 * n for n in one.info["samples_per_class"]]
    probe = b[None, None]
    np.testing.assert_array_equal(both.predict(probe), from_cli.predict(probe))


def test_images_and_labels_must_pair_up():
    (a, la), (b, _) = pair(1), pair(2)
    with pytest.raises(InvalidLabelsError, match="2 images need as many label images; got one"):
        sm.train_pixel_classifier([a, b], la)


def test_no_images_is_said_so():
    from scopeml.errors import InvalidImageError

    with pytest.raises(InvalidImageError, match="no images given to train on"):
        sm.train_pixel_classifier([], [])
