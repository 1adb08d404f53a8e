"""Pixel classifier against scikit-image's trainable segmentation, on the same data.

Baseline: ``skimage.feature.multiscale_basic_features`` + ``skimage.future.fit_segmenter`` /
``predict_segmenter`` with a scikit-learn ``RandomForestClassifier``. Ours:
``scopeml.pixel.train_classifier`` + ``PixelClassifier.predict_labels``. Same image (synthetic
nuclei, or textures with ``--data textures``; exact ground truth), same sparse labels, same
forest settings (trees, depth, balanced class weights, seed, ``max_features="sqrt"``), same
thread count. Prints accuracy side by side and the ratio of our time to theirs per stage and
overall.

What differs, by design: scopeml filters with OpenCV in float32 blocks (scikit-image: scipy, the
whole image in float64); scopeml fits scikit-learn's forest on 256 quantile bins per feature
(thresholds mapped back to feature values; on scikit-image's own features that scores as the
exact fit does) and evaluates it with early stopping per pixel. ``max_features="sqrt"`` means 4 of
scikit-image's 24 features per split and 5 of basic25's 25, so our fit searches ~25% more.

Stages differ in what they hold: scikit-image computes the features of the whole image once and
reuses them to fit and predict; scopeml computes features inside training (only in blocks that
hold labels) and again inside prediction, block by block, so memory does not grow with the
image. ``--cache`` gives both calls a ``FeatureCache`` instead, so prediction reuses training's
block features: it saves the feature pass but holds them (1.65 GiB here) in fresh memory, whose
first-touch page faults cost as much on the shared 2-core VM this was measured on (0.4–4 s of
system time per run). "features" times scopeml's feature pass over the whole image by itself,
for comparison; "train" and "predict" are the user-facing calls and include their feature
passes.

Both sides run in this process, interleaved ``--repeat`` times (the machine may be shared). Each
round's overall ratio is printed; the summary takes each stage's best time, and also gives the
median of the rounds' ratios.

With ``--engine``, also segments the image through the tiling engine (``scopeml.api.segment``)
writing labels only, which asks the forest for class indices (early stopping), against labels
plus confidence, which needs every tree's probabilities.

Run: ``python bench/bench_pixel.py [--size 4096] [--trees 32] [--jobs 2] [--repeat 3] [--engine]``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
    """Pixel accuracy and the F1 score averaged over classes."""
    f1 = [
        2 * np.sum((pred == k) & (truth == k)) / (np.sum(pred == k) + np.sum(truth == k))
        for k in np.unique(truth)
    ]
    return float(np.mean(pred == truth)), float(np.mean(f1))


def _our_features(image: np.ndarray, jobs: int) -> float:
    from scopeml.features import BASIC25, compute_features
    from scopeml.pixel._blocks import iter_blocks
    from scopeml.pixel._classifier import BLOCK

    blocks = list(iter_blocks(image.shape[1:], BLOCK[2], BASIC25.halo))
    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        for _ in pool.map(lambda b: compute_features(image[(slice(None), *b[0])], BASIC25), blocks):
            pass
    return time.perf_counter() - start


Result = tuple[dict[str, float], np.ndarray, Any]  # stage times, predicted labels, the model


def _theirs(image: np.ndarray, labels: np.ndarray, args) -> Result:
    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    t = {}
    start = time.perf_counter()
    features = multiscale_basic_features(image[0], workers=args.jobs)
    t["features"] = time.perf_counter() - start
    clf = RandomForestClassifier(
        n_estimators=args.trees,
        max_depth=args.max_depth,
        class_weight="balanced",
        n_jobs=args.jobs,
        random_state=0,
    )
    start = time.perf_counter()
    clf = fit_segmenter(labels, features, clf)
    t["train"] = time.perf_counter() - start
    start = time.perf_counter()
    pred = predict_segmenter(features, clf)
    t["predict"] = time.perf_counter() - start
    t["n_features"] = features.shape[-1]
    t["total"] = t["features"] + t["train"] + t["predict"]
    return t, pred, clf


def _ours(image: np.ndarray, labels: np.ndarray, args) -> Result:
    from scopeml.pixel import FeatureCache, train_classifier

    t = {"features": _our_features(image, args.jobs)}
    cache = FeatureCache() if args.cache else None
    start = time.perf_counter()
    clf = train_classifier(
        image,
        labels,
        features="basic25",
        n_estimators=args.trees,
        max_depth=args.max_depth,
        n_jobs=args.jobs,
        seed=0,
        cache=cache,
    )
    t["train"] = time.perf_counter() - start
    start = time.perf_counter()
    pred = clf.predict_labels(image, cache=cache)
    t["predict"] = time.perf_counter() - start
    t["n_features"] = clf.forest.n_features
    t["total"] = t["train"] + t["predict"]
    return t, pred, clf


def _engine(image: np.ndarray, clf) -> None:
    """Time the engine on the image: labels only (class indices) vs labels + confidence."""
    import tempfile
    from pathlib import Path

    from scopeml import api
    from scopeml.io import Image

    print("engine, best of 2 interleaved runs each, 2 workers (as `scopeml segment -m`):")
    times: dict[tuple[str, ...], float] = {}
    with tempfile.TemporaryDirectory() as folder:
        model = clf.save(Path(folder) / "model.czseg")  # loaded by path: one thread per worker
        for run in range(4):
            outputs = ("labels",) if run % 2 == 0 else ("labels", "confidence")
            start = time.perf_counter()
            api.segment(
                Image(image[None, None, :, None]), model, Path(folder) / f"{run}.ome.zarr",
                outputs=outputs,
            )  # fmt: skip
            times[outputs] = min(times.get(outputs, np.inf), time.perf_counter() - start)
    for outputs, seconds in times.items():
        print(f"  {'+'.join(outputs):18} {seconds:6.2f} s")
    ratio = times[("labels", "confidence")] / times[("labels",)]
    print(f"  labels only is {ratio:.2f}× faster (no probabilities, early stopping)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--trees", type=int, default=32)
    parser.add_argument("--max-depth", type=int, default=None)
    parser.add_argument("--fraction", type=float, default=0.005, help="labelled pixel fraction")
    parser.add_argument("--labels", choices=("points", "scribbles"), default="points")
    parser.add_argument("--data", choices=("nuclei", "textures"), default="nuclei")
    parser.add_argument(
        "--seed",
        default="1",
        help="seed(s) of the labelled pixels, e.g. 1,2,3: round r draws with the r-th (cycling)",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per side, interleaved; the best time counts"
    )
    parser.add_argument("--engine", action="store_true", help="also time the tiling engine")
    parser.add_argument(
        "--cache", action="store_true", help="reuse training's features in prediction"
    )
    args = parser.parse_args()

    import skimage.future  # noqa: F401
    import sklearn.ensemble  # noqa: F401  (import time counts for neither side)

    from scopeml.synthetic import synthetic_nuclei, synthetic_textures

    if args.data == "nuclei":
        image, instances = synthetic_nuclei((args.size, args.size), seed=0)
        truth = (instances > 0).astype(np.uint8) + 1
    else:
        image, truth = synthetic_textures((args.size, args.size), seed=0)
    image = image.astype(np.float32)
    seeds = [int(s) for s in str(args.seed).split(",")]
    labels = _labels(truth, args.fraction, args.labels, seed=seeds[0])
    print(
        f"{args.data} image {args.size}×{args.size}, {int((labels > 0).sum())} labelled pixels "
        f"({(labels > 0).mean():.2%}, {args.labels}), {args.trees} trees, "
        f"max_depth {args.max_depth}, {args.jobs} threads, best of {args.repeat} interleaved runs"
    )
    runs: dict[str, list[dict[str, float]]] = {"skimage": [], "scopeml": []}
    scores: dict[str, dict[int, tuple[float, float]]] = {"skimage": {}, "scopeml": {}}
    models = {}
    for r in range(args.repeat):
        seed = seeds[r % len(seeds)]
        labels = _labels(truth, args.fraction, args.labels, seed=seed)
        for name, side in (("skimage", _theirs), ("scopeml", _ours)):
            t, pred, models[name] = side(image, labels, args)
            runs[name].append(t)
            scores[name][seed] = _scores(pred, truth)
            print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()), flush=True)
        ratio = runs["skimage"][-1]["total"] / runs["scopeml"][-1]["total"]
        print(f"  round {r + 1} (label seed {seed}): scopeml {ratio:.2f}× faster", flush=True)
    best = {name: {k: min(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    pairs = zip(runs["skimage"], runs["scopeml"], strict=True)
    rounds = [theirs["total"] / ours["total"] for theirs, ours in pairs]

    print(f"{'label seed':10} {'accuracy':>9} {'mean F1':>8}   (skimage | scopeml)")
    for seed in scores["scopeml"]:
        (a0, f0), (a1, f1) = scores["skimage"][seed], scores["scopeml"][seed]
        print(f"{seed:10} {a0:9.4f} {f0:8.4f} | {a1:9.4f} {f1:8.4f}")
    for name in ("skimage", "scopeml"):
        accs = [a for a, _ in scores[name].values()]
        print(
            f"{name:10} accuracy {min(accs):.4f}–{max(accs):.4f} over {len(accs)} label draw(s) "
            f"({best[name]['n_features']:.0f} features)"
        )
    print(f"{'stage':10} {'skimage s':>10} {'scopeml s':>10} {'ours/theirs':>12}")
    for stage in ("features", "train", "predict", "total"):
        a, b = best["skimage"][stage], best["scopeml"][stage]
        print(f"{stage:10} {a:10.2f} {b:10.2f} {b / a:12.2f}")
    print(
        f"overall: scopeml is {best['skimage']['total'] / best['scopeml']['total']:.2f}× faster "
        f"(best times; median of the rounds {np.median(rounds):.2f}×) — theirs: features + fit "
        "+ predict; ours: train + predict, each with its feature pass"
    )
    if args.engine:
        _engine(image, models["scopeml"])


if __name__ == "__main__":
    main()
