"""The server refuses a classifier upload with what a client can do instead."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidContainerError
from scopeml.model.registry import resolve_model
from scopeml.pixel import train_classifier
from scopeml.server.models import _refuse_classifier


def test_a_pixel_classifier_upload_is_refused_with_what_to_do(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (1, 32, 32)).astype(np.float32)
    image[:, 8:20, 8:20] += 200
    labels = np.zeros((32, 32), np.int32)
    labels[2:6, 2:6], labels[12:16, 12:16] = 1, 2
    clf = train_classifier(image, labels, features="gaussian_smoothing:1", classes=["bg", "fg"],
                           n_estimators=2, n_jobs=1, seed=0)  # fmt: skip
    path = clf.save(tmp_path / "own.czseg")
    with pytest.raises(InvalidContainerError) as err:
        _refuse_classifier(path)
    message = str(err.value)
    assert "is a scopeml pixel classifier" in message and "czann and legacy" in message
    assert "scopeml segment" in message and "--allowed-root" in message
    assert "loader" not in message
    _refuse_classifier(resolve_model("nuclei"))  # a model container passes
    garbage = tmp_path / "x.czann"
    garbage.write_bytes(b"not a zip")
    _refuse_classifier(garbage)  # left to the probe, which names its problem
