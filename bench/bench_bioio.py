"""Benchmark: reading tiles through the bioio adaptor against scopeml's own readers.

The same pixels (``--size``² uint16, zlib) are written as an OME-Zarr (``--chunk``² chunks) and as
a tiled OME-TIFF (256² tiles); then ``--tiles`` random ``--tile``² regions are read from each,
through scopeml's reader and through ``read_bioio`` (bioio-ome-zarr, bioio-ome-tiff), and the
time to open the file. bioio-ome-zarr reads zarr chunks, as scopeml does; bioio-ome-tiff decodes
the whole plane for each region, which is what the ratio shows.

Run: ``python bench/bench_bioio.py [--size 4096] [--tile 512] [--tiles 16] [--chunk 512]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile


def _time(function, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--tiles", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=512)
    args = parser.parse_args()

    from scopeml.io import create_ome_zarr, open_image
    from scopeml.io.bioio import read_bioio
    from scopeml.synthetic import synthetic_nuclei

    folder = Path(tempfile.mkdtemp())
    pixels, _ = synthetic_nuclei((args.size, args.size), density=0.0005, seed=1)
    zarr_path = folder / "image.ome.zarr"
    create_ome_zarr(
        zarr_path,
        shape=pixels.shape,
        dtype=pixels.dtype,
        axes="CYX",
        chunks=(1, args.chunk, args.chunk),
        pixel_sizes={"Y": 0.5, "X": 0.5},
    )[:] = pixels
    tiff_path = folder / "image.ome.tif"
    tifffile.imwrite(
        tiff_path, pixels, ome=True, tile=(256, 256), compression="zlib", metadata={"axes": "CYX"}
    )
    rng = np.random.default_rng(0)
    corners = rng.integers(0, args.size - args.tile, (args.tiles, 2))
    results = {}
    for name, path, plugin in (
        ("ome-zarr", zarr_path, "bioio-ome-zarr"),
        ("ome-tiff", tiff_path, "bioio-ome-tiff"),
    ):
        opened = {
            "scopeml": lambda path=path: open_image(path),
            "bioio": lambda path=path, plugin=plugin: read_bioio(path, plugin=plugin),
        }
        row = {}
        for reader, open_ in opened.items():
            row[f"open_s_{reader}"] = _time(lambda open_=open_: open_().close(), repeat=3)
            image = open_()
            tiles = [
                {"Y": slice(int(y), int(y) + args.tile), "X": slice(int(x), int(x) + args.tile)}
                for y, x in corners
            ]
            for region in tiles:  # equal pixels, before timing
                expected = pixels[:, region["Y"], region["X"]]
                np.testing.assert_array_equal(image.read(**region)[0, 0, :, 0], expected)
            row[f"tiles_s_{reader}"] = _time(lambda image=image, tiles=tiles: [
                image.read(**region) for region in tiles
            ], repeat=2)  # fmt: skip
            image.close()
        row["tiles_ratio_bioio_over_scopeml"] = row["tiles_s_bioio"] / row["tiles_s_scopeml"]
        row["open_ratio_bioio_over_scopeml"] = row["open_s_bioio"] / row["open_s_scopeml"]
        results[name] = {k: round(v, 4) for k, v in row.items()}
    print(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
