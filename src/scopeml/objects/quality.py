"""How good an object classifier is, from its own training, with no objects held back: each
annotated object judged by the trees that did not train on it (scikit-learn's out-of-bag
votes), per class and overall, and the features that decide most (the forest's impurity
importances). A few clicked objects per class is all a user gives, so none are spared for a
test set; the out-of-bag estimate is the forest's own honest one (ilastik and CellProfiler
Analyst show the same kind of figure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scopeml.errors import count

__all__ = ["check_quality", "forest_quality", "quality_text"]

#: Features named in the text, the most deciding first.
TOP_FEATURES = 3


def forest_quality(
    forest: Any, x: np.ndarray, y: np.ndarray, classes: Sequence[str], features: Sequence[str]
) -> dict[str, Any]:
    """The quality of a scikit-learn forest fitted with ``oob_score=True`` on classes ``y``
    (indices into ``classes``): ``oob_accuracy``, ``oob_balanced_accuracy`` (the mean of the
    classes' recalls: a rare class counts as much as a common one), ``oob_recall`` per class,
    ``oob_objects`` (those some tree left out: with few trees, not all), ``oob_unjudged``
    (per class, its objects no tree judged: a class of one object often; the balanced
    accuracy is then of the classes judged), ``repeats`` (objects whose features repeat
    another's, which the trees have seen after all: the estimate is optimistic) and
    ``importances`` per feature, largest first. Without out-of-bag votes for half the
    objects, no accuracy.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> x = np.r_[np.arange(20), np.arange(50, 70)][:, None].astype(float)
    >>> y = np.r_[np.zeros(20, int), np.ones(20, int)]
    >>> forest = RandomForestClassifier(30, oob_score=True, random_state=0).fit(x, y)
    >>> quality = forest_quality(forest, x, y, ["small", "large"], ["area"])
    >>> quality["oob_accuracy"], quality["oob_recall"], quality["importances"]
    (1.0, {'small': 1.0, 'large': 1.0}, {'area': 1.0})
    """
    order = np.argsort(forest.feature_importances_)[::-1]
    quality: dict[str, Any] = {
        "importances": {str(features[i]): float(forest.feature_importances_[i]) for i in order}
    }
    copies = np.unique(x, axis=0, return_counts=True)[1] if len(x) else np.zeros(0, int)
    if (copies > 1).any():  # the same features twice: one of them trained the tree judging it
        quality["repeats"] = int(copies[copies > 1].sum())
    votes = np.asarray(getattr(forest, "oob_decision_function_", np.zeros((0, 0))))
    scored = np.isfinite(votes).all(1) & (votes.sum(1) > 0) if votes.size else np.zeros(0, bool)
    if scored.sum() * 2 < len(y) or not scored.any():
        return quality
    guessed, truth = votes[scored].argmax(1), np.asarray(y)[scored]
    recall = {str(classes[k]): float(np.mean(guessed[truth == k] == k))
              for k in range(len(classes)) if (truth == k).any()}  # fmt: skip
    every = np.asarray(y)
    unjudged = {str(classes[k]): int((every == k).sum()) for k in range(len(classes))
                if (every == k).any() and not (truth == k).any()}  # fmt: skip
    quality.update(
        oob_accuracy=float(np.mean(guessed == truth)),
        oob_balanced_accuracy=float(np.mean(list(recall.values()))),
        oob_recall=recall,
        oob_objects=int(scored.sum()),
        **({"oob_unjudged": unjudged} if unjudged else {}),
    )
    return quality


def quality_text(quality: dict[str, Any]) -> str:
    """One line for a person: ``out-of-bag accuracy 0.92 (balanced 0.88: small 0.95, large
    0.81; 40 objects); deciding most: area_um2 0.41, solidity 0.22, eccentricity 0.12``.

    Examples
    --------
    >>> quality_text({"oob_accuracy": 0.9, "oob_balanced_accuracy": 0.85, "oob_objects": 8,
    ...               "oob_recall": {"a": 1.0, "b": 0.7}, "importances": {"area": 0.6}})
    'out-of-bag accuracy 0.90 (balanced 0.85: a 1.00, b 0.70; 8 objects); deciding most: area 0.60'
    """
    said = []
    if "oob_accuracy" in quality:
        recall = ", ".join(f"{name} {value:.2f}" for name, value in quality["oob_recall"].items())
        unjudged = quality.get("oob_unjudged") or {}
        if unjudged:  # a class of one or two objects no tree left out
            recall += "; not judged: " + ", ".join(
                f"{name} ({count(n, 'object')})" for name, n in unjudged.items()
            )
        said.append(f"out-of-bag accuracy {quality['oob_accuracy']:.2f} (balanced "
                    f"{quality['oob_balanced_accuracy']:.2f}: {recall}; "
                    f"{quality['oob_objects']} objects)")  # fmt: skip
        if quality.get("repeats"):
            said.append(f"{count(quality['repeats'], 'object')} repeat another's features "
                        "(copies?): the trees saw them, the estimate is optimistic")  # fmt: skip
    else:
        said.append("out-of-bag accuracy: too few trees or objects to say")
    top = list(quality.get("importances", {}).items())[:TOP_FEATURES]
    if top:
        said.append("deciding most: " + ", ".join(f"{name} {value:.2f}" for name, value in top))
    return "; ".join(said)


def check_quality(value: Any, features: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """A classifier file's recorded quality, kept only where well formed (it only informs:
    a file saved before, or edited, has none): numbers in 0–1 keyed by its own features and
    classes."""
    if not isinstance(value, dict):
        return {}

    def fractions(named: Any, names: Sequence[str]) -> dict[str, float] | None:
        if not isinstance(named, dict) or not set(named) <= set(names):
            return None
        good = all(_fraction(v) for v in named.values())
        return {str(k): float(v) for k, v in named.items()} if good else None

    importances = fractions(value.get("importances"), features)
    quality: dict[str, Any] = {"importances": importances} if importances else {}
    recall = fractions(value.get("oob_recall"), classes)
    numbers = [value.get(k) for k in ("oob_accuracy", "oob_balanced_accuracy")]
    objects = value.get("oob_objects")
    if recall and all(_fraction(v) for v in numbers) and isinstance(objects, int) and objects > 0:
        quality.update(oob_accuracy=float(numbers[0]), oob_balanced_accuracy=float(numbers[1]),
                       oob_recall=recall, oob_objects=objects)  # fmt: skip
        unjudged = value.get("oob_unjudged")
        if _counts(unjudged) and set(unjudged) <= set(classes):
            quality["oob_unjudged"] = {str(k): int(v) for k, v in unjudged.items()}
    if _counts({"repeats": value.get("repeats")}):
        quality["repeats"] = int(value["repeats"])
    return quality


def _counts(named: Any) -> bool:
    return (
        isinstance(named, dict)
        and bool(named)
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in named.values())
    )


def _fraction(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (math.isfinite(value) and 0 <= value <= 1)
    )
