"""CZI specifics: mosaics at absolute coordinates, scenes of different sizes, RGB, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io import create_ome_zarr, open_image
from scopeml.io.testing import nuclei_image, write_czi

pytest.importorskip("pylibCZIrw")


@pytest.fixture
def two_scenes(tmp_path):
    """Scene 0 is 40×50 at x=-30, y=100; scene 1 is 24×36 at x=5, y=90 (boxes overlap)."""
    first, second = nuclei_image((40, 50), seed=1)[:, None], nuclei_image((24, 36), seed=2)[:, None]
    path = write_czi(
        tmp_path / "scenes.czi",
        [(first, (-30, 100)), (second, (5, 90))],
        channel_names=["DAPI", "GFP"],
        pixel_sizes={"X": 0.5, "Y": 0.5},
        tile=16,
    )
    return path, first, second


def test_scenes_of_different_sizes_need_a_scene_and_the_error_lists_them(two_scenes):
    path, _, _ = two_scenes
    with pytest.raises(
        InvalidImageError, match=r"2 scenes of different sizes \(0: 40×50, 1: 24×36\)"
    ):
        open_image(path)


def test_each_scene_reads_by_region_from_its_own_origin(two_scenes):
    path, first, second = two_scenes
    for scene, expected in ((0, first), (1, second)):
        with open_image(path, scene=scene) as image:
            assert image.shape == (1, 1, 2, 1, *expected.shape[-2:])
            assert image.channel_names == ("DAPI", "GFP")
            np.testing.assert_array_equal(image.read()[0, 0], expected)
            region = image.read(C=1, Y=slice(7, 21), X=slice(13, 35))
            np.testing.assert_array_equal(region[0, 0, 0], expected[1, :, 7:21, 13:35])


def test_a_region_read_asks_libczi_for_that_region_only(two_scenes, monkeypatch):
    from pylibCZIrw import czi

    path, _, _ = two_scenes
    calls = []
    original = czi.CziReader.read

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(czi.CziReader, "read", spy)
    with open_image(path, scene=0) as image:
        image.read(C=0, Y=slice(10, 20), X=slice(5, 9))
    assert len(calls) == 1
    assert tuple(calls[0]["roi"]) == (-30 + 5, 100 + 10, 4, 10)  # absolute x, y, w, h
    assert calls[0]["scene"] == 0


def test_rgb_czi_gives_three_channels_in_rgb_order(tmp_path):
    from pylibCZIrw import czi

    rgb = np.random.default_rng(3).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "rgb.czi"
    with czi.create_czi(str(path)) as writer:
        writer.write(np.ascontiguousarray(rgb[..., ::-1]), location=(3, -4))  # libCZI takes BGR
        writer.write_metadata("rgb", channel_names={0: "brightfield"})
    with open_image(path) as image:
        assert image.shape == (1, 1, 3, 1, 20, 30)
        assert image.channel_names == ("brightfield-R", "brightfield-G", "brightfield-B")
        np.testing.assert_array_equal(image.read()[0, 0, :, 0], rgb.transpose(2, 0, 1))
        np.testing.assert_array_equal(image.read(C=2, X=slice(4, 9))[0, 0, 0, 0], rgb[:, 4:9, 2])


def test_garbage_with_a_czi_suffix_is_an_invalid_image_naming_the_file(tmp_path):
    path = tmp_path / "garbage.czi"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InvalidImageError, match=r"garbage\.czi: not a readable CZI") as info:
        open_image(path)
    assert info.value.path == str(path)


def test_truncated_czi_is_an_invalid_image(two_scenes, tmp_path):
    path, _, _ = two_scenes
    cut = tmp_path / "cut.czi"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(InvalidImageError, match=r"cut\.czi"), open_image(cut, scene=0) as image:
        image.read()


def test_metadata_survives_czi_to_ome_zarr(two_scenes, tmp_path):
    path, _, second = two_scenes
    out = tmp_path / "out.ome.zarr" / "image"
    with open_image(path, scene=1) as image:
        array = create_ome_zarr(
            out,
            shape=image.shape[2:],
            dtype=image.dtype,
            axes="CZYX",
            chunks=(1, 1, 16, 16),
            pixel_sizes=image.pixel_sizes,
            channel_names=image.channel_names,
        )
        for y in range(0, image.shape[4], 16):  # region by region, as the engine does
            array[:, :, y : y + 16] = image.read(Y=slice(y, y + 16))[0, 0]
    with open_image(out) as back:
        assert back.pixel_sizes == pytest.approx({"X": 0.5, "Y": 0.5})
        assert back.channel_names == ("DAPI", "GFP")
        np.testing.assert_array_equal(back.read()[0, 0], second)


class _FakeInfo:
    def __init__(self, w, h, zoom=1.0):
        self.logicalRect = type("Rect", (), {"w": w, "h": h})()
        self._zoom = zoom

    def get_zoom(self):
        return self._zoom


class _FakeReader:
    """A reader whose directory holds two 16×16 layer-0 subblocks and one pyramid subblock."""

    def enumerate_subblocks(self, callback):
        for index, info in enumerate(
            [_FakeInfo(16, 16), _FakeInfo(16, 16), _FakeInfo(64, 64, 0.25)]
        ):
            callback(index, info)

    def read(self, **kwargs):
        raise MemoryError("std::bad_alloc")


def test_a_directory_claiming_far_more_than_its_subblocks_is_corrupt():
    from scopeml.io.czi import _check_coverage

    _check_coverage(_FakeReader(), 2 * 16 * 16, "ok.czi")  # fully covered
    _check_coverage(_FakeReader(), 90 * 512, "sparse.czi")  # 1.1 % covered: a sparse mosaic
    with pytest.raises(InvalidImageError, match=r"claims 1000000000 pixels .* cover 512"):
        _check_coverage(_FakeReader(), 10**9, "bad.czi")


def test_libczi_running_out_of_memory_on_a_small_region_is_an_invalid_image():
    import threading

    from scopeml.io.czi import CziScene

    scene = CziScene(
        _FakeReader(),
        threading.Lock(),
        rect=(0, 0, 8, 8),
        scene=None,
        sizes={"T": 1, "C": 1, "Z": 1},
        pixel_type="Gray8",
        path="bad.czi",
    )
    with pytest.raises(InvalidImageError, match=r"bad\.czi: libCZI ran out of memory"):
        scene[slice(0, 1), slice(0, 1), slice(0, 1), slice(0, 4), slice(0, 4)]


def test_czi_is_read_at_level_0_only(two_scenes):
    path, _, _ = two_scenes
    with pytest.raises(InvalidImageError, match="level 1 does not exist; CZI is read at level 0"):
        open_image(path, scene=0, level=1)


def test_a_two_scene_czi_converts_to_ome_zarr_and_back(tmp_path):
    from scopeml.io import write_ome_zarr

    scenes = [nuclei_image((30, 40), seed=s)[:, None] for s in (5, 6)]
    path = write_czi(
        tmp_path / "plate.czi",
        [(scenes[0], (-7, 3)), (scenes[1], (60, -20))],
        channel_names=["DAPI", "GFP"],
        pixel_sizes={"X": 0.3, "Y": 0.3},
    )
    with open_image(path) as image:
        out = write_ome_zarr(
            tmp_path / "plate.ome.zarr", image, chunks={"Y": 16, "X": 16}, levels=2
        )
    assert not (tmp_path / "plate.ome.zarr.partial").exists()
    with open_image(out) as back:
        assert back.shape == (2, 1, 2, 1, 30, 40)
        assert back.channel_names == ("DAPI", "GFP")
        assert back.pixel_sizes == pytest.approx({"X": 0.3, "Y": 0.3})
        np.testing.assert_array_equal(back.read()[:, 0, :, 0], np.stack(scenes)[:, :, 0])
    with open_image(out, scene=1, level=1) as small:
        assert small.shape[4:] == (15, 20)
    with pytest.raises(InvalidRequestError, match="output exists"), open_image(path) as image:
        write_ome_zarr(out, image)


#: Scenes as ZEN names them: a scene's ``Name``, else its well's ``Shape Name``.
ZEN_SCENES = (
    '<S><Scenes><Scene Index="0" Name="A1-Pos1"><Shape Name="A1"/></Scene>'
    '<Scene Index="1" Name=""><Shape Name="B2"/></Scene></Scenes></S>'
)


def test_a_czi_names_its_scenes_as_zen_does(tmp_path, capsys):
    from scopeml.cli import main

    first, second = nuclei_image((40, 50), seed=1)[:, None], nuclei_image((24, 36), seed=2)[:, None]
    path = write_czi(
        tmp_path / "plate.czi",
        [(first, (0, 0)), (second, (80, 0))],
        pixel_sizes={"X": 0.5, "Y": 0.5},
        zen_dimensions=ZEN_SCENES,
    )
    with pytest.raises(InvalidImageError, match=r"\(0 A1-Pos1: 40×50, 1 B2: 24×36\)"):
        open_image(path)
    with open_image(path, scene=1) as image:
        assert image.scene_names == ("A1-Pos1", "B2")
    assert main(["info", str(path), "--scene", "b2"]) == 0  # by name, in any case
    assert "scenes: 1: 1 B2 (T=1 C=2 Z=1 Y=24 X=36)" in capsys.readouterr().out
    with pytest.raises(InvalidImageError, match="the image has 2 \\(0 A1-Pos1, 1 B2\\)"):
        open_image(path, scene=2)


def test_a_czi_without_scene_names_numbers_its_scenes(two_scenes):
    path, _, _ = two_scenes
    with open_image(path, scene=0) as image:
        assert image.scene_names == ()
