"""Tiled post-processing against the whole-image run: same result, time and peak memory.

    python bench/bench_post.py [--size 2048] [--tile 512]

Peak memory is NumPy's traced peak (tracemalloc) of each run, measured in the same process.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from scopeml.io import open_image
from scopeml.io.omezarr import create_ome_zarr
from scopeml.post import PostStep, apply_steps, post_process_file

STEPS = ["closing:1", "fill_holes:200", "remove_small:50", "opening:2"]


def labels_of(size: int) -> np.ndarray:
    smooth = ndi.gaussian_filter(np.random.default_rng(0).random((size, size)), 3)
    labels = (smooth > np.quantile(smooth, 0.6)).astype(np.uint8)
    labels[smooth > np.quantile(smooth, 0.9)] = 2
    return labels


def measured(run):
    tracemalloc.start()
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    args = parser.parse_args()
    steps = [PostStep.parse(s) for s in STEPS]
    labels = labels_of(args.size)
    folder = Path(tempfile.mkdtemp())
    create_ome_zarr(folder / "in.ome.zarr", shape=labels.shape, dtype="uint8", axes="YX",
                    chunks=(args.tile, args.tile))[:] = labels  # fmt: skip
    del labels
    whole, t_whole, m_whole = measured(
        lambda: apply_steps(open_image(folder / "in.ome.zarr").read()[0, 0, 0, 0], steps)
    )
    out, t_tiled, m_tiled = measured(
        lambda: post_process_file(
            folder / "in.ome.zarr", folder / "out.ome.zarr", steps, tile_size=args.tile
        )
    )
    same = np.array_equal(open_image(out).read()[0, 0, 0, 0], whole)
    print(f"{args.size}² labels, steps {' '.join(STEPS)} (halo {sum(s.halo for s in steps)}), "
          f"tile {args.tile}: identical={same}")  # fmt: skip
    print(f"whole: {t_whole:.2f} s, peak {m_whole:.0f} MiB")
    print(f"tiled: {t_tiled:.2f} s, peak {m_tiled:.0f} MiB "
          f"(time ×{t_tiled / t_whole:.2f}, memory ×{m_tiled / m_whole:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
