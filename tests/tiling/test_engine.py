"""The engine end to end on in-memory images: exactness, outputs, metadata, checks."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import zarr

from scopeml.api import segment
from scopeml.errors import (
    IncompatibleModelError,
    IncompleteOutputError,
    InvalidImageError,
    InvalidRequestError,
)
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.tiling.store import partial_path
from tests.tiling.engine_doubles import (
    random_image,
    unet_double,
    whole_image_probabilities,
    write_image_file,
)


def read_output(out, name):
    return np.asarray(zarr.open_array(str(out / name / "0"), mode="r")[...])


def test_2d_tiled_equals_whole_image_bit_for_bit(unet2d, tmp_path):
    # T=2, two channels, 203×171: neither a multiple of the 64 tile nor of the step 4
    image = random_image((1, 2, 2, 1, 203, 171), pixel_sizes={"Y": 0.5, "X": 0.25})
    out = segment(
        image,
        unet2d,
        tmp_path / "out.ome.zarr",
        outputs=["labels", "probabilities", "confidence"],
        tile_size=64,
    )
    probabilities = read_output(out, "probabilities")
    assert probabilities.shape == (2, 3, 203, 171)  # T C Y X
    for t in range(2):
        whole = whole_image_probabilities(unet2d, image.read(T=t)[0, 0, :, 0].astype(np.float32))
        np.testing.assert_array_equal(probabilities[t], whole)
    assert len(unet2d.input_shapes) > 1  # really tiled (and batched)
    labels = read_output(out, "labels")
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, probabilities.argmax(axis=1) + 1)
    np.testing.assert_array_equal(read_output(out, "confidence"), probabilities.max(axis=1))
    opened = open_image(out / "probabilities")
    assert opened.channel_names == ("class0", "class1", "class2")
    assert opened.pixel_sizes["Y"] == pytest.approx(0.5)
    assert opened.pixel_sizes["X"] == pytest.approx(0.25)


def test_2d_model_iterates_z(tmp_path):
    model = unet_double(depth=1)
    image = random_image((1, 1, 1, 3, 40, 37), seed=3)
    out = segment(image, model, tmp_path / "o.ome.zarr", outputs=["probabilities"], tile_size=16)
    probabilities = read_output(out, "probabilities")
    assert probabilities.shape == (2, 3, 40, 37)  # C Z Y X
    for z in range(3):
        whole = whole_image_probabilities(model, image.read(Z=z)[0, 0, :, 0].astype(np.float32))
        np.testing.assert_array_equal(probabilities[:, z], whole)


def test_3d_tiled_equals_whole_image_bit_for_bit(unet3d, tmp_path):
    image = random_image((1, 1, 1, 19, 45, 38), seed=2)
    out = segment(
        image,
        unet3d,
        tmp_path / "o.ome.zarr",
        outputs=["probabilities"],
        tile_size=(8, 16, 16),
    )
    probabilities = read_output(out, "probabilities")
    whole = whole_image_probabilities(unet3d, image.read()[0, 0].astype(np.float32))
    np.testing.assert_array_equal(probabilities, whole)
    assert len(unet3d.input_shapes) > 1


def test_too_small_halo_warns_and_differs(unet2d, tmp_path):
    image = random_image((1, 1, 2, 1, 96, 96), seed=4)
    with pytest.warns(UserWarning, match="below the model's need"):
        out = segment(
            image,
            unet2d,
            tmp_path / "o.ome.zarr",
            outputs=["probabilities"],
            tile_size=32,
            halo=4,
        )
    whole = whole_image_probabilities(unet2d, image.read()[0, 0, :, 0].astype(np.float32))
    assert not np.array_equal(read_output(out, "probabilities")[:], whole)


def test_a_tile_far_below_the_halo_is_warned_of_and_stays_exact(unet2d, tmp_path):
    image = random_image((1, 1, 2, 1, 48, 96), seed=4)
    halo, tile = unet2d.spec.halo[0], 2 * unet2d.spec.tile_step[0]
    assert ((tile + 2 * halo) / tile) ** 2 > 8 * ((48 + 2 * halo) / 48) * ((96 + 2 * halo) / 96)
    with pytest.warns(UserWarning, match=r"tile size .* the tiles read \d+× the image's pixels"):
        out = segment(
            image, unet2d, tmp_path / "o.ome.zarr", outputs=["probabilities"], tile_size=tile
        )
    whole = whole_image_probabilities(unet2d, image.read()[0, 0, :, 0].astype(np.float32))
    np.testing.assert_array_equal(read_output(out, "probabilities"), whole)
    with warnings.catch_warnings():  # the default tile, and one that reads little more
        warnings.simplefilter("error")
        for size, name in ((None, "d"), (8 * halo, "l")):
            segment(
                image,
                unet2d,
                tmp_path / f"{name}.ome.zarr",
                outputs=["probabilities"],
                tile_size=size,
            )


def test_a_fixed_input_keeping_a_small_core_is_warned_of(tmp_path):
    """A legacy copy of the nuclei model (256² input, 32² cores) ran 40× slower, silently."""
    image = random_image((1, 1, 1, 1, 130, 150), seed=5)
    small = unet_double(depth=2, tile_shape=(64, 64))  # halo 24: 16² cores, 16× the work
    with pytest.warns(UserWarning, match=r"fixed input \(64×64\) keeps 16×16 of each tile .* "
                      r"about 16× the model's work"):  # fmt: skip
        segment(image, small, tmp_path / "s.ome.zarr", outputs=["labels"])
    with warnings.catch_warnings():  # 80² cores of 128²: 2.6×, as a dynamic model's tiles
        warnings.simplefilter("error")
        segment(
            image,
            unet_double(depth=2, tile_shape=(128, 128)),
            tmp_path / "l.ome.zarr",
            outputs=["labels"],
        )


def test_fixed_input_model_gets_exact_tile_size(tmp_path):
    fixed = unet_double(depth=2, tile_shape=(64, 64))
    dynamic = unet_double(depth=2)  # same seed: the same weights
    image = random_image((1, 1, 1, 1, 90, 150), seed=5)
    out = segment(image, fixed, tmp_path / "o.ome.zarr", outputs=["probabilities"])
    assert {shape[2:] for shape in fixed.input_shapes} == {(64, 64)}
    whole = whole_image_probabilities(dynamic, image.read()[0, 0, :, 0].astype(np.float32))
    np.testing.assert_array_equal(read_output(out, "probabilities"), whole)


def test_an_image_smaller_than_a_fixed_input_is_padded_with_a_warning(tmp_path):
    fixed = unet_double(depth=2, tile_shape=(96, 96))
    with pytest.warns(UserWarning, match=r"image \(40×150\) is smaller than the model's fixed "
                      r"input \(96×96\): it is padded with zeros"):  # fmt: skip
        segment(random_image((1, 1, 1, 1, 40, 150)), fixed, tmp_path / "o.ome.zarr")
    with warnings.catch_warnings():  # at least the fixed size: nothing to say
        warnings.simplefilter("error")
        segment(random_image((1, 1, 1, 1, 96, 150)), fixed, tmp_path / "p.ome.zarr")


def test_global_normalisation_feeds_every_tile_the_same_values(tmp_path):
    model = unet_double(depth=1)
    image = random_image((1, 1, 1, 1, 70, 66), seed=6)
    out = segment(
        image,
        model,
        tmp_path / "o.ome.zarr",
        outputs=["probabilities"],
        tile_size=16,
        normalize="percentile:1,99.8",
    )
    raw = image.read()[0, 0, :, 0].astype(np.float32)
    low, high = np.percentile(raw, [1, 99.8])
    normalised = (raw - np.float32(low)) * np.float32(1.0 / (high - low))
    whole = whole_image_probabilities(model, normalised)
    np.testing.assert_allclose(read_output(out, "probabilities"), whole, rtol=0, atol=1e-6)


def test_min_confidence_mask_and_uint8_probabilities(unet2d, tmp_path):
    image = random_image((1, 1, 2, 1, 50, 60), seed=7)
    out = segment(
        image,
        unet2d,
        tmp_path / "o.ome.zarr",
        outputs=["labels", "probabilities"],
        probability_dtype="uint8",
        min_confidence=0.6,
        extract_class="class2",
        tile_size=32,
    )
    whole = whole_image_probabilities(unet2d, image.read()[0, 0, :, 0].astype(np.float32))
    expected = whole.argmax(axis=0) + 1
    expected[whole.max(axis=0) < 0.6] = 0
    assert 0 < (expected == 0).sum() < expected.size
    np.testing.assert_array_equal(read_output(out, "labels"), expected)
    np.testing.assert_array_equal(read_output(out, "mask"), (expected == 3).astype(np.uint8))
    probabilities = read_output(out, "probabilities")
    assert probabilities.dtype == np.uint8
    np.testing.assert_array_equal(probabilities, np.rint(whole * 255).astype(np.uint8))


def test_image_smaller_than_one_tile(unet2d, tmp_path):
    image = random_image((1, 1, 2, 1, 7, 5), seed=8)
    out = segment(image, unet2d, tmp_path / "o.ome.zarr", outputs=["probabilities"])
    whole = whole_image_probabilities(unet2d, image.read()[0, 0, :, 0].astype(np.float32))
    np.testing.assert_array_equal(read_output(out, "probabilities"), whole)


def test_blend_mode_runs_and_is_close_to_exact(unet2d, tmp_path):
    image = random_image((1, 1, 2, 1, 100, 90), seed=9)
    out = segment(
        image,
        unet2d,
        tmp_path / "o.ome.zarr",
        outputs=["probabilities"],
        tile_size=48,
        blend=True,
    )
    probabilities = read_output(out, "probabilities")
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)
    whole = whole_image_probabilities(unet2d, image.read()[0, 0, :, 0].astype(np.float32))
    assert np.mean(probabilities.argmax(0) == whole.argmax(0)) > 0.9


def test_channel_mismatch_names_both(unet2d, tmp_path):
    image = random_image((1, 1, 3, 1, 32, 32), path="three.tif")
    with pytest.raises(IncompatibleModelError, match=r"image has 3 channels; model .* expects 2"):
        segment(image, unet2d, tmp_path / "o.ome.zarr")
    assert not (tmp_path / "o.ome.zarr").exists()


def test_3d_model_on_single_plane_is_refused(unet3d, tmp_path):
    with pytest.raises(IncompatibleModelError, match=r"single Z plane$"):
        segment(random_image((1, 1, 1, 1, 32, 32)), unet3d, tmp_path / "o.ome.zarr")
    with pytest.raises(IncompatibleModelError, match="single Z plane and 4 time points: if "
                       "they are planes, read it with --axes ZYX"):  # fmt: skip
        segment(random_image((1, 4, 1, 1, 32, 32)), unet3d, tmp_path / "o.ome.zarr")


def test_a_channel_mismatch_is_told_before_auto_scales_warnings(tmp_path):
    """An RGB image and nuclei: the channels' refusal came after auto's estimate had warned
    of the colour image's "objects" (a warning about the wrong thing, then the error)."""
    import warnings

    rgb = np.zeros((1, 1, 3, 1, 700, 700), np.uint8)
    rgb[..., 50:650, 50:650] = 200  # an "object" too big for auto's scales: it warns so
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(IncompatibleModelError, match="image has 3 channels"):
            segment(Image(rgb), "nuclei", tmp_path / "o.ome.zarr")
    assert not [w for w in caught if "scale auto" in str(w.message)]


def test_unknown_class_lists_known(unet2d, tmp_path):
    with pytest.raises(InvalidRequestError, match="class0, class1, class2"):
        segment(
            random_image((1, 1, 2, 1, 32, 32)),
            unet2d,
            tmp_path / "o.ome.zarr",
            extract_class="nucleus",
        )


def test_existing_output_needs_overwrite_and_partial_needs_resume(unet2d, tmp_path):
    image = random_image((1, 1, 2, 1, 32, 32))
    out = tmp_path / "o.ome.zarr"
    segment(image, unet2d, out)
    with pytest.raises(InvalidRequestError, match="overwrite"):
        segment(image, unet2d, out)
    segment(image, unet2d, out, overwrite=True)
    os.replace(out, partial_path(out))  # what an interrupted run leaves
    with pytest.raises(IncompleteOutputError, match="resume"):
        segment(image, unet2d, out)
    assert not out.exists()


def test_multi_scene_image_needs_a_scene(unet2d, tmp_path):
    image = Image(np.zeros((2, 1, 2, 1, 16, 16), np.uint8))
    with pytest.raises(InvalidRequestError, match="2 scenes"):
        segment(image, unet2d, tmp_path / "o.ome.zarr")
    out = segment(image, unet2d, tmp_path / "o.ome.zarr", scene=1)
    assert read_output(out, "labels").shape == (16, 16)


def test_overwrite_replaces_only_a_zarr_store_never_an_input(unet2d, tmp_path):
    image_file = write_image_file(
        tmp_path / "img.ome.tif", np.random.default_rng(0).integers(0, 9, (2, 16, 16), np.uint16)
    )
    before = image_file.read_bytes()
    with pytest.raises(InvalidRequestError, match="holds the input"):
        segment(image_file, unet2d, image_file, overwrite=True)
    assert image_file.read_bytes() == before
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidRequestError, match="not a zarr store"):
        segment(image_file, unet2d, folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me"
    out = segment(image_file, unet2d, tmp_path / "o.ome.zarr")
    with pytest.raises(InvalidRequestError, match="holds the input"):
        segment(out / "labels", unet2d, out, overwrite=True)
    assert segment(image_file, unet2d, out, overwrite=True) == out


def test_existing_ome_tiff_is_refused_before_the_run(unet2d, tmp_path):
    out = tmp_path / "o.ome.zarr"
    (tmp_path / "o.labels.ome.tiff").write_bytes(b"")
    with pytest.raises(InvalidRequestError, match=r"o\.labels\.ome\.tiff"):
        segment(random_image((1, 1, 2, 1, 16, 16)), unet2d, out, ome_tiff=True)
    assert not out.exists() and not partial_path(out).exists()


def test_complex_pixels_are_an_image_error(unet2d, tmp_path):
    image = Image(np.ones((1, 1, 2, 1, 16, 16), np.complex64))
    with pytest.raises(InvalidImageError, match="complex64"):
        segment(image, unet2d, tmp_path / "o.ome.zarr")
