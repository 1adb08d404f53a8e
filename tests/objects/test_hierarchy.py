"""Hierarchical classes: children inside parents, parent ids, per-parent aggregates."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidRequestError
from scopeml.objects import (
    ObjectClass,
    assign_parents,
    measure_hierarchy,
    model_segmenter,
    threshold_segmenter,
)


def _cells_with_spots() -> tuple[np.ndarray, dict[int, int]]:
    """Three square cells (0.3) with 0, 1 and 3 bright spots (0.9); a spot outside any cell."""
    image = np.zeros((1, 40, 100), np.float32)
    spots = {}
    for cell, (x0, n) in enumerate([(2, 0), (35, 1), (68, 3)], start=1):
        image[0, 5:35, x0 : x0 + 28] = 0.3
        for k in range(n):
            image[0, 8 + 9 * k : 12 + 9 * k, x0 + 5 : x0 + 9] = 0.9
        spots[cell] = n
    image[0, 37:39, 50:52] = 0.9  # a spot in the background
    return image, spots


def test_children_reference_parents_and_parents_count_children():
    image, spots = _cells_with_spots()
    hierarchy = ObjectClass(
        "cell",
        threshold_segmenter(0.2, min_size=50),
        children=(ObjectClass("spot", threshold_segmenter(0.6)),),
    )
    tables = measure_hierarchy(image, hierarchy)
    cells, found = tables["cell"], tables["spot"]
    assert cells["spot_count"].tolist() == [spots[c] for c in (1, 2, 3)]
    assert len(found) == 4  # the background spot is outside every cell: not segmented
    assert set(found["parent_label"]) == {2, 3}
    assert cells["spot_area_mean"].tolist()[1:] == [16.0, 16.0]
    assert np.isnan(cells["spot_area_mean"][0]) and cells["spot_area_sum"][0] == 0
    # cells are the image's cells, not the spots too
    assert cells["area"].tolist() == [30 * 28] * 3


def test_assign_parents_overlap_and_centroid():
    parents = np.zeros((10, 10), np.int32)
    parents[:, :5], parents[:, 5:] = 1, 2
    child = np.zeros((10, 10), np.int32)
    child[2:4, 3:9] = 7  # 2 columns in parent 1, 4 in parent 2; centroid x = 5.5 → parent 2
    child[8, 0:2] = 8
    child[8, 2] = 0
    overlap = assign_parents(child, parents)
    assert overlap.to_numpy().tolist() == [[7, 2], [8, 1]]
    child[2:4, 3:9] = 0
    child[2:4, 1:4] = 7  # 3 columns, all in parent 1
    centroid = assign_parents(child, parents, method="centroid")
    assert centroid.to_numpy().tolist() == [[7, 1], [8, 1]]
    with pytest.raises(InvalidRequestError, match="unknown method"):
        assign_parents(child, parents, method="nearest")


def test_model_segmenter_uses_the_model_protocol():
    from scopeml.model.spec import ModelSpec

    class Brightness:
        """A 'model' whose 'bright' probability is the pixel value."""

        spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("dark", "bright"), halo=(0, 0))

        def predict(self, batch: np.ndarray) -> np.ndarray:
            return np.concatenate([1 - batch, batch], axis=1)

    image = np.array([[[0.1, 0.8], [0.6, 0.3]]], np.float32)
    mask = model_segmenter(Brightness(), "bright")(image)  # by name …
    assert mask.tolist() == [[False, True], [True, False]]
    np.testing.assert_array_equal(model_segmenter(Brightness(), 2)(image), mask)  # … or value
    assert model_segmenter(Brightness(), 2, min_confidence=0.7)(image).sum() == 1
    with pytest.raises(InvalidRequestError, match="no label value 0"):
        model_segmenter(Brightness(), 0)  # a 0-based index is not a third convention


def test_duplicate_class_names_are_rejected():
    seg = threshold_segmenter(0.5)
    tree = ObjectClass("a", seg, children=(ObjectClass("a", seg),))
    with pytest.raises(InvalidRequestError, match="used twice"):
        measure_hierarchy(np.zeros((1, 4, 4)), tree)
