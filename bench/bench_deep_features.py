"""Deep features vs the filter bank vs both: mean F1 over classes and time, on three data sets.

Data (scopeml.synthetic, exact ground truth; the classifier is trained on sparse point labels of
one image and scored on *another* image of the same kind, so a feature set must generalise):

- ``nuclei``: bright blobs on a dark, noisy background (the filter bank's home ground);
- ``textures``: three regions of equal mean and spread differing only in texture (fine grain,
  coarse grain, stripes);
- ``orientation``: a pair of textures differing only in pattern — the same stripes, horizontal
  in one class and vertical in the other (equal intensity histograms and equal power at every
  frequency magnitude): the bank's filters are rotation invariant (smoothing, LoG, gradient
  magnitude, eigenvalues), so they cannot tell the classes apart.

Networks: these machines cannot download ImageNet weights, so the VGG19 here is *untrained*
(``vgg19-random``: torchvision's initialisation, seeded). Untrained convolutions are still
oriented, multi-scale filters; trained weights are expected to do better on natural textures,
which this benchmark cannot show.

With ``--memory``, also the peak memory (max RSS of a fresh process, minus the same process
before predicting) of ``predict_labels`` with ``vgg19-random-448+basic25`` on images of
growing size: blocks of 128² plus halo bound it, not the image.

Run: ``python bench/bench_deep_features.py [--size 256] [--trees 32] [--fraction 0.01]
[--memory]``. The machine's CPUs may be shared: times are for comparison within one run only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

FEATURE_SETS = (
    "basic25",
    "vgg19-random-64",
    "vgg19-random-448",
    "vgg19-random-64@1,2,4",
    "vgg19-random-448+basic25",
    "vgg19-random-50+basic25",
)


def _orientation(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stripes of period 8, horizontal where the truth is 1 and vertical where it is 2; the
    regions are smoothed random blobs; noise on top."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    blobs = ndimage.gaussian_filter(rng.standard_normal(shape), shape[0] / 12)
    truth = (blobs > 0).astype(np.uint8) + 1
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    phase = rng.uniform(0, 2 * np.pi)
    horizontal = np.sin(2 * np.pi * yy / 8 + phase)
    vertical = np.sin(2 * np.pi * xx / 8 + phase)
    image = np.where(truth == 1, horizontal, vertical) + 0.5 * rng.standard_normal(shape)
    return image[None].astype(np.float32), truth


def _data(kind: str, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scopeml.synthetic import synthetic_nuclei, synthetic_textures

    if kind == "nuclei":
        image, instances = synthetic_nuclei((size, size), seed=seed)
        return image.astype(np.float32), (instances > 0).astype(np.uint8) + 1
    if kind == "textures":
        return synthetic_textures((size, size), seed=seed)
    return _orientation((size, size), seed)


def _points(truth: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    pick = np.random.default_rng(seed).random(truth.shape) < fraction
    return np.where(pick, truth, 0).astype(np.uint8)


def _mean_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    scores = [
        2 * np.sum((pred == k) & (truth == k)) / (np.sum(pred == k) + np.sum(truth == k))
        for k in np.unique(truth)
    ]
    return float(np.mean(scores))


def _peak_child(model: str, size: int, queue) -> None:
    """In a fresh process: load the classifier, predict a ``size``² image, report RSS growth."""
    import resource

    from scopeml.pixel import load_classifier

    image, _ = _data("textures", size, seed=1)
    clf = load_classifier(model, n_jobs=2)
    clf.predict_labels(image[:, :64, :64])  # network opened, buffers warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    clf.predict_labels(image)
    queue.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def _memory(args) -> None:
    import multiprocessing
    import tempfile
    from pathlib import Path

    from scopeml.pixel import train_classifier

    image, truth = _data("textures", 128, seed=0)
    clf = train_classifier(
        image, _points(truth, 0.05, 0), features="vgg19-random-448+basic25", n_estimators=8
    )
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        model = str(clf.save(Path(folder) / "deep.czseg"))
        for size in (256, 512, 1024):
            queue = context.Queue()
            child = context.Process(target=_peak_child, args=(model, size, queue))
            child.start()
            grown = queue.get()
            child.join()
            print(f"predict {size}² with {clf.forest.n_features} features: peak +{grown:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--trees", type=int, default=32)
    parser.add_argument("--fraction", type=float, default=0.01, help="labelled pixel fraction")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data", nargs="*", default=["nuclei", "textures", "orientation"])
    parser.add_argument("--features", nargs="*", default=list(FEATURE_SETS))
    parser.add_argument("--memory", action="store_true", help="peak memory against image size")
    args = parser.parse_args()
    if args.memory:
        _memory(args)
        return

    from scopeml.pixel import train_classifier

    print(
        f"{args.size}×{args.size}, {args.fraction:.1%} point labels, {args.trees} trees, "
        f"{args.jobs} threads; trained on seed 0, scored on seed 1; VGG19 untrained (no weights "
        "can be downloaded here)"
    )
    print(f"{'data':12} {'features':26} {'n':>5} {'mean F1':>8} {'train s':>8} {'predict s':>9}")
    for kind in args.data:
        image, truth = _data(kind, args.size, seed=0)
        test_image, test_truth = _data(kind, args.size, seed=1)
        labels = _points(truth, args.fraction, seed=0)
        for spec in args.features:
            start = time.perf_counter()
            clf = train_classifier(
                image, labels, features=spec, n_estimators=args.trees, workers=args.jobs, seed=0
            )
            train_s = time.perf_counter() - start
            start = time.perf_counter()
            pred = clf.predict_labels(test_image)
            predict_s = time.perf_counter() - start
            f1 = _mean_f1(pred, test_truth)
            print(
                f"{kind:12} {spec:26} {clf.forest.n_features:5d} {f1:8.3f} {train_s:8.2f} "
                f"{predict_s:9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
