"""The batch summary a facility hands over: every image labelled, units on the axes, a plot
per measured channel, per-image boxes, densities and means in counts.csv, child aggregates in
the row's units, and an overview with a legend and a scale bar."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image as PILImage

from scopeml.analysis import run_analysis
from scopeml.analysis.charts import MIN_STEP, bar_chart

from .conftest import cell_image, three_level_settings

PIXEL = 0.5  # µm


def _write(path: Path, pixels: np.ndarray, pixel_size: float | None) -> Path:
    metadata = {"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    if pixel_size:
        metadata.update(PhysicalSizeX=pixel_size, PhysicalSizeY=pixel_size)
    tifffile.imwrite(path, pixels, ome=True, metadata=metadata)
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three calibrated images with long names that differ only in the middle."""
    folder = tmp_path_factory.mktemp("report")
    paths = [_write(folder / f"plate01_well{w}_field001_DAPI-GFP.ome.tif",
                    cell_image(seed=i, n_cells=3 + i), PIXEL)
             for i, w in enumerate(["A01", "B07", "H12"])]  # fmt: skip
    run_analysis(three_level_settings(), paths, folder / "out")
    return folder / "out"


def _texts(path: Path) -> dict[str, str]:
    with PILImage.open(path) as image:
        image.load()
        return dict(image.text)


def _names(out: Path) -> list[str]:
    return pd.read_csv(out / "summary" / "counts.csv")["image"].tolist()


def test_the_count_chart_labels_every_image_and_draws_its_count(batch: Path) -> None:
    names = _names(batch)
    path = batch / "summary" / "cell_counts.png"
    texts = _texts(path)
    assert json.loads(texts["labels"]) == names
    assert texts["x_title"] == "image (plate01_well…_field001_DAPI-GFP)"  # what names share
    rgb = np.asarray(PILImage.open(path).convert("RGB")).astype(int)
    coloured = np.abs(rgb - rgb[..., :1]).max(axis=2) > 60  # the bars, not grey or black
    heights = [coloured[:, int(x)].sum() for x in json.loads(texts["bars"])]
    counts = pd.read_csv(batch / "summary" / "counts.csv")["cell"].to_numpy()
    assert counts.tolist() == [3, 4, 5]
    np.testing.assert_allclose(np.array(heights) / heights[-1], counts / counts[-1], atol=0.02)


def test_many_long_names_each_get_a_label_under_their_bar(tmp_path: Path) -> None:
    names = [f"experiment7_plate{p}_well{w:03d}_field2_stitched" for p in "AB"
             for w in range(60)]  # fmt: skip
    values = np.arange(len(names), dtype=float)
    path = bar_chart(names, values, tmp_path / "c.png", title="objects per image")
    texts = _texts(path)
    assert json.loads(texts["labels"]) == names
    grey = np.asarray(PILImage.open(path).convert("L")).astype(int)
    bars = json.loads(texts["bars"])
    assert grey.shape[1] >= len(names) * MIN_STEP
    axis = int(np.argmax((grey < 128).sum(axis=1)))  # the x axis: the longest dark row
    band = grey[axis + 3 : axis + 63]  # the labels' upper part, above the axis title
    for x in bars:  # ink in each bar's own column of the label band, not in the gap after it
        assert (band[:, int(x) - 5 : int(x) + 6] < 128).any()
    gaps = [(band[:, int(a + (b - a) / 2) - 1 : int(a + (b - a) / 2) + 1] < 100).sum()
            for a, b in itertools.pairwise(bars)]  # fmt: skip
    assert np.mean(gaps) < 3  # labels stay in their columns


def test_the_index_table_puts_each_count_under_its_class(batch: Path) -> None:
    """Single planes, so no planes column: each row has a cell per header (a reused variable
    once added the header alone, and every count sat one column left of its class)."""
    index = (batch / "index.html").read_text()
    table = index[index.index("<table>") : index.index("</table>")]
    header, *rows = [row for row in table.split("<tr>")[1:]]
    heads = re.findall(r"<th>(.*?)</th>", header)
    assert heads[0] == "image" and "planes" not in heads and heads[-1] == "status", heads
    counts = pd.read_csv(batch / "summary" / "counts.csv")
    for row, (_, expected) in zip(rows, counts.iterrows(), strict=True):
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert len(cells) == len(heads), (heads, cells)
        assert int(cells[heads.index("cell")]) == expected["cell"] and cells[-1] == "ok"
        assert cells[heads.index("pixel size")] == f"{PIXEL:g} µm"  # the file's: no source said


def test_index_links_are_url_encoded() -> None:
    from scopeml.analysis.report import _overview_figure

    figure = _overview_figure("A9 p5d#1", ["overview_t1.png"])
    assert "href='images/A9%20p5d%231/overview_t1.png'" in figure and ">A9 p5d#1" in figure


def test_plots_have_units_and_every_measured_channel(batch: Path) -> None:
    summary = batch / "summary"
    index = (batch / "index.html").read_text()
    wanted = {"cell": ["DAPI", "GFP"], "nucleus": ["DAPI"], "spot": ["GFP"]}
    for name, channels in wanted.items():
        for column in ["area_um2", *[f"intensity_mean_{c}" for c in channels]]:
            for plot in (f"{name}_{column}.png", f"{name}_{column}_per_image.png"):
                assert (summary / plot).is_file() and f"summary/{plot}" in index
        area = _texts(summary / f"{name}_area_um2.png")
        assert area["x_title"] == "area (µm²)" and area["y_title"] == f"{name} objects"
        box = _texts(summary / f"{name}_area_um2_per_image.png")
        assert box["y_title"] == "area (µm²)" and json.loads(box["labels"]) == _names(batch)
    assert not (summary / "nucleus_intensity_mean_GFP.png").exists()
    gfp = _texts(summary / "cell_intensity_mean_GFP_per_image.png")
    assert gfp["y_title"] == "mean intensity, GFP (grey value)"


@pytest.mark.parametrize("parquet", [False, True])  # the histograms binned from CSV or Parquet
def test_per_image_statistics_and_pooled_histogram_match_the_tables(
    batch: Path, parquet: bool
) -> None:
    from scopeml.analysis.report import _combine

    stats = pd.read_csv(batch / "summary" / "nucleus_per_image.csv")
    for row in stats.itertuples():
        table = pd.read_csv(batch / "images" / row.image / "nucleus.csv")
        assert row.objects == len(table)
        q1, median, q3 = np.percentile(table["area_um2"], [25, 50, 75])
        np.testing.assert_allclose([row.area_um2_q1, row.area_um2_median, row.area_um2_q3],
                                   [q1, median, q3])  # fmt: skip
        np.testing.assert_allclose(row.intensity_mean_DAPI_mean,
                                   table["intensity_mean_DAPI"].mean())  # fmt: skip
    records = [{"name": n} for n in stats["image"]]
    found = _combine(batch, records, "spot", batch / "tables", parquet)
    pooled = pd.read_csv(batch / "tables" / "spot.csv")["intensity_mean_GFP"]
    counts, edges = found.histograms["intensity_mean_GFP"]
    expected, expected_edges = np.histogram(pooled, bins=30)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_allclose(edges, expected_edges)


def test_counts_have_densities_and_mean_sizes(batch: Path) -> None:
    counts = pd.read_csv(batch / "summary" / "counts.csv")
    field = 256 * 256 * PIXEL**2 / 1e6  # mm²
    np.testing.assert_allclose(counts["area_mm2"], field)
    np.testing.assert_allclose(counts["nucleus_per_mm2"], counts["nucleus"] / field)
    assert "nucleus_per_megapixel" not in counts  # every image has a pixel size
    for row in counts.itertuples():
        spots = pd.read_csv(batch / "images" / row.image / "spot.csv")
        np.testing.assert_allclose(row.spot_area_um2_mean, spots["area_um2"].mean())


def test_child_aggregates_are_in_the_rows_units_and_counts_are_integers(batch: Path) -> None:
    name = _names(batch)[2]
    cells = pd.read_csv(batch / "images" / name / "cell.csv")
    nuclei = pd.read_csv(batch / "images" / name / "nucleus.csv")
    written = pd.read_csv(batch / "images" / name / "cell.csv", dtype=str)["nucleus_count"]
    assert written.str.fullmatch(r"\d+").all()  # "1", not "1.0"
    assert cells["nucleus_count"].dtype == np.int64 and (cells["nucleus_count"] == 1).all()
    means = nuclei.groupby("parent_id")["area_um2"].mean()
    np.testing.assert_allclose(cells.set_index("object_id").loc[means.index,
                                                                "nucleus_area_um2_mean"],
                               means)  # fmt: skip
    pixels = nuclei.groupby("parent_id")["area"].mean()
    np.testing.assert_allclose(cells.set_index("object_id").loc[pixels.index, "nucleus_area_mean"],
                               pixels)  # fmt: skip
    np.testing.assert_allclose(means / pixels, PIXEL**2)  # the µm² column is the µm² one


def _longest_dark_run(rows: np.ndarray) -> int:
    best = 0
    for row in rows < 60:
        edges = np.diff(np.r_[0, row.astype(int), 0])
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        best = max(best, int((stops - starts).max(initial=0)))
    return best


def test_overview_has_a_legend_and_a_scale_bar(batch: Path) -> None:
    path = batch / "images" / _names(batch)[0] / "overview.png"
    texts = _texts(path)
    assert texts["legend"] == "cell, nucleus, spot"
    microns, pixels = texts["scale_bar"].replace(" µm = ", " ").removesuffix(" px").split()
    assert float(pixels) == pytest.approx(float(microns) / PIXEL, abs=0.05)
    grey = np.asarray(PILImage.open(path).convert("L"))
    band = grey[256:]  # below the 256² image
    assert abs(_longest_dark_run(band) - float(pixels)) <= 1
    rgb = np.asarray(PILImage.open(path).convert("RGB"))[256:]
    for colour in ((255, 64, 64), (64, 220, 64), (80, 140, 255)):  # each class's swatch
        assert (rgb == colour).all(axis=2).sum() >= 50


def test_a_shrunk_overview_scales_its_bar_and_uncalibrated_counts_per_megapixel(
    tmp_path: Path,
) -> None:
    wide = np.concatenate([cell_image((128, 256), seed=s) for s in range(9)], axis=2)
    wide = wide[:, :, :2100]  # 2100 px wide: the overview shows every 3rd pixel
    paths = [_write(tmp_path / "wide.ome.tif", wide, 0.4),
             _write(tmp_path / "plain.ome.tif", cell_image(seed=3), None)]  # fmt: skip
    run_analysis(three_level_settings(), paths, tmp_path / "out")
    overview = tmp_path / "out" / "images" / "wide" / "overview.png"
    microns, pixels = _texts(overview)["scale_bar"].replace(" µm = ", " ").removesuffix(" px")\
        .split()  # fmt: skip
    assert float(pixels) == pytest.approx(float(microns) / (0.4 * 3), abs=0.05)
    assert PILImage.open(overview).width == 700
    counts = pd.read_csv(tmp_path / "out" / "summary" / "counts.csv").set_index("image")
    np.testing.assert_allclose(counts.loc["wide", "area_mm2"], 128 * 2100 * 0.16 / 1e6)
    assert np.isnan(counts.loc["plain", "area_mm2"])
    np.testing.assert_allclose(counts.loc["plain", "cell_per_megapixel"],
                               counts.loc["plain", "cell"] / (256 * 256 / 1e6))  # fmt: skip
    assert np.isnan(counts.loc["wide", "cell_per_megapixel"])


def test_a_batch_of_planes_and_z_stacks_keeps_every_column(tmp_path):
    """The combined table has every image's columns (a Z stack's volume beside a plane's
    area), each row's values as its image's table has them, and the mix is warned about."""
    import tifffile

    from scopeml.analysis.runner import run_analysis
    from scopeml.analysis.settings import parse_settings

    plane = np.zeros((48, 48), np.float32)
    plane[10:20, 10:20] = 5.0
    stack = np.zeros((6, 48, 48), np.float32)  # 3 or 4 pages would read as RGB(A)
    stack[1:4, 20:30, 20:30] = 5.0
    sized = {"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    tifffile.imwrite(tmp_path / "a.tif", plane, ome=True, metadata={"axes": "YX", **sized})
    tifffile.imwrite(tmp_path / "b.tif", stack, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeZ": 2.0, **sized})  # fmt: skip
    blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0", "method": "fixed",
                                          "value": 1.0}}  # fmt: skip
    settings = parse_settings({"version": 1, "channels": ["C0"], "classes": [blob]})
    with pytest.warns(UserWarning, match="mixes 2-D images and Z stacks"):
        run_analysis(settings, [tmp_path / "a.tif", tmp_path / "b.tif"], tmp_path / "out")
    combined = pd.read_csv(tmp_path / "out" / "tables" / "blob.csv")
    for image in ("a", "b"):
        own = pd.read_csv(tmp_path / "out" / "images" / image / "blob.csv")
        rows = combined[combined["image"] == image]
        assert set(own.columns) <= set(combined.columns)
        pd.testing.assert_frame_equal(rows[own.columns].reset_index(drop=True), own,
                                      check_dtype=False)  # fmt: skip
    assert combined.loc[combined["image"] == "b", "centroid-2"].notna().all()
    assert combined.loc[combined["image"] == "a", "centroid-2"].isna().all()
    assert combined.loc[combined["image"] == "b", "area"].tolist() == [300]  # voxels
    parquet = pd.read_parquet(tmp_path / "out" / "tables" / "blob.parquet")
    pd.testing.assert_frame_equal(parquet, combined, check_dtype=False)
    counts = pd.read_csv(tmp_path / "out" / "summary" / "counts.csv").set_index("image")
    assert counts.loc["a", "blob_area_um2_mean"] == 100 * 0.25  # each its own size, in µm
    assert counts.loc["b", "blob_volume_um3_mean"] == 300 * 0.5 * 0.5 * 2.0
    assert np.isnan(counts.loc["b", "blob_area_um2_mean"])


def test_a_parents_split_line_stays_above_its_childs_outline(tmp_path) -> None:
    """Two nuclei split from one blob, a child whose edge lies on the split: the split line is
    drawn in the parent's colour (children first, parents over them), the child's edge
    elsewhere."""
    from scopeml.analysis.outputs import draw_overview

    image = np.zeros((20, 30), np.float32)
    nuclei = np.zeros((20, 30), np.int32)
    nuclei[4:16, 4:15], nuclei[4:16, 15:26] = 1, 2  # one blob, split at x = 14 | 15
    child = np.zeros((20, 30), np.int32)
    child[8:12, 15:22] = 1  # its left edge on the split
    red, green = (255, 0, 0), (0, 255, 0)
    path = draw_overview(image, {"nucleus": nuclei, "spot": child}, tmp_path / "o.png",
                         colours={"nucleus": red, "spot": green})  # fmt: skip
    png = PILImage.open(path).convert("RGB")
    assert png.getpixel((14, 10)) == red and png.getpixel((15, 10)) == red  # the split line
    assert png.getpixel((18, 8)) == png.getpixel((21, 10)) == green  # the child's other edges
