"""Benchmark: object measurement throughput and out-of-core peak memory.

1. Throughput (objects/s) of ``measure_objects`` against ``skimage.measure.regionprops_table``
   with the same properties, on a synthetic image of ≥ 100,000 objects (ellipses on a grid of
   cells, generated vectorised): the vectorised properties on the whole image, all properties
   (including perimeter, convex hull, Feret) on a horizontal strip of it, to keep it short.
2. Out of core: an instance-label zarr generated chunk by chunk on disk, measured tile by tile
   (``measure_objects_tiled``, with one thread and then two: the speed-up is printed) and
   labelled (``label_instances_tiled``) in a fresh process per size, reporting peak resident
   memory (VmHWM) against the image size, to show memory does not grow with the image. The
   intensities are computed on the fly (nothing stored).

Run: ``python bench/bench_objects.py [--size 4096] [--strip 1024] [--big 4096,16384]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROPERTIES = [
    "label", "area", "bbox", "centroid", "equivalent_diameter_area", "axis_major_length",
    "axis_minor_length", "eccentricity", "orientation", "moments_central", "moments_hu",
    "perimeter", "area_convex", "solidity", "feret_diameter_max",
    "intensity_mean", "intensity_min", "intensity_max", "intensity_std",
]  # fmt: skip
VECTORISED = [p for p in PROPERTIES if p not in ("perimeter", "area_convex", "solidity",
                                                 "feret_diameter_max")]  # fmt: skip


def _hash(cell: np.ndarray, k: int) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) per cell id."""
    x = np.sin(cell * 12.9898 + k * 78.233) * 43758.5453
    return x - np.floor(x)


def synthetic_labels(region: tuple[slice, slice], width: int, cell: int) -> np.ndarray:
    """Labels of one region of an image tiled by ``cell``-pixel cells, one ellipse per cell.

    Any region can be generated on its own, so a huge image is written chunk by chunk.
    """
    y = np.arange(region[0].start, region[0].stop)
    x = np.arange(region[1].start, region[1].stop)
    cy, cx = y // cell, x // cell
    cells_y, cells_x = np.unique(cy), np.unique(cx)
    cid = cells_y[:, None] * (width // cell + 1) + cells_x[None, :]  # one per cell
    half = cell / 2
    minor = half * (0.35 + 0.3 * _hash(cid, 1))
    major = np.minimum(minor * (1 + 0.8 * _hash(cid, 2)), half - 1)
    angle = np.pi * _hash(cid, 3)
    iy, ix = (cy - cells_y[0])[:, None], (cx - cells_x[0])[None, :]  # pixel → its cell
    dy = y[:, None] - (cy[:, None] * cell + half + (_hash(cid, 4) - 0.5)[iy, ix])
    dx = x[None, :] - (cx[None, :] * cell + half + (_hash(cid, 5) - 0.5)[iy, ix])
    cos, sin = np.cos(angle)[iy, ix], np.sin(angle)[iy, ix]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    inside = (u / major[iy, ix]) ** 2 + (v / minor[iy, ix]) ** 2 <= 1
    return np.where(inside, cid[iy, ix] + 1, 0).astype(np.uint32)


class SyntheticIntensities:
    """A lazy 2-channel ``C×Y×X`` image computed from the labels' cell ids: nothing stored."""

    def __init__(self, shape: tuple[int, int], cell: int) -> None:
        self.shape = (2, *shape)
        self.dtype = np.dtype(np.float32)
        self.cell = cell

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        region = key[1:]
        labels = synthetic_labels(region, self.shape[2], self.cell)
        bright = np.where(labels > 0, 0.3 + 0.7 * _hash(labels.astype(np.float64), 6), 0.05)
        bright = bright.astype(np.float32)
        y = np.arange(region[0].start, region[0].stop)[:, None]
        x = np.arange(region[1].start, region[1].stop)[None, :]
        noise = ((y * 31 + x * 17) % 97).astype(np.float32) / 97
        return np.stack([bright + 0.1 * noise, 0.5 * bright + 0.1 * (1 - noise)])


def throughput(size: int, strip: int, cell: int) -> dict[str, float]:
    """Objects/s of ours and regionprops_table: the vectorised properties on the whole image,
    all properties (with the per-object shape features) on a strip of it."""
    from skimage.measure import regionprops_table

    from scopeml.objects import measure_objects

    labels = synthetic_labels((slice(0, size), slice(0, size)), size, cell)
    image = SyntheticIntensities((size, size), cell)[:, 0:size, 0:size]
    out: dict[str, float] = {}
    cases = (
        ("whole_vectorised", labels, image, VECTORISED, False),
        ("strip_all", labels[:strip], image[:, :strip], PROPERTIES, True),
    )
    for name, lab, img, props, shape in cases:
        out[f"{name}_objects"] = int(np.count_nonzero(np.bincount(lab.ravel())[1:]))
        start = time.perf_counter()
        measure_objects(lab, img, shape_features=shape)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        regionprops_table(lab, np.moveaxis(img, 0, -1), properties=props)
        theirs = time.perf_counter() - start
        out[f"{name}_ours_objects_per_s"] = out[f"{name}_objects"] / ours
        out[f"{name}_regionprops_objects_per_s"] = out[f"{name}_objects"] / theirs
        out[f"{name}_speedup"] = theirs / ours
    return out


def out_of_core(size: int, cell: int, tile: int, folder: str, shape: bool) -> dict[str, float]:
    """Run in a fresh process: write labels chunk by chunk, label + measure tile by tile."""
    import zarr

    from scopeml.objects import label_instances_tiled, measure_objects_tiled
    from scopeml.objects.label import iter_tiles

    out: dict[str, float] = {"size": size, "shape_features": shape}
    path = Path(folder) / f"labels_{size}.zarr"
    start = time.perf_counter()
    store = zarr.open_array(str(path), mode="w", shape=(size, size), chunks=(tile, tile),
                            dtype=np.uint32)  # fmt: skip
    for region in iter_tiles((size, size), (tile, tile)):
        store[region] = synthetic_labels(region, size, cell)
    out["generate_s"] = time.perf_counter() - start
    out["rss_after_generate_mb"] = _peak_mb()
    start = time.perf_counter()
    labelled = label_instances_tiled(store, Path(folder) / f"inst_{size}.zarr")
    out["label_s"] = time.perf_counter() - start
    out["label_objects"] = labelled.attrs["n_objects"]
    out["rss_after_label_mb"] = _peak_mb()
    for workers in (1, 2):  # one thread, the baseline, then the default two
        start = time.perf_counter()
        table = measure_objects_tiled(
            store,
            SyntheticIntensities((size, size), cell),
            margin=64,
            shape_features=shape,
            output=Path(folder) / "objects.parquet",  # streamed: memory independent of objects
            overwrite=True,
            workers=workers,
        )
        out["measure_s" if workers == 2 else "measure_1_worker_s"] = time.perf_counter() - start
        out[f"rss_after_measure_{workers}_workers_mb"] = _peak_mb()
    out["measure_2_workers_speedup"] = out["measure_1_worker_s"] / out["measure_s"]
    import pyarrow.parquet as pq

    out["objects"] = pq.ParquetFile(table).metadata.num_rows
    out["measure_objects_per_s"] = out["objects"] / out["measure_s"]
    out["table_file_mb"] = table.stat().st_size / 2**20
    out["peak_rss_mb"] = _peak_mb()
    out["image_as_float32_mb"] = size * size * 4 / 2**20
    return out


def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="throughput image edge")
    parser.add_argument("--strip", type=int, default=1024, help="rows given to regionprops")
    parser.add_argument("--cell", type=int, default=12, help="pixels per object cell")
    parser.add_argument("--big", default="4096,16384", help="out-of-core image edges")
    parser.add_argument("--big-cell", type=int, default=32)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--big-shape", action="store_true", help="shape features out of core")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = out_of_core(args.child, args.big_cell, args.tile, args.folder, args.big_shape)
        print(json.dumps(result))
        return
    for size in [int(s) for s in args.big.split(",") if s]:  # first: a small parent process
        with tempfile.TemporaryDirectory() as folder:
            run = subprocess.run(
                [sys.executable, __file__, "--child", str(size), "--folder", folder,
                 "--big-cell", str(args.big_cell), "--tile", str(args.tile)]
                + (["--big-shape"] if args.big_shape else []),
                capture_output=True, text=True, check=True,
            )  # fmt: skip
        print(json.dumps({"out_of_core": json.loads(run.stdout)}, indent=1), flush=True)
    if args.size:
        result = throughput(args.size, args.strip, args.cell)
        print(json.dumps({"throughput": result}, indent=1))


if __name__ == "__main__":
    main()
