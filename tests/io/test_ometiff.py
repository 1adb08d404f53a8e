"""OME-TIFF writing: streamed by bands, metadata carried, nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scopeml.errors import InvalidRequestError
from scopeml.io import Image, create_ome_zarr, open_image, write_ome_tiff
from scopeml.io.testing import nuclei_image


class _Spy:
    """An array that records the size of every region read from it."""

    def __init__(self, data: np.ndarray, fail_after: int | None = None) -> None:
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self.sizes: list[int] = []
        self.fail_after = fail_after

    def __getitem__(self, key):
        if self.fail_after is not None and len(self.sizes) >= self.fail_after:
            raise OSError("disk went away")
        block = self.data[key]
        self.sizes.append(block.size)
        return block


def test_zarr_output_to_ome_tiff_keeps_pixels_and_metadata(tmp_path):
    data = nuclei_image((2, 70, 90), seed=1)  # C Z Y X
    source = tmp_path / "out.ome.zarr"
    array = create_ome_zarr(
        source, shape=data.shape, dtype=data.dtype, axes="CZYX", chunks=(1, 1, 32, 32)
    )
    array[:] = data
    target = tmp_path / "out.ome.tif"
    write_ome_tiff(
        target,
        array,
        pixel_sizes={"X": 0.2, "Y": 0.2, "Z": 1.0},
        channel_names=["dna", "rna"],
        tile=(32, 32),
    )
    with tifffile.TiffFile(target) as tf:
        assert tf.is_ome and tf.pages.first.is_tiled
        assert tf.pages.first.tilelength == 32
    with open_image(target) as image:
        assert image.shape == (1, 1, 2, 2, 70, 90)
        assert image.pixel_sizes == pytest.approx({"X": 0.2, "Y": 0.2, "Z": 1.0})
        assert image.channel_names == ("dna", "rna")
        np.testing.assert_array_equal(image.read()[0, 0], data)


def test_an_image_with_two_scenes_becomes_two_series(tmp_path):
    pixels = np.stack(
        [nuclei_image((40, 50), seed=s)[None, :, None] for s in (2, 3)]
    )  # S T C Z Y X
    image = Image(pixels, pixel_sizes={"X": 0.5, "Y": 0.5}, channel_names=["a", "b"])
    target = tmp_path / "scenes.ome.tiff"
    write_ome_tiff(target, image, tile=(16, 16))
    with open_image(target) as back:
        assert back.shape == pixels.shape
        assert back.channel_names == ("a", "b")
        assert back.pixel_sizes == pytest.approx({"X": 0.5, "Y": 0.5})
        np.testing.assert_array_equal(back.read(), pixels)


def test_the_source_is_read_one_band_at_a_time(tmp_path):
    data = nuclei_image((100, 130), channels=1, seed=4)[0]
    spy = _Spy(data)
    write_ome_tiff(tmp_path / "a.ome.tif", spy, axes="YX", tile=(16, 32))
    assert max(spy.sizes) <= 16 * 32  # one tile row by one piece (source has no chunks: a tile)
    assert sum(spy.sizes) == data.size  # every pixel read once
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.ome.tif"), data)


def test_a_failing_source_leaves_no_file(tmp_path):
    target = tmp_path / "broken.ome.tif"
    with pytest.raises(OSError, match="disk went away"):
        write_ome_tiff(
            target, _Spy(np.zeros((64, 64), np.uint8), fail_after=3), axes="YX", tile=(16, 16)
        )
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_invalid_requests(tmp_path):
    data = np.zeros((2, 16, 16), np.uint8)
    with pytest.raises(InvalidRequestError, match="multiples of 16"):
        write_ome_tiff(tmp_path / "x.ome.tif", data, axes="CYX", tile=(20, 16))
    with pytest.raises(InvalidRequestError, match="subset of TCZYX"):
        write_ome_tiff(tmp_path / "x.ome.tif", data, axes="YXC")
    with pytest.raises(InvalidRequestError, match="1 channel names given for 2 channels"):
        write_ome_tiff(tmp_path / "x.ome.tif", data, axes="CYX", channel_names=["a"])
