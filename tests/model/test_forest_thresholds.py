"""A forest fitted on bins (:func:`fit_forest`) splits raw features where scikit-learn does:
midway between the node's training values either side, not at the top value of the lower side.
With one value per bin it is scikit-learn's forest fitted on the raw features, decision for
decision, at and around every threshold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from scopeml.model.forest import bin_features, fit_forest

SETTINGS = {"n_estimators": 9, "max_depth": None, "min_samples_leaf": 1, "seed": 3}


def sklearn_forest(x: np.ndarray, y: np.ndarray, **changes) -> RandomForestClassifier:
    """scikit-learn's forest with :func:`fit_forest`'s settings."""
    settings = {**SETTINGS, **changes}
    return RandomForestClassifier(
        settings["n_estimators"],
        max_depth=settings["max_depth"],
        min_samples_leaf=settings["min_samples_leaf"],
        class_weight="balanced",
        random_state=settings["seed"],
        n_jobs=1,
    ).fit(x, y)


def around(values: np.ndarray) -> np.ndarray:
    """float32 values at, just below and just above each of ``values``."""
    v = np.asarray(values).astype(np.float32)
    return np.concatenate([v, np.nextafter(v, np.float32(-np.inf)), np.nextafter(v, np.inf)])


def test_separable_noisy_classes_split_midway_as_sklearn() -> None:
    # the engineer's case: one feature, two noisy classes far apart
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0, 1, 300), rng.uniform(2, 3, 300)]).astype(np.float32)
    y = np.repeat([1, 2], 300)
    forest, _ = fit_forest(x[:, None], y, n_jobs=1, **SETTINGS)
    top_low, bottom_high = x[:300].max(), x[300:].min()
    # every tree's root splits inside the gap, near its middle (a bootstrap may miss the
    # values at its edges), as scikit-learn's do
    arrays = forest.arrays()
    roots = arrays["threshold"][arrays["offsets"][:-1]]
    assert np.all((roots > top_low + 0.3) & (roots < bottom_high - 0.3)), roots
    rf = sklearn_forest(x[:, None], y)
    sklearn_roots = np.array([e.tree_.threshold[0] for e in rf.estimators_])
    assert np.all((roots <= sklearn_roots) & (sklearn_roots < np.nextafter(roots, np.inf)))
    # unpainted values just above the lower class are the lower class
    probes = np.linspace(top_low, bottom_high, 41, dtype=np.float32)[:, None]
    labels = forest.predict_labels(probes)
    assert labels[probes[:, 0] < 1.4].max() == 0 and labels[probes[:, 0] > 1.6].min() == 1
    np.testing.assert_array_equal(labels, rf.predict(probes) - 1)


@pytest.mark.parametrize("min_samples_leaf", [1, 4])
def test_one_value_per_bin_is_sklearns_raw_forest_at_and_around_every_threshold(
    min_samples_leaf: int,
) -> None:
    rng = np.random.default_rng(1)
    x = (rng.integers(-40, 40, (2000, 4)) / 8).astype(np.float32)  # 80 values a feature
    x[:, 3] = rng.integers(0, 3, 2000) * 1000.0  # a feature with three values, far apart
    y = (x[:, 0] + 0.7 * x[:, 1] * (x[:, 3] > 0) + 0.4 * rng.normal(size=2000) > 0.3) + 1
    y[x[:, 2] > 1.2] = 3
    _, binned = bin_features(x)
    assert all(len(np.unique(x[:, j])) == len(np.unique(binned[:, j])) for j in range(4))
    settings = {**SETTINGS, "min_samples_leaf": min_samples_leaf}
    forest, _ = fit_forest(np.asfortranarray(x), y, n_jobs=1, **settings)
    rf = sklearn_forest(x, y, min_samples_leaf=min_samples_leaf)
    arrays = forest.arrays()
    thresholds = []
    for t, estimator in enumerate(rf.estimators_):
        tree, lo, hi = estimator.tree_, arrays["offsets"][t], arrays["offsets"][t + 1]
        np.testing.assert_array_equal(arrays["left"][lo:hi], tree.children_left)
        inner = tree.children_left != -1
        np.testing.assert_array_equal(arrays["feature"][lo:hi][inner], tree.feature[inner])
        thresholds.append(tree.threshold[inner])
    thresholds = np.concatenate(thresholds)
    # probes at, just below and just above every threshold (and the values either side)
    near = around(np.concatenate([thresholds, x.ravel()]))
    probes = np.concatenate([rng.choice(near, (6000, 4)), rng.normal(size=(2000, 4)) * 2])
    probes = probes.astype(np.float32)
    np.testing.assert_allclose(forest.predict_proba(probes), rf.predict_proba(probes), atol=1e-6)
    np.testing.assert_array_equal(forest.predict_labels(probes), rf.predict(probes) - 1)


def test_many_values_per_bin_training_samples_go_where_they_went_in_training() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 3)).astype(np.float32)  # 4000 values a feature: shared bins
    y = (x[:, 0] + x[:, 1] + 0.5 * rng.normal(size=4000) > 0) + 1
    forest, _ = fit_forest(np.asfortranarray(x), y, n_jobs=1, **SETTINGS)
    threaded, _ = fit_forest(np.asfortranarray(x), y, n_jobs=2, **SETTINGS)
    for name, array in forest.arrays().items():  # thresholds placed in threads: the same
        np.testing.assert_array_equal(threaded.arrays()[name], array)
    edges, binned = bin_features(x)
    assert all(len(e) == 255 for e in edges)
    on_bins = sklearn_forest(binned, y)
    arrays = forest.arrays()
    for t, ((_, tree), samples) in enumerate(
        zip(forest._trees, on_bins.estimators_samples_, strict=True)
    ):
        # each tree's own (in-bag) samples reach the leaves they reached on bins
        bins_tree = on_bins.estimators_[t].tree_
        np.testing.assert_array_equal(tree.apply(x[samples]), bins_tree.apply(binned[samples]))
        # and each split lies strictly between its node's samples either side (midway)
        lo = arrays["offsets"][t]
        paths = bins_tree.decision_path(binned[samples]).tocsc()
        for node in np.flatnonzero(bins_tree.children_left != -1)[:40]:
            here = samples[paths[:, node].indices]
            f, threshold = bins_tree.feature[node], arrays["threshold"][lo + node]
            going_left = binned[here, f] <= bins_tree.threshold[node]
            a, b = x[here[going_left], f].max(), x[here[~going_left], f].min()
            midway = np.float64(a) / 2.0 + np.float64(b) / 2.0  # scikit-learn's rule
            assert a <= threshold <= midway < np.nextafter(threshold, np.float32(np.inf)) <= b
