"""NaN and infinite pixels in prediction: the tiling engine's rule, in the classifier itself too.

A pixel NaN or infinite in any channel is 0 in every channel for the filters (so its neighbours'
features stay finite) and has no class: label 0, probability 0 for every class. The rule is per
pixel, so tiles, internal blocks and threads give the whole image's result bit for bit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

from scopeml.io.image import Image
from scopeml.pixel import PixelClassifier
from scopeml.pixel import _classifier as classifier_module
from scopeml.pixel._classifier import finite_pixels
from scopeml.tiling import SegmentOptions, segment_image
from scopeml.tiling.kernel import mask_invalid


@pytest.fixture(scope="module")
def holes(nuclei: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The nuclei image (float32) with NaN runs across block and tile borders, scattered NaN
    pixels and ±inf; and the mask of those pixels."""
    image = nuclei[0].astype(np.float32)
    rng = np.random.default_rng(7)
    bad = np.zeros(image.shape[1:], bool)
    bad[rng.integers(0, image.shape[1], 40), rng.integers(0, image.shape[2], 40)] = True
    bad[30:34, 10:70] = True
    bad[60:90, 50:53] = True
    image[0][bad] = np.nan
    image[0, 5, 5], image[0, 80, 100] = np.inf, -np.inf
    bad[5, 5] = bad[80, 100] = True
    return image, bad


def test_nan_pixels_have_no_class_and_their_neighbours_see_zero(
    small_classifier: PixelClassifier, holes: tuple[np.ndarray, np.ndarray]
) -> None:
    image, bad = holes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy "invalid value" escapes
        proba = small_classifier.predict(image[None])[0]
        labels = small_classifier.predict_labels(image)
        index = small_classifier.predict_index(image[None])[0]
    assert np.all(np.isfinite(proba))
    assert np.all(proba[:, bad] == 0) and np.all(labels[bad] == 0)
    np.testing.assert_allclose(proba[:, ~bad].sum(axis=0), 1.0, atol=1e-6)
    np.testing.assert_array_equal(index, proba.argmax(axis=0))
    # elsewhere, near the holes too: the prediction of the image with those pixels at 0
    zeroed = np.where(bad, np.float32(0), image)
    np.testing.assert_array_equal(
        proba[:, ~bad], small_classifier.predict(zeroed[None])[0][:, ~bad]
    )
    np.testing.assert_array_equal(labels[~bad], small_classifier.predict_labels(zeroed)[~bad])
    assert np.all(labels[~bad] > 0)


def test_the_rule_is_the_engine_s(holes: tuple[np.ndarray, np.ndarray]) -> None:
    image = holes[0][0]
    column = np.where(np.arange(image.shape[1]) % 7 == 0, np.nan, 1.0)  # NaN in channel 1 only
    two = np.stack([image, np.broadcast_to(column, image.shape)])
    two = two.astype(np.float32)
    ours, ours_bad = finite_pixels(two)
    theirs, theirs_bad = mask_invalid(two)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours_bad, theirs_bad)
    assert finite_pixels(two.astype(np.float64))[0].dtype == np.float64  # the dtype is kept
    assert finite_pixels(np.ones((1, 3, 3), np.uint16))[1] is None


def test_tiles_blocks_and_threads_with_nan_equal_whole_image(
    small_classifier: PixelClassifier, holes: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    image, _ = holes
    whole = small_classifier.predict(image[None])
    halo, step = small_classifier.spec.halo[0], 25
    tiled = np.full_like(whole, -1)
    for y in range(0, image.shape[1], step):
        for x in range(0, image.shape[2], step):
            y0, x0 = max(y - halo, 0), max(x - halo, 0)
            out = small_classifier.predict(
                image[None, :, y0 : y + step + halo, x0 : x + step + halo]
            )
            core = out[:, :, y - y0 : y - y0 + step, x - x0 : x - x0 + step]
            tiled[:, :, y : y + step, x : x + step] = core
    np.testing.assert_array_equal(tiled, whole)
    labels = small_classifier.predict_labels(image)
    monkeypatch.setitem(classifier_module.BLOCK, 2, 16)
    monkeypatch.setattr(small_classifier, "n_jobs", 3)
    np.testing.assert_array_equal(small_classifier.predict(image[None]), whole)
    np.testing.assert_array_equal(small_classifier.predict_labels(image), labels)


@pytest.mark.parametrize("outputs", [("labels", "probabilities"), ("labels",)])
def test_engine_tiled_with_nan_equals_whole_and_the_classifier(
    small_classifier: PixelClassifier, holes: tuple[np.ndarray, np.ndarray], tmp_path, outputs
) -> None:
    image, bad = holes
    runs = {}
    for tile in (32, 256):
        out = tmp_path / f"t{tile}.ome.zarr"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            segment_image(
                Image(image[None, None, :, None]),
                small_classifier,
                out,
                SegmentOptions(outputs=outputs, tile_size=tile, workers=1),
                progress=False,
            )
        nan = [str(w.message) for w in caught if "NaN" in str(w.message)]
        assert len(nan) == 1 and f"{int(bad.sum())} pixels are NaN or infinite" in nan[0]
        runs[tile] = {
            name: zarr.open_array(str(out / name / "0"), mode="r")[...] for name in outputs
        }
    for name in outputs:
        np.testing.assert_array_equal(runs[32][name], runs[256][name], err_msg=name)
    labels = runs[32]["labels"].reshape(image.shape[1:])
    np.testing.assert_array_equal(labels, small_classifier.predict_labels(image))
    if "probabilities" in outputs:
        proba = runs[32]["probabilities"].reshape(-1, *image.shape[1:])
        np.testing.assert_array_equal(proba, small_classifier.predict(image[None])[0])
