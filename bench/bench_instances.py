"""Instances of the built-in nuclei model: object F1 of ``segment``'s ``instances`` output on the
synthetic hold-out, against other ways to get instances from the same run, and the cost of the
instances step relative to the segmentation it follows (measured in the same run).

    python bench/bench_instances.py [--images 6] [--size 384] [--speed 1024]

Rows: ``instances`` (the output: seeds P(nucleus) > 0.6, the default, grown 4 px, tiled exactly),
``instances, argmax seeds`` (``seed_threshold=None``), ``nuclei_instances`` (the training code's
seeded watershed, whole image only), ``foreground components`` (no split).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import scopeml as sm
from scopeml.io.image import Image
from scopeml.objects.instances import InstanceOptions, instance_labels
from scopeml.synthetic import HOLD_OUT_SEED, realistic_nuclei
from scopeml.train.metrics import object_scores
from scopeml.train.nuclei import SHIPPED_THRESHOLD, nuclei_instances

THRESHOLDS = np.arange(0.5, 0.95, 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--speed", type=int, default=1024, help="image side for the timing")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    counts: dict[str, list[np.ndarray]] = {}
    for i in range(args.images):
        pixels, truth = realistic_nuclei((args.size, args.size), seed=HOLD_OUT_SEED + i)
        image = Image(pixels.reshape(1, 1, 1, 1, args.size, args.size))
        seg = sm.segment(image, "nuclei", work / f"{i}.ome.zarr",
                         outputs=("labels", "probabilities", "instances"))  # fmt: skip
        argmax = sm.segment(image, "nuclei", work / f"{i}a.ome.zarr", outputs=("instances",),
                            instances=InstanceOptions(seed_threshold=None))  # fmt: skip
        p = seg.probabilities.read()[0, 0, :, 0]
        found = {
            "instances": seg.instances.read()[0, 0, 0, 0],
            "instances, argmax seeds": argmax.instances.read()[0, 0, 0, 0],
            "nuclei_instances": nuclei_instances(p, threshold=SHIPPED_THRESHOLD),
            "foreground components": instance_labels(
                seg.labels.read()[0, 0, 0, 0] > 1, class_id=1, min_size=8
            ),
        }
        for name, labels in found.items():
            row = [object_scores(labels, truth, iou_threshold=float(t)) for t in THRESHOLDS]
            counts.setdefault(name, []).append(
                np.array([[r["matched"], r["predicted"], r["true"]] for r in row])
            )
    print(f"synthetic hold-out: {args.images} images of {args.size}² (seeds {HOLD_OUT_SEED}+)")
    print(f"{'method':26s} {'F1@0.5':>7s} {'mAP':>6s}")
    for name, per_image in counts.items():
        m, p, n = np.sum(per_image, axis=0).T
        f1 = 2 * m[0] / max(p[0] + n[0], 1)
        ap = np.mean(m / np.maximum(p + n - m, 1))
        print(f"{name:26s} {f1:7.3f} {ap:6.3f}")

    pixels, _ = realistic_nuclei((args.speed, args.speed), seed=HOLD_OUT_SEED + 99)
    image = Image(pixels.reshape(1, 1, 1, 1, args.speed, args.speed))
    seconds = {}
    for name, outputs in [("labels", ("labels",)), ("labels+instances", ("labels", "instances"))]:
        clock = time.perf_counter()
        sm.segment(image, "nuclei", work / f"speed-{name}.ome.zarr", outputs=outputs)
        seconds[name] = time.perf_counter() - clock
    extra = seconds["labels+instances"] / seconds["labels"]
    print(f"{args.speed}² segment: labels {seconds['labels']:.1f} s, labels+instances "
          f"{seconds['labels+instances']:.1f} s (×{extra:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
