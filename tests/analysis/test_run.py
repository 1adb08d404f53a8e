"""Batch runs: a 3-level tree over several images into one results folder, as the CLI does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.filters import threshold_li, threshold_otsu
from skimage.measure import label, regionprops_table
from skimage.morphology import remove_small_objects

from scopeml.analysis import run_analysis, save_settings
from scopeml.cli import main
from scopeml.errors import Cancelled, InvalidRequestError
from scopeml.io import open_image
from scopeml.progress import ProgressEvent
from tests.analysis.conftest import cell_image, three_level_settings, write_image


def reference(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """The same three steps written directly with scipy / scikit-image."""
    dapi, gfp = pixels.astype(np.float32)
    smooth = ndi.gaussian_filter(gfp, 1.0)
    cells = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    cells = remove_small_objects(cells, max_size=99)
    cells = label(cells, connectivity=1)
    smooth = ndi.gaussian_filter(dapi, 1.0)
    level = threshold_li(smooth[cells > 0])
    nuclei = ndi.binary_fill_holes((smooth > level) & (cells > 0))
    nuclei = label(remove_small_objects(nuclei, max_size=19), connectivity=1)
    spots = label((gfp > 2000) & (nuclei > 0), connectivity=1)
    return {"cell": cells, "nucleus": nuclei, "spot": spots}


def test_three_level_tree_over_images(images: list[Path], tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    result = run_analysis(three_level_settings(), images, tmp_path / "out", progress=events.append)
    assert [r["status"] for r in result.records] == ["done", "done"]
    assert [e.done for e in events if e.stage == "analyze"] == [0, 1, 2]
    for path, record in zip(images, result.records, strict=True):
        folder = tmp_path / "out" / "images" / record["name"]
        truth = reference(open_image(path).read()[0, 0, :, 0])
        assert record["counts"]["cell"] == record["counts"]["nucleus"] == 6
        for name, expected in truth.items():
            with open_image(folder / f"{name}.ome.zarr") as store:  # as Fiji shows it
                stored = store.read()[0, 0, 0, 0]
                assert list(store.channel_names) == [name]  # not C0
            np.testing.assert_array_equal(stored, expected, err_msg=name)
            ome = json.loads((folder / f"{name}.ome.zarr" / "zarr.json").read_text())
            (channel,) = ome["attributes"]["ome"]["omero"]["channels"]
            assert (channel["window"]["start"], channel["window"]["end"]) == (0, expected.max())
            table = pd.read_csv(folder / f"{name}.csv")
            assert len(table) == expected.max() == record["counts"][name]
            props = regionprops_table(expected, properties=("label", "area", "centroid"))
            np.testing.assert_array_equal(table["object_id"], props["label"])
            np.testing.assert_allclose(table["area"], props["area"])
            np.testing.assert_allclose(table["centroid-1"], props["centroid-1"])
        # each child's parent is the parent object under it
        for child, parent in (("nucleus", "cell"), ("spot", "nucleus")):
            table = pd.read_csv(folder / f"{child}.csv")
            at = truth[parent][table["centroid-0"].round().astype(int),
                               table["centroid-1"].round().astype(int)]  # fmt: skip
            np.testing.assert_array_equal(table["parent_id"], at)
            assert (table["parent_class"] == parent).all()
        cells = pd.read_csv(folder / "cell.csv")
        assert cells["nucleus_count"].tolist() == [1.0] * 6
        assert set(cells["image"]) == {record["name"]} and set(cells["class"]) == {"cell"}
        nuclei = pd.read_csv(folder / "nucleus.csv")
        assert "intensity_mean_GFP" in cells and "intensity_mean_GFP" not in nuclei
        assert (folder / "overview.png").stat().st_size > 0
    combined = pd.read_csv(tmp_path / "out" / "tables" / "spot.csv")
    assert len(combined) == sum(r["counts"]["spot"] for r in result.records)
    assert pd.read_parquet(tmp_path / "out" / "tables" / "spot.parquet").equals(combined)
    counts = pd.read_csv(tmp_path / "out" / "summary" / "counts.csv")
    assert counts["spot"].tolist() == [r["counts"]["spot"] for r in result.records]
    assert not (tmp_path / "out" / "summary" / "counts_per_time_point.csv").exists()  # no series
    index = (tmp_path / "out" / "index.html").read_text()
    links = ("tables/nucleus.csv", "summary/cell_counts.png", "summary/nucleus_area.png",
             "summary/nucleus_intensity_mean_DAPI.png", "images/img0/overview.png")  # fmt: skip
    for link in links:
        assert link in index and (tmp_path / "out" / link).is_file()


def test_labels_are_copied_to_ome_tiff_when_asked(images: list[Path], tmp_path: Path) -> None:
    """For Fiji's Bio-Formats, which reads no OME-Zarr 0.5: the same ids, sizes and names."""
    import tifffile

    settings = three_level_settings()
    settings = settings.model_copy(update={"outputs": settings.outputs.model_copy(
        update={"ome_tiff": True})})  # fmt: skip
    run_analysis(settings, images[:1], tmp_path / "out")
    folder = tmp_path / "out" / "images" / "img0"
    for name in ("cell", "nucleus", "spot"):
        with (
            open_image(folder / f"{name}.ome.tif") as copy,
            open_image(folder / f"{name}.ome.zarr") as store,
        ):
            np.testing.assert_array_equal(copy.read(), store.read())
            assert copy.pixel_sizes == store.pixel_sizes and list(copy.channel_names) == [name]
        assert tifffile.TiffFile(folder / f"{name}.ome.tif").is_ome
    run_analysis(three_level_settings(), images[:1], tmp_path / "plain")
    assert not list((tmp_path / "plain" / "images" / "img0").glob("*.ome.tif"))  # asked only


def test_failed_image_is_listed_and_the_batch_goes_on(images: list[Path], tmp_path: Path) -> None:
    broken = images[0].with_name("broken.tif")
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)
    batch = [images[0], broken, images[1]]
    result = run_analysis(three_level_settings(), batch, tmp_path / "out")
    assert [r["status"] for r in result.records] == ["done", "failed", "done"]
    failure = result.failures[0]
    assert failure["image"] == str(broken) and failure["reason"]
    assert "broken.tif" not in failure["reason"]  # the line names the image once, before it
    failures = pd.read_csv(tmp_path / "out" / "summary" / "failures.csv")
    assert failures["image"].tolist() == ["broken"]
    index = (tmp_path / "out" / "index.html").read_text()
    assert "<td>broken</td>" in index and "images/broken" not in index  # no link to nothing
    leftovers = [p.name for p in (tmp_path / "out" / "images").iterdir()]
    assert sorted(leftovers) == ["img0", "img1"]  # nothing half-written


def test_an_unreadable_first_entry_fails_alone(
    images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where an unreadable entry sorts does not matter: listed as failed, the batch goes on,
    exit 1; a settings error still stops everything (exit 2) before any image runs."""
    import zarr

    store = images[0].parent / "aaa.ome.zarr"  # a zarr group that is no NGFF image, first
    zarr.open_group(str(store), mode="w").create_array("labels", shape=(4, 4), dtype="uint8")
    settings = save_settings(three_level_settings(), tmp_path / "s.yaml")
    out = tmp_path / "out"
    code = main(["analyze", str(settings), str(images[0].parent), "-o", str(out), "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert pd.read_csv(out / "summary" / "counts.csv")["image"].tolist() == ["img0", "img1"]
    assert len(lines) == 1 and lines[0].startswith(f"error: {store}: "), lines
    assert lines[0].count("aaa.ome.zarr") == 1
    text = (tmp_path / "s.yaml").read_text().replace("GFP", "RFP")
    (tmp_path / "bad.yaml").write_text(text)
    code = main(["analyze", str(tmp_path / "bad.yaml"), str(images[0].parent), "-o",
                 str(tmp_path / "out2"), "-q"])  # fmt: skip
    assert code == 2 and "channel 'RFP' is not in" in capsys.readouterr().err
    assert not (tmp_path / "out2" / "images").exists()


def test_resume_skips_complete_images(images: list[Path], tmp_path: Path) -> None:
    settings = three_level_settings()
    out = tmp_path / "out"
    run_analysis(settings, images[:1], out)
    first = (out / "images" / "img0" / "record.json").stat().st_mtime_ns
    with pytest.raises(InvalidRequestError, match="pass --resume"):
        run_analysis(settings, images, out)
    result = run_analysis(settings, images, out, resume=True)
    assert (out / "images" / "img0" / "record.json").stat().st_mtime_ns == first
    assert [r["name"] for r in result.records] == ["img0", "img1"]
    assert result.resumed == 1  # img0 was complete, img1 analysed now
    assert len(pd.read_csv(out / "summary" / "counts.csv")) == 2
    other = settings.model_copy(update={"tile_size": 512})
    with pytest.raises(InvalidRequestError, match="other settings"):
        run_analysis(other, images, out, resume=True)
    # memory_mb picks in memory or out of core (same objects): a resume may change it
    lean = settings.model_copy(update={"memory_mb": 0})
    resumed = run_analysis(lean, images, out, resume=True)
    assert (out / "images" / "img0" / "record.json").stat().st_mtime_ns == first
    assert len(resumed.records) == 2 and resumed.resumed == 2
    # an input changed since: analysed again
    write_image(images[0], cell_image(seed=7))
    run_analysis(settings, images, out, resume=True)
    again = json.loads((out / "images" / "img0" / "record.json").read_text())
    assert (out / "images" / "img0" / "record.json").stat().st_mtime_ns != first
    assert again["status"] == "done"


def test_a_resume_analyses_again_an_image_whose_table_was_deleted(images, tmp_path) -> None:
    """Taken as done, its objects were missing from tables/ while counts.csv had them."""
    settings = three_level_settings()
    out = tmp_path / "out"
    run_analysis(settings, images, out)
    tables = {p.name: pd.read_csv(p) for p in sorted((out / "tables").glob("*.csv"))}
    child = settings.classes[-1].name
    (out / "images" / "img1" / f"{child}.csv").unlink()
    result = run_analysis(settings, images, out, resume=True)
    assert result.resumed == 1 and (out / "images" / "img1" / f"{child}.csv").is_file()
    for name, table in tables.items():
        pd.testing.assert_frame_equal(pd.read_csv(out / "tables" / name), table)


def test_cli_runs_a_folder_and_a_glob(images: list[Path], tmp_path: Path) -> None:
    settings = save_settings(three_level_settings(), tmp_path / "s.yaml")
    out = tmp_path / "out"
    assert main(["analyze", str(settings), str(images[0].parent), "-o", str(out), "-q"]) == 0
    counts = pd.read_csv(out / "summary" / "counts.csv")
    assert counts["image"].tolist() == ["img0", "img1"]
    pattern = str(images[0].parent / "img1*.tif")
    assert main(["analyze", str(settings), pattern, "-o", str(tmp_path / "o2"), "-q"]) == 0
    assert pd.read_csv(tmp_path / "o2" / "summary" / "counts.csv")["image"].tolist() == ["img1"]


def test_cli_resume_says_how_many_were_analysed_now(
    images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = save_settings(three_level_settings(), tmp_path / "s.yaml")
    args = ["analyze", str(settings), *map(str, images), "-o", str(tmp_path / "out"), "-q"]
    assert main(args) == 0
    assert "2 of 2 images analysed →" in capsys.readouterr().out
    assert main([*args, "--resume"]) == 0
    assert "0 of 2 images analysed now, 2 already done →" in capsys.readouterr().out


def test_cli_last_line_counts_the_failures_and_points_to_their_table(
    images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error lines above it may have scrolled away in a batch of hundreds."""
    broken = images[0].with_name("broken.tif")
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)
    settings = save_settings(three_level_settings(), tmp_path / "s.yaml")
    out = tmp_path / "out"
    assert main(["analyze", str(settings), str(images[0]), str(broken), "-o", str(out), "-q"]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    failures = out / "summary" / "failures.csv"
    assert last.startswith(f"1 of 2 images analysed (1 failed: see {failures}) → "), last


def test_time_points_and_scenes_are_all_analysed(tmp_path: Path) -> None:
    import tifffile

    a, b = cell_image(seed=1), cell_image(seed=2, n_cells=3)
    stack = np.stack([a, b])  # T×C×Y×X
    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, stack, ome=True, metadata={
        "axes": "TCYX", "Channel": {"Name": ["DAPI", "GFP"]}, "TimeIncrement": 300,
        "TimeIncrementUnit": "s"})  # fmt: skip
    result = run_analysis(three_level_settings(), [path], tmp_path / "out")
    assert result.records[0]["counts"]["cell"] == 9
    table = pd.read_csv(tmp_path / "out" / "images" / "movie" / "cell.csv")
    assert table.groupby("t").size().tolist() == [6, 3]
    overviews = sorted(p.name for p in (tmp_path / "out" / "images" / "movie").glob("*.png"))
    assert overviews == ["overview.png", "overview_s0_t1.png"]  # one per time point
    still = tmp_path / "still.ome.tif"  # beside the series: one plane, one row
    tifffile.imwrite(
        still, a, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    )
    run_analysis(three_level_settings(), [path, still], tmp_path / "both")
    per_time = pd.read_csv(tmp_path / "both" / "summary" / "counts_per_time_point.csv")
    assert per_time[["image", "scene", "t"]].values.tolist() == [
        ["movie", 0, 0], ["movie", 0, 1], ["still", 0, 0]]  # fmt: skip
    assert per_time["time_s"].tolist()[:2] == [0, 300] and np.isnan(per_time["time_s"][2])
    assert per_time["cell"].tolist() == [6, 3, 6]
    index = (tmp_path / "both" / "index.html").read_text()
    assert "<th>planes</th>" in index and "<td>2 time points</td>" in index  # counts: summed
    assert "<a href='images/movie/overview_s0_t1.png'>s0_t1</a>" in index  # every overview
    both = pd.read_csv(tmp_path / "both" / "tables" / "nucleus.csv")
    counted = both.groupby(["image", "t"]).size().tolist()
    assert per_time["nucleus"].tolist() == counted
    assert "summary/counts_per_time_point.csv" in (tmp_path / "both" / "index.html").read_text()
    stored = open_image(tmp_path / "out" / "images" / "movie" / "cell.ome.zarr")
    assert stored.sizes["T"] == 2
    np.testing.assert_array_equal(stored.read(T=1)[0, 0, 0, 0], reference(b)["cell"])


@pytest.mark.slow
def test_worker_processes_give_the_same_results(images: list[Path], tmp_path: Path) -> None:
    settings = three_level_settings()
    one = run_analysis(settings, images, tmp_path / "one")
    two = run_analysis(settings, images, tmp_path / "two", workers=2)
    assert [r["counts"] for r in two.records] == [r["counts"] for r in one.records]
    for name in ("cell", "nucleus", "spot"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "one" / "tables" / f"{name}.csv"),
            pd.read_csv(tmp_path / "two" / "tables" / f"{name}.csv"),
        )


@pytest.mark.slow
def test_a_dask_scheduler_gives_the_same_results(images: list[Path], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    settings = three_level_settings()
    one = run_analysis(settings, images, tmp_path / "one")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        two = run_analysis(settings, images, tmp_path / "two", scheduler=cluster.scheduler_address)
    assert [r["counts"] for r in two.records] == [r["counts"] for r in one.records]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "one" / "tables" / "spot.csv"),
        pd.read_csv(tmp_path / "two" / "tables" / "spot.csv"),
    )


def test_the_facade_runs_a_settings_file(images: list[Path], tmp_path: Path) -> None:
    import scopeml as sm

    path = save_settings(three_level_settings(), tmp_path / "s.yaml")
    result = sm.analyze(path, images[0], tmp_path / "out")
    assert result.counts == {
        "img0": {"cell": 6, "nucleus": 6, "spot": result.counts["img0"]["spot"]}
    }
    assert result.counts["img0"]["spot"] > 0


def test_z_stacks_give_3d_objects(tmp_path: Path) -> None:
    import tifffile

    planes = np.stack([cell_image(seed=4)] * 3, axis=1)  # C×Z×Y×X: the same cells in 3 planes
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, planes, ome=True,
                     metadata={"axes": "CZYX", "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip
    result = run_analysis(three_level_settings(), [path], tmp_path / "out")
    assert result.records[0]["counts"]["cell"] == 6
    stored = open_image(tmp_path / "out" / "images" / "stack" / "cell.ome.zarr")
    assert stored.sizes["Z"] == 3
    cells = pd.read_csv(tmp_path / "out" / "images" / "stack" / "cell.csv")
    flat = reference(planes[:, 0])["cell"]
    np.testing.assert_allclose(cells["area"], 3 * np.bincount(flat.ravel())[1:])


def test_cancel_between_images_keeps_finished_ones(images: list[Path], tmp_path: Path) -> None:
    def stop_after_one(event: ProgressEvent) -> None:
        if event.stage == "analyze" and event.done == 1:
            raise Cancelled("stopped by the user")

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        run_analysis(three_level_settings(), images, out, progress=stop_after_one)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["img0"]
    result = run_analysis(three_level_settings(), images, out, resume=True)
    assert [r["status"] for r in result.records] == ["done", "done"]


def test_every_scene_and_an_empty_image(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "two.ome.tif"
    meta = {"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    with tifffile.TiffWriter(path, ome=True) as writer:
        for scene in (0, 1):
            writer.write(cell_image(seed=scene, n_cells=3 + scene), metadata=meta)
    empty = write_image(tmp_path / "empty.ome.tif", np.full((2, 64, 64), 100, np.uint16))
    result = run_analysis(three_level_settings(), [empty, path], tmp_path / "out")
    assert result.counts["empty"] == {"cell": 0, "nucleus": 0, "spot": 0}
    table = pd.read_csv(tmp_path / "out" / "tables" / "cell.csv")
    combined = pd.read_parquet(tmp_path / "out" / "tables" / "cell.parquet")
    assert len(combined) == len(table) == 7 and list(combined.columns) == list(table.columns)
    assert table.groupby("scene").size().tolist() == [3, 4]
    stored = open_image(tmp_path / "out" / "images" / "two" / "cell.ome.zarr")
    assert stored.sizes["S"] == 2
    second = open_image(path).read(S=1)[0, 0, :, 0]
    np.testing.assert_array_equal(stored.read(S=1)[0, 0, 0, 0], reference(second)["cell"])


def test_scenes_of_different_sizes_are_analysed_each_on_its_own(tmp_path: Path, capsys) -> None:
    """A file whose scenes differ in size (here also in time points) is analysed whole, each
    scene opened on its own: as each scene analysed alone, into one image folder."""
    import tifffile

    path = tmp_path / "two.ome.tif"
    meta = {"axes": "TCYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    with tifffile.TiffWriter(path, ome=True) as writer:  # scene 1: smaller, two time points
        writer.write(cell_image(seed=0, n_cells=3)[None], metadata={**meta, "Name": "A1"})
        writer.write(
            np.stack([cell_image((160, 192), seed=s, n_cells=2) for s in (1, 2)]),
            metadata={**meta, "Name": "B2"},
        )  # fmt: skip (the wells' names)
    settings = tmp_path / "s.yaml"
    save_settings(three_level_settings(), settings)
    args = ["analyze", str(settings), str(path), "-o", str(tmp_path / "all"), "-q"]
    assert main(args) == 0
    whole = tmp_path / "all" / "images" / "two"
    cells = pd.read_csv(whole / "cell.csv")
    assert cells[["scene", "t"]].drop_duplicates().values.tolist() == [[0, 0], [1, 0], [1, 1]]
    stored = [open_image(whole / "cell.ome.zarr", scene=s) for s in (0, 1)]
    first = open_image(path, scene=0).read()[0, 0, :, 0]
    np.testing.assert_array_equal(stored[0].read()[0, 0, 0, 0], reference(first)["cell"])
    assert stored[1].sizes["T"] == 2 and stored[1].shape[-2:] == (160, 192)
    assert sorted(p.name for p in whole.glob("*.png")) == [
        "overview.png", "overview_s1_t0.png", "overview_s1_t1.png"]  # fmt: skip
    per_time = pd.read_csv(tmp_path / "all" / "summary" / "counts_per_time_point.csv")
    assert per_time[["scene", "scene_name", "t"]].values.tolist() == [
        [0, "A1", 0], [1, "B2", 0], [1, "B2", 1]]  # fmt: skip
    assert cells.groupby("scene_name")["scene"].first().to_dict() == {"A1": 0, "B2": 1}
    assert per_time["cell"].tolist() == cells.groupby(["scene", "t"]).size().tolist()
    counts = pd.read_csv(tmp_path / "all" / "summary" / "counts.csv")
    assert counts["megapixels"].item() == pytest.approx((256 * 256 + 160 * 192) / 1e6)
    out = tmp_path / "one"
    assert main([*args[:4], str(out), "-q", "--scene", "1"]) == 0
    result = run_analysis(settings, [path], tmp_path / "api", scene=1)
    table = pd.read_csv(out / "images" / "two" / "cell.csv")
    assert table[["scene", "t"]].drop_duplicates().values.tolist() == [[1, 0], [1, 1]]
    assert table.drop(columns="image").equals(
        cells[cells["scene"] == 1].drop(columns="image").reset_index(drop=True))  # fmt: skip
    second = open_image(path, scene=1).read(T=1)[0, 0, :, 0]
    assert (table["t"] == 1).sum() == reference(second)["cell"].max() > 0
    names = sorted(p.name for p in (out / "images" / "two").glob("*.png"))
    assert names == ["overview.png", "overview_s1_t1.png"]
    per_time = pd.read_csv(out / "summary" / "counts_per_time_point.csv")
    assert per_time[["scene", "t"]].values.tolist() == [[1, 0], [1, 1]]
    assert per_time["cell"].tolist() == table.groupby("t").size().tolist()
    assert "scene: 1" in (out / "settings.yaml").read_text()
    with pytest.raises(InvalidRequestError, match="scene must be"):
        run_analysis(settings, [path], tmp_path / "bad", scene=-1)
    first = three_level_settings().model_copy(update={"scene": 0})
    with pytest.warns(UserWarning, match="scene 1 given for this run replaces the settings' sc"):
        assert run_analysis(first, [path], tmp_path / "given", scene=1).counts == result.counts
    wrong = tmp_path / "wrong.yaml"  # a channel the scene lacks: a settings error, before work
    wrong.write_text(settings.read_text().replace("GFP", "RFP"))
    assert main(["analyze", str(wrong), str(path), "-o", str(tmp_path / "w"), "--scene", "1"]) == 2
    assert "channel 'RFP' is not in" in capsys.readouterr().err
    assert main([*args[:4], str(tmp_path / "none"), "--scene", "7"]) == 2  # before any work
    assert "scene 7 does not exist; the image has 2 (0 A1, 1 B2)" in capsys.readouterr().err
    assert not (tmp_path / "none" / "images").exists()


def test_cancel_between_planes_leaves_nothing_half_written(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, np.stack([cell_image(seed=1), cell_image(seed=2)]), ome=True,
                     metadata={"axes": "TCYX", "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip
    seen: list[tuple[str, int]] = []

    def stop_after_first_plane(event: ProgressEvent) -> None:
        seen.append((event.stage, event.done))
        if event.stage == "plane" and event.done == 1:
            raise Cancelled("stopped by the user")

    with pytest.raises(Cancelled):
        run_analysis(three_level_settings(), [path], tmp_path / "out",
                     progress=stop_after_first_plane)  # fmt: skip
    assert ("plane", 0) in seen and ("plane", 2) not in seen
    assert list((tmp_path / "out" / "images").iterdir()) == []


def test_the_overview_shows_the_channel_the_first_class_is_found_in(images, tmp_path):
    """Cells are found in GFP (the second channel): the overview is GFP with their outlines."""
    from PIL import Image as PILImage

    run_analysis(three_level_settings(), images[:1], tmp_path / "out")
    rgb = np.asarray(PILImage.open(tmp_path / "out" / "images" / "img0" / "overview.png"))
    dapi, gfp = open_image(images[0]).read()[0, 0, :, 0].astype(np.float32)
    assert rgb.shape[1] == gfp.shape[1] and rgb.shape[0] > gfp.shape[0]  # full size, a legend
    rgb = rgb[: gfp.shape[0]]  # the image; the legend is below it
    grey = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])  # not an outline
    shown = rgb[..., 0][grey].astype(np.float32)
    assert np.corrcoef(shown, gfp[grey])[0, 1] > 0.95
    assert np.corrcoef(shown, gfp[grey])[0, 1] > np.corrcoef(shown, dapi[grey])[0, 1] + 0.1


def test_overwrite_replaces_an_analysis_only_after_the_settings_are_checked(
    images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = save_settings(three_level_settings(), tmp_path / "s.yaml")
    out = tmp_path / "out"
    assert main(["analyze", str(settings), str(images[0]), "-o", str(out), "-q"]) == 0
    (out / "tables" / "stale.csv").write_text("an earlier run's file\n")
    # bad settings: refused before anything is deleted
    (tmp_path / "bad.yaml").write_text(settings.read_text().replace("GFP", "RFP"))
    code = main(["analyze", str(tmp_path / "bad.yaml"), str(images[1]), "-o", str(out), "-q",
                 "--overwrite"])  # fmt: skip
    assert code == 2 and (out / "tables" / "stale.csv").exists()
    assert main(["analyze", str(settings), str(images[1]), "-o", str(out), "-q",
                 "--overwrite"]) == 0  # fmt: skip
    capsys.readouterr()
    assert sorted(p.name for p in (out / "images").iterdir()) == ["img1"]
    assert not (out / "tables" / "stale.csv").exists()
    assert pd.read_csv(out / "summary" / "counts.csv")["image"].tolist() == ["img1"]
    # a folder that is not an analysis's is never replaced; --resume and --overwrite exclude
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(InvalidRequestError, match="is not an analysis's; it is not replaced"):
        run_analysis(settings, images, mine, overwrite=True)
    with pytest.raises(InvalidRequestError, match="choose one"):
        run_analysis(settings, images, out, overwrite=True, resume=True)
    assert (mine / "notes.txt").read_text() == "mine"
    assert main(["analyze", str(settings), str(images[0]), "-o", str(out), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
