"""A pixel classifier opened from its file (``sm.open_model``, napari's Apply) runs as that
file: the store records its sha256, so ``segment --resume`` with the file's path takes a
store the opened model wrote, and a saved classifier is its file from then on."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei


def _recorded_sha(store) -> str | None:
    return zarr.open_group(str(store), mode="r").attrs["scopeml"]["model"].get("sha256")


def test_an_opened_classifier_is_recorded_as_its_file(tmp_path) -> None:
    pixels, truth = synthetic_nuclei((96, 96), seed=3)
    labels = np.zeros(truth.shape, np.uint8)
    labels[::5, ::5] = (truth[::5, ::5] > 0) + 1
    features = "gaussian_smoothing:1;laplacian_of_gaussian:2"
    trained = sm.train_pixel_classifier(pixels, labels, n_estimators=5, features=features)
    assert trained.path is None  # not yet a file
    file = trained.save(tmp_path / "m.czseg")
    assert trained.path == file
    image = tmp_path / "image.tif"
    tifffile.imwrite(image, pixels[0])
    by_path = sm.segment(image, file, tmp_path / "by_path.ome.zarr")
    opened = sm.segment(image, sm.open_model(file), tmp_path / "opened.ome.zarr")
    assert _recorded_sha(opened) == _recorded_sha(by_path) is not None
    again = sm.segment(image, file, tmp_path / "opened.ome.zarr", resume=True)
    assert again.already_complete  # the store the opened model wrote is this run's
    np.testing.assert_array_equal(again.labels.read(), by_path.labels.read())


def test_a_resume_with_another_classifier_trained_in_the_session_is_refused(tmp_path) -> None:
    """Neither has a file: the store recorded the name only, and a resume with the second took
    the first one's labels as its own."""
    pixels, truth = synthetic_nuclei((96, 96), seed=3)
    labels = np.zeros(truth.shape, np.uint8)
    labels[::5, ::5] = (truth[::5, ::5] > 0) + 1
    features = "gaussian_smoothing:1;laplacian_of_gaussian:2"
    first = sm.train_pixel_classifier(pixels, labels, n_estimators=5, features=features)
    labels[labels == 2] = 0
    labels[40:44, 10:80] = 2
    second = sm.train_pixel_classifier(pixels, labels, n_estimators=5, features=features)
    out = tmp_path / "o.ome.zarr"
    sm.segment(pixels, first, out)
    again = sm.segment(pixels, first, out, resume=True)  # the same one: its own store
    assert again.already_complete
    with pytest.raises(sm.ScopeMLError, match="cannot resume: the output comes from a differ"):
        sm.segment(pixels, second, out, resume=True)
    recorded = zarr.open_group(str(out), mode="r").attrs["scopeml"]["model"]
    assert recorded["content_sha256"] == first.content_sha256() != second.content_sha256()


def test_a_run_recorded_before_classifiers_had_a_digest_still_resumes(tmp_path) -> None:
    """Its record has no digest: taken as the same run, as before (refused as "changed")."""
    pixels, truth = synthetic_nuclei((96, 96), seed=3)
    labels = np.zeros(truth.shape, np.uint8)
    labels[::5, ::5] = (truth[::5, ::5] > 0) + 1
    trained = sm.train_pixel_classifier(pixels, labels, n_estimators=5,
                                        features="gaussian_smoothing:1")  # fmt: skip
    out = tmp_path / "o.ome.zarr"
    first = sm.segment(pixels, trained, out)
    group = zarr.open_group(str(out), mode="r+")
    record = dict(group.attrs["scopeml"])
    record["model"] = {k: v for k, v in record["model"].items() if k != "content_sha256"}
    group.attrs["scopeml"] = record
    again = sm.segment(pixels, trained, out, resume=True)
    assert again.already_complete
    np.testing.assert_array_equal(again.labels.read(), first.labels.read())
