"""Measuring a store segmented from a plain TIFF read with axes TYX (a time-lapse): the image
file the store records is read with the axes its run named, by ``objects measure STORE
--image IMG`` and ``sm.measure_objects(seg, "img.tif")``, giving ``segment --measure``'s
table; another file whose sizes then disagree is refused naming the axes (newuser20 #2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidImageError
from scopeml.synthetic import realistic_nuclei

RUN = {"outputs": ("labels", "instances"), "scale": 1, "tile_size": 128, "workers": 1}


@pytest.fixture(scope="module")
def segmented(tmp_path_factory) -> tuple[Path, sm.Segmentation, pd.DataFrame]:
    """A plain 3-page TIFF of nuclei, segmented with axes TYX and measured by ``segment``."""
    folder = tmp_path_factory.mktemp("movie")
    frames = [realistic_nuclei((200, 180), seed=s)[0][0] for s in range(3)]
    movie = folder / "movie.tif"
    pixels = (np.clip(np.stack(frames), 0, None) * 1000).astype(np.uint16)
    tifffile.imwrite(movie, pixels, photometric="minisblack")
    table = folder / "segment.csv"
    seg = sm.segment(movie, "nuclei", folder / "o.ome.zarr", axes="TYX", measure=table, **RUN)
    return movie, seg, pd.read_csv(table)


def test_cli_measures_with_the_axes_the_store_records(segmented, tmp_path, capsys):
    movie, seg, expected = segmented
    out = tmp_path / "m.csv"
    assert main(["objects", "measure", str(seg), "--image", str(movie), "-o", str(out), "-q"]) == 0
    assert "pages of unknown kind" not in capsys.readouterr().err
    table = pd.read_csv(out)
    assert sorted(set(table["t"])) == [0, 1, 2]
    pd.testing.assert_frame_equal(table, expected)


def test_python_measures_with_the_axes_the_store_records(segmented):
    movie, seg, expected = segmented
    pd.testing.assert_frame_equal(sm.measure_objects(seg, str(movie)), expected)
    pd.testing.assert_frame_equal(sm.measure_objects(seg.path, movie), expected)


def test_another_file_names_the_axes_to_pass(segmented, tmp_path, capsys):
    movie, seg, expected = segmented
    copy = tmp_path / "copy.tif"
    shutil.copyfile(movie, copy)  # not the file the store records: its own axes, Z
    with (
        pytest.warns(UserWarning, match="pages of unknown kind"),
        pytest.raises(InvalidImageError, match=r"must agree\); the segment run of these objects "
                      rf"read {movie.resolve()} with axes TYX: pass --axes TYX \(axes='TYX'\)"),
    ):  # fmt: skip
        sm.measure_objects(seg, copy)
    pd.testing.assert_frame_equal(sm.measure_objects(seg, copy, axes="TYX"), expected)
    out = tmp_path / "m.csv"
    assert main(["objects", "measure", str(seg), "--image", str(copy), "-o", str(out)]) == 2
    assert "pass --axes TYX (axes='TYX')" in capsys.readouterr().err
    command = ["objects", "measure", str(seg), "--image", str(copy), "-o", str(out), "-q"]
    assert main([*command, "--axes", "TYX"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), expected)


def test_an_image_of_other_sizes_gets_no_axes_advice(segmented, tmp_path):
    """A 199×180 movie (not the 200×180 one, in any axes): "pass --axes TYX" was advised,
    and failed the same way when followed."""
    movie, seg, _ = segmented
    other = tmp_path / "other.tif"
    tifffile.imwrite(other, tifffile.imread(movie)[:, 1:], photometric="minisblack")
    with pytest.warns(UserWarning), pytest.raises(InvalidImageError) as err:
        sm.measure_objects(seg, other)
    assert "must agree" in err.value.problem and "--axes" not in err.value.problem


def test_without_image_a_store_is_measured_on_the_image_its_run_read(segmented, tmp_path, capsys):
    movie, seg, expected = segmented
    assert seg.image_path == movie.resolve()
    out = tmp_path / "m.csv"
    assert main(["objects", "measure", str(seg), "-o", str(out), "-q"]) == 0
    said = capsys.readouterr().out
    assert f"intensities of {movie.name}, the image its run read) → {out}" in said
    pd.testing.assert_frame_equal(pd.read_csv(out), expected)


def test_an_image_opened_with_axes_is_recorded_with_them(segmented, tmp_path):
    """``segment(open_image(movie, axes="TYX"))`` recorded no axes: measuring its store on the
    movie read it as Z (sizes disagreed), where the path with ``axes=`` worked."""
    movie, _, expected = segmented
    opened = sm.segment(sm.open_image(movie, axes="TYX"), "nuclei", tmp_path / "o.ome.zarr", **RUN)
    pd.testing.assert_frame_equal(sm.measure_objects(opened, movie), expected)
    again = sm.segment(movie, "nuclei", opened.path, axes="TYX", resume=True, **RUN)
    assert again.already_complete  # the same run as the path's


def test_objects_filtered_from_the_store_are_measured_on_the_movie(segmented, tmp_path, capsys):
    """segment --axes TYX → objects filter → objects measure: the filtered store carries the
    movie and its axes, and was measured as a Z stack (sizes disagreed)."""
    movie, seg, expected = segmented
    kept = tmp_path / "f.ome.zarr"
    assert main(["objects", "filter", str(seg), "-o", str(kept), "--min-size", "1", "-q"]) == 0
    out = tmp_path / "m.csv"
    assert main(["objects", "measure", str(kept), "-o", str(out), "-q"]) == 0
    assert f"intensities of {movie.name}, the image its run read" in capsys.readouterr().out
    columns = ["t", "area", "intensity_mean_C0"]  # filter numbers them anew

    def rows(table: pd.DataFrame) -> pd.DataFrame:
        return table[columns].sort_values(columns, ignore_index=True)

    pd.testing.assert_frame_equal(rows(pd.read_csv(out)), rows(expected))
    opened = sm.measure_objects(sm.open_image(kept), movie)  # an opened label store too
    pd.testing.assert_frame_equal(rows(opened), rows(expected))


def test_python_without_image_measures_the_image_its_run_read(segmented, tmp_path):
    """As ``objects measure STORE`` does: it measured shapes only, without a word."""
    _, seg, expected = segmented
    pd.testing.assert_frame_equal(sm.measure_objects(seg), expected)
    kept = sm.filter_objects(seg, tmp_path / "f.ome.zarr", min_size=1)  # carries the movie
    columns = ["t", "area", "intensity_mean_C0"]
    found = sm.measure_objects(kept)[columns].sort_values(columns, ignore_index=True)
    pd.testing.assert_frame_equal(found, expected[columns].sort_values(columns, ignore_index=True))


def test_a_store_recorded_without_its_axes_is_measured_for_shapes_with_a_warning(
    segmented, tmp_path
):
    """A store of an opened image from before runs kept its axes: the file read on its own
    axes disagrees with the objects; implied (no image given), it is left out, not an error."""
    import zarr

    movie, _, expected = segmented
    store = sm.segment(sm.open_image(movie, axes="TYX"), "nuclei", tmp_path / "o.ome.zarr", **RUN)
    group = zarr.open_group(str(store), mode="r+")
    group.attrs["scopeml"] = {k: v for k, v in group.attrs["scopeml"].items() if k != "axes"}
    with pytest.warns(UserWarning, match=r"must agree\).*; measured for their shapes only"):
        table = sm.measure_objects(store)
    assert len(table) == len(expected)
    assert not any(name.startswith("intensity_") for name in table)


def test_a_changed_image_is_not_measured_and_the_summary_says_so(tmp_path, capsys):
    image = tmp_path / "nuclei.tif"
    pixels = np.clip(realistic_nuclei((160, 150), seed=4)[0][0], 0, None) * 1000
    tifffile.imwrite(image, pixels.astype(np.uint16))
    seg = sm.segment(image, "nuclei", tmp_path / "o.ome.zarr", **RUN)
    tifffile.imwrite(image, pixels.astype(np.uint16) // 2)  # the same name, other pixels
    assert seg.image_path is None
    with pytest.warns(UserWarning, match=r"nuclei.tif: gone or changed since the run that made "
                      "the objects; measured for their shapes only"):  # fmt: skip
        assert not any(name.startswith("intensity_") for name in sm.measure_objects(seg))
    out = tmp_path / "m.csv"
    assert main(["objects", "measure", str(seg), "-o", str(out), "-q"]) == 0
    said = capsys.readouterr()
    assert f"shapes only: {image.resolve()} is gone or changed" in said.out
    assert f"warning: {image.resolve()}: gone or changed since the run" in said.err  # not only
    table = pd.read_csv(out)
    assert len(table) == seg.n_objects > 0
    assert not any(name.startswith("intensity_") for name in table)


def test_a_store_segmented_from_an_array_says_it_measures_shapes_only(tmp_path) -> None:
    """No file to read again: 45 columns where the file's store gave 51, without a word."""
    pixels = np.clip(realistic_nuclei((160, 150), seed=4)[0][0], 0, None) * 1000
    seg = sm.segment(pixels.astype(np.uint16), "nuclei", tmp_path / "o.ome.zarr", **RUN)
    with pytest.warns(
        UserWarning,
        match="the run that made the objects read an array, not a "
        r"file; measured for their shapes only: give the image \(--image, image=",
    ):
        table = sm.measure_objects(seg)  # fmt: skip
    assert len(table) == seg.n_objects > 0
    assert not any(name.startswith("intensity_") for name in table)
    with_image = sm.measure_objects(seg, pixels.astype(np.uint16))
    assert "intensity_mean_C0" in with_image


def test_axes_name_the_layout_of_arrays_too() -> None:
    """A T×Y×X stack of frames labelled one by one (ids restart in each) is not a Z stack
    when ``axes="TYX"`` says so: each frame's objects are measured (and labelled) on their own,
    as a file read with those axes is; without it a 3-D array is Z×Y×X, as documented."""
    import tempfile

    import numpy as np

    import scopeml as sm

    labels = np.zeros((3, 24, 24), np.int32)
    labels[:, 2:6, 2:6] = 1  # the same id in every frame: one object per frame
    labels[1:, 10:14, 10:16] = 2
    pixels = np.arange(3 * 24 * 24, dtype=np.float32).reshape(3, 24, 24)
    frames = sm.measure_objects(labels, pixels, axes="TYX")
    assert frames[["t", "label"]].values.tolist() == [[0, 1], [1, 1], [1, 2], [2, 1], [2, 2]]
    for _, row in frames.iterrows():
        t, mask = int(row["t"]), labels[int(row["t"])] == row["label"]
        assert row["area"] == mask.sum()
        assert row["intensity_mean_C0"] == pixels[t][mask].mean()
    two = sm.measure_objects(labels, np.stack([pixels, pixels * 2]), axes="TYX")  # C first
    assert two["intensity_mean_C1"].tolist() == (frames["intensity_mean_C0"] * 2).tolist()
    assert len(sm.measure_objects(labels, pixels)) == 2  # Z×Y×X: two 3-D objects
    objects = sm.label_objects(labels > 0, f"{tempfile.mkdtemp()}/o.ome.zarr", axes="TYX")
    assert objects.sizes["T"] == 3 and objects.sizes["Z"] == 1
    assert [len(np.unique(objects.read()[0, t])) - 1 for t in range(3)] == [1, 2, 2]


def test_per_frame_masks_read_as_z_are_warned_of() -> None:
    """Masks numbered from 1 in each frame (cellpose, StarDist) joined as Z: said, with the
    fix; a Z stack's objects, which overlap plane to plane, are not."""
    import warnings

    import numpy as np
    import pytest

    import scopeml as sm

    frames = np.zeros((3, 40, 40), np.int32)
    for t in range(3):  # ids 1..4 on each frame, each at another place
        for i in range(4):
            y, x = 2 + 9 * i, 2 + 12 * t
            frames[t, y : y + 5, x : x + 5] = i + 1
    with pytest.warns(UserWarning, match=r"8 of its ids recur .* pass axes='TYX'"):
        assert len(sm.measure_objects(frames)) == 4  # what it warns of: joined across frames
    stack = np.zeros((3, 40, 40), np.int32)
    for i in range(4):  # a Z stack: each object on the same place plane after plane
        stack[:, 2 + 9 * i : 7 + 9 * i, 2:7] = i + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(sm.measure_objects(stack)) == 4
        assert len(sm.measure_objects(frames, axes="TYX")) == 12
