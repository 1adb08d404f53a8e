"""FeatureCache: training's block features reused in prediction, never stale, within budget."""

from __future__ import annotations

import numpy as np

import scopeml.pixel._classifier as classifier_module
from scopeml.pixel import FeatureCache, train_classifier

from .conftest import sparse_labels

FEATURES = "gaussian_smoothing:0.7,1.6;hessian_of_gaussian_eigenvalues:1.6"


def _train(image: np.ndarray, truth: np.ndarray, cache: FeatureCache | None):
    return train_classifier(
        image,
        sparse_labels(truth, 0.05, seed=2),
        features=FEATURES,
        n_estimators=6,
        n_jobs=2,
        seed=0,
        cache=cache,
    )


def test_prediction_reuses_training_features_with_the_same_result(
    nuclei: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    image, truth = nuclei
    monkeypatch.setitem(classifier_module.BLOCK, 2, 40)  # 3×3 blocks, every one labelled
    plain = _train(image, truth, None)
    cache = FeatureCache()
    clf = _train(image, truth, cache)
    assert cache.hits == 0 and cache.misses == 9 and cache.nbytes > 0
    for name, array in plain.forest.arrays().items():  # the same forest as without a cache
        np.testing.assert_array_equal(clf.forest.arrays()[name], array)
    labels = clf.predict_labels(image, cache=cache)
    assert cache.hits == 9 and cache.misses == 9
    np.testing.assert_array_equal(labels, plain.predict_labels(image))


def test_a_changed_image_is_never_given_stale_features(
    nuclei: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    image, truth = nuclei
    monkeypatch.setitem(classifier_module.BLOCK, 2, 40)
    image = image.copy()
    cache = FeatureCache()
    clf = _train(image, truth, cache)
    image[0, 50:60, 90:100] = image.max()  # in place: the same array, one block changed
    labels = clf.predict_labels(image, cache=cache)
    assert (cache.hits, cache.misses) == (8, 10)
    np.testing.assert_array_equal(labels, clf.predict_labels(image))
    # another image of the same shape: every block computed afresh
    other = image[:, ::-1, ::-1].copy()
    np.testing.assert_array_equal(clf.predict_labels(other, cache=cache), clf.predict_labels(other))
    assert cache.hits == 8


def test_the_budget_bounds_what_is_kept(nuclei: tuple[np.ndarray, np.ndarray], monkeypatch) -> None:
    image, truth = nuclei
    monkeypatch.setitem(classifier_module.BLOCK, 2, 40)
    full = FeatureCache()
    _train(image, truth, full)
    budget = full.nbytes // 2
    cache = FeatureCache(max_bytes=budget)
    clf = _train(image, truth, cache)
    assert 0 < cache.nbytes <= budget
    labels = clf.predict_labels(image, cache=cache)
    assert 0 < cache.hits < 9
    np.testing.assert_array_equal(labels, clf.predict_labels(image))
    cache.clear()
    assert cache.nbytes == 0
    np.testing.assert_array_equal(clf.predict_labels(image, cache=cache), labels)


def test_retraining_on_the_same_image_reuses_the_features(
    nuclei: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    image, truth = nuclei
    monkeypatch.setitem(classifier_module.BLOCK, 2, 40)
    cache = FeatureCache()
    _train(image, truth, cache)
    more = sparse_labels(truth, 0.1, seed=3)  # more labels, as a user adds scribbles
    again = train_classifier(image, more, features=FEATURES, n_estimators=6, seed=0, cache=cache)
    assert (cache.hits, cache.misses) == (9, 9)
    plain = train_classifier(image, more, features=FEATURES, n_estimators=6, seed=0)
    for name, array in plain.forest.arrays().items():
        np.testing.assert_array_equal(again.forest.arrays()[name], array)
