"""Live-preview latency of the napari plugin: re-predicting a 1024² visible region.

Trains the pixel classifier the widget trains (``scopeml.pixel.train_classifier``, basic25
features, 100 trees by default) on ~10k labelled pixels of a 2-channel demo image (strokes from
the known nuclei), then times :func:`scopeml.napari._preview.predict_region` — the widget's
preview, through the engine's plan and kernel — on a 1024² region that is *not* aligned to the
tile grid (as a panned view is not), ``--repeat`` times; prints the median.

Baseline, in the same run: ``PixelClassifier.predict`` on that region plus its halo as one
array (no tiling at all), i.e. the least work any preview of that region could do; the ratio
says what the engine's tiling costs on top. The preview tile size is varied (``--tiles``):
tiling is exact, so every tile size gives the same labels (checked here) and only the time
changes; ``auto`` is the widget's choice (one tile over the region plus halo). Drawing in
napari is not included (a labels layer of 1024² draws in milliseconds).

The figures depend on the machine's load: run it on an idle machine, and say when it was not.

With ``--open-size N`` it also times opening an N² 2-channel OME-Zarr with a pyramid (written
with nothing but a few painted chunks, so making it is quick) the way the reader does (every
level as a dask array), and reading the chunks a first whole-image view draws (the coarsest
level) and one 1024² full-resolution chunk (a zoomed-in view).

Run: ``python bench/bench_napari_preview.py [--size 2048] [--region 1024] [--trees 100]
[--repeat 10] [--tiles auto,512] [--open-size 16384]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def strokes(truth: np.ndarray, n_pixels: int, seed: int = 0) -> np.ndarray:
    """Short horizontal strokes (10 px) at random places, class from the truth (1 bg, 2 fg)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(truth.shape, np.uint8)
    while np.count_nonzero(labels) < n_pixels:
        y = rng.integers(0, truth.shape[0])
        x = rng.integers(0, truth.shape[1] - 10)
        labels[y, x : x + 10] = np.where(truth[y, x : x + 10] > 0, 2, 1)
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--region", type=int, default=1024)
    parser.add_argument("--labelled", type=int, default=10_000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--tiles", default="auto,512")
    parser.add_argument("--open-size", type=int, default=0)
    args = parser.parse_args()
    if args.open_size:
        time_open(args.open_size)

    import scopeml as sm
    from scopeml.napari._preview import predict_region, region_normalization
    from scopeml.pixel import train_classifier
    from scopeml.synthetic import synthetic_nuclei

    pixels, truth = synthetic_nuclei((args.size, args.size), channels=2, seed=1)
    image = sm.Image(pixels.reshape(1, 1, 2, 1, args.size, args.size))
    labels = strokes(truth, args.labelled)
    started = time.perf_counter()
    model = train_classifier(image, labels, classes=["background", "nucleus"],
                             n_estimators=args.trees)  # fmt: skip
    train_s = time.perf_counter() - started
    print(
        f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; image 2×{args.size}², "
        f"{np.count_nonzero(labels)} labelled pixels, {args.trees} trees, basic25 "
        f"(halo {model.features.halo}); training {train_s:.2f} s"
    )
    y0 = x0 = 301  # a panned view: not on the tile grid
    region = {"Y": (y0, y0 + args.region), "X": (x0, x0 + args.region)}
    normalization = region_normalization(image, model)

    halo = model.features.halo
    ys = slice(max(0, y0 - halo), min(args.size, y0 + args.region + halo))
    xs = slice(max(0, x0 - halo), min(args.size, x0 + args.region + halo))
    block = pixels[:, ys, xs].astype(np.float32)[None]
    baseline = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        whole = model.predict_index(block)[0] + 1
        baseline.append(time.perf_counter() - started)
    whole = whole[y0 - ys.start : y0 - ys.start + args.region, x0 - xs.start :][:, : args.region]
    base = statistics.median(baseline)
    print(f"baseline predict_index on region + halo: median {base:.3f} s")

    for tile in (None if t == "auto" else int(t) for t in args.tiles.split(",")):
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            preview = predict_region(
                image, model, region, normalization=normalization,
                options=sm.SegmentOptions(tile_size=tile, workers=1),
            )  # fmt: skip
            times.append(time.perf_counter() - started)
        same = np.array_equal(preview, whole)
        median = statistics.median(times)
        print(
            f"preview {args.region}² (tiles {tile or 'auto'}): median {median:.3f} s of "
            f"{args.repeat} "
            f"(min {min(times):.3f}, max {max(times):.3f}); {median / base:.2f}× baseline; "
            f"equals the untiled prediction: {same}; target ≤ 1 s: "
            f"{'met' if median <= 1.0 else 'MISSED'}"
        )


def time_open(size: int) -> None:
    """Open an ``size``² OME-Zarr as the reader does; time the first views."""
    import tempfile
    from pathlib import Path

    from scopeml.io import create_ome_zarr, write_pyramid
    from scopeml.napari._reader import read_image

    path = Path(tempfile.mkdtemp()) / "big.ome.zarr"
    array = create_ome_zarr(path, shape=(2, size, size), dtype="uint16", axes="CYX",
                            chunks=(1, 1024, 1024), channel_names=["DAPI", "Membrane"],
                            pixel_sizes={"Y": 0.325, "X": 0.325})  # fmt: skip
    array[:, :1024, :1024] = 1000
    started = time.perf_counter()
    levels = write_pyramid(path, levels=7)
    made = time.perf_counter() - started
    started = time.perf_counter()
    read_image(str(path))
    cold = time.perf_counter() - started  # imports zarr, dask … (napari has most already)
    started = time.perf_counter()
    ((data, _kwargs, _),) = read_image(str(path))
    opened = time.perf_counter() - started
    started = time.perf_counter()
    overview = np.asarray(data[-1])
    first_view = time.perf_counter() - started
    started = time.perf_counter()
    chunk = np.asarray(data[0][:, 4096:5120, 4096:5120])
    zoomed = time.perf_counter() - started
    print(
        f"open {size}² OME-Zarr ({levels} levels, pyramid made in {made:.1f} s): layer data in "
        f"{opened:.3f} s; overview {overview.shape} read in {first_view:.3f} s; one full-"
        f"resolution 1024² view ({chunk.shape}) in {zoomed:.3f} s (first open in this process, "
        f"imports included: {cold:.3f} s); target open ≤ 2 s: "
        f"{'met' if opened + first_view <= 2.0 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
