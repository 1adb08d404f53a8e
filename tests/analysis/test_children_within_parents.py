"""A child object never spans two parent objects: where two parents touch, a child's mask is
labelled within each parent (CellProfiler's children, each in one parent), tile by tile exactly
as on the whole plane, and an instance or a post step's object over two parents is split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter, run_analysis
from scopeml.analysis.plane import label_within_parents, segment_class_tiled, split_by_parent
from scopeml.analysis.segment import label_in_parents, segment_class
from scopeml.analysis.settings import InstancesSegmenter, RemoveSmall, WatershedSplit
from scopeml.io import open_image
from tests.analysis.conftest import write_image


def touching_parents(shape: tuple[int, int] = (64, 80)) -> tuple[np.ndarray, np.ndarray]:
    """Two nuclei that touch along column 40 (labels 1, 2), and a bright blob across that
    border (GFP channel, ``float32``)."""
    parents = np.zeros(shape, np.int32)
    parents[10:54, 12:40] = 1
    parents[10:54, 40:68] = 2
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    gfp = np.full(shape, 100.0, np.float32)
    gfp[(yy - 30) ** 2 + (xx - 40) ** 2 <= 36] = 3000  # 8 px over the border on each side
    gfp[(yy - 45) ** 2 + (xx - 24) ** 2 <= 9] = 2500  # a child inside nucleus 1 only
    return parents, gfp


def one_parent_each(children: np.ndarray, parents: np.ndarray) -> bool:
    """Whether every child object's pixels lie in exactly one parent object."""
    ids = children[children > 0]
    pairs = np.unique(np.stack([ids, parents[children > 0]]), axis=1)
    return bool((pairs[1] > 0).all() and len(np.unique(pairs[0])) == pairs.shape[1])


@pytest.mark.parametrize("scope", ["pooled", "per_parent"])
def test_a_child_across_two_touching_parents_is_two_children(tmp_path: Path, scope: str) -> None:
    parents, gfp = touching_parents()
    seg = ThresholdSegmenter(channel="gfp", method="otsu", scope=scope)
    cls = ClassSettings(name="chromatin", parent="nucleus", segmenter=seg)
    whole = segment_class(cls, {"gfp": gfp}, region=parents)
    in_memory = segment_class_tiled(cls, {"gfp": gfp}, None, tile_size=16, parent=parents)
    tiled = segment_class_tiled(cls, {"gfp": gfp}, tmp_path / "s", tile_size=7, parent=parents)
    np.testing.assert_array_equal(np.asarray(in_memory), whole)
    np.testing.assert_array_equal(tiled[...], whole)
    assert whole.max() == 3  # the blob split at the border, one part per nucleus; the dot
    assert one_parent_each(whole, parents)
    blob = ndi.label(gfp > 2900)[0] > 0
    # numbered in raster order of the first pixel: the blob's top pixel (24, 40) is nucleus 2's
    assert set(np.unique(whole[blob & (parents == 2)])) == {1}
    assert set(np.unique(whole[blob & (parents == 1)])) == {2}
    assert (whole > 0).sum() == (gfp > 2000).sum()  # no pixel lost by the split


@pytest.mark.parametrize("tile", [5, 8, 13])
def test_labelling_within_parents_tile_by_tile_is_exact(tmp_path: Path, tile: int) -> None:
    rng = np.random.default_rng(tile)
    mask = ndi.gaussian_filter(rng.random((45, 52)), 1.5) > 0.5
    seeds = np.zeros(mask.shape, np.int32)  # touching parents: a Voronoi tiling, some gaps
    seeds[rng.integers(0, 45, 9), rng.integers(0, 52, 9)] = np.arange(1, 10)
    parents = seeds[tuple(ndi.distance_transform_edt(seeds == 0, return_indices=True)[1])]
    parents[rng.random(mask.shape) > 0.97] = 0
    whole = label_in_parents(mask, parents)
    tiled = label_within_parents(mask, parents, tmp_path / "l.zarr", tile_size=tile)[...]
    np.testing.assert_array_equal(tiled, whole)
    assert one_parent_each(whole, parents)
    per_parent = sum(ndi.label(mask & (parents == p))[1] for p in range(1, 10))
    assert whole.max() == per_parent > ndi.label(mask & (parents > 0))[1]  # some were split
    assert (whole > 0).sum() == (mask & (parents > 0)).sum()


def test_an_instance_over_two_parents_is_split_and_the_rest_keep_their_ids(
    tmp_path: Path,
) -> None:
    parents, _ = touching_parents()
    instances = np.zeros(parents.shape, np.int32)
    instances[20:30, 30:44] = 7  # 10 columns in nucleus 1, 4 in nucleus 2
    instances[40:50, 50:60] = 3  # in nucleus 2 only
    whole = split_by_parent(instances, parents, None, tile_size=80)
    tiled = split_by_parent(instances, parents, tmp_path / "s.zarr", tile_size=6)[...]
    np.testing.assert_array_equal(tiled, whole)
    assert set(np.unique(whole[20:30, 30:40])) == {7}  # the larger part keeps the id
    assert set(np.unique(whole[20:30, 40:44])) == {8}  # the other: a new id after the largest
    assert set(np.unique(whole[40:50, 50:60])) == {3}
    assert split_by_parent(whole, parents, None, tile_size=80) is whole  # nothing to split
    cls = ClassSettings.model_validate({
        "name": "chromatin", "parent": "nucleus", "post": [{"step": "remove_small",
                                                             "min_size": 41}],
        "segmenter": {"kind": "instances", "model": "nuclei", "class": "nucleus",
                      "channels": ["gfp"]}})  # fmt: skip
    assert isinstance(cls.segmenter, InstancesSegmenter)
    out = segment_class_tiled(cls, {"gfp": parents}, tmp_path / "c", tile_size=9, parent=parents,
                              model_labels=instances)[...]  # fmt: skip
    assert sorted(np.unique(out)) == [0, 3, 7]  # the 40-px part went by its own size
    whole = segment_class(cls, {"gfp": parents}, model_labels=instances, region=parents)
    np.testing.assert_array_equal(out, whole)


def test_a_watershed_split_child_stays_in_one_parent() -> None:
    parents, gfp = touching_parents()
    cls = ClassSettings(name="chromatin", parent="nucleus",
                        segmenter=ThresholdSegmenter(channel="gfp", method="fixed", value=2000),
                        post=[WatershedSplit(min_distance=3), RemoveSmall(min_size=2)])  # fmt: skip
    labels = segment_class(cls, {"gfp": gfp}, region=parents)
    assert one_parent_each(labels, parents)
    assert len(np.unique(labels[parents == 2])) == 2  # the blob's part in nucleus 2: its own


@pytest.mark.parametrize("scope", ["pooled", "per_parent"])
def test_the_tables_give_each_child_its_parent_and_sums_fit(tmp_path: Path, scope: str) -> None:
    """End to end: two touching nuclei (a watershed split of two overlapping disks) and a
    chromatin blob across their border; out of core (small tiles) as in memory."""
    yy, xx = np.mgrid[:64, :80]
    dapi = np.full((64, 80), 100.0)
    dapi[((yy - 32) ** 2 + (xx - 28) ** 2 < 196) | ((yy - 32) ** 2 + (xx - 52) ** 2 < 196)] = 2000
    gfp = np.full((64, 80), 100.0)
    gfp[(yy - 32) ** 2 + (xx - 40) ** 2 <= 30] = 3000
    image = write_image(tmp_path / "img.ome.tif", np.stack([dapi, gfp]).astype(np.uint16))
    settings = AnalysisSettings.model_validate({
        "channels": ["DAPI", "GFP"], "tile_size": 16, "classes": [
            {"name": "nucleus", "segmenter": {"kind": "threshold", "channel": "DAPI",
                                              "method": "fixed", "value": 1000},
             "post": [{"step": "watershed_split", "min_distance": 5}]},
            {"name": "chromatin", "parent": "nucleus",
             "segmenter": {"kind": "threshold", "channel": "GFP", "method": "otsu",
                           "scope": scope}}]})  # fmt: skip
    stored = []
    for budget in (0, 512):
        out = tmp_path / f"mb{budget}"
        run_analysis(settings.model_copy(update={"memory_mb": budget}), [image], out)
        folder = out / "images" / "img"
        nuclei = open_image(folder / "nucleus.ome.zarr").read()[0, 0, 0, 0]
        chromatin = open_image(folder / "chromatin.ome.zarr").read()[0, 0, 0, 0]
        stored.append(chromatin)
        assert nuclei.max() == 2 and one_parent_each(chromatin, nuclei)
        kids = pd.read_csv(out / "tables" / "chromatin.csv")
        cells = pd.read_csv(out / "tables" / "nucleus.csv").set_index("object_id")
        assert len(kids) == 2 and sorted(kids["parent_id"]) == [1, 2]
        for _, kid in kids.iterrows():  # the parent under every pixel, not a majority
            assert set(np.unique(nuclei[chromatin == kid["object_id"]])) == {kid["parent_id"]}
        assert (cells["chromatin_area_sum"] <= cells["area"]).all()
        assert cells["chromatin_count"].tolist() == [1, 1]
    np.testing.assert_array_equal(stored[0], stored[1])
