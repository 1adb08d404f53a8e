from __future__ import annotations

import numpy as np
import pytest

from scopeml.synthetic import synthetic_nuclei
from scopeml.train import nuclei_instances, nuclei_targets, object_scores


def _probabilities_from(targets: np.ndarray) -> np.ndarray:
    """Perfect one-hot probabilities K×Y×X for 3-class targets."""
    return np.stack([(targets == k).astype(np.float32) for k in range(3)])


def test_targets_and_instances_round_trip() -> None:
    # from exact targets, instances come back matching the truth, touching nuclei included
    _, instances = synthetic_nuclei((128, 128), density=0.003, cluster_fraction=0.6, seed=4)
    targets = nuclei_targets(instances)
    assert set(np.unique(targets)) == {0, 1, 2}
    assert np.array_equal(targets > 0, instances > 0)
    found = nuclei_instances(_probabilities_from(targets))
    scores = object_scores(found, instances)
    assert scores["true"] > 10
    assert scores["f1"] > 0.9


def test_boundary_splits_touching_nuclei() -> None:
    labels = np.zeros((20, 30), np.int32)
    labels[4:16, 3:15] = 1
    labels[4:16, 15:27] = 2
    probabilities = _probabilities_from(nuclei_targets(labels))
    found = nuclei_instances(probabilities)
    assert found.max() == 2
    assert np.array_equal(found > 0, labels > 0)  # the boundary ring is grown back
    # without the boundary class the two touching nuclei merge into one
    merged = np.stack([probabilities[0], probabilities[1] + probabilities[2]])
    assert nuclei_instances(merged).max() == 1


def test_instances_drop_small_seeds_and_check_classes() -> None:
    probabilities = np.zeros((2, 10, 10), np.float32)
    probabilities[0] = 1
    probabilities[:, 1:3, 1:3] = np.array([0, 1])[:, None, None]  # 4 pixels
    assert nuclei_instances(probabilities, min_size=5).max() == 0
    assert nuclei_instances(probabilities, min_size=4).max() == 1
    with pytest.raises(ValueError, match="4 classes"):
        nuclei_instances(np.zeros((4, 5, 5), np.float32))


def test_object_scores() -> None:
    truth = np.zeros((10, 10), np.int32)
    truth[0:4, 0:4], truth[6:10, 6:10] = 1, 2
    assert object_scores(truth * 3, truth)["f1"] == 1.0  # ids need not agree
    shifted = np.zeros_like(truth)
    shifted[0:4, 2:6] = 1  # IoU 8 / 24 with nucleus 1: no match
    scores = object_scores(shifted, truth)
    assert scores == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "matched": 0,
                      "predicted": 1, "true": 2}  # fmt: skip


def test_split_parts_nuclei_joined_at_a_neck() -> None:
    # two discs overlapping a little: one seed without a boundary class, two with split
    yy, xx = np.mgrid[:40, :60]
    joined = ((yy - 20) ** 2 + (xx - 18) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 <= 100)
    probabilities = np.stack([~joined, joined]).astype(np.float32)
    assert nuclei_instances(probabilities).max() == 1
    parted = nuclei_instances(probabilities, split=1.0)
    assert parted.max() == 2
    assert np.array_equal(parted > 0, joined)  # nothing lost, nothing added
    assert parted[20, 12] != parted[20, 42]
    # one elongated nucleus without a neck stays whole
    ellipse = ((yy - 20) / 8.0) ** 2 + ((xx - 30) / 20.0) ** 2 <= 1
    single = np.stack([~ellipse, ellipse]).astype(np.float32)
    assert nuclei_instances(single, split=1.0).max() == 1
