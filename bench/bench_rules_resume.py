"""New rules on finished results: ``--resume`` with another cutoff against a new analysis with
it, in one run. Prints each one's wall time, the ratio, and whether their tables and counts are
the same bytes (they must be).

    python bench/bench_rules_resume.py                     # 8 synthetic images of 2048²
    python bench/bench_rules_resume.py --image IMG.tif --repeat 4   # a real CYX image, as a
                                                    # 4 × 4 mosaic, 8 times

The nuclei are found by the built-in model (``kind: instances``); the rules sort them by a
second channel's mean intensity and by area. A resume with a new intensity cutoff rewrites the
tables' ``object_class`` and the summary; the new analysis segments and measures every image.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_analysis import make_image


def settings(cutoff: float) -> dict:
    rules = {"bright": {"intensity_mean_GFP": {"min": cutoff}}, "small": {"area": {"max": 150}},
             "other": {}}  # fmt: skip
    nucleus = {"kind": "instances", "model": "nuclei", "channels": ["DAPI"]}
    return {"version": 1, "channels": ["DAPI", "GFP"],
            "classes": [{"name": "nucleus", "segmenter": nucleus, "rules": rules}]}  # fmt: skip


def images(folder: Path, image: str | None, copies: int, size: int, repeat: int) -> list[Path]:
    """``copies`` images: the real ``image``'s first two channels (DNA, then the one the
    rules measure) as a ``repeat`` × ``repeat`` mosaic, else synthetic scenes."""
    import numpy as np
    import tifffile

    paths = [folder / f"i{n}.tif" for n in range(copies)]
    for n, path in enumerate(paths):
        if image is None:
            make_image(path, size, seed=n)
        else:
            pixels = np.tile(tifffile.imread(image)[:2], (1, repeat, repeat))
            tifffile.imwrite(path, pixels, metadata={"axes": "CYX"})
    return paths


def timed(**kwargs) -> float:
    from scopeml.analysis import run_analysis

    start = time.perf_counter()
    run_analysis(**kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="a real CYX TIFF (its first two channels are used)")
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=1, help="--image as an N × N mosaic")
    parser.add_argument("--cutoffs", default="600,800", help="the first run's, then the new")
    args = parser.parse_args()
    first, then = map(float, args.cutoffs.split(","))
    folder = Path(tempfile.mkdtemp(prefix="bench_rules_"))
    try:
        paths = images(folder, args.image, args.copies, args.size, args.repeat)
        full = timed(settings=settings(first), images=paths, output=folder / "out")
        resumed = timed(settings=settings(then), images=paths, output=folder / "out", resume=True)
        fresh = timed(settings=settings(then), images=paths, output=folder / "fresh")
        same = [filecmp.cmp(folder / "out" / p, folder / "fresh" / p, shallow=False)
                for p in ("tables/nucleus.csv", "summary/counts.csv")]  # fmt: skip
        print(
            f"{len(paths)} images: first analysis {full:.1f} s; new rules by resume "
            f"{resumed:.1f} s, by a new analysis {fresh:.1f} s "
            f"(resume / new analysis = {resumed / fresh:.3f}); tables and counts the same "
            f"bytes: {all(same)}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
