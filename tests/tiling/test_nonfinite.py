"""NaN and infinite pixels: unclassified (label 0, other outputs 0), left out of normalisation
statistics, counted in one warning; tiled still equals whole-image."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

from scopeml.io.image import Image
from scopeml.tiling import SegmentOptions, compute_normalization, normalize, segment_image
from scopeml.tiling.outputs import class_labels

OUTPUTS = ("labels", "probabilities", "confidence")


def image_with_holes(seed=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(100, 20, (1, 1, 2, 1, 50, 45)).astype(np.float32)
    bad = np.zeros((50, 45), bool)
    bad[rng.integers(0, 50, 30), rng.integers(0, 45, 30)] = True
    bad[20:23, 30:45] = True  # a run across a tile border
    data[0, 0, 0, 0][bad] = np.nan
    data[0, 0, 1, 0][5, 7] = np.inf
    data[0, 0, 0, 0][40, 2] = -np.inf
    bad[5, 7] = bad[40, 2] = True
    return Image(data), bad


def run(image, model, out, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segment_image(
            image,
            model,
            out,
            SegmentOptions(outputs=OUTPUTS, workers=1, **options),
            progress=False,
        )
    arrays = {name: zarr.open_array(str(out / name / "0"), mode="r")[...] for name in OUTPUTS}
    return arrays, [str(w.message) for w in caught if "NaN" in str(w.message)]


@pytest.mark.parametrize("normalize_with", [None, "percentile:1,99", "meanstd"])
def test_nonfinite_pixels_are_unclassified_and_tiled_equals_whole(unet2d, tmp_path, normalize_with):
    image, bad = image_with_holes()
    tiled, messages = run(
        image, unet2d, tmp_path / "t.ome.zarr", tile_size=16, normalize=normalize_with
    )
    whole, _ = run(image, unet2d, tmp_path / "w.ome.zarr", tile_size=64, normalize=normalize_with)
    for name in OUTPUTS:
        np.testing.assert_array_equal(tiled[name], whole[name])
    assert (
        messages == [messages[0]] and f"{int(bad.sum())} pixels are NaN or infinite" in messages[0]
    )
    assert np.all(tiled["labels"][bad] == 0) and np.all(tiled["labels"][~bad] > 0)
    assert np.all(tiled["confidence"][bad] == 0) and np.all(tiled["probabilities"][:, bad] == 0)
    assert np.all(np.isfinite(tiled["probabilities"]))


def test_nonfinite_pixels_with_min_confidence_and_labels_only(unet2d, tmp_path):
    image, bad = image_with_holes(1)
    got, messages = run(image, unet2d, tmp_path / "o.ome.zarr", tile_size=16, min_confidence=0.0)
    assert np.all(got["labels"][bad] == 0) and len(messages) == 1


def test_an_image_without_nonfinite_pixels_gives_no_warning(unet2d, tmp_path):
    data = np.random.default_rng(2).normal(size=(1, 1, 2, 1, 20, 20)).astype(np.float32)
    _, messages = run(Image(data), unet2d, tmp_path / "o.ome.zarr", tile_size=16)
    assert messages == []


@pytest.mark.parametrize("method", ["percentile:1,99", "meanstd"])
def test_statistics_leave_nonfinite_pixels_out(monkeypatch, method):
    monkeypatch.setattr(normalize, "_BLOCK", 16)
    image, _ = image_with_holes(3)
    got = compute_normalization(image, method)
    clean = image.read()[0, 0].copy()
    for c in range(2):
        values = clean[c, 0][np.isfinite(clean[c, 0])]  # per channel: its own finite pixels
        if method == "meanstd":
            assert got.offset[c] == pytest.approx(values.mean(), rel=1e-6)
            assert 1 / got.scale[c] == pytest.approx(values.std(), rel=1e-6)
        else:
            low, high = np.percentile(values, [1, 99])
            width = (values.max() - values.min()) / 65535
            assert abs(got.offset[c] - low) <= 2 * width
            assert abs(got.offset[c] + 1 / got.scale[c] - high) <= 2 * width


def test_a_channel_of_only_nan_does_not_crash():
    data = np.full((1, 1, 1, 1, 8, 8), np.nan, np.float32)
    for method in ("percentile:1,99", "meanstd"):
        got = compute_normalization(Image(data), method)
        assert np.all(np.isfinite(got.offset)) and np.all(np.isfinite(got.scale))


def test_nan_probabilities_are_unclassified():
    probabilities = np.array([[0.9, np.nan, 0.2], [0.1, 0.5, 0.8]], np.float32)
    assert class_labels(probabilities, min_confidence=0.5).tolist() == [1, 0, 2]


class WithIndex:
    """A model that also answers class indices, so labels-only runs take the index path."""

    def __init__(self, model):
        self.spec, self._model = model.spec, model

    def predict(self, batch):
        return self._model.predict(batch)

    def predict_index(self, batch):
        return self._model.predict(batch).argmax(axis=1).astype(np.uint8)


def test_labels_only_runs_of_index_models_unclassify_nonfinite_pixels(unet2d, tmp_path):
    image, bad = image_with_holes(4)
    options = SegmentOptions(outputs=("labels",), tile_size=16, workers=1)
    with pytest.warns(UserWarning, match=f"{int(bad.sum())} pixels are NaN"):
        out = segment_image(image, WithIndex(unet2d), tmp_path / "i.ome.zarr", options)
    labels = zarr.open_array(str(out / "labels" / "0"), mode="r")[...]
    reference, _ = run(image, unet2d, tmp_path / "p.ome.zarr", tile_size=16)
    np.testing.assert_array_equal(labels, reference["labels"])
    assert np.all(labels[bad] == 0)


def test_one_nonfinite_pixel_is_said_in_the_singular(unet2d, tmp_path):
    data = np.random.default_rng(1).normal(100, 20, (1, 1, 2, 1, 16, 16)).astype(np.float32)
    data[0, 0, 1, 0, 3, 4] = np.inf
    _, messages = run(Image(data), unet2d, tmp_path / "one.ome.zarr")
    assert len(messages) == 1 and "1 pixel is NaN or infinite; it is written" in messages[0]
