"""Benchmark: ``objects paint`` against copying the same labels (``convert``), and its memory.

Instance labels of SIZE² (``synthetic_nuclei`` fields tiled with ids offset so each object is
its own) are written to a zarr store block by block; a table gives every object one of three
classes. In a fresh process per run: ``write_ome_zarr(labels=True)`` (the copy that painting
does besides its lookup) and ``paint_objects``, each timed with its peak resident memory
(VmHWM), so the lookup's cost is printed as a ratio to the copy and the memory against the
image size.

Run: ``python bench/bench_paint.py [--sizes 4096,16384]``.
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

FIELD = 1024


def make(folder: Path, size: int) -> tuple[Path, Path, int]:
    """A SIZE² uint32 instance label zarr and its classified table; returns them and the
    number of objects."""
    import pandas as pd
    import zarr

    from scopeml.synthetic import synthetic_nuclei

    _, field = synthetic_nuclei((FIELD, FIELD), density=0.002, channels=1, seed=1)
    field = field.astype(np.uint32)
    per_field = int(field.max())
    store = zarr.open_array(str(folder / "labels.zarr"), mode="w", shape=(size, size),
                            chunks=(FIELD, FIELD), dtype=np.uint32,
                            dimension_names=["y", "x"])  # fmt: skip
    k = 0
    for y in range(0, size, FIELD):
        for x in range(0, size, FIELD):
            store[y : y + FIELD, x : x + FIELD] = np.where(field > 0, field + k * per_field, 0)
            k += 1
    n = k * per_field
    ids = np.arange(1, n + 1)
    names = np.array(["small", "large", "round"])[ids % 3]
    table = folder / "classes.parquet"
    pd.DataFrame({"label": ids, "class": names}).to_parquet(table)
    return folder / "labels.zarr", table, n


def child(kind: str, labels: str, table: str, out: str) -> None:
    """One run in this process: print its seconds and peak memory as JSON."""
    import warnings

    import scopeml as sm
    from scopeml.io.convert import write_ome_zarr

    image = sm.open_image(labels)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "copy":
            write_ome_zarr(out, image, labels=True)
        else:
            sm.paint_objects(image, table, out)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak}))


def run(kind: str, labels: Path, table: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(labels), str(table), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4096,16384")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            labels, table, n = make(Path(tmp), size)
            copy = run("copy", labels, table, Path(tmp) / "copy.ome.zarr")
            paint = run("paint", labels, table, Path(tmp) / "paint.ome.zarr")
        ratio = paint["seconds"] / copy["seconds"]
        print(f"{size}² ({n:,} objects): paint {paint['seconds']:.1f} s, "
              f"{paint['peak_mb']:.0f} MB peak; copy {copy['seconds']:.1f} s, "
              f"{copy['peak_mb']:.0f} MB; paint/copy {ratio:.2f}×")  # fmt: skip


if __name__ == "__main__":
    main()
