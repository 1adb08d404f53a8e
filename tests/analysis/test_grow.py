"""Cells grown from their nuclei (``kind: grow``, CellProfiler's secondary objects): each
nucleus becomes the one cell around it, with its id; touching cells meet at their stain's dim
line, or halfway between the nuclei without a stain."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scopeml.analysis import AnalysisSettings, run_analysis
from scopeml.analysis.segment import segment_class
from scopeml.analysis.settings import (
    ClassSettings,
    InvalidSettingsError,
    ThresholdSegmenter,
    parse_settings,
)
from scopeml.io import open_image
from scopeml.objects.grow import grow_objects
from tests.analysis.conftest import write_image


def two_touching_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DAPI and a cell stain (``uint16``) of two cells touching at column 64 (a dim line there)
    whose nuclei are not symmetric about it (halfway between them is column 60), a lone cell,
    and a nucleus without stain; and the true cells (ids 1, 2, 3 as the nuclei's raster order)."""
    yy, xx = np.mgrid[:96, :144]
    truth = np.zeros((96, 144), np.int32)
    truth[16:80, 20:64], truth[16:80, 64:108] = 1, 2
    truth[(yy - 48) ** 2 + (xx - 128) ** 2 < 12**2] = 3
    stain = np.where(truth > 0, 1000.0, 100.0)
    stain[16:80, 63:65] = 250  # the membrane between cells 1 and 2: dimmer than cytoplasm
    dapi = np.full(truth.shape, 100.0)
    for y, x in ((48, 40), (48, 80), (48, 128), (88, 8)):  # the last: no cell stain there
        dapi[(yy - y) ** 2 + (xx - x) ** 2 < 7**2] = 2000
    noise = np.random.default_rng(0).normal(0, 10, (2, *truth.shape))
    pixels = np.clip(np.stack([dapi, stain]) + noise, 0, None).astype(np.uint16)
    return pixels[0], pixels[1], truth


def settings(**grow: object) -> AnalysisSettings:
    within = {"channel": "GFP", "method": "otsu"}
    return AnalysisSettings.model_validate({
        "channels": ["DAPI", "GFP"], "tile_size": 32, "classes": [
            # listed before its seeds' class: segmented after it all the same
            {"name": "cell", "segmenter": {"kind": "grow", "seeds": "nucleus", "distance": 60,
                                           "within": within, **grow}},
            {"name": "nucleus", "segmenter": {"kind": "threshold", "channel": "DAPI",
                                              "method": "otsu"}}]})  # fmt: skip


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_each_nucleus_grows_into_its_cell_split_at_the_stains_dim_line(tmp_path: Path) -> None:
    dapi, stain, truth = two_touching_cells()
    image = write_image(tmp_path / "img.ome.tif", np.stack([dapi, stain]))
    stores = []
    for budget in (0, 512):  # out of core (the whole-plane exception) and in memory
        out = tmp_path / f"mb{budget}"
        result = run_analysis(settings().model_copy(update={"memory_mb": budget}), [image], out)
        folder = out / "images" / "img"
        cells = open_image(folder / "cell.ome.zarr").read()[0, 0, 0, 0]
        nuclei = open_image(folder / "nucleus.ome.zarr").read()[0, 0, 0, 0]
        stores.append(cells)
    np.testing.assert_array_equal(stores[0], stores[1])
    assert result.counts["img"] == {"cell": 4, "nucleus": 4}
    for k in (1, 2, 3):
        assert iou(cells == k, truth == k) > 0.95  # the dim line, not halfway (column 60)
    assert ((nuclei > 0) <= (cells == nuclei)).all()  # each nucleus wholly in its own cell
    assert (cells == 4).sum() == (nuclei == 4).sum()  # no stain: the cell is its nucleus
    table = pd.read_csv(out / "tables" / "cell.csv")
    assert table["object_id"].tolist() == [1, 2, 3, 4]  # cell k is nucleus k's
    dapi_stain = "intensity_mean_GFP"
    assert (table[dapi_stain].iloc[:3] > 900).all() and table[dapi_stain].iloc[3] < 200


def test_without_a_stain_cells_meet_halfway_and_stop_at_the_distance() -> None:
    from scipy import ndimage as ndi

    dapi, _, truth = two_touching_cells()
    nuclei = ndi.label(dapi > 1000)[0].astype(np.int32)  # row 48: columns 34–46 and 74–86
    cells = grow_objects(nuclei, 20)
    assert (cells[48, 47:60] == 1).all() and (cells[48, 61:74] == 2).all()  # halfway: 60
    assert iou(cells == 1, truth == 1) < 0.9  # which is not where the cells meet
    near = grow_objects(nuclei, 10)
    assert (near[48, 47:57] == 1).all() and (near[48, 57:64] == 0).all()
    far = ndi.distance_transform_edt(nuclei == 0)
    assert (far[near > 0] <= 10).all() and (near[far <= 10] > 0).all()
    ring = grow_objects(nuclei, 20, exclude_seeds=True)
    assert ((ring > 0) == ((cells > 0) & (nuclei == 0))).all()
    assert (ring[ring > 0] == cells[ring > 0]).all()


def test_a_membrane_stain_is_split_between_the_cells_on_its_sides() -> None:
    from scipy import ndimage as ndi

    dapi, _, _ = two_touching_cells()
    nuclei = ndi.label(dapi > 1000)[0].astype(np.int32)
    membrane = np.full(dapi.shape, 100.0)
    membrane[:, 62:66] = 1000
    membrane[:, 63:65] = 1500  # brightest in the middle
    cells = grow_objects(nuclei, 40, intensity=membrane, mask=membrane < 500, dark=True)
    assert (cells[42:54, 47:64] == 1).all() and (cells[42:54, 64:74] == 2).all()
    below = grow_objects(nuclei, 40, intensity=membrane, mask=membrane < 500)  # not dark
    assert not below[:, 62:66].any()  # the membrane is left out where it is not one


def test_seeds_the_threshold_does_not_reach_are_counted_in_a_warning() -> None:
    """Forgetting ``dark: true`` for a membrane stain leaves most cells their nucleus alone:
    said, with the likely cause; a few unreached seeds are counted without it."""
    from scipy import ndimage as ndi

    dapi, stain, _ = two_touching_cells()
    nuclei = ndi.label(dapi > 1000)[0].astype(np.int32)
    membrane = np.full(dapi.shape, 100.0)
    membrane[:, 62:66] = 1000  # between cells 1 and 2, away from every nucleus
    cls = ClassSettings.model_validate({"name": "cell", "segmenter": {
        "kind": "grow", "seeds": "nucleus", "distance": 30,
        "within": {"channel": "m", "method": "fixed", "value": 500}}})  # fmt: skip
    with pytest.warns(UserWarning, match=r"img: class 'cell': 4 of 4 nucleus objects grew "
                      r"no pixel \(each of their cells is the seed alone\); the within "
                      r"threshold's pixels do not reach them \(a membrane stain, bright "
                      r"between cells, needs dark: true\)"):  # fmt: skip
        segment_class(cls, {"m": membrane}, seeds=nuclei, image="img")
    ring = cls.model_copy(update={"segmenter": cls.segmenter.model_copy(
        update={"within": ThresholdSegmenter(channel="m", method="fixed", value=500,
                                             dark=True), "exclude_seeds": True})})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert segment_class(ring, {"m": membrane}, seeds=nuclei).max() == 4  # all grew
    cytoplasm = ClassSettings.model_validate({"name": "cytoplasm", "segmenter": {
        "kind": "grow", "seeds": "nucleus", "distance": 30, "exclude_seeds": True,
        "within": {"channel": "gfp", "method": "otsu"}}})  # fmt: skip
    with pytest.warns(UserWarning, match=r"1 of 4 nucleus objects grew no pixel \(no row in "
                      r"the cytoplasm table\); the within threshold's pixels do not reach "
                      r"them$"):  # fmt: skip
        segment_class(cytoplasm, {"gfp": stain}, seeds=nuclei)


def test_cells_stay_in_their_nucleus_parent_object() -> None:
    seeds = np.zeros((10, 20), np.int32)
    seeds[5, 3], seeds[5, 16] = 1, 2
    parents = np.zeros((10, 20), np.int32)
    parents[:, :8], parents[:, 8:] = 1, 2  # seed 1 is nearer column 8: flooded, it stays left
    cells = grow_objects(seeds, 30, parents=parents)
    assert (cells[:, :8] == 1).all() and (cells[:, 8:] == 2).all()


def test_a_cytoplasm_ring_and_a_z_stack(tmp_path: Path) -> None:
    dapi, stain, _ = two_touching_cells()
    stack = np.stack([np.stack([dapi] * 3), np.stack([stain] * 3)])  # C×Z×Y×X
    image = tmp_path / "stack.ome.tif"
    import tifffile

    tifffile.imwrite(image, stack, ome=True,
                     metadata={"axes": "CZYX", "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip
    out = tmp_path / "out"
    run_analysis(settings(exclude_seeds=True), [image], out)
    folder = out / "images" / "stack"
    rings = open_image(folder / "cell.ome.zarr").read()[0, 0, 0]
    nuclei = open_image(folder / "nucleus.ome.zarr").read()[0, 0, 0]
    assert rings.shape == (3, 96, 144)
    assert not ((rings > 0) & (nuclei > 0)).any()
    assert sorted(np.unique(rings))[1:] == [1, 2, 3]  # nucleus 4 has no stain: no ring
    table = pd.read_csv(out / "tables" / "cell.csv")
    assert (table["intensity_mean_DAPI"] < 200).all()  # cytoplasm only: no DAPI


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            {"seeds": "nucleu"},
            "segmenter.seeds: seeds 'nucleu' is not a class (classes: cell, nucleus) (did you "
            "mean 'nucleus'?)",
        ),
        ({"seeds": "cell"}, "class 'cell' cannot grow from its own objects; seeds names the "),
        ({"distance": 0}, "distance: Input should be greater than 0"),
        ({"distance": "inf"}, "distance: Input should be a finite number"),
        ({"within": {"channel": "RFP"}}, "channel 'RFP' is not an input channel"),
    ],
)
def test_bad_grow_settings_say_what_is_wrong(change: dict[str, object], said: str) -> None:
    blob = settings().model_dump(mode="json", by_alias=True)
    blob["classes"][0]["segmenter"].update(change)
    with pytest.raises(InvalidSettingsError, match=re.escape(said)):
        parse_settings(blob)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"post": [{"step": "watershed_split"}]}, "watershed_split would renumber the cells"),
        ({"parent": "nucleus"}, "class 'cell' grows from 'nucleus', which is also its parent"),
    ],
)
def test_a_grow_class_keeps_its_seeds_ids_and_room_to_grow(change, said) -> None:
    blob = settings().model_dump(mode="json", by_alias=True)
    blob["classes"][0].update(change)
    with pytest.raises(InvalidSettingsError, match=said):
        parse_settings(blob)


def test_a_ring_stays_a_ring_after_post_steps() -> None:
    """``exclude_seeds`` applies after the steps: fill_holes would give the nuclei back."""
    from scipy import ndimage as ndi

    dapi, stain, _ = two_touching_cells()
    nuclei = ndi.label(dapi > 1000)[0].astype(np.int32)
    ring = ClassSettings.model_validate(
        {
            "name": "cytoplasm",
            "post": [{"step": "fill_holes"}],
            "segmenter": {
                "kind": "grow",
                "seeds": "nucleus",
                "distance": 30,
                "exclude_seeds": True,
            },
        }
    )
    out = segment_class(ring, {"gfp": stain}, seeds=nuclei)
    assert out.max() == 4 and not out[nuclei > 0].any()


def test_a_nucleus_cannot_be_the_child_of_the_cell_it_grows() -> None:
    blob = settings().model_dump(mode="json", by_alias=True)
    blob["classes"][1]["parent"] = "cell"
    said = r"classes\[0\]\.segmenter\.seeds: the class tree has a cycle: cell → nucleus → cell"
    with pytest.raises(InvalidSettingsError, match=said):
        parse_settings(blob)


def test_a_stain_level_no_pixel_of_the_type_reaches_is_warned() -> None:
    from scopeml.analysis.check import warn_unreachable_levels

    blob = settings().model_dump(mode="json", by_alias=True)
    blob["classes"][0]["segmenter"]["within"] = {"channel": "GFP", "method": "fixed", "value": 300}
    with pytest.warns(UserWarning, match="img: class 'cell': no pixel of a uint8 channel .* its "
                      "fixed threshold 300: no cell grows beyond its seed"):  # fmt: skip
        warn_unreachable_levels(parse_settings(blob), np.uint8, "img")


def test_the_flat_api_grows_arrays_and_refuses_bad_ones_in_one_line() -> None:
    import scopeml as sm
    from scopeml.errors import ScopeMLError

    seeds = np.zeros((6, 8), np.uint16)
    seeds[3, 1], seeds[3, 6] = 4, 9
    assert sm.grow_objects(seeds, 2)[3].tolist() == [4, 4, 4, 4, 9, 9, 9, 9]
    assert sm.grow_objects(seeds, 2, spacing=2.0)[3].tolist() == [4, 4, 4, 0, 0, 9, 9, 9]
    bad = [
        ((seeds.astype(np.float32), 2), {}, "seeds must be integer labels, not float32"),
        ((seeds, 2), {"mask": np.ones((6, 7), bool)}, "mask has shape (6, 7); the seeds (6, 8)"),
        ((seeds, float("nan")), {}, "distance must be a number of pixels above 0, not nan"),
        ((seeds, "3"), {}, "distance must be a number of pixels above 0, not 3"),
        ((seeds, 2), {"spacing": np.array([1.0, 0.0])}, "spacing [1. 0.] is not a size above"),
        ((seeds, 2), {"parents": seeds * 0.5}, "parents must be integer labels, not float64"),
        ((seeds[None, None, None], 2), {}, "seeds must be Y×X or Z×Y×X, not 5-D"),
        ((seeds.astype(np.int64) * 2**31, 2), {}, "do not fit 0–2³¹−1"),
    ]
    for args, kwargs, said in bad:
        with pytest.raises(ScopeMLError, match=re.escape(said)):
            sm.grow_objects(*args, **kwargs)


def test_in_a_z_stack_the_distance_counts_z_steps_by_their_size(tmp_path: Path) -> None:
    """1 µm steps at 0.25 µm pixels: a cell grows 8 pixels in Y and X, 2 planes in Z."""
    import tifffile

    dapi = np.full((9, 40, 40), 100, np.uint16)
    dapi[4, 18:22, 18:22] = 2000  # one nucleus, in the middle plane only
    stain = np.full_like(dapi, 100)
    stack = np.stack([dapi, stain])
    seg = {"kind": "grow", "seeds": "nucleus", "distance": 8}
    blob = {"version": 1, "channels": ["DAPI", "GFP"], "classes": [
        {"name": "nucleus", "segmenter": {"kind": "threshold", "channel": "DAPI",
                                          "method": "fixed", "value": 1000}},
        {"name": "cell", "segmenter": seg}]}  # fmt: skip
    for name, sizes in (("um", {"PhysicalSizeZ": 1.0, "PhysicalSizeY": 0.25,
                                "PhysicalSizeX": 0.25}), ("px", {})):  # fmt: skip
        path = tmp_path / f"{name}.ome.tif"
        tifffile.imwrite(path, stack, ome=True, metadata={
            "axes": "CZYX", "Channel": {"Name": ["DAPI", "GFP"]}, **sizes})  # fmt: skip
        run_analysis(parse_settings(blob), [path], tmp_path / name)
        cell = open_image(tmp_path / name / "images" / name / "cell.ome.zarr").read()[0, 0, 0]
        planes = np.flatnonzero(cell.any(axis=(1, 2))).tolist()
        assert planes == ([2, 3, 4, 5, 6] if sizes else list(range(9)))
        assert np.flatnonzero(cell[4].any(axis=0)).tolist() == list(range(10, 30))  # 18-8…21+8
    spaced = grow_objects(dapi > 1000, 8, spacing=(4.0, 1.0, 1.0))
    assert np.flatnonzero(spaced.any(axis=(1, 2))).tolist() == [2, 3, 4, 5, 6]
    from scopeml.errors import ScopeMLError

    with pytest.raises(ScopeMLError, match=re.escape("spacing (4.0, 1.0) is not a size")):
        grow_objects(dapi > 1000, 8, spacing=(4.0, 1.0))


def test_a_seed_outside_every_parent_gets_no_cell_and_the_warning_says_so() -> None:
    seeds = np.zeros((10, 20), np.int32)
    seeds[5, 3], seeds[5, 16] = 1, 2
    parents = np.zeros((10, 20), np.int32)
    parents[:, :10] = 1  # seed 2 lies outside every parent object
    cls = ClassSettings.model_validate({"name": "cell", "parent": "tissue", "segmenter": {
        "kind": "grow", "seeds": "nucleus", "distance": 4}})  # fmt: skip
    with pytest.warns(
        UserWarning,
        match=r"1 of 2 nucleus objects grew no pixel \(each of their cells "
        r"is the seed alone, or none where it lies outside every parent",
    ):
        cells = segment_class(cls, {}, seeds=seeds, region=parents)
    assert set(np.unique(cells)) == {0, 1} and not cells[:, 10:].any()


def test_a_time_series_says_its_unreached_seeds_once(tmp_path: Path) -> None:
    """One line for the whole movie, its counts summed over the planes (was one per frame)."""
    import tifffile

    dapi, _, _ = two_touching_cells()
    membrane = np.full(dapi.shape, 100, np.uint16)
    membrane[:, 62:66] = 1000  # away from every nucleus: without dark, nothing grows
    movie = np.stack([np.stack([dapi, membrane])] * 3)  # T×C×Y×X
    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, movie, ome=True,
                     metadata={"axes": "TCYX", "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_analysis(settings(), [path], tmp_path / "out")
    said = [str(w.message) for w in caught if "grew no pixel" in str(w.message)]
    assert len(said) == 1, said
    assert said[0].startswith("movie: class 'cell': 12 of 12 nucleus objects over its 3 planes")


def test_the_ring_of_a_cell_child_is_the_cell_without_its_nucleus(tmp_path: Path) -> None:
    """``analyze init``'s cytoplasm (``parent: cell``, the cell's own ``within``) is each cell
    without its nucleus: the within level is the whole plane's, not one from inside the cells
    (there it rose between a bright and a dim cell, and the dim cell's ring was lost)."""
    dapi, stain, truth = two_touching_cells()
    stain = np.where(truth == 2, stain // 2, stain).astype(np.uint16)  # a dim cell beside
    grow = {"kind": "grow", "seeds": "nucleus", "distance": 60,  # li: 295 here, 706 in cells
            "within": {"channel": "GFP", "method": "li"}}  # fmt: skip
    settings = AnalysisSettings.model_validate({"channels": ["DAPI", "GFP"], "classes": [
        {"name": "nucleus", "segmenter": {"kind": "threshold", "channel": "DAPI",
                                          "method": "otsu"}},
        {"name": "cell", "segmenter": grow},
        {"name": "cytoplasm", "parent": "cell", "segmenter": {**grow, "exclude_seeds": True}},
    ]})  # fmt: skip
    image = write_image(tmp_path / "cells.ome.tif", np.stack([dapi, stain]))
    run_analysis(settings, [image], tmp_path / "out")
    folder = tmp_path / "out" / "images" / "cells"
    read = {n: open_image(folder / f"{n}.ome.zarr").read()[0, 0, 0, 0] for n in
            ("nucleus", "cell", "cytoplasm")}  # fmt: skip
    assert (read["cell"] == 2).sum() > 2000  # the dim cell grew
    ring = np.where(read["nucleus"] > 0, 0, read["cell"])
    np.testing.assert_array_equal(read["cytoplasm"], ring)


def test_with_a_stain_no_cell_reaches_past_the_distance_from_its_own_nucleus() -> None:
    """Flooded by the stain, a cell took the pixels near its neighbour's nucleus that its own
    stain reached first, farther than ``distance`` from its own (1 % of ExampleFly's cell
    area, the gap between a cytoplasm under ``parent: cell`` and the cell without its
    nucleus); each cell is now bounded from its own seed."""
    from scipy import ndimage as ndi

    seeds = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]])
    stain = np.array([[9, 9, 9, 9, 9, 9, 9, 9, 9, 1, 5, 5]])  # cell 1 bright up to its line
    grown = grow_objects(seeds, 6, intensity=stain, mask=stain > 0)
    assert grown.tolist() == [[1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 2, 2]]  # 7 and 8: 7 px from 1
    dapi, stain, _ = two_touching_cells()
    nuclei = ndi.label(dapi > 1000)[0].astype(np.int32)
    stain = np.where(np.arange(stain.shape[1]) < 60, stain * 2, stain)  # a brighter left cell
    for distance in (8, 14, 20):
        cells = grow_objects(nuclei, distance, intensity=stain, mask=stain > 200)
        for k in (1, 2):
            reach = ndi.distance_transform_edt(nuclei != k)[cells == k]
            assert reach.max() <= distance and (cells == k).sum() > (nuclei == k).sum()
