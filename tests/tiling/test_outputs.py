"""Output arrays from probabilities; options round-trip and are checked."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidRequestError
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.outputs import compute_outputs, label_dtype, output_specs


def test_labels_equal_argmax_with_ties_to_the_first_class():
    rng = np.random.default_rng(0)
    probabilities = rng.integers(0, 4, (5, 30, 20)).astype(np.float32)  # many ties
    specs = output_specs([f"c{i}" for i in range(5)], ["labels", "confidence"])
    out = compute_outputs(probabilities, specs)
    np.testing.assert_array_equal(out["labels"], probabilities.argmax(axis=0) + 1)
    np.testing.assert_array_equal(out["confidence"], probabilities.max(axis=0))
    assert out["labels"].dtype == np.uint8


def test_many_classes_get_a_wider_label_dtype():
    probabilities = np.zeros((300, 2, 2), np.float32)
    probabilities[299] = 1
    specs = output_specs([str(i) for i in range(300)], ["labels"])
    labels = compute_outputs(probabilities, specs)["labels"]
    assert labels.dtype == label_dtype(300) == np.uint16 and (labels == 300).all()


def test_options_round_trip_and_validation():
    options = SegmentOptions(outputs=("labels",), extract_class="fg", tile_size=(8, 64, 64))
    assert options.outputs == ("labels", "mask")
    assert SegmentOptions.from_dict(options.to_dict()) == options
    with pytest.raises(InvalidRequestError, match="unknown outputs"):
        SegmentOptions(outputs=("edges",))
    with pytest.raises(InvalidRequestError, match="mask output needs"):
        SegmentOptions(outputs=("mask",))
    with pytest.raises(InvalidRequestError, match="unknown options"):
        SegmentOptions.from_dict({"tilesize": 3})
    with pytest.raises(InvalidRequestError, match="min_confidence"):
        SegmentOptions(min_confidence=1.5)
