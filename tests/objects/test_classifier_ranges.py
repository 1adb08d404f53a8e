"""An object classifier keeps each feature's training range: a table far outside it (a
classifier trained on 8-bit images applied to a 16-bit movie put every nucleus in "bright",
without a word) is warned of; objects like the training ones are not; older files without
ranges still load, and damaged ranges are refused."""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from scopeml.errors import InvalidContainerError
from scopeml.objects import ObjectClassifier, load_object_classifier


def _table(seed: int, gain: float = 1.0) -> pd.DataFrame:
    """Dim and bright nuclei of 8-bit means (× ``gain``), of similar areas."""
    rng = np.random.default_rng(seed)
    mean = np.concatenate([rng.uniform(20, 80, 30), rng.uniform(150, 240, 30)])
    return pd.DataFrame({"area": rng.uniform(40, 90, 60), "intensity_mean_C0": mean * gain,
                         "kind": ["dim"] * 30 + ["bright"] * 30})  # fmt: skip


@pytest.fixture(scope="module")
def clf() -> ObjectClassifier:
    return ObjectClassifier.train(_table(0), "kind", n_estimators=10)


def test_objects_like_the_training_ones_are_classified_without_a_word(clf):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = clf.classify(_table(1).drop(columns="kind"))
    assert (out["class"] == _table(1)["kind"]).mean() > 0.9


def test_a_table_of_another_bit_depth_is_warned_of(clf):
    sixteen_bit = _table(1, gain=257).drop(columns="kind")
    with pytest.warns(
        UserWarning,
        match=r"60 of 60 objects lie far outside the range of "
        r"intensity_mean_C0 the classifier was trained on \(2\d\.\d+\.\.2\d\d",
    ):
        out = clf.classify(sixteen_bit)  # fmt: skip
    assert set(out["class"]) == {"bright"}  # what it said without a word


def test_ranges_are_saved_and_older_files_load_without(clf, tmp_path):
    path = clf.save(tmp_path / "c.czobj")
    assert load_object_classifier(path).ranges == clf.ranges
    old = tmp_path / "old.czobj"
    _rewrite(path, old, lambda meta: meta.pop("ranges"))
    assert load_object_classifier(old).ranges == {}
    bad = tmp_path / "bad.czobj"
    _rewrite(path, bad, lambda meta: meta["ranges"].update(area=[90, float("nan")]))
    with pytest.raises(InvalidContainerError, match="'ranges' must map features to"):
        load_object_classifier(bad)


def _rewrite(source, target, change) -> None:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "classifier.json":
                meta = json.loads(data)
                change(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item.filename, data)
