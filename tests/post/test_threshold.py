"""Confidence threshold on probability maps."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidRequestError
from scopeml.post import threshold_confidence


def test_argmax_and_threshold():
    rng = np.random.default_rng(0)
    prob = rng.dirichlet([1, 1, 1], size=(5, 7)).astype(np.float32)  # Y×X×K
    labels = threshold_confidence(prob, 0.5, channel_axis=-1)
    assert labels.shape == (5, 7) and labels.dtype == np.uint8
    expected = np.where(prob.max(-1) >= 0.5, prob.argmax(-1) + 1, 0)
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(threshold_confidence(prob, channel_axis=-1), prob.argmax(-1) + 1)


def test_many_classes_and_bad_threshold():
    prob = np.zeros((300, 2, 2), np.float32)
    prob[299] = 1
    assert threshold_confidence(prob).dtype == np.uint16
    assert threshold_confidence(prob).max() == 300
    with pytest.raises(InvalidRequestError, match="min_confidence"):
        threshold_confidence(prob, 1.5)
