"""Scores for training and model evaluation: per-class pixel IoU/F1 and object-level F1."""

from __future__ import annotations

import numpy as np


def confusion_matrix(predicted: np.ndarray, targets: np.ndarray, n_classes: int) -> np.ndarray:
    """``K×K`` counts (row = target class, column = predicted class); targets ``< 0`` ignored.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, -1]), 2).tolist()
    [[1, 0], [0, 1]]
    """
    keep = targets >= 0
    index = targets[keep].astype(np.int64) * n_classes + predicted[keep].astype(np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_scores(confusion: np.ndarray) -> dict[str, list[float]]:
    """Per-class ``iou`` and ``f1`` from a confusion matrix (NaN for a class never seen).

    Examples
    --------
    >>> class_scores(np.array([[3, 1], [0, 4]]))["iou"]
    [0.75, 0.8]
    """
    confusion = confusion.astype(np.float64)
    hit = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - hit
    total = confusion.sum(axis=0) + confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, hit / union, np.nan)
        f1 = np.where(total > 0, 2 * hit / total, np.nan)
    return {"iou": [float(v) for v in iou], "f1": [float(v) for v in f1]}


def object_scores(
    predicted: np.ndarray, truth: np.ndarray, *, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Object-level precision, recall and F1: instances matched one-to-one at IoU ≥ threshold.

    Both inputs are instance label images (0 = background). Pairs are matched greedily in order
    of decreasing IoU, so each object is matched at most once.

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2, 2, 2]])
    >>> object_scores(np.array([[1, 1, 0, 0, 0, 3]]), truth)
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'matched': 1, 'predicted': 2, 'true': 2}
    """
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted shape {predicted.shape} != truth shape {truth.shape}")
    pred_ids, pred_inv = np.unique(predicted, return_inverse=True)
    true_ids, true_inv = np.unique(truth, return_inverse=True)
    pred_area = np.bincount(pred_inv.ravel())
    true_area = np.bincount(true_inv.ravel())
    both = (predicted.ravel() > 0) & (truth.ravel() > 0)
    pairs, inter = np.unique(
        np.stack([pred_inv.ravel()[both], true_inv.ravel()[both]]), axis=1, return_counts=True
    )
    iou = inter / (pred_area[pairs[0]] + true_area[pairs[1]] - inter)
    used_pred, used_true, matched = set(), set(), 0
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < iou_threshold:
            break
        p, t = int(pairs[0, k]), int(pairs[1, k])
        if p not in used_pred and t not in used_true:
            used_pred.add(p)
            used_true.add(t)
            matched += 1
    n_pred = int(np.count_nonzero(pred_ids))
    n_true = int(np.count_nonzero(true_ids))
    precision = matched / n_pred if n_pred else 0.0
    recall = matched / n_true if n_true else 0.0
    f1 = 2 * matched / (n_pred + n_true) if n_pred + n_true else 1.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "matched": matched,
        "predicted": n_pred,
        "true": n_true,
    }
