"""An object with a NaN or infinite feature gets no class: ``classify_objects`` gave a table's
missing ``area`` a class with probability 0.8 and no warning (new-user trial), the forest
taking NaN for 0. A parent without children (its children's mean NaN) is still classified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.objects import ObjectClassifier


@pytest.fixture(scope="module")
def clf() -> ObjectClassifier:
    table = pd.DataFrame({"area": [10, 12, 11, 50, 55, 52], "kind": list("sssLLL")})
    return ObjectClassifier.train(table, "kind", n_estimators=5)


def test_a_nonfinite_feature_gives_no_class_and_one_warning(clf):
    table = pd.DataFrame({"area": [1, np.nan, 60, np.inf]})
    with pytest.warns(UserWarning) as caught:
        out = sm.classify_objects(table, clf)
    assert [str(w.message) for w in caught] == [
        "2 of 4 objects have NaN or infinite features (area): they get no class (NaN class "
        "and probability)"
    ]
    assert out["class"].tolist()[::2] == ["s", "L"]
    assert out["class"].isna().tolist() == [False, True, False, True]
    assert out["class_probability"].isna().tolist() == [False, True, False, True]


def test_a_parent_without_children_is_still_classified():
    table = pd.DataFrame({"spot_count": [0, 0, 2, 3], "spot_area_mean": [np.nan, np.nan, 4, 5],
                          "kind": ["none", "none", "some", "some"]})  # fmt: skip
    clf = ObjectClassifier.train(table, "kind", n_estimators=5)
    with pytest.warns(UserWarning, match="1 of 3 objects have NaN"):
        out = clf.classify(pd.DataFrame({"spot_count": [0, 2, 2],
                                         "spot_area_mean": [np.nan, 4, np.nan]}))  # fmt: skip
    assert out["class"].tolist()[:2] == ["none", "some"]  # the last: children, mean unknown
    assert np.isnan(out["class_probability"][2])


def test_training_leaves_out_an_object_classifying_gives_no_class(clf):
    """It was trained on as 0 (its area): an object 0 µm² large taught "s", without a word."""
    table = pd.DataFrame({"area": [10, 12, np.nan, 50, 55, 52], "kind": list("sssLLL")})
    with pytest.warns(UserWarning, match=r"1 of 6 annotated objects have NaN or infinite "
                      r"features \(area\): left out of training"):  # fmt: skip
        trained = ObjectClassifier.train(table, "kind", n_estimators=5)
    again = ObjectClassifier.train(table.dropna(), "kind", n_estimators=5)
    probe = pd.DataFrame({"area": np.linspace(0, 60, 61)})
    np.testing.assert_array_equal(trained.predict_proba(probe), again.predict_proba(probe))
    table["area"] = np.inf
    with pytest.raises(sm.ScopeMLError, match="every annotated object has NaN or infinite"):
        ObjectClassifier.train(table, "kind", n_estimators=5)
