"""The built-in end-to-end job: sample image → tiled segmentation → nuclei → measurements → PNG.

Everything is generated or shipped: a synthetic fluorescence mosaic with known nuclei (written
block by block, never whole in memory), the built-in ``nuclei`` model, and the
outputs a person looks at — instance labels, a measurement table, an overview with outlines and
a full-resolution detail, and the object-level score against the known nuclei.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scopeml.synthetic import synthetic_nuclei

PIXEL_SIZE_UM = 0.325
CHANNEL_NAMES = ("DAPI", "Membrane")
_MAX_REACH = 11.0 * 1.6 + 2  # largest nucleus semi-axis of synthetic_nuclei's defaults, + margin


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs, and what it measured."""

    image: Path
    segmentation: Path
    nuclei: Path
    table: Path
    overview: Path
    detail: Path
    n_nuclei: int
    n_true_nuclei: int
    f1: float
    seconds: dict[str, float]


def write_sample_image(
    path: str | os.PathLike[str],
    *,
    size: int = 8192,
    channels: int = 2,
    block: int = 2048,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write a ``channels×size×size`` uint16 nuclei mosaic and its true instance labels.

    Blocks are drawn independently (nuclei kept inside their block, one illumination field over
    the whole canvas), so memory depends on ``block``, not on ``size``.

    Returns
    -------
    image, truth
        The OME-Zarr image and a sibling zarr array of true instance labels.
    """
    import zarr

    from scopeml.io import create_ome_zarr

    path = Path(path)
    truth_path = path.with_name(path.name.replace(".ome.zarr", "") + "_truth.zarr")
    shape = (size, size)
    temp, temp_truth = _temp(path), _temp(truth_path)
    image = create_ome_zarr(
        temp,
        shape=(channels, *shape),
        dtype="uint16",
        axes="CYX",
        chunks=(1, 1024, 1024),
        pixel_sizes={"Y": PIXEL_SIZE_UM, "X": PIXEL_SIZE_UM},
        channel_names=[*CHANNEL_NAMES, *(f"C{c}" for c in range(2, channels))][:channels],
        name="scopeml demo sample",
    )
    truth = zarr.open_array(
        temp_truth, mode="w", shape=shape, chunks=(1024, 1024), dtype="uint32", fill_value=0
    )
    next_id = 0
    for index, (y0, x0) in enumerate(np.ndindex(-(-size // block), -(-size // block))):
        y0, x0 = y0 * block, x0 * block
        block_shape = (min(block, size - y0), min(block, size - x0))
        pixels, labels = synthetic_nuclei(
            block_shape,
            channels=channels,
            seed=seed * 100_003 + index,
            margin=_MAX_REACH,
            origin=(y0, x0),
            canvas_shape=shape,
            illumination_seed=seed,
            overlap=False,  # nuclei touch but never hide each other, as in a real stain
        )
        region = (slice(y0, y0 + block_shape[0]), slice(x0, x0 + block_shape[1]))
        image[(slice(None), *region)] = pixels
        truth[region] = np.where(labels > 0, labels + next_id, 0).astype(np.uint32)
        next_id += int(labels.max())
    _replace(temp, path)
    _replace(temp_truth, truth_path)
    return path, truth_path


def run_demo(
    output_dir: str | os.PathLike[str] = "scopeml-demo",
    *,
    size: int = 8192,
    channels: int = 2,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Generate a sample, segment it tiled with the default model, measure and draw the nuclei."""
    import zarr

    from scopeml.api import segment
    from scopeml.io import open_image
    from scopeml.objects import measure_objects_tiled, write_table
    from scopeml.train.metrics import object_scores

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    clock = time.perf_counter()
    log(f"1/4 writing a {channels}×{size}×{size} sample image (synthetic nuclei)")
    image_path, truth_path = write_sample_image(
        out / "sample.ome.zarr", size=size, channels=channels, seed=seed
    )
    seconds["sample"] = time.perf_counter() - clock

    clock = time.perf_counter()
    log("2/4 segmenting with the built-in nuclei model into labels and nuclei (tiled, exact;")
    log("    touching nuclei split at the model's boundary class)")
    segmentation = segment(
        image_path,
        "nuclei",
        out / "segmentation.ome.zarr",
        outputs=("labels", "confidence", "instances"),
        channels=(CHANNEL_NAMES[0],),
        overwrite=True,
        progress=progress,
    )
    nuclei_path = segmentation / "instances"
    nuclei = _squeeze(zarr.open_array(nuclei_path / "0", mode="r"))
    seconds["segment"] = time.perf_counter() - clock

    clock = time.perf_counter()
    log("3/4 measuring nuclei")
    with open_image(image_path) as image:
        table = measure_objects_tiled(nuclei, image, progress=progress)
        table_path = write_table(table, out / "nuclei.csv", overwrite=True)  # as the store
        seconds["measure"] = time.perf_counter() - clock

        clock = time.perf_counter()
        log("4/4 drawing the overview and scoring against the known nuclei")
        overview, detail = _draw(image, nuclei, out)
    truth = zarr.open_array(truth_path, mode="r")
    crop = (slice(0, min(size, 2048)), slice(0, min(size, 2048)))
    scores = object_scores(np.asarray(nuclei[crop]), np.asarray(truth[crop]))
    seconds["draw_and_score"] = time.perf_counter() - clock

    result = DemoResult(
        image=image_path,
        segmentation=segmentation,
        nuclei=nuclei_path,
        table=table_path,
        overview=overview,
        detail=detail,
        n_nuclei=len(table),
        n_true_nuclei=int(_count_ids(truth)),
        f1=float(scores["f1"]),
        seconds={k: round(v, 2) for k, v in seconds.items()},
    )
    (out / "summary.json").write_text(
        json.dumps(
            {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}, indent=2
        )
    )
    return result


def _draw(image: object, nuclei: object, out: Path) -> tuple[Path, Path]:
    """An overview of the whole mosaic and a full-resolution detail, nuclei outlined in red."""
    from skimage.io import imsave
    from skimage.segmentation import find_boundaries
    from skimage.transform import downscale_local_mean

    size_y, size_x = image.spatial_shape[1:]
    factor = max(1, max(size_y, size_x) // 2048)
    rows = []
    for y0 in range(0, size_y, 1024):
        row = []
        for x0 in range(0, size_x, 1024):
            region = dict(Y=slice(y0, min(y0 + 1024, size_y)), X=slice(x0, min(x0 + 1024, size_x)))
            pixels = image.read(C=0, **region)[0, 0, 0, 0].astype(np.float32)
            edges = find_boundaries(np.asarray(nuclei[region["Y"], region["X"]]), mode="inner")
            row.append((downscale_local_mean(pixels, factor), downscale_local_mean(edges, factor)))
        rows.append(row)
    pixels = np.block([[p for p, _ in row] for row in rows])
    edges = np.block([[e for _, e in row] for row in rows]) > 0.2
    overview = out / "overview.png"
    imsave(overview, _outlined(pixels, edges), check_contrast=False)

    crop = dict(Y=slice(0, min(768, size_y)), X=slice(0, min(768, size_x)))
    pixels = image.read(C=0, **crop)[0, 0, 0, 0].astype(np.float32)
    edges = find_boundaries(np.asarray(nuclei[crop["Y"], crop["X"]]), mode="inner")
    detail = out / "detail.png"
    imsave(detail, _outlined(pixels, edges), check_contrast=False)
    return overview, detail


def _outlined(pixels: np.ndarray, edges: np.ndarray) -> np.ndarray:
    low, high = np.percentile(pixels, (0.5, 99.8))
    gray = (np.clip((pixels - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    rgb[edges] = (255, 40, 40)
    return rgb


def _squeeze(array: object) -> object:
    """A 2-D (Y, X) view of a ``T×C×Z×Y×X``-like zarr array whose leading axes have size 1."""
    lead = len(array.shape) - 2
    if any(n != 1 for n in array.shape[:lead]):
        raise ValueError(f"expected one plane; got shape {array.shape}")

    class _Plane:
        shape = tuple(array.shape[lead:])
        chunks = tuple(array.chunks[lead:])
        dtype = array.dtype

        def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
            return np.asarray(array[(0,) * lead + tuple(key)])

    return _Plane()


def _count_ids(truth: object) -> int:
    return int(
        max(int(np.asarray(truth[y : y + 2048]).max()) for y in range(0, truth.shape[0], 2048))
    )


def _temp(path: Path) -> Path:
    temp = path.with_name(path.name + ".partial")
    shutil.rmtree(temp, ignore_errors=True)
    return temp


def _replace(temp: Path, path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    os.replace(temp, path)
