"""TIFF specifics: series as scenes, truncated files, lazy tile reads, metadata into OME-Zarr."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scopeml.errors import InvalidImageError
from scopeml.io import create_ome_zarr, open_image
from scopeml.io.testing import nuclei_image
from scopeml.io.tiff import map_axes


def test_series_of_different_sizes_are_scenes_chosen_by_index(tmp_path):
    path = tmp_path / "two.ome.tif"
    big, small = nuclei_image((40, 48), seed=1), nuclei_image((16, 32), seed=2)
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(big, metadata={"axes": "CYX", "Channel": {"Name": ["a", "b"]}})
        writer.write(small, metadata={"axes": "CYX", "Channel": {"Name": ["c", "d"]}})
    with pytest.raises(InvalidImageError, match=r"0: 40×48, 1: 16×32"):
        open_image(path)
    with open_image(path, scene=1) as image:
        assert image.channel_names == ("c", "d")
        np.testing.assert_array_equal(image.read()[0, 0, :, 0], small)


def test_equal_series_stack_on_s(tmp_path):
    path = tmp_path / "two.ome.tif"
    a, b = nuclei_image((16, 32), seed=1), nuclei_image((16, 32), seed=2)
    with tifffile.TiffWriter(path, ome=True) as writer:
        for data in (a, b):
            writer.write(data, metadata={"axes": "CYX"})
    with open_image(path) as image:
        assert image.shape == (2, 1, 2, 1, 16, 32)
        np.testing.assert_array_equal(image.read(S=1)[0, 0, :, 0], b)


def test_truncated_tiff_is_an_invalid_image_naming_the_file(tmp_path):
    path = tmp_path / "whole.ome.tif"
    tifffile.imwrite(path, nuclei_image((128, 128), seed=3), ome=True, tile=(32, 32))
    cut = tmp_path / "cut.ome.tif"
    for size in (100, path.stat().st_size // 2, path.stat().st_size - 200):
        cut.write_bytes(path.read_bytes()[:size])
        with (
            pytest.raises(InvalidImageError, match=r"cut\.ome\.tif: ") as info,
            open_image(cut) as image,
        ):
            image.read()
        assert info.value.path == str(cut)


def test_garbage_with_a_tiff_suffix_is_an_invalid_image(tmp_path):
    path = tmp_path / "noise.tif"
    path.write_bytes(b"II*\x00" + np.random.default_rng(1).bytes(500))
    with pytest.raises(InvalidImageError, match=r"noise\.tif"), open_image(path) as image:
        image.read()


def test_a_region_read_decodes_only_the_tiles_it_covers(tmp_path, monkeypatch):
    from tifffile.zarr import ZarrTiffStore

    path = tmp_path / "tiled.ome.tif"
    tifffile.imwrite(path, nuclei_image((96, 128), channels=1, seed=4)[0], ome=True, tile=(32, 32))
    keys: list[str] = []
    original = ZarrTiffStore.get

    async def spy(self, key, *args, **kwargs):
        keys.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(ZarrTiffStore, "get", spy)
    with open_image(path) as image:
        keys.clear()
        image.read(Y=slice(40, 60), X=slice(70, 90))  # inside tile row 1, tile columns 2
    chunk_keys = sorted(k for k in keys if not k.endswith((".zarray", ".zattrs", "zarr.json")))
    assert chunk_keys == ["1.2"]


def test_tiff_axes_map_to_stczyx():
    assert map_axes("TZCYXS", (2, 3, 1, 8, 8, 3)) == "TZ_YXC"
    assert map_axes("QQYX", (1, 5, 8, 8)) == "_ZYX"
    assert map_axes("ZIYX", (2, 5, 8, 8)) == "ZTYX"
    with pytest.raises(InvalidImageError, match="both channels"):
        map_axes("CYXS", (2, 8, 8, 3))
    with pytest.raises(InvalidImageError, match="R=4"):
        map_axes("RYX", (4, 8, 8))


def test_metadata_survives_ome_tiff_to_ome_zarr(tmp_path):
    data = nuclei_image((2, 30, 40), seed=5)
    path = tmp_path / "in.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": 0.1,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 100,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeZ": 0.002,
            "PhysicalSizeZUnit": "mm",
            "Channel": {"Name": ["Hoechst", "mCherry"]},
        },
    )
    out = tmp_path / "out.ome.zarr"
    with open_image(path) as image:
        assert image.pixel_sizes == pytest.approx({"X": 0.1, "Y": 0.1, "Z": 2.0})
        array = create_ome_zarr(
            out,
            shape=image.shape[2:],
            dtype=image.dtype,
            axes="CZYX",
            chunks=(1, 1, 16, 16),
            pixel_sizes=image.pixel_sizes,
            channel_names=image.channel_names,
        )
        array[:] = image.read()[0, 0]
    with open_image(out) as back:
        assert back.pixel_sizes == pytest.approx({"X": 0.1, "Y": 0.1, "Z": 2.0})
        assert back.channel_names == ("Hoechst", "mCherry")
        np.testing.assert_array_equal(back.read()[0, 0], data)


@pytest.fixture(scope="module")
def ome_tiff_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "seed.ome.tif"
    tifffile.imwrite(
        path,
        nuclei_image((2, 24, 40), seed=6),
        ome=True,
        tile=(16, 16),
        compression="zlib",
        metadata={"axes": "CZYX", "PhysicalSizeX": 0.5},
    )
    return path.read_bytes()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_tiffs_give_pixels_or_an_invalid_image_error(ome_tiff_bytes, tmp_path, data):
    blob = bytearray(ome_tiff_bytes)
    if data.draw(st.booleans(), label="truncate"):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1), label="size")]
    else:
        for _ in range(data.draw(st.integers(1, 16), label="flips")):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "mutant.ome.tif"
    path.write_bytes(bytes(blob))
    try:
        with open_image(path) as image:
            pixels = image.read()
    except InvalidImageError as err:
        assert err.path == str(path)
    else:
        assert pixels.shape == image.shape


def test_a_pyramid_level_reads_with_its_own_pixel_size(tmp_path):
    base = nuclei_image((64, 96), seed=7)
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as writer:
        meta = {"axes": "CYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}
        writer.write(base, subifds=1, tile=(16, 16), metadata=meta)
        writer.write(base[:, ::2, ::2], subfiletype=1, tile=(16, 16))
    with open_image(path, level=1) as image:
        assert image.shape == (1, 1, 2, 1, 32, 48)
        assert image.pixel_sizes == pytest.approx({"X": 0.5, "Y": 0.5})
        np.testing.assert_array_equal(image.read()[0, 0, :, 0], base[:, ::2, ::2])
    with pytest.raises(InvalidImageError, match="level 2 does not exist; series 0 has 2"):
        open_image(path, level=2)


def test_an_ome_tiff_whose_planes_lie_in_another_ome_tiff_it_cannot_read_says_why(tmp_path):
    """tifffile fails on an OME-TIFF whose TiffData names another OME-TIFF with a bare
    AssertionError: the message ended at "not a readable TIFF file: "."""
    for name in ("a.ome.tif", "other.ome.tif"):
        tifffile.imwrite(tmp_path / name, np.zeros((2, 64, 64), np.uint16), ome=True)
    xml = tifffile.tiffcomment(tmp_path / "a.ome.tif")
    start = xml.index("<TiffData")
    end = xml.index("</Pixels>")
    tiffdata = '<TiffData IFD="0" PlaneCount="2"><UUID FileName="other.ome.tif">urn:uuid:1</UUID>'
    xml = xml[:start] + tiffdata + "</TiffData>" + xml[end:]
    tifffile.tiffcomment(tmp_path / "a.ome.tif", comment=xml)
    with pytest.raises(InvalidImageError, match=r"not a readable TIFF file: \w+"):
        open_image(tmp_path / "a.ome.tif").read()
