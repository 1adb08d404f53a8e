"""Peak memory of pixel-classifier training on OME-Zarr files of growing size.

Each size gets an image (synthetic nuclei, uint16, written chunk by chunk) and a label image:
4% of the pixels labelled in eight 512×512 patches (~84,000 pixels, as many as 0.5% of a
4096² image), so the training set stays the same size while the image grows. Training runs
in a fresh process per size and per way of reading: ``blocks`` hands the opened files to
``train_classifier`` (it scans the labels and reads the image only around them); ``whole``
first reads both into memory, as a script that calls ``Image.read()`` would. Prints peak
resident memory (VmHWM) and wall time, and the ratio of the two ways.

Run: ``python bench/bench_pixel_memory.py [--sizes 4096,16384] [--trees 32]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 1024
PATCH = 512
#: Labelled fraction inside each patch: ~84,000 labelled pixels in all, at every image size.
DENSITY = 0.04


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_files(folder: Path, size: int) -> tuple[Path, Path]:
    """Image and labels as OME-Zarr, generated one chunk at a time (memory stays small)."""
    from scopeml.io.omezarr import create_ome_zarr
    from scopeml.synthetic import synthetic_nuclei

    image = create_ome_zarr(
        folder / "image.ome.zarr", shape=(1, size, size), dtype="uint16", axes="CYX",
        chunks=(1, CHUNK, CHUNK),
    )  # fmt: skip
    labels = create_ome_zarr(
        folder / "labels.ome.zarr", shape=(1, size, size), dtype="uint8", axes="CYX",
        chunks=(1, CHUNK, CHUNK),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    corners = {(int(y), int(x)) for y, x in rng.integers(0, size // PATCH, (8, 2)) * PATCH}
    n = size // CHUNK
    for cy in range(n):
        for cx in range(n):
            pixels, instances = synthetic_nuclei((CHUNK, CHUNK), seed=cy * n + cx)
            image[0, cy * CHUNK : (cy + 1) * CHUNK, cx * CHUNK : (cx + 1) * CHUNK] = pixels[0]
            truth = (instances > 0).astype(np.uint8) + 1
            marks = np.zeros_like(truth)
            for top, left in corners:
                if top // CHUNK == cy and left // CHUNK == cx:
                    y, x = top % CHUNK, left % CHUNK
                    patch = (slice(y, y + PATCH), slice(x, x + PATCH))
                    pick = rng.random((PATCH, PATCH)) < DENSITY
                    marks[patch][pick] = truth[patch][pick]
            labels[0, cy * CHUNK : (cy + 1) * CHUNK, cx * CHUNK : (cx + 1) * CHUNK] = marks
    return folder / "image.ome.zarr", folder / "labels.ome.zarr"


def child(folder: Path, mode: str, trees: int) -> dict[str, float]:
    from scopeml.io import open_image
    from scopeml.pixel import train_classifier

    start = time.perf_counter()
    image_file, labels_file = folder / "image.ome.zarr", folder / "labels.ome.zarr"
    with open_image(image_file) as img, open_image(labels_file) as lab:
        if mode == "whole":
            image, labels = img.read()[0, 0, :, 0], lab.read()[0, 0, 0, 0]
        else:
            image, labels = img, lab
        clf = train_classifier(image, labels, n_estimators=trees, seed=0)
    return {
        "seconds": time.perf_counter() - start,
        "peak_mb": _peak_mb(),
        "samples": clf.info["n_samples"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4096,16384")
    parser.add_argument("--trees", type=int, default=32)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="blocks", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.mode, args.trees)))
        return
    print(f"{'image':>12} {'labelled':>9} {'way':>7} {'peak MB':>8} {'seconds':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_files(folder, size)
            runs = {}
            for mode in ("blocks", "whole"):
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(folder), "--mode", mode,
                     "--trees", str(args.trees)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
                r = runs[mode]
                print(
                    f"{size:>5}×{size:<6} {r['samples']:>9} {mode:>7} {r['peak_mb']:>8.0f} "
                    f"{r['seconds']:>8.1f}",
                    flush=True,
                )
            ratio = runs["blocks"]["peak_mb"] / runs["whole"]["peak_mb"]
            print(f"  blocks/whole peak memory: {ratio:.2f}")


if __name__ == "__main__":
    main()
