"""What the lower resolutions of segment's outputs cost, against the run that makes them.

    python bench/bench_levels.py [--size 4096] [--outputs labels,instances]

Segments a tiled real nuclei image (the stardist package's ``img2d.tif``, repeated to
``--size``²) with the built-in ``nuclei`` model, then builds every output's levels again on
their own in the same process: the ratio is the share of the run that the levels take.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

import scopeml as sm
from scopeml.io.omezarr import level_count
from scopeml.io.pyramid import add_levels


def tiled_nuclei(size: int) -> np.ndarray:
    from importlib.util import find_spec

    folder = Path(find_spec("stardist").submodule_search_locations[0])  # not imported: no deps
    image = tifffile.imread(folder / "data/images/img2d.tif")
    reps = (-(-size // image.shape[0]), -(-size // image.shape[1]))
    return np.tile(image, reps)[:size, :size]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--outputs", default="labels,instances")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    tifffile.imwrite(folder / "img.tif", tiled_nuclei(args.size))
    outputs = args.outputs.split(",")
    start = time.perf_counter()
    seg = sm.segment(folder / "img.tif", "nuclei", folder / "out.ome.zarr", outputs=outputs)
    run = time.perf_counter() - start
    start = time.perf_counter()
    for name in seg.outputs:
        add_levels(seg.path / name, "mode")
    levels = time.perf_counter() - start
    counts = {name: level_count(seg.path / name) for name in seg.outputs}
    print(f"image {args.size}² px, outputs {', '.join(seg.outputs)}, levels {counts}")
    print(f"segment (levels included) {run:.1f} s; the levels alone {levels:.2f} s "
          f"= {levels / run:.3f} × the run")  # fmt: skip


if __name__ == "__main__":
    main()
