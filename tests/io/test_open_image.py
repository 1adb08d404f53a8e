"""open_image: the format registry, missing files, and the 6-D views readers are built on."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidImageError
from scopeml.io import READERS, create_ome_zarr, open_image
from scopeml.io._view import AxesView, SceneStack, normalize_key, select_scene
from scopeml.io.registry import reader_for


def test_an_unknown_suffix_lists_the_known_formats(tmp_path):
    path = tmp_path / "image.xyz"
    path.write_bytes(b"\0" * 10)
    with pytest.raises(
        InvalidImageError, match=r"unknown image format '\.xyz'; known: .*\.czi"
    ) as info:
        open_image(path)
    assert info.value.path == str(path)
    for suffix in (".czi", ".ome.tif", ".ome.zarr", ".png"):
        assert suffix in str(info.value)


def test_a_missing_file_is_an_invalid_image(tmp_path):
    with pytest.raises(InvalidImageError, match=r"absent\.ome\.tif: no such file"):
        open_image(tmp_path / "absent.ome.tif")


def test_an_array_is_a_clear_error_not_a_type_error_of_pathlib():
    from scopeml.errors import InvalidRequestError
    from scopeml.io.image import Image

    with pytest.raises(InvalidRequestError, match="opens a file or folder, not 'ndarray'") as err:
        open_image(np.zeros((4, 4)))
    for step in ("segment", "predict_region", "train_pixel_classifier", "label_objects"):
        assert step in str(err.value)  # every facade step that takes an array is named
    with pytest.raises(InvalidRequestError, match="not 'Image': it is open already"):
        open_image(Image(np.zeros((1, 1, 1, 1, 4, 4))))


def test_the_longest_suffix_wins_and_case_is_ignored():
    assert reader_for("a.OME.TIFF").__name__ == "read_tiff"
    assert reader_for("x.ome.zarr").__name__ == "read_ome_zarr"
    assert reader_for("slide.CZI").__name__ == "read_czi"


def test_a_zarr_group_inside_a_root_is_found_without_a_suffix(tmp_path):
    path = tmp_path / "OUT.ome.zarr" / "confidence"
    create_ome_zarr(path, shape=(4, 5), dtype="float32", axes="YX", chunks=(4, 5))[:] = 0.25
    with open_image(path) as image:
        assert image.shape == (1, 1, 1, 1, 4, 5)
        assert float(image.read().max()) == 0.25


def test_a_registered_callable_is_used(tmp_path, monkeypatch):
    path = tmp_path / "thing.npy"
    np.save(path, np.ones((3, 4), np.uint8), allow_pickle=False)

    def read_npy(file, *, scene=None):
        from scopeml.io import Image

        return Image(AxesView(np.load(file, allow_pickle=False), "YX"), path=file)

    monkeypatch.setitem(READERS, ".npy", read_npy)
    with open_image(path) as image:
        assert image.shape == (1, 1, 1, 1, 3, 4)


def test_normalize_key_handles_ellipsis_negative_ints_and_rejects_steps():
    slices, dropped = normalize_key((Ellipsis, -1), (2, 3, 4))
    assert slices == (slice(0, 2), slice(0, 3), slice(3, 4)) and dropped == (2,)
    with pytest.raises(IndexError, match="step 1"):
        normalize_key((slice(None, None, 2),), (4,))
    with pytest.raises(IndexError, match="out of range"):
        normalize_key((5,), (4,))


def test_axes_view_reorders_and_inserts_axes():
    source = np.arange(2 * 3 * 4 * 5).reshape(3, 5, 4, 2)  # Y, X, Z, C
    view = AxesView(source, "YXZC")
    assert view.shape == (1, 1, 2, 4, 3, 5)
    np.testing.assert_array_equal(view[0, 0, 1, 2], source[:, :, 2, 1])
    np.testing.assert_array_equal(view[..., 1:3, 0:2][0, 0], source[1:3, 0:2].transpose(3, 2, 0, 1))
    with pytest.raises(ValueError, match="do not name"):
        AxesView(source, "YXZ")


def test_axes_view_turns_read_failures_into_invalid_image_errors():
    class Broken:
        shape, dtype = (4, 4), np.uint8

        def __getitem__(self, key):
            raise OSError("tile 3 is corrupt")

    with pytest.raises(
        InvalidImageError, match=r"bad\.tif: cannot read pixels .*tile 3 is corrupt"
    ):
        AxesView(Broken(), "YX", path="bad.tif")[0, 0, 0, 0, 1:2, 1:3]


def test_scenes_stack_only_when_equal():
    a, b = AxesView(np.zeros((2, 3)), "YX"), AxesView(np.ones((2, 3)), "YX")
    stacked = select_scene([a, b], None, path="f")
    assert isinstance(stacked, SceneStack) and stacked.shape == (2, 1, 1, 1, 2, 3)
    assert stacked[1:2].sum() == 6 and stacked[0:0].shape[0] == 0
    assert select_scene([a, b], 1, path="f") is b
    with pytest.raises(InvalidImageError, match="2 scenes of different sizes"):
        select_scene([a, AxesView(np.zeros((4, 3)), "YX")], None, path="f")


def test_formats_without_pyramids_refuse_a_level(tmp_path):
    from PIL import Image as PILImage

    PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(InvalidImageError, match="level 1 does not exist"):
        open_image(tmp_path / "a.png", level=1)
    with pytest.raises(InvalidImageError, match="level must be ≥ 0"):
        open_image(tmp_path / "a.png", level=-1)


def test_scene_errors_name_the_scenes_as_the_file_does(tmp_path):
    """An OME-TIFF whose scenes are named (positions, wells, as ZEN names them): the errors
    list the names with the numbers, so the user can tell which number is which position."""
    import tifffile

    path = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(np.zeros((8, 8), np.uint8), metadata={"axes": "YX", "Name": "A1-Pos1"})
        tif.write(np.zeros((6, 9), np.uint8), metadata={"axes": "YX", "Name": "B2-Pos1"})
    with pytest.raises(InvalidImageError) as whole:
        open_image(path)
    assert "2 scenes of different sizes (0 A1-Pos1: 8×8, 1 B2-Pos1: 6×9)" in str(whole.value)
    with pytest.raises(InvalidImageError) as missing:
        open_image(path, scene=2)
    assert "scene 2 does not exist; the image has 2 (0 A1-Pos1, 1 B2-Pos1)" in str(missing.value)
    with open_image(path, scene=1) as image:
        assert image.scene_names == ("A1-Pos1", "B2-Pos1") and image.sizes["X"] == 9


def test_a_stack_tifffile_saved_as_colour_samples_is_read_by_channel_names_in_order(tmp_path):
    """tifffile saves a 3-channel stack as planar RGB by default: its channels were R, G, B,
    names that refused DNA, ER, RNA where a file naming none reads them in order."""
    import warnings

    import tifffile

    from scopeml.analysis.settings import parse_settings

    pixels = np.arange(3 * 8 * 9, dtype=np.uint16).reshape(3, 8, 9)
    tifffile.imwrite(tmp_path / "stack.tif", pixels)
    with open_image(tmp_path / "stack.tif") as image:
        assert image.channel_names == ("R", "G", "B")
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            view = image.select_channels(["DNA", "ER", "RNA"])
        assert "read R as DNA, G as ER, B as RNA (in order)" in str(said[0].message)
        np.testing.assert_array_equal(view.read()[0, 0, :, 0], pixels)
    blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "DNA"}}
    settings = parse_settings({"version": 1, "channels": ["DNA", "ER", "RNA"], "classes": [blob]})
    assert settings.channels_of(["R", "G", "B"]) == [0, 1, 2]


def test_the_alias_hint_names_the_colour_files_own_channels():
    from scopeml.analysis.settings import parse_settings

    blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "DAPI"}}
    settings = parse_settings({"version": 1, "channels": ["DAPI", "GFP"], "classes": [blob]})
    said = settings.channel_problem(["R", "G", "B"], "rgb.tif")
    assert said.endswith("aliases, such as {DAPI: [R], GFP: [G]}")  # C0, C1 were no names here
    aliased = settings.model_copy(update={"aliases": {"DAPI": ["R"], "GFP": ["G"]}})
    assert aliased.channels_of(["R", "G", "B"]) == ["R", "G"]


def test_a_tiff_read_after_closing_says_so(tmp_path):
    """Its series open on first read: read after closing, tifffile failed with no words."""
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8))
    image = open_image(tmp_path / "a.tif")
    image.close()
    with pytest.raises(InvalidImageError, match=r"a\.tif: read after the image was closed"):
        image.read()
