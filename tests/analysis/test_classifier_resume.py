"""A retrained object classifier on a resume (ilastik's train, look, annotate more, train
again): the finished images' tables take its classes without being segmented again, exactly
as a new analysis with it would write them, and the next resume finds nothing to redo."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from scopeml.analysis import run_analysis
from scopeml.objects.classifier import ObjectClassifier
from tests.analysis import test_rules_resume
from tests.analysis.test_rules import settings
from tests.analysis.test_rules_resume import BRIGHT, _files, _stamps

images = test_rules_resume.images  # the same two fields, as a fixture here


def _with(classifier: Path | None = None, rules: dict | None = None) -> dict:
    data = {**settings(rules or {}), "outputs": {"parquet": True}}
    if classifier is not None:
        data["classes"][1]["classifier"] = str(classifier)
    return data


def _train(table, path: Path, cutoff: float) -> Path:
    """A classifier told 'big' from 'small' by an area cutoff, saved at ``path``."""
    annotated = table.assign(kind=(table["area"] >= cutoff).map({True: "big", False: "small"}))
    ObjectClassifier.train(annotated, "kind", features=["area", "intensity_mean_GFP"],
                           n_estimators=5).save(path, overwrite=True)  # fmt: skip
    return path


def test_a_retrained_classifier_file_reclassifies_the_finished_tables(images, tmp_path):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    first = run_analysis(_with(), images, tmp_path / "plain").table("nucleus")
    model = _train(first, tmp_path / "kinds.zip", first["area"].quantile(0.2))
    run_analysis(_with(model), images, out)
    stamps = _stamps(out)
    _train(first, model, first["area"].quantile(0.8))  # annotated again, the same file
    with pytest.warns(UserWarning, match="changed since") as caught:
        result = run_analysis(_with(model), images, out, resume=True)
    said = str(caught[0].message)
    assert said.startswith(
        f"the classifier file {model} (class 'nucleus') changed since the "
        "finished images were classified"
    )
    assert "applied to the tables of 2 finished images without segmenting them again" in said
    assert result.resumed == 2 and result.reclassified == said
    assert {k: v for k, v in _stamps(out).items() if not k.endswith("record.json")} == {
        k: v for k, v in stamps.items() if not k.endswith("record.json")}  # fmt: skip
    run_analysis(_with(model), images, fresh)
    assert _files(out) == _files(fresh)  # classes, probabilities and counts, to the byte
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the records name the new file: nothing to redo
        again = run_analysis(_with(model), images, out, resume=True)
    assert again.reclassified is None and _files(out) == _files(fresh)


@pytest.mark.parametrize("way", ["another file", "from rules", "to rules"])
def test_another_classifier_or_rules_in_the_settings_reclassify(images, tmp_path, way):
    first = run_analysis(_with(), images, tmp_path / "plain").table("nucleus")
    one = _train(first, tmp_path / "one.zip", first["area"].quantile(0.3))
    two = _train(first, tmp_path / "two.zip", first["area"].quantile(0.7))
    before, after, key = {
        "another file": (_with(one), _with(two), "a classifier change (classes[1].classifier: "),
        "from rules": (_with(rules=BRIGHT), _with(two), "a classifier change (classes[1]."),
        "to rules": (
            _with(one),
            _with(rules=BRIGHT),
            "a classifier change (classes[1].classifier:",
        ),
    }[way]
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_analysis(before, images, out)
    with pytest.warns(UserWarning, match="without segmenting them again") as caught:
        run_analysis(after, images, out, resume=True)
    assert str(caught[0].message).startswith(key), str(caught[0].message)
    run_analysis(after, images, fresh)
    assert _files(out) == _files(fresh)


def test_a_classifier_taken_away_and_given_back_is_applied_again(images, tmp_path):
    """The records said the file had classified the tables after the classifier was taken
    away, so giving it back changed nothing; and its warnings follow the tables."""
    first = run_analysis(_with(), images, tmp_path / "plain").table("nucleus")
    model = _train(first, tmp_path / "kinds.zip", first["area"].quantile(0.5))
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_analysis(_with(model), images, out)
    for then in (_with(rules=BRIGHT), _with()):
        with pytest.warns(UserWarning, match="without segmenting them again"):
            run_analysis(then, images, out, resume=True)
        with pytest.warns(UserWarning, match="the object classes changed in 2"):
            run_analysis(_with(model), images, out, resume=True)
    run_analysis(_with(model), images, fresh)
    assert _files(out) == _files(fresh)


def test_the_records_keep_the_new_classifiers_warnings(images, tmp_path):
    import json

    first = run_analysis(_with(), images, tmp_path / "plain").table("nucleus")
    near = _train(first, tmp_path / "near.zip", first["area"].quantile(0.5))
    far = first.assign(area=first["area"] * 1000, intensity_mean_GFP=first[
        "intensity_mean_GFP"] * 1000)  # fmt: skip
    far = _train(far, tmp_path / "far.zip", far["area"].quantile(0.5))
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    run_analysis(_with(near), images, out)
    with pytest.warns(UserWarning):
        run_analysis(_with(far), images, out, resume=True)
    with pytest.warns(UserWarning):
        run_analysis(_with(far), images, fresh)

    def said(folder: Path) -> list[list[str]]:
        return [json.loads(p.read_text()).get("warnings") for p in sorted(
            folder.glob("images/*/record.json"))]  # fmt: skip

    assert said(out) == said(fresh) and any("far outside the range" in w for w in said(out)[0])
    assert (out / "summary" / "warnings.csv").read_text() == (
        fresh / "summary" / "warnings.csv").read_text()  # fmt: skip
