"""Pixel classifier against scikit-image's trainable segmentation, on the same data.

Baseline: ``skimage.feature.multiscale_basic_features`` + ``skimage.future.fit_segmenter`` /
``predict_segmenter`` with a scikit-learn ``RandomForestClassifier``. Ours:
``scopeml.pixel.train_classifier`` + ``PixelClassifier.predict_labels``. Same image (synthetic
nuclei with exact ground truth), same sparse labels, same forest settings (trees, depth, balanced
class weights, seed), same thread count. Prints accuracy side by side and the ratio of our time
to theirs per stage and overall.

Stages differ in what they hold: scikit-image computes the features of the whole image once and
reuses them to fit and predict; scopeml computes features inside training (only in blocks that
hold labels) and again inside prediction (block by block, so memory does not grow with the
image). "features" times scopeml's feature pass over the whole image by itself, for comparison;
"train" and "predict" are the user-facing calls and include their feature passes.

Run: ``python bench/bench_pixel.py [--size 4096] [--trees 32] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _labels(truth: np.ndarray, fraction: float, mode: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(truth.shape, np.uint8)
    if mode == "points":
        pick = rng.random(truth.shape) < fraction
    else:  # scribbles: short horizontal strokes, as a person drags a brush
        pick = np.zeros(truth.shape, bool)
        length = 24
        n = int(fraction * truth.size / length)
        ys = rng.integers(0, truth.shape[0], n)
        xs = rng.integers(0, truth.shape[1] - length, n)
        for y, x in zip(ys, xs, strict=True):
            pick[y, x : x + length] = True
    labels[pick] = truth[pick]
    return labels


def _scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = np.sum((pred == 2) & (truth == 2))
    return float(np.mean(pred == truth)), float(2 * tp / (np.sum(pred == 2) + np.sum(truth == 2)))


def _our_features(image: np.ndarray, jobs: int) -> float:
    from scopeml.features import BASIC25, compute_features
    from scopeml.pixel._blocks import iter_blocks

    blocks = list(iter_blocks(image.shape[1:], 512, BASIC25.halo))
    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        for _ in pool.map(lambda b: compute_features(image[(slice(None), *b[0])], BASIC25), blocks):
            pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--trees", type=int, default=32)
    parser.add_argument("--max-depth", type=int, default=None)
    parser.add_argument("--fraction", type=float, default=0.005, help="labelled pixel fraction")
    parser.add_argument("--labels", choices=("points", "scribbles"), default="points")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    from scopeml.pixel import train_classifier
    from scopeml.synthetic import synthetic_nuclei

    image, instances = synthetic_nuclei((args.size, args.size), seed=0)
    image = image.astype(np.float32)
    truth = (instances > 0).astype(np.uint8) + 1
    labels = _labels(truth, args.fraction, args.labels, seed=1)
    print(
        f"image {args.size}×{args.size}, {int((labels > 0).sum())} labelled pixels "
        f"({(labels > 0).mean():.2%}, {args.labels}), {args.trees} trees, "
        f"max_depth {args.max_depth}, {args.jobs} threads"
    )
    forest = {"n_estimators": args.trees, "max_depth": args.max_depth, "random_state": 0}

    t = {}
    start = time.perf_counter()
    features = multiscale_basic_features(image[0], workers=args.jobs)
    t["theirs features"] = time.perf_counter() - start
    clf = RandomForestClassifier(class_weight="balanced", n_jobs=args.jobs, **forest)
    start = time.perf_counter()
    clf = fit_segmenter(labels, features, clf)
    t["theirs train"] = time.perf_counter() - start
    start = time.perf_counter()
    theirs = predict_segmenter(features, clf)
    t["theirs predict"] = time.perf_counter() - start
    n_theirs = features.shape[-1]
    del features

    t["ours features"] = _our_features(image, args.jobs)
    start = time.perf_counter()
    ours_clf = train_classifier(
        image,
        labels,
        features="basic25",
        n_estimators=args.trees,
        max_depth=args.max_depth,
        n_jobs=args.jobs,
        seed=0,
    )
    t["ours train"] = time.perf_counter() - start
    start = time.perf_counter()
    ours = ours_clf.predict_labels(image)
    t["ours predict"] = time.perf_counter() - start

    acc_theirs, f1_theirs = _scores(theirs, truth)
    acc_ours, f1_ours = _scores(ours, truth)
    print(f"{'':10} {'accuracy':>9} {'F1':>7}")
    print(f"{'skimage':10} {acc_theirs:9.4f} {f1_theirs:7.4f}   ({n_theirs} features)")
    print(
        f"{'scopeml':10} {acc_ours:9.4f} {f1_ours:7.4f}   ({ours_clf.forest.n_features} features)"
    )
    print(f"{'stage':10} {'skimage s':>10} {'scopeml s':>10} {'ours/theirs':>12}")
    for stage in ("features", "train", "predict"):
        a, b = t[f"theirs {stage}"], t[f"ours {stage}"]
        print(f"{stage:10} {a:10.2f} {b:10.2f} {b / a:12.2f}")
    theirs_total = t["theirs features"] + t["theirs train"] + t["theirs predict"]
    ours_total = t["ours train"] + t["ours predict"]
    print(
        f"{'overall':10} {theirs_total:10.2f} {ours_total:10.2f} {ours_total / theirs_total:12.2f}"
        "   (theirs: features + fit + predict; ours: train + predict)"
    )


if __name__ == "__main__":
    main()
