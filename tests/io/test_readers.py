"""Conformance suite: every reader returns the same pixels by region as in full, and its metadata.

Each format subclasses :class:`ReaderTests` and implements ``make(tmp_path)``, returning the file,
the 6-D pixels it holds, and the pixel sizes and channel names written into it.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.errors import InvalidImageError
from scopeml.io import AXES, create_ome_zarr, open_image
from scopeml.io.testing import nuclei_image, to_stczyx, write_czi


class ReaderTests:
    """Shared assertions for every reader; not collected itself (no ``Test`` prefix)."""

    pixel_sizes: ClassVar[dict[str, float]] = {}
    channel_names: ClassVar[tuple[str, ...] | None] = None

    def make(self, tmp_path: Path) -> tuple[Path, np.ndarray]:
        raise NotImplementedError

    @pytest.fixture
    def sample(self, tmp_path):
        path, expected = self.make(tmp_path)
        image = open_image(path)
        yield image, expected
        image.close()

    def test_shape_and_dtype(self, sample):
        image, expected = sample
        assert image.shape == expected.shape
        assert image.dtype == expected.dtype
        assert image.sizes == dict(zip(AXES, expected.shape, strict=True))

    def test_full_read_equals_the_pixels_written(self, sample):
        image, expected = sample
        full = image.read()
        assert full.shape == expected.shape
        np.testing.assert_array_equal(full, expected)

    def test_region_reads_equal_the_full_read(self, sample):
        image, expected = sample
        rng = np.random.default_rng(0)
        *_, height, width = expected.shape
        regions = [
            {"Y": slice(0, 1), "X": slice(0, 1)},
            {"Y": slice(height - 1, height), "X": slice(width - 3, width)},
            {"Y": slice(1, height - 1), "X": slice(2, width)},
        ]
        for _ in range(8):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            y1, x1 = rng.integers(y0 + 1, height + 1), rng.integers(x0 + 1, width + 1)
            region = {"Y": slice(int(y0), int(y1)), "X": slice(int(x0), int(x1))}
            for axis, size in zip("STCZ", expected.shape[:4], strict=True):
                if size > 1:
                    start = int(rng.integers(0, size))
                    region[axis] = slice(start, int(rng.integers(start + 1, size + 1)))
            regions.append(region)
        for region in regions:
            key = tuple(region.get(axis, slice(None)) for axis in AXES)
            np.testing.assert_array_equal(image.read(**region), expected[key], err_msg=str(region))
            np.testing.assert_array_equal(image[key], expected[key], err_msg=str(region))

    def test_concurrent_region_reads_equal_the_pixels(self, sample):
        """The engine reads tiles from several threads at once."""
        image, expected = sample
        *_, height, width = expected.shape
        bands = [slice(y, min(y + 7, height)) for y in range(0, height, 7)]
        with ThreadPoolExecutor(4) as pool:
            blocks = list(pool.map(lambda band: image.read(Y=band, X=slice(1, width)), bands * 3))
        for band, block in zip(bands * 3, blocks, strict=True):
            np.testing.assert_array_equal(block, expected[..., band, 1:width])

    def test_an_int_keeps_the_axis_in_read_and_drops_it_in_getitem(self, sample):
        image, expected = sample
        assert image.read(C=image.shape[2] - 1).shape == (
            *expected.shape[:2],
            1,
            *expected.shape[3:],
        )
        np.testing.assert_array_equal(image.data[0, 0, -1, 0], expected[0, 0, -1, 0])

    def test_empty_region_reads_empty(self, sample):
        image, _ = sample
        assert image.read(Y=slice(3, 3)).shape[4] == 0

    def test_metadata(self, sample):
        image, _ = sample
        assert image.pixel_sizes == pytest.approx(self.pixel_sizes)
        if self.channel_names is not None:
            assert image.channel_names == self.channel_names

    def test_a_scene_that_does_not_exist_is_an_invalid_image(self, tmp_path):
        path, _ = self.make(tmp_path)
        with pytest.raises(InvalidImageError, match="scene 7 does not exist") as info:
            open_image(path, scene=7)
        assert info.value.path == str(path)


needs_czi = pytest.mark.skipif(
    importlib.util.find_spec("pylibCZIrw") is None, reason="pylibCZIrw is not installed"
)


@needs_czi
class TestCzi(ReaderTests):
    pixel_sizes: ClassVar[dict[str, float]] = {"X": 0.5, "Y": 0.25, "Z": 2.0}
    channel_names = ("DAPI", "GFP")

    def make(self, tmp_path):
        data = np.stack(
            [nuclei_image((37, 45), seed=1), nuclei_image((37, 45), seed=2)], axis=1
        )  # CZYX
        path = write_czi(
            tmp_path / "one.czi",
            [(data, (0, 0))],
            channel_names=self.channel_names,
            pixel_sizes=self.pixel_sizes,
        )
        return path, data[None, None]


@needs_czi
class TestCziMosaicScenes(ReaderTests):
    """Two equally sized scenes, tiled, at negative and overlapping mosaic coordinates: S = 2."""

    pixel_sizes: ClassVar[dict[str, float]] = {"X": 0.2, "Y": 0.2}
    channel_names = ("a", "b")

    def make(self, tmp_path):
        first, second = (
            nuclei_image((40, 50), seed=3)[:, None],
            nuclei_image((40, 50), seed=4)[:, None],
        )
        path = write_czi(
            tmp_path / "mosaic.czi",
            [(first, (-30, 100)), (second, (10, 120))],
            channel_names=self.channel_names,
            pixel_sizes=self.pixel_sizes,
            tile=16,
        )
        return path, np.stack([first, second])[:, None]


class TestOmeTiff(ReaderTests):
    pixel_sizes: ClassVar[dict[str, float]] = {"X": 0.325, "Y": 0.325, "Z": 1.5}
    channel_names = ("nuclei", "membrane")

    def make(self, tmp_path):
        data = np.stack([nuclei_image((3, 40, 50), seed=5)] * 2, axis=0)  # T C Z Y X
        path = tmp_path / "image.ome.tif"
        tifffile.imwrite(
            path,
            data,
            ome=True,
            tile=(16, 16),
            metadata={
                "axes": "TCZYX",
                "PhysicalSizeX": 325,
                "PhysicalSizeXUnit": "nm",
                "PhysicalSizeY": 0.325,
                "PhysicalSizeZ": 1.5,
                "Channel": {"Name": list(self.channel_names)},
            },
        )
        return path, to_stczyx(data, "TCZYX")


class TestImageJTiff(ReaderTests):
    pixel_sizes: ClassVar[dict[str, float]] = {"X": 0.5, "Y": 0.25, "Z": 2.0}

    def make(self, tmp_path):
        data = nuclei_image((4, 30, 35), seed=6).transpose(1, 0, 2, 3)  # Z C Y X
        path = tmp_path / "stack.tif"
        tifffile.imwrite(
            path,
            data,
            imagej=True,
            resolution=(1 / 0.5, 1 / 0.25),
            metadata={"axes": "ZCYX", "unit": "um", "spacing": 2.0},
        )
        return path, to_stczyx(data, "ZCYX")


class TestPlainRgbTiff(ReaderTests):
    channel_names = ("R", "G", "B")

    def make(self, tmp_path):
        data = np.random.default_rng(7).integers(0, 255, (33, 41, 3), dtype=np.uint8)
        path = tmp_path / "rgb.tiff"
        tifffile.imwrite(path, data, photometric="rgb", tile=(16, 16))
        return path, to_stczyx(data, "YXC")


class TestOmeZarr(ReaderTests):
    pixel_sizes: ClassVar[dict[str, float]] = {"X": 0.4, "Y": 0.4, "Z": 3.0}
    channel_names = ("dna", "actin")

    def make(self, tmp_path):
        data = nuclei_image((3, 40, 50), seed=8)
        path = tmp_path / "out.ome.zarr" / "image"
        array = create_ome_zarr(
            path,
            shape=data.shape,
            dtype=data.dtype,
            axes="CZYX",
            chunks=(1, 2, 16, 16),
            pixel_sizes=self.pixel_sizes,
            channel_names=self.channel_names,
        )
        array[:] = data
        return path, to_stczyx(data, "CZYX")


class TestOmeZarrV04(ReaderTests):
    """NGFF 0.4 on zarr v2, as written by ome-zarr-py and bioformats2raw."""

    pixel_sizes: ClassVar[dict[str, float]] = {"X": 0.65, "Y": 0.65}
    channel_names = ("c0", "c1")

    def make(self, tmp_path):
        data = nuclei_image((40, 50), seed=9)[None]  # T C Y X with T = 1
        path = tmp_path / "old.zarr"
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        group.create_array("0", data=data, chunks=(1, 1, 16, 16))
        group.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": [
                    {"name": "t", "type": "time"},
                    {"name": "c", "type": "channel"},
                    {"name": "y", "type": "space", "unit": "nanometer"},
                    {"name": "x", "type": "space", "unit": "nanometer"},
                ],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 650, 650]}],
                    }
                ],
            }
        ]
        group.attrs["omero"] = {"channels": [{"label": "c0"}, {"label": "c1"}]}
        return path, to_stczyx(data, "TCYX")


class TestPngRgb(ReaderTests):
    channel_names = ("R", "G", "B")

    def make(self, tmp_path):
        from PIL import Image as PILImage

        data = np.random.default_rng(10).integers(0, 255, (21, 30, 3), dtype=np.uint8)
        path = tmp_path / "photo.png"
        PILImage.fromarray(data).save(path)
        return path, to_stczyx(data, "YXC")


class TestPngGray16(ReaderTests):
    def make(self, tmp_path):
        from PIL import Image as PILImage

        data = nuclei_image((25, 31), channels=1, seed=11)[0]
        path = tmp_path / "gray.png"
        PILImage.fromarray(data).save(path)
        return path, to_stczyx(data, "YX")
