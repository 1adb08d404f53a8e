"""Benchmark: ``measure_objects`` against ``skimage.measure.regionprops_table``, one run.

Same labels, same two-channel image, same properties (shape features included: perimeter,
convex area, solidity, Feret, Hu moments, per-channel intensities); both are warmed up on a
tiny image first (imports), then timed once each on the full image. Every shared column is
compared and the largest relative difference printed, so the speed-up is at equal values.

Run: ``python bench/bench_measure.py`` (2048², ~4k objects) or ``--size 4096`` (the issue's
size: ~16k objects in a 4096² two-channel image).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_objects import PROPERTIES, SyntheticIntensities, synthetic_labels


def _our_name(name: str) -> str:
    if name.startswith("intensity_"):
        family, _, channel = name.rpartition("-")
        return f"{family}_C{channel}"
    return name


def compare(size: int, cell: int) -> dict[str, float]:
    """Time both on one image; return objects/s, the speed-up and the largest difference."""
    from skimage.measure import regionprops_table

    from scopeml.objects import measure_objects

    labels = synthetic_labels((slice(0, size), slice(0, size)), size, cell)
    image = SyntheticIntensities((size, size), cell)[:, 0:size, 0:size]
    channels_last = np.ascontiguousarray(np.moveaxis(image, 0, -1))
    small = (slice(0, 2 * cell), slice(0, 2 * cell))
    measure_objects(labels[small], image[(slice(None), *small)])  # warm-up: imports
    regionprops_table(labels[small], channels_last[small], properties=PROPERTIES)

    start = time.perf_counter()
    ours = measure_objects(labels, image)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = regionprops_table(labels, channels_last, properties=PROPERTIES)
    ref_s = time.perf_counter() - start

    worst, worst_name = 0.0, ""
    for name, expected in ref.items():
        got = ours[_our_name(name)].to_numpy(float)
        expected = np.asarray(expected, float)
        scale = np.maximum(np.abs(expected), 1.0)  # near-zero moments: absolute difference
        delta = got - expected
        if name == "orientation":  # an axis: -pi/2 and pi/2 are the same (seen when mu11 ~ 0)
            delta = (delta + np.pi / 2) % np.pi - np.pi / 2
        diff = float(np.max(np.abs(delta) / scale)) if expected.size else 0.0
        if diff > worst:
            worst, worst_name = diff, name
    n = len(ours)
    return {
        "size": size,
        "objects": n,
        "columns_compared": len(ref),
        "ours_s": round(ours_s, 3),
        "regionprops_s": round(ref_s, 3),
        "ours_objects_per_s": round(n / ours_s),
        "regionprops_objects_per_s": round(n / ref_s),
        "speedup": round(ref_s / ours_s, 1),
        "max_relative_difference": worst,
        "max_difference_column": worst_name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image edge in pixels")
    parser.add_argument("--cell", type=int, default=32, help="pixels per object cell")
    args = parser.parse_args()
    print(json.dumps(compare(args.size, args.cell), indent=1))


if __name__ == "__main__":
    main()
