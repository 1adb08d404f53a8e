"""A 3-level analysis (cells → nuclei inside cells → spots inside nuclei) over N images:
``scopeml.analysis.run_analysis`` against the same steps written as a per-image scikit-image
script, in one run. Reports time, the ratio, peak RSS of each (each runs in its own process)
and the object counts of both.

    python bench/bench_analysis.py                      # 4 images of 1024², threshold nuclei
    python bench/bench_analysis.py --images 20 --size 2048   # the issue's batch
    python bench/bench_analysis.py --workers 1          # scopeml in one process, as the script
    python bench/bench_analysis.py --images 0 --sizes 16384  # peak RSS of one 16384² image
    python bench/bench_analysis.py --model              # nuclei by the built-in model (scopeml
                                                        # only; the script uses Li + watershed)
    python bench/bench_analysis.py --sizes 1024,2048    # peak RSS of one image at each size

Segmenters are the same in both (Gaussian σ=1 + Otsu for cells, Gaussian σ=1 + Li inside the
cells for nuclei, a fixed threshold for spots; fill holes, remove small), so the counts must be
equal; with ``--model`` the nuclei differ by design and only the cell counts must agree.

scopeml runs with its default worker processes (one per core, as many as the memory holds;
``--workers N`` to choose), the script in one process. Peak RSS is the largest single process
(each worker holds its own image). A plane under the settings' ``memory_mb`` runs in memory;
``--memory-mb 0`` forces the out-of-core path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE_PROPS = ("label", "area", "centroid", "bbox", "perimeter", "solidity", "eccentricity",
               "feret_diameter_max", "intensity_mean", "intensity_min",
               "intensity_max")  # fmt: skip
SPOT_PROPS = ("label", "area", "centroid", "bbox", "intensity_mean", "intensity_min",
              "intensity_max")  # fmt: skip


def make_image(path: Path, size: int, seed: int) -> None:
    """Two channels (DAPI, GFP): cells on a jittered grid, a nucleus in each, spots in nuclei."""
    import tifffile

    rng = np.random.default_rng(seed)
    dapi = np.full((size, size), 100.0, np.float32)
    gfp = np.full((size, size), 100.0, np.float32)
    yy, xx = np.mgrid[-40:41, -40:41]
    for cy in range(45, size - 45, 80):
        for cx in range(45, size - 45, 80):
            cy2, cx2 = cy + rng.integers(-5, 6), cx + rng.integers(-5, 6)
            box = (slice(cy2 - 40, cy2 + 41), slice(cx2 - 40, cx2 + 41))
            r, rn = rng.integers(25, 35), rng.integers(9, 14)
            gfp[box][yy**2 + xx**2 < r * r] = 900
            dapi[box][yy**2 + xx**2 < rn * rn] = 2000
            for _ in range(rng.integers(1, 4)):
                sy, sx = rng.integers(-6, 7, 2)
                gfp[box][(yy - sy) ** 2 + (xx - sx) ** 2 <= 4] = 3000
    pixels = np.empty((2, size, size), np.uint16)
    for c, channel in enumerate((dapi, gfp)):  # noise a band at a time: 16384² fits in ~3 GB
        for y in range(0, size, 1024):
            band = channel[y : y + 1024]
            band += rng.normal(0, 20, band.shape).astype(np.float32)
            pixels[c, y : y + 1024] = np.clip(band, 0, 65535)
    del dapi, gfp
    tifffile.imwrite(path, pixels, ome=True, tile=(256, 256),
                     metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip


SETTINGS = """\
version: 1
channels: [DAPI, GFP]
tile_size: 1024
classes:
  - name: cell
    segmenter: {kind: threshold, channel: GFP, method: otsu, sigma: 1.0}
    post: [{step: fill_holes}, {step: remove_small, min_size: 100}]
  - name: nucleus
    parent: cell
    segmenter: NUCLEI
    post: [{step: fill_holes}, {step: remove_small, min_size: 20}]
    measurements: {intensity: [DAPI]}
  - name: spot
    parent: nucleus
    segmenter: {kind: threshold, channel: GFP, method: fixed, value: 2000}
    measurements: {shape: false, intensity: [GFP]}
outputs: {overview: true, summary: true, parquet: false}
"""
THRESHOLD_NUCLEI = "{kind: threshold, channel: DAPI, method: li, sigma: 1.0}"
MODEL_NUCLEI = ("{kind: instances, model: nuclei, class: nucleus, boundary_class: boundary, "
                "channels: [DAPI]}")  # fmt: skip


def run_scopeml(
    images: list[Path], out: Path, model: bool, workers: int | None, memory_mb: int | None
) -> dict[str, int]:
    from scopeml.analysis import parse_settings, run_analysis

    text = SETTINGS.replace("NUCLEI", MODEL_NUCLEI if model else THRESHOLD_NUCLEI)
    if memory_mb is not None:
        text += f"memory_mb: {memory_mb}\n"
    result = run_analysis(parse_settings(text), images, out, workers=workers)
    if result.failures:
        raise SystemExit(f"failed: {result.failures}")
    return {c: sum(r["counts"][c] for r in result.records) for c in ("cell", "nucleus", "spot")}


def run_skimage(images: list[Path], out: Path, model: bool) -> dict[str, int]:
    """The per-image script a user would write with scipy and scikit-image."""
    import pandas as pd
    import tifffile
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_li, threshold_otsu
    from skimage.measure import label, regionprops_table
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import find_boundaries, watershed

    out.mkdir(parents=True)
    counts = {"cell": 0, "nucleus": 0, "spot": 0}
    for path in images:
        dapi, gfp = tifffile.imread(path).astype(np.float32)
        smooth = ndi.gaussian_filter(gfp, 1.0)
        cells = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
        cells = label(remove_small_objects(cells, max_size=99), connectivity=1)
        smooth = ndi.gaussian_filter(dapi, 1.0)
        nuclei = (smooth > threshold_li(smooth[cells > 0])) & (cells > 0)
        nuclei = remove_small_objects(ndi.binary_fill_holes(nuclei), max_size=19)
        if model:  # the classical stand-in: distance-transform watershed
            distance = ndi.distance_transform_edt(nuclei)
            peaks = peak_local_max(distance, min_distance=5, labels=label(nuclei))
            markers = np.zeros(nuclei.shape, np.int32)
            markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
            nuclei = watershed(-distance, markers, mask=nuclei)
        else:
            nuclei = label(nuclei, connectivity=1)
        spots = label((gfp > 2000) & (nuclei > 0), connectivity=1)
        stack = np.stack([dapi, gfp], axis=-1)
        for name, labels, props, parent, image in (
            ("cell", cells, SHAPE_PROPS, None, stack),
            ("nucleus", nuclei, SHAPE_PROPS, cells, dapi),
            ("spot", spots, SPOT_PROPS, nuclei, gfp),
        ):
            table = pd.DataFrame(regionprops_table(labels, image, properties=props))
            if parent is not None:
                at = (
                    table["centroid-0"].round().astype(int),
                    table["centroid-1"].round().astype(int),
                )
                table["parent_id"] = parent[at]
            table.insert(0, "image", path.name)
            table.to_csv(out / f"{path.stem}.{name}.csv", index=False)
            counts[name] += len(table)
        edges = find_boundaries(cells) | find_boundaries(nuclei) | find_boundaries(spots)
        from PIL import Image

        Image.fromarray((edges[::2, ::2] * 255).astype(np.uint8)).save(out / f"{path.stem}.png")
    return counts


def child(args: argparse.Namespace) -> None:
    images = sorted(Path(args.data).glob("*.ome.tif"))
    out = Path(tempfile.mkdtemp(dir=args.data)) / "results"
    start = time.perf_counter()
    if args.only == "scopeml":
        counts = run_scopeml(images, out, args.model, args.workers or None, args.memory_mb)
    else:
        counts = run_skimage(images, out, args.model)
    seconds = time.perf_counter() - start
    # workers are forked by multiprocessing's fork server, which reaps them: stop (and reap) it
    # so that their CPU time and peak RSS count among this process's children
    from multiprocessing import forkserver

    forkserver._forkserver._stop()
    me, workers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN))  # fmt: skip
    cpu = sum(r.ru_utime + r.ru_stime for r in (me, workers))
    # the largest single process (worker processes each hold their own image)
    peak_mb = max(me.ru_maxrss, workers.ru_maxrss) / 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, "counts": counts}))


def _workers(args: argparse.Namespace, data: Path) -> int:
    """The worker processes scopeml runs with (its default unless ``--workers``)."""
    from scopeml.analysis import parse_settings
    from scopeml.analysis.runner import default_workers

    text = SETTINGS.replace("NUCLEI", THRESHOLD_NUCLEI)
    if args.memory_mb is not None:
        text += f"memory_mb: {args.memory_mb}\n"
    images = sorted(data.glob("*.ome.tif"))
    return min(args.workers or default_workers(parse_settings(text), images), args.images)


def measure(only: str, data: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--only", only, "--data", str(data),
               "--workers", str(args.workers)] + (["--model"] if args.model else [])  # fmt: skip
    if args.memory_mb is not None:
        command += ["--memory-mb", str(args.memory_mb)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--model", action="store_true", help="nuclei by the built-in model")
    parser.add_argument("--workers", type=int, default=0, help="0: scopeml's default")
    parser.add_argument("--memory-mb", type=int, help="the settings' memory_mb (0: out of core)")
    parser.add_argument("--sizes", default="", help="e.g. 1024,2048: peak RSS of one image each")
    parser.add_argument("--only", choices=("scopeml", "skimage"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--make", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        return make_image(Path(args.make), args.size, 0)
    if args.only:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "batch"
        data.mkdir()
        if args.images:  # --images 0: only the one-image peak RSS per size
            for i in range(args.images):
                make_image(data / f"img{i:03d}.ome.tif", args.size, i)
            ours, theirs = measure("scopeml", data, args), measure("skimage", data, args)
            nuclei = "the built-in model" if args.model else "Li threshold"
            print(f"{args.images} images of {args.size}², nuclei by {nuclei}, scopeml with "
                  f"{_workers(args, data)} worker process(es), the script with "
                  f"one; load average before: {os.getloadavg()[0]:.2f}")  # fmt: skip
            for name, found in (("scopeml analyze", ours), ("scikit-image", theirs)):
                print(f"{name:16}: {found['seconds']:7.1f} s wall, {found['cpu']:6.1f} s CPU "
                      f"(imports included), peak RSS {found['peak_mb']:5.0f} MB, "
                      f"counts {found['counts']}")  # fmt: skip
            ratio = theirs["seconds"] / ours["seconds"]
            print(f"time ratio (scikit-image / scopeml): {ratio:.2f}× "
                  f"wall, {theirs['cpu'] / ours['cpu']:.2f}× CPU; "
                  f"counts equal: {ours['counts'] == theirs['counts']}")  # fmt: skip
        for size in [int(s) for s in args.sizes.split(",") if s]:
            one = Path(tmp) / f"size{size}"
            one.mkdir()
            # in its own process: a child's peak RSS counts its parent's RSS at fork (Linux
            # keeps the high-water mark across exec), so the parent must stay small
            subprocess.run([sys.executable, __file__, "--make", str(one / "img.ome.tif"),
                            "--size", str(size)], check=True)  # fmt: skip
            found = measure("scopeml", one, args)
            print(f"one image of {size}²: {found['seconds']:.1f} s, peak RSS "
                  f"{found['peak_mb']:.0f} MB")  # fmt: skip
    return None


if __name__ == "__main__":
    main()
