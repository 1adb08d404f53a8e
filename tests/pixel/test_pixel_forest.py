"""The array forest makes scikit-learn's decisions and refuses arrays it could not walk safely."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from scopeml.errors import InvalidContainerError
from scopeml.model.forest import Forest, _lead, bin_features, fit_forest, validate_arrays


@pytest.fixture(scope="module")
def fitted() -> tuple[RandomForestClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=600) > 0).astype(int) + 2 * (x[:, 2] > 1)
    return RandomForestClassifier(12, random_state=0).fit(x, y + 1), x


def test_same_leaves_and_probabilities_as_sklearn(fitted) -> None:
    rf, x = fitted
    forest = Forest.from_sklearn(rf, 5)
    # probe exactly at, just below and just above every float32-rounded threshold
    thresholds = np.concatenate([e.tree_.threshold[e.tree_.feature >= 0] for e in rf.estimators_])
    t32 = thresholds.astype(np.float32)
    probes = np.concatenate([t32, np.nextafter(t32, -np.inf), np.nextafter(t32, np.inf)])
    grid = np.repeat(probes[:, None], 5, axis=1).astype(np.float32)
    data = np.concatenate([x, grid])
    for (offset, tree), estimator in zip(forest._trees, rf.estimators_, strict=True):
        np.testing.assert_array_equal(tree.apply(data), estimator.tree_.apply(data))
        assert offset >= 0
    np.testing.assert_allclose(forest.predict_proba(data), rf.predict_proba(data), atol=1e-6)


def test_round_trip_through_arrays(fitted) -> None:
    rf, x = fitted
    forest = Forest.from_sklearn(rf, 5)
    again = Forest.from_arrays(forest.arrays(), n_features=5, n_classes=4)
    np.testing.assert_array_equal(again.predict_proba(x), forest.predict_proba(x))


def test_validation_names_the_defect(fitted) -> None:
    rf, _ = fitted
    arrays = Forest.from_sklearn(rf, 5).arrays()
    with pytest.raises(InvalidContainerError, match=r"m\.czseg: forest: a split feature index"):
        validate_arrays(arrays, n_features=4, n_classes=4, path="m.czseg")
    broken = dict(arrays, offsets=arrays["offsets"][::-1].copy())
    with pytest.raises(InvalidContainerError, match="offsets must start at 0"):
        validate_arrays(broken, n_features=5, n_classes=4)
    value = arrays["value"].copy()
    value[0, 0] = 2.0
    with pytest.raises(InvalidContainerError, match=r"\[0, 1\]"):
        validate_arrays(dict(arrays, value=value), n_features=5, n_classes=4)
    with pytest.raises(InvalidContainerError, match="missing arrays"):
        validate_arrays({"left": arrays["left"]}, n_features=5, n_classes=4)


def test_labels_equal_argmax_of_probabilities(fitted) -> None:
    rf, x = fitted
    forest = Forest.from_sklearn(rf, 5)
    spread = np.random.default_rng(2).normal(size=(5000, 5)).astype(np.float32) * 2
    data = np.concatenate([x, spread])
    np.testing.assert_array_equal(
        forest.predict_labels(data), np.argmax(forest.predict_proba(data), axis=1)
    )


def _stumps(votes_low: list[int]) -> Forest:
    """One stump per entry on feature 0 at 0.5: x <= 0.5 votes that class, x > 0.5 the other."""
    n = len(votes_low)
    value = np.zeros((3 * n, 2), np.float32)
    for t, k in enumerate(votes_low):
        value[3 * t + 1, k] = 1.0
        value[3 * t + 2, 1 - k] = 1.0
    arrays = {
        "offsets": np.arange(0, 3 * n + 1, 3),
        "depth": np.ones(n, np.int32),
        "left": np.tile(np.int32([1, -1, -1]), n),
        "right": np.tile(np.int32([2, -1, -1]), n),
        "feature": np.zeros(3 * n, np.int32),
        "threshold": np.tile(np.float32([0.5, 0, 0]), n),
        "value": value,
    }
    return Forest.from_arrays(arrays, n_features=1, n_classes=2)


def test_labels_skip_trees_only_when_the_winner_is_certain() -> None:
    # After three of four trees, class 1 leads 2:1 with one tree left: not yet certain. The last
    # tree makes it a tie, which argmax gives to class 0.
    forest = _stumps([1, 1, 0, 0])
    x = np.array([[0.0], [1.0]], np.float32)
    np.testing.assert_array_equal(forest.predict_proba(x), [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(forest.predict_labels(x), [0, 0])
    # five trees, the first three unanimous: decided early, and right
    np.testing.assert_array_equal(_stumps([1, 1, 1, 0, 0]).predict_labels(x), [1, 0])


def test_binning_in_threads_gives_the_same_edges_and_bins() -> None:
    rng = np.random.default_rng(6)
    x = np.asfortranarray(np.round(rng.normal(size=(5000, 7)), 3).astype(np.float32))
    edges, binned = bin_features(x)
    threaded_edges, threaded = bin_features(x, workers=3)
    assert len(threaded_edges) == 7
    for one, other in zip(edges, threaded_edges, strict=True):
        np.testing.assert_array_equal(one, other)
    np.testing.assert_array_equal(binned, threaded)
    assert binned.flags.f_contiguous and binned.max() == 255  # 256 bins: 255 edges


def test_labels_equal_argmax_with_an_odd_number_of_trees_and_three_classes() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 3)).astype(np.float32)
    y = np.digitize(x[:, 0] + 0.5 * rng.normal(size=2000), [-0.5, 0.5]) + 1
    forest, _ = fit_forest(
        x, y, n_estimators=7, max_depth=None, min_samples_leaf=1, n_jobs=1, seed=0
    )
    data = rng.normal(size=(20000, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        forest.predict_labels(data), np.argmax(forest.predict_proba(data), axis=1)
    )


def test_lead_is_zero_for_a_tie_at_the_top() -> None:
    sums = np.array([[3, 1, 0], [2, 2, 1], [0, 5, 4.5], [1, 1, 1]], np.float32)
    np.testing.assert_allclose(_lead(sums), [2, 0, 0.5, 0])
    np.testing.assert_allclose(_lead(sums[:, :2]), [2, 0, 5, 0])


def test_sklearn_tree_state_layout() -> None:
    """The one private scikit-learn API we use (``Tree.__setstate__`` in ``Forest``): fails
    loudly if an upgrade changes the state or node layout."""
    from sklearn.tree._tree import NODE_DTYPE

    rf = RandomForestClassifier(1, random_state=0).fit([[0.0], [1.0]], [1, 2])
    state = rf.estimators_[0].tree_.__getstate__()
    assert {"max_depth", "node_count", "nodes", "values"} <= set(state)
    assert {"left_child", "right_child", "feature", "threshold"} <= set(NODE_DTYPE.names)
    assert state["values"].shape[1:] == (1, 2)
