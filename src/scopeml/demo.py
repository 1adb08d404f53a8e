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

PIXEL_SIZE_UM = 0.325
CHANNEL_NAMES = ("DAPI", "Membrane")
# What run_demo writes under its output folder (`scopeml demo --help` lists these).
SAMPLE, TRUTH, SEGMENTATION, TABLE = (
    "sample.ome.zarr", "sample_truth.zarr", "segmentation.ome.zarr", "nuclei.csv",
)  # fmt: skip
OVERVIEW, DETAIL, SUMMARY = "overview.png", "detail.png", "summary.json"
OUTPUTS = {
    SAMPLE: "the sample image (synthetic nuclei in channel DAPI)",
    TRUTH: "its true nuclei (instance labels)",
    SEGMENTATION: "labels, confidence, instances (the nuclei found)",
    TABLE: "measurements, one row per nucleus",
    OVERVIEW: "the whole sample, nuclei outlined in red",
    DETAIL: "its top-left 768×768 at full resolution",
    SUMMARY: "counts, object F1 against the truth, seconds per stage",
}
PLACEMENT_CELL = 256  # px: nuclei are placed per cell of this size
_NOISE_CELL = 128  # px: pixel noise is drawn per cell of this size
# synthetic_nuclei's defaults, which the shipped nuclei model was trained on
_DENSITY, _CLUSTER_FRACTION, _NOISE = 0.001, 0.3, 0.04
_RADIUS, _ELONGATION = (5.0, 11.0), (1.0, 1.6)
_REACH = 20  # px: past the largest nucleus semi-axis (11 × 1.6) + 1
_TEXTURE_SIGMA = 1.5
_TEXTURE_STD = 1 / (2 * np.sqrt(np.pi) * _TEXTURE_SIGMA)  # of white noise blurred so
_HALO = 16  # px: past the texture blur (6) + the blur (4), and the ring (2) + the blur


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

    The mosaic is one continuous scene: nuclei are placed cell by cell
    (:data:`PLACEMENT_CELL` px, each cell seeded by its position, never overlapping a nucleus
    placed before it, in this cell or a neighbour) and may extend into neighbouring cells;
    pixel noise comes from fixed seeded cells too. Each ``block`` is then rendered
    from the nuclei that reach it, with a halo that covers every filter, so the pixels and
    the labels do not depend on ``block`` (only memory does) and no line shows where blocks
    or cells meet. True ids are 1..N in placement order.

    Returns
    -------
    image, truth
        The OME-Zarr image and a sibling zarr array of true instance labels.
    """
    import zarr

    from scopeml.io import create_ome_zarr
    from scopeml.io.omezarr import set_display_window
    from scopeml.threads import map_ordered

    path = Path(path)
    truth_path = path.with_name(path.name.removesuffix(".ome.zarr") + "_truth.zarr")
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
        temp_truth, mode="w", shape=shape, chunks=(1024, 1024), dtype="uint32", fill_value=0,
        dimension_names=["y", "x"],  # so info and open_image read it as a Y×X label image
    )  # fmt: skip
    nuclei = _place_nuclei(shape, seed)
    regions = [
        (slice(y0, min(y0 + block, size)), slice(x0, min(x0 + block, size)))
        for y0 in range(0, size, block)
        for x0 in range(0, size, block)
    ]

    def render(region: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        return _render_block(nuclei, region, shape, channels, seed)

    # two blocks rendered at a time, written here one by one (blocks may share a chunk)
    high = np.zeros(channels)
    for region, (pixels, labels) in zip(regions, map_ordered(render, regions, 2), strict=True):
        image[(slice(None), *region)], truth[region] = pixels, labels
        high = np.maximum(high, pixels.reshape(channels, -1).max(1))
    # each channel shown over its own values, as convert does: 0–65535 showed it dim
    set_display_window(zarr.open_group(str(temp), mode="r+"), [(0, h) for h in high])
    _replace(temp, path)
    _replace(temp_truth, truth_path)
    return path, truth_path


@dataclass(frozen=True)
class _Nuclei:
    """Every nucleus of the sample (id = index + 1)."""

    centre: np.ndarray  # N×2 (y, x), float
    semi_axes: np.ndarray  # N×2 (minor, major), px
    angle: np.ndarray  # N
    brightness: np.ndarray  # N + 1, [0] = background


def _place_nuclei(shape: tuple[int, int], seed: int) -> _Nuclei:
    """Place non-overlapping nuclei cell by cell, in raster order, as ``synthetic_nuclei``
    (``overlap=False``) does in one image: each cell draws ``density × area`` nuclei from its
    own seed, centres inside the cell, a fraction clustered against an earlier one of the
    cell; a nucleus covering one placed before it (here or in a neighbouring cell) is placed
    elsewhere, up to 8 tries, then left out."""
    from scopeml.synthetic import _draw_ellipsoid

    cell, reach = PLACEMENT_CELL, _REACH
    centres: list[np.ndarray] = []
    semi_axes: list[np.ndarray] = []
    angles: list[float] = []
    levels: list[float] = []
    cells: dict[tuple[int, int], np.ndarray] = {}  # cell → indices of the nuclei centred in it
    for cy, cx in np.ndindex(-(-shape[0] // cell), -(-shape[1] // cell)):
        low = np.array([cy * cell, cx * cell], float)
        high = np.minimum(low + cell, shape)
        origin = low - reach
        occupied = np.zeros((high - low + 2 * reach).astype(int), np.uint8)
        near = np.concatenate(
            [
                cells.get(n, ())
                for n in ((cy - 1, cx - 1), (cy - 1, cx), (cy - 1, cx + 1), (cy, cx - 1))
            ]
        ).astype(int)
        if near.size:
            at = np.array([centres[i] for i in near])
            close = np.all(at > low - 2 * reach, axis=1) & np.all(at < high + 2 * reach, axis=1)
            near = near[close]
            _paint(
                occupied,
                at[close] - origin,
                np.array([semi_axes[i] for i in near]).reshape(-1, 2),
                np.array([angles[i] for i in near]),
                np.ones(len(near), np.uint8),
            )
        rng = np.random.default_rng([seed, 0, cy, cx])  # 0: placement; _noise uses 1 + stream
        mine: list[int] = []
        for _ in range(round(_DENSITY * float(np.prod(high - low)))):
            minor = rng.uniform(*_RADIUS)
            axes = np.array([minor, minor * rng.uniform(*_ELONGATION)])
            level = rng.uniform(0.45, 1.0)
            for _ in range(8):
                if mine and rng.random() < _CLUSTER_FRACTION:
                    direction = rng.normal(size=2)
                    direction /= np.linalg.norm(direction) + 1e-9
                    centre = centres[mine[rng.integers(len(mine))]] + direction * minor * 1.9
                else:
                    centre = low + rng.uniform(0, 1, 2) * (high - low)
                angle = rng.uniform(0, np.pi)
                if not (low[0] <= centre[0] < high[0] and low[1] <= centre[1] < high[1]):
                    continue  # centred in another cell: that cell's to place
                if _draw_ellipsoid(occupied, centre - origin, axes, angle, 1, overwrite=False):
                    mine.append(len(centres))
                    centres.append(centre)
                    semi_axes.append(axes)
                    angles.append(angle)
                    levels.append(level)
                    break
        cells[cy, cx] = np.array(mine, int)
    return _Nuclei(
        centre=np.array(centres).reshape(-1, 2),
        semi_axes=np.array(semi_axes).reshape(-1, 2),
        angle=np.array(angles),
        brightness=np.array([0.0, *levels]),
    )


def _render_block(
    nuclei: _Nuclei,
    region: tuple[slice, slice],
    shape: tuple[int, int],
    channels: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (``C×Y×X`` uint16) and true labels (uint32) of one block of the sample,
    rendered as ``synthetic_nuclei`` renders (texture, a membrane-like ring, blur,
    illumination, shot and read noise) over the block plus a halo past every filter's reach,
    so they equal the same pixels of any other block layout."""
    from scipy import ndimage as ndi

    from scopeml.synthetic import _illumination

    inner = [(s.start, s.stop) for s in region]
    outer = [(max(a - _HALO, 0), min(b + _HALO, n)) for (a, b), n in zip(inner, shape, strict=True)]
    (y0, y1), (x0, x1) = outer
    origin = np.array([y0, x0], float)
    labels = np.zeros((y1 - y0, x1 - x0), np.int32)
    centre = nuclei.centre
    near = np.flatnonzero(
        np.all(centre + _REACH >= origin, axis=1) & np.all(centre - _REACH < (y1, x1), axis=1)
    )
    _paint(labels, centre[near] - origin, nuclei.semi_axes[near], nuclei.angle[near], near + 1)
    nucleus = nuclei.brightness[labels].astype(np.float32)
    texture = ndi.gaussian_filter(_noise(seed, 0, outer), _TEXTURE_SIGMA)
    nucleus *= 1.0 + 0.25 * texture / _TEXTURE_STD
    layers = [nucleus]
    if channels > 1:
        ring = ndi.grey_dilation(labels, size=(5, 5)) > 0
        layers.append(0.5 * (ring & (labels == 0)).astype(np.float32) + 0.2 * (labels > 0))
    for c in range(2, channels):
        layers.append(nucleus * (0.3 + 0.2 * c / channels))
    light = _illumination(labels.shape, 0.4, (y0, x0), shape, seed, np.random.default_rng(0))
    crop = tuple(slice(a - o, b - o) for (a, b), (o, _) in zip(inner, outer, strict=True))
    pixels = np.empty((channels, *(b - a for a, b in inner)), np.uint16)
    for c, layer in enumerate(layers):
        signal = (ndi.gaussian_filter(layer, 1.0) + 0.08 + 0.02 * c) * light
        shot = _noise(seed, 2 * c + 1, outer) * np.sqrt(np.maximum(signal, 0) * _NOISE * 0.1)
        value = np.clip(signal + shot + _noise(seed, 2 * c + 2, outer) * (_NOISE * 0.5), 0, 2)
        pixels[c] = (value[crop] * (np.iinfo(np.uint16).max * 0.5)).astype(np.uint16)
    return pixels, labels[crop].astype(np.uint32)


def _paint(
    labels: np.ndarray,
    centres: np.ndarray,
    semi_axes: np.ndarray,
    angles: np.ndarray,
    values: np.ndarray,
    batch: int = 1024,
) -> None:
    """Paint rotated ellipses (``N×2`` centres and (minor, major) semi-axes, ``N`` angles)
    into ``labels`` with the arithmetic of :func:`scopeml.synthetic._draw_ellipsoid`, so
    the same pixels, but ``batch`` at a time instead of one Python call each. The ellipses
    must not overlap (the sample's never do): which one wins a shared pixel is not defined."""
    offsets = np.arange(-_REACH, _REACH + 1)
    for start in range(0, len(centres), batch):
        part = slice(start, start + batch)
        centre, axes, angle = centres[part], semi_axes[part], angles[part]
        rows = np.floor(centre[:, :1]).astype(int) + offsets  # n×W
        cols = np.floor(centre[:, 1:]).astype(int) + offsets
        y = (rows - centre[:, :1])[:, :, None]
        x = (cols - centre[:, 1:])[:, None, :]
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        u, v = x * cos + y * sin, -x * sin + y * cos
        inside = (u / axes[:, 1, None, None]) ** 2 + (v / axes[:, 0, None, None]) ** 2 <= 1.0
        inside &= ((rows >= 0) & (rows < labels.shape[0]))[:, :, None]
        inside &= ((cols >= 0) & (cols < labels.shape[1]))[:, None, :]
        n, r, c = np.nonzero(inside)
        labels[rows[n, r], cols[n, c]] = values[part][n]


def _noise(seed: int, stream: int, window: list[tuple[int, int]]) -> np.ndarray:
    """Standard normal float32 noise over ``window`` ((y0, y1), (x0, x1)) of one field per
    ``stream``, drawn in seeded fixed cells, so any window of the field is the same values."""
    (y0, y1), (x0, x1) = window
    cell = _NOISE_CELL
    out = np.empty((y1 - y0, x1 - x0), np.float32)
    for cy in range(y0 // cell, -(-y1 // cell)):
        for cx in range(x0 // cell, -(-x1 // cell)):
            rng = np.random.default_rng([seed, 1 + stream, cy, cx])  # 0: _place_nuclei's
            values = rng.standard_normal((cell, cell), np.float32)
            ya, yb = max(y0, cy * cell), min(y1, (cy + 1) * cell)
            xa, xb = max(x0, cx * cell), min(x1, (cx + 1) * cell)
            out[ya - y0 : yb - y0, xa - x0 : xb - x0] = values[
                ya - cy * cell : yb - cy * cell, xa - cx * cell : xb - cx * cell
            ]
    return out


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

    from scopeml.api import measure_objects, segment
    from scopeml.io import open_image
    from scopeml.objects import write_table
    from scopeml.train.metrics import object_scores

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    clock = time.perf_counter()
    log(f"1/4 writing a {channels}×{size}×{size} sample image (synthetic nuclei)")
    image_path, truth_path = write_sample_image(
        out / SAMPLE, size=size, channels=channels, seed=seed
    )
    seconds["sample"] = time.perf_counter() - clock

    clock = time.perf_counter()
    log("2/4 segmenting with the built-in nuclei model into labels and nuclei (tiled, exact;")
    log("    touching nuclei split at the model's boundary class)")
    segmentation = segment(
        image_path,
        "nuclei",
        out / SEGMENTATION,
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
    with open_image(image_path) as image:  # the table of every measuring command (t, label…)
        table = measure_objects(segmentation, image, progress=progress)
        table_path = write_table(table, out / TABLE, overwrite=True)  # as the store
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
    (out / SUMMARY).write_text(
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

    from scopeml.threads import map_ordered

    size_y, size_x = image.spatial_shape[1:]
    factor = max(1, max(size_y, size_x) // 2048)

    def reduced(corner: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        y, x = (slice(c, min(c + 1024, n)) for c, n in zip(corner, (size_y, size_x), strict=True))
        pixels = image.read(C=0, Y=y, X=x)[0, 0, 0, 0].astype(np.float32)
        edges = find_boundaries(np.asarray(nuclei[y, x]), mode="inner")
        return downscale_local_mean(pixels, factor), downscale_local_mean(edges, factor)

    columns = range(0, size_x, 1024)
    corners = [(y0, x0) for y0 in range(0, size_y, 1024) for x0 in columns]
    tiles = list(map_ordered(reduced, corners, 2))
    rows = [tiles[i : i + len(columns)] for i in range(0, len(tiles), len(columns))]
    pixels = np.block([[p for p, _ in row] for row in rows])
    edges = np.block([[e for _, e in row] for row in rows]) > 0.2
    overview = out / OVERVIEW
    imsave(overview, _outlined(pixels, edges), check_contrast=False)

    crop = dict(Y=slice(0, min(768, size_y)), X=slice(0, min(768, size_x)))
    pixels = image.read(C=0, **crop)[0, 0, 0, 0].astype(np.float32)
    edges = find_boundaries(np.asarray(nuclei[crop["Y"], crop["X"]]), mode="inner")
    detail = out / DETAIL
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
