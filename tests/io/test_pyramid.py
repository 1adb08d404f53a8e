"""Pyramid levels: the reductions against numpy references, and the NGFF metadata they leave."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io import create_ome_zarr, open_image, write_pyramid
from scopeml.io.pyramid import downsample


def _blocks(image: np.ndarray, factor: int):
    height, width = image.shape
    for y in range(0, height, factor):
        for x in range(0, width, factor):
            yield y // factor, x // factor, image[y : y + factor, x : x + factor].ravel()


def test_mean_and_mode_match_a_per_block_reference_on_odd_sizes():
    rng = np.random.default_rng(0)
    intensities = rng.integers(0, 1000, (7, 9)).astype(np.uint16)
    labels = rng.integers(0, 3, (7, 9)).astype(np.uint8)
    mean = downsample(intensities, (0, 1), 2, "mean")
    mode = downsample(labels, (0, 1), 2, "mode")
    assert mean.shape == mode.shape == (4, 5)
    assert mean.dtype == np.uint16 and mode.dtype == np.uint8
    for y, x, block in _blocks(intensities, 2):
        assert mean[y, x] == np.rint(block.mean())
    for y, x, block in _blocks(labels, 2):
        counts = np.bincount(block)
        assert counts[mode[y, x]] == counts.max()  # a most frequent value of the block


def test_nearest_takes_every_other_pixel_and_axes_are_honoured():
    image = np.arange(2 * 5 * 6).reshape(5, 2, 6)  # Y, C, X
    out = downsample(image, (0, 2), 2, "nearest")
    np.testing.assert_array_equal(out, image[::2, :, ::2])
    with pytest.raises(InvalidRequestError, match="unknown downsampling method 'median'"):
        downsample(image, (0, 2), 2, "median")


def test_write_pyramid_builds_levels_and_scales(tmp_path):
    path = tmp_path / "OUT.ome.zarr" / "labels"
    labels = np.random.default_rng(1).integers(0, 4, (2, 37, 50)).astype(np.uint32)
    array = create_ome_zarr(
        path,
        shape=labels.shape,
        dtype=labels.dtype,
        axes="ZYX",
        chunks=(1, 16, 16),
        pixel_sizes={"Z": 2.0, "Y": 0.5, "X": 0.5},
    )
    array[:] = labels
    assert write_pyramid(path, levels=3, method="mode") == 3
    level1 = zarr.open_array(str(path / "1"), mode="r")
    level2 = zarr.open_array(str(path / "2"), mode="r")
    assert level1.shape == (2, 19, 25) and level2.shape == (2, 10, 13)
    np.testing.assert_array_equal(level1[:], downsample(labels, (1, 2), 2, "mode"))
    np.testing.assert_array_equal(level2[:], downsample(level1[:], (1, 2), 2, "mode"))
    datasets = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0][
        "datasets"
    ]
    assert [d["path"] for d in datasets] == ["0", "1", "2"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in datasets]
    assert scales == [[2.0, 0.5, 0.5], [2.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    with open_image(path) as image:  # level 0 is still what a reader gets
        assert image.shape[3:] == (2, 37, 50)


def test_write_pyramid_stops_at_one_pixel(tmp_path):
    path = tmp_path / "tiny.ome.zarr"
    create_ome_zarr(path, shape=(3, 4), dtype="float32", axes="YX", chunks=(2, 2))[:] = 1.5
    assert write_pyramid(path, levels=10) == 3  # 3×4, 2×2, 1×1, then stop
    assert zarr.open_array(str(path / "2"), mode="r")[:].tolist() == [[1.5]]


def test_open_image_reads_a_pyramid_level_with_its_scale(tmp_path):
    path = tmp_path / "img.ome.zarr"
    data = np.random.default_rng(2).random((2, 20, 30), dtype=np.float32)
    create_ome_zarr(
        path,
        shape=data.shape,
        dtype="float32",
        axes="CYX",
        chunks=(1, 8, 8),
        pixel_sizes={"Y": 0.5, "X": 0.5},
        channel_names=["a", "b"],
    )[:] = data
    write_pyramid(path, levels=2)
    with open_image(path, level=1) as image:
        assert image.shape == (1, 1, 2, 1, 10, 15)
        assert image.pixel_sizes == {"Y": 1.0, "X": 1.0}
        assert image.channel_names == ("a", "b")
        np.testing.assert_allclose(image.read()[0, 0, :, 0], downsample(data, (1, 2), 2, "mean"))
    with pytest.raises(InvalidImageError, match="level 2 does not exist; the image has 2 levels"):
        open_image(path, level=2)
