"""Synthetic two-channel images with a known 3-level tree: cells ⊃ nuclei ⊃ spots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter
from scopeml.analysis.settings import FillHoles, Measurements, RemoveSmall


def cell_image(shape: tuple[int, int] = (256, 256), seed: int = 0, n_cells: int = 6) -> np.ndarray:
    """``2×Y×X`` uint16: channel 0 nuclei (DAPI), channel 1 cytoplasm with bright spots.

    Cells are disks of radius 22–30 px on a grid (never touching), each with a nucleus of
    radius 9–12 px at its centre and 1–3 spots of radius 2 px inside the nucleus.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dapi = np.full(shape, 100.0)
    cyto = np.full(shape, 100.0)
    step = 72
    rows, cols = range(40, shape[0] - 35, step), range(40, shape[1] - 35, step)
    centres = [(y, x) for y in rows for x in cols]
    for cy, cx in centres[:n_cells] if n_cells else centres:
        cy, cx = cy + rng.integers(-4, 5), cx + rng.integers(-4, 5)
        r = rng.integers(22, 31)
        cyto[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 900
        rn = rng.integers(9, 13)
        dapi[(yy - cy) ** 2 + (xx - cx) ** 2 < rn * rn] = 2000
        for _ in range(rng.integers(1, 4)):
            sy, sx = cy + rng.integers(-5, 6), cx + rng.integers(-5, 6)
            cyto[(yy - sy) ** 2 + (xx - sx) ** 2 <= 4] = 3000
    noise = rng.normal(0, 20, (2, *shape))
    return np.clip(np.stack([dapi, cyto]) + noise, 0, 65535).astype(np.uint16)


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """An OME-TIFF with channel names DAPI and GFP."""
    tifffile.imwrite(
        path, pixels, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    )
    return path


def nuclei_tiffs(folder: Path, seeds: tuple[int, ...] = (5, 6)) -> list[Path]:
    """Small single-channel TIFFs of synthetic nuclei, ``cells{seed}.tif``, one per seed."""
    from scopeml.synthetic import synthetic_nuclei

    images = []
    for seed in seeds:
        pixels, _ = synthetic_nuclei((64, 80), density=0.004, seed=seed)
        tifffile.imwrite(folder / f"cells{seed}.tif", pixels[0])
        images.append(folder / f"cells{seed}.tif")
    return images


def three_level_settings(tile_size: int = 1024) -> AnalysisSettings:
    """cells by Otsu on GFP → nuclei by Otsu on DAPI inside cells → spots (fixed) inside nuclei."""
    return AnalysisSettings(
        channels=["DAPI", "GFP"],
        tile_size=tile_size,
        classes=[
            ClassSettings(
                name="cell",
                segmenter=ThresholdSegmenter(channel="GFP", method="otsu", sigma=1.0),
                post=[FillHoles(), RemoveSmall(min_size=100)],
            ),
            ClassSettings(
                name="nucleus",
                parent="cell",
                segmenter=ThresholdSegmenter(channel="DAPI", method="li", sigma=1.0),
                post=[FillHoles(), RemoveSmall(min_size=20)],
                measurements=Measurements(intensity=["DAPI"]),
            ),
            ClassSettings(
                name="spot",
                parent="nucleus",
                segmenter=ThresholdSegmenter(channel="GFP", method="fixed", value=2000),
                measurements=Measurements(shape=False, intensity=["GFP"]),
            ),
        ],
    )


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    return [write_image(folder / f"img{i}.ome.tif", cell_image(seed=i)) for i in range(2)]
