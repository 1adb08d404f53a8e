"""What a ``grow`` class (cells from nuclei) adds to an analysis, as a ratio of the same
analysis without it, in one process on one synthetic 2-channel image: nuclei by Otsu, then
cells grown over a cytoplasm stain (``within``), cells grown without a stain (halfway), and
a membrane stain (``dark: true``, two floods). Also scikit-image's ``expand_labels`` on the same
nuclei, the classical one-liner, for scale.

    python bench/bench_grow.py                 # 4096²
    python bench/bench_grow.py --size 8192
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from scopeml.analysis import AnalysisSettings, run_analysis
from scopeml.synthetic import synthetic_nuclei

GROWS = {
    "no grow class (baseline)": None,
    "grow over a cytoplasm stain": {"within": {"channel": "Stain", "method": "triangle"}},
    "grow halfway (no stain)": {},
    "grow along a membrane": {"within": {"channel": "Stain", "method": "otsu", "dark": True}},
}


def image(size: int, folder: Path) -> Path:
    """Nuclei, and a stain: bright cytoplasm 12 px around each with a dim line where cells
    meet (or, for the membrane run, the same lines bright: the analysis reads it as stated)."""
    from skimage.segmentation import expand_labels, find_boundaries

    pixels, labels = synthetic_nuclei((size, size), density=0.0015, seed=3)
    cells = expand_labels(np.asarray(labels).reshape(size, size), 12)
    stain = np.where(cells > 0, 900, 100).astype(np.uint16)
    stain[find_boundaries(cells, mode="inner") & (cells > 0)] = 300
    path = folder / "cells.ome.tif"
    tifffile.imwrite(path, np.stack([np.asarray(pixels).reshape(size, size), stain]), ome=True,
                     metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "Stain"]}})  # fmt: skip
    return path


def settings(grow: dict | None) -> AnalysisSettings:
    classes = [{"name": "nucleus", "segmenter": {"kind": "threshold", "channel": "DAPI",
                                                 "method": "otsu", "sigma": 1}}]  # fmt: skip
    if grow is not None:
        seg = {"kind": "grow", "seeds": "nucleus", "distance": 20, **grow}
        classes.append({"name": "cell", "segmenter": seg})
    return AnalysisSettings.model_validate({
        "channels": ["DAPI", "Stain"], "classes": classes, "memory_mb": 4096,
        "outputs": {"overview": False, "summary": False, "parquet": False}})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = image(args.size, Path(folder))
        print(f"{args.size}² image, 1 worker")
        base = None
        for name, grow in GROWS.items():
            start = time.perf_counter()
            result = run_analysis(settings(grow), [path], Path(folder) / str(len(name)),
                                  workers=1, progress=False)  # fmt: skip
            seconds = time.perf_counter() - start
            base = base or seconds
            counts = ", ".join(f"{k} {v}" for k, v in result.counts["cells"].items())
            print(f"{name:<30}{seconds:7.1f} s  {seconds / base:5.2f}×  ({counts})")
        from skimage.segmentation import expand_labels

        nuclei = run_analysis(settings(None), [path], Path(folder) / "n", workers=1,
                              progress=False)  # fmt: skip
        import scopeml as sm

        labels = sm.open_image(Path(folder) / "n" / "images" / "cells" / "nucleus.ome.zarr")
        plane = labels.read()[0, 0, 0, 0]
        start = time.perf_counter()
        expand_labels(plane, 20)
        seconds = time.perf_counter() - start
        print(f"{'skimage expand_labels alone':<30}{seconds:7.1f} s  {seconds / base:5.2f}×"
              f"  (the nuclei of {nuclei.counts['cells']['nucleus']})")  # fmt: skip


if __name__ == "__main__":
    main()
