"""An object classifier says how far to trust it: out-of-bag accuracy per class and overall
(each annotated object judged by the trees that did not train on it), and the features that
decide most; kept in its file, said by ``objects train`` and napari."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd

from scopeml.cli import main
from scopeml.objects.classifier import ObjectClassifier, load_object_classifier


def _table(seed: int = 0, n: int = 60) -> pd.DataFrame:
    """Two kinds by area (well apart) and a feature of noise."""
    rng = np.random.default_rng(seed)
    kind = np.where(np.arange(n) < n // 2, "small", "large")
    area = np.where(kind == "small", rng.normal(50, 5, n), rng.normal(150, 10, n))
    return pd.DataFrame({"area": area, "noise": rng.normal(0, 1, n), "kind": kind})


def test_separable_classes_score_high_and_the_deciding_feature_comes_first():
    clf = ObjectClassifier.train(_table(), "kind", n_estimators=50)
    quality = clf.quality
    assert quality["oob_accuracy"] == quality["oob_balanced_accuracy"] == 1.0
    assert set(quality["oob_recall"]) == {"small", "large"}
    assert next(iter(quality["importances"])) == "area" and quality["oob_objects"] == 60
    guessed = ObjectClassifier.train(_table().drop(columns="area"), "kind", n_estimators=50)
    assert guessed.quality["oob_accuracy"] < 0.75  # noise tells the kinds apart by chance only


def test_the_quality_is_kept_in_the_file_and_a_bad_one_is_dropped(tmp_path):
    clf = ObjectClassifier.train(_table(), "kind", n_estimators=20)
    path = clf.save(tmp_path / "kinds.zip")
    assert load_object_classifier(path).quality == clf.quality
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members["classifier.json"])
    meta["quality"] = {"oob_accuracy": 7, "importances": {"area": "x"}, "oob_recall": []}
    members["classifier.json"] = json.dumps(meta).encode()
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(edited, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert load_object_classifier(edited).quality == {}  # informs only: not trusted, not fatal


def test_objects_train_says_how_far_to_trust_it(tmp_path, capsys):
    _table().to_csv(tmp_path / "annotated.csv", index=False)
    args = ["objects", "train", str(tmp_path / "annotated.csv"), "--class-column", "kind"]
    assert main([*args, "-o", str(tmp_path / "k.zip"), "--n-estimators", "30"]) == 0
    said = capsys.readouterr().out.splitlines()[-1]
    assert said.startswith("out-of-bag accuracy 1.00 (balanced 1.00: ")
    assert "60 objects); deciding most: area " in said
    assert main([*args, "-o", str(tmp_path / "few.zip"), "--n-estimators", "1"]) == 0
    assert "too few trees or objects to say" in capsys.readouterr().out


def test_a_class_no_tree_judged_and_repeated_objects_are_said():
    """A class of one annotated object is often left out by no tree: it vanished from the
    classes listed, and the balanced accuracy was of the others without a word; copies of
    an object (a field and its flipped copy) made the estimate 1.00."""
    from scopeml.objects.quality import quality_text

    table = _table()
    table.loc[0, "kind"] = "odd"  # one object of its own class
    quality = ObjectClassifier.train(table, "kind", n_estimators=50).quality
    assert "odd" not in quality["oob_recall"] and quality["oob_unjudged"] == {"odd": 1}
    assert "not judged: odd (1 object); 59 objects)" in quality_text(quality)
    copied = pd.concat([_table(), _table()], ignore_index=True)
    said = quality_text(ObjectClassifier.train(copied, "kind", n_estimators=20).quality)
    assert "120 objects repeat another's features (copies?)" in said
