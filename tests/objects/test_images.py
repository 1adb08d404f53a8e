"""Objects over every axis: each scene, time point and Z plane is labelled and measured."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidImageError, InvalidLabelsError
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.objects import label_instances, measure_objects, measure_objects_tiled
from scopeml.objects.images import label_image, measure_image, open_labels
from scopeml.synthetic import synthetic_nuclei


def _time_series(n_times: int = 2, shape=(40, 48)) -> np.ndarray:
    frames = [synthetic_nuclei(shape, density=0.004, seed=seed)[1] > 0 for seed in range(n_times)]
    return np.stack(frames)[None, :, None, None].astype(np.uint8)  # S T C Z Y X


def test_every_time_point_is_labelled_and_measured(tmp_path):
    mask = _time_series(2)
    image = Image(mask, pixel_sizes={"Y": 0.5, "X": 0.5})
    out = label_image(image, tmp_path / "objects.ome.zarr", tile_size=(16, 16))
    assert out.shape == mask.shape and out.pixel_sizes == {"Y": 0.5, "X": 0.5}
    got = out.read()[0, :, 0, 0]
    offset = 0
    for t in range(2):
        expected = label_instances(mask[0, t, 0, 0])
        present = got[t] > 0
        np.testing.assert_array_equal(present, expected > 0)
        # the same objects, renumbered after the previous time point's ids
        assert np.unique(got[t][present]).size == expected.max()
        assert got[t][present].min() == offset + 1
        offset += int(expected.max())
    table = measure_image(out, Image(mask * 10), shape_features=False, tile_size=(16, 16))
    assert list(table.columns[:2]) == ["t", "label"]
    for t in range(2):
        rows = table[table["t"] == t].reset_index(drop=True)
        whole = measure_objects(got[t], mask[0, t, 0, 0] * 10, shape_features=False)
        assert len(rows) == len(whole) > 0
        np.testing.assert_allclose(rows["area"], whole["area"])
        np.testing.assert_allclose(rows["area_um2"], whole["area"] * 0.25)
        np.testing.assert_allclose(rows["intensity_mean_C0"], 10)


def test_z_stacks_give_3d_objects(tmp_path):
    mask = np.zeros((1, 1, 1, 6, 10, 10), np.uint8)
    mask[0, 0, 0, 1:4, 2:5, 2:5] = 1  # one cube across three planes
    mask[0, 0, 0, 5, 7:9, 7:9] = 1
    out = label_image(Image(mask), tmp_path / "o.ome.zarr", tile_size=(2, 4, 4))
    labels = out.read()[0, 0, 0]
    assert labels.max() == 2 and np.unique(labels[1:4, 2:5, 2:5]).tolist() == [1]
    table = measure_image(out, shape_features=False)
    assert table["area"].tolist() == [27, 4] and "centroid-2" in table


def test_several_scenes_are_kept(tmp_path):
    mask = np.concatenate([_time_series(1), _time_series(1)[:, :, :, :, ::-1]])
    out = label_image(Image(mask), tmp_path / "o.ome.zarr")
    assert out.sizes["S"] == 2
    reopened = open_image(tmp_path / "o.ome.zarr", scene=1)
    np.testing.assert_array_equal(reopened.read() > 0, mask[1:2] > 0)
    table = measure_image(out, shape_features=False)
    assert list(table.columns[:3]) == ["scene", "t", "label"]
    assert set(table["scene"]) == {0, 1}


def test_axes_that_cannot_be_handled_are_errors(tmp_path):
    two_channels = Image(np.zeros((1, 1, 2, 1, 8, 8), np.uint8), path="two.tif")
    with pytest.raises(InvalidLabelsError, match=r"two\.tif: label image has 2 channels"):
        label_image(two_channels, tmp_path / "o.ome.zarr")
    labels = Image(np.ones((1, 2, 1, 1, 8, 8), np.uint8))
    with pytest.raises(InvalidImageError, match="every axis but C must agree"):
        measure_image(labels, Image(np.ones((1, 1, 1, 1, 8, 8), np.uint8)))
    planes = Image(np.ones((1, 1, 1, 2, 8, 8), np.uint8), path="movie.tif")  # T read as Z
    with pytest.raises(InvalidImageError, match=r"read the image with axes TYX \(--axes TYX"):
        measure_image(labels, planes)
    stored = label_image(planes, tmp_path / "planes.ome.zarr")  # a store: --axes cannot apply
    with pytest.raises(InvalidImageError, match=r"make the labels again from the file read with "
                       r"--axes TYX \(a store keeps the axes"):  # fmt: skip
        measure_image(stored, movie := Image(np.ones((1, 2, 1, 1, 8, 8), np.uint8), path="m.tif"))
    with pytest.raises(InvalidImageError, match=r"read the labels with axes TYX"):  # a file
        measure_image(Image(np.ones((1, 1, 1, 2, 8, 8), np.uint8), path="planes.npy"), movie)
    movie = Image(np.ones((1, 2, 1, 1, 8, 8), np.uint8), path="movie.tif")
    with pytest.raises(InvalidImageError, match="2 time points; measure every one"):
        measure_objects_tiled(np.ones((8, 8), np.uint8), movie)  # never the first one only


def test_progress_reports_every_stack_and_cancel_leaves_nothing(tmp_path):
    from scopeml.errors import Cancelled

    mask = _time_series(2)
    events = []
    label_image(Image(mask), tmp_path / "o.ome.zarr", tile_size=16, progress=events.append)
    labelled = [e for e in events if e.stage == "label"]
    assert [e.done for e in labelled if e.done == e.total] == [9, 9]  # 3×3 tiles, each time point

    def stop(event):
        if event.stage == "relabel":
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        label_image(Image(mask), tmp_path / "c.ome.zarr", tile_size=16, progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ome.zarr"]
    with pytest.raises(Cancelled):
        measure_image(Image(mask), progress=stop_measuring)


def stop_measuring(event):
    if event.stage == "measure" and event.done:
        from scopeml.errors import Cancelled

        raise Cancelled("stopped")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_plain_zarr_array_of_either_format_opens_as_labels(tmp_path, zarr_format):
    import zarr

    labels = np.arange(20, dtype=np.uint16).reshape(4, 5)
    path = tmp_path / "labels.zarr"
    zarr.create_array(path, shape=labels.shape, dtype=labels.dtype, zarr_format=zarr_format)[:] = (
        labels
    )
    opened = open_labels(path)
    assert opened.shape == (1, 1, 1, 1, 4, 5)
    np.testing.assert_array_equal(opened.read()[0, 0, 0, 0], labels)
