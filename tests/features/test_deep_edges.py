"""Deep features at the image's true edges: the network sees the image mirrored there (as the
filter bank's reflect mode does), not zero padding, in the whole image and in every block alike,
so a classifier gets the outer pixels right and tiling stays exact."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.features import compute_features, parse_features
from scopeml.features.deep import TILING_RTOL
from scopeml.pixel import train_classifier
from scopeml.pixel._blocks import iter_blocks
from scopeml.pixel._classifier import _block_features
from scopeml.pixel._sources import ImageSource


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal within TILING_RTOL of each map's largest magnitude."""
    scale = np.abs(expected).reshape(len(expected), -1).max(axis=1)
    atol = TILING_RTOL * np.maximum(scale, 1e-30)[:, None, None]
    bad = np.abs(actual - expected) > atol
    assert not bad.any(), f"{bad.sum()} of {bad.size} features differ, at {np.argwhere(bad)[:3]}"


def _blobs(shape: tuple[int, int], margin: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy flat background with bright round blobs kept ``margin`` px from the edges:
    ``(1×Y×X float32 image, truth 1 = background, 2 = blob)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.ones(shape, np.int32)
    image = 100 + rng.normal(0, 3, shape)
    for _ in range(12):
        cy, cx = (rng.integers(margin + 6, n - margin - 6) for n in shape)
        r = rng.uniform(4, 6)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        image += 200 * np.exp(-d2 / (2 * r**2))
        truth[d2 <= r**2] = 2
    return image[None].astype(np.float32), truth


@pytest.mark.parametrize("spec", ["vgg19-random-256", "vgg19-random-64@1,2"])
def test_a_uniform_image_has_uniform_deep_features_up_to_its_edges(spec):
    """Zero padding at the edge changed a constant image's maps within the receptive field of
    the edge; the mirrored image is constant, so the maps are too."""
    image = np.full((1, 45, 38), 700.0, np.float32)
    feats = parse_features(spec).fit([image + np.arange(2, dtype=np.float32)[:, None, None]])
    feats = feats.compute(image)
    middle = feats[:, 22:23, 19:20]
    _assert_close(feats, np.broadcast_to(middle, feats.shape))


@pytest.mark.parametrize("spec", ["vgg19-random-256+basic25", "vgg19-random-64@1,2"])
def test_whole_image_features_are_those_of_the_image_mirrored_by_the_halo(spec):
    """The definition: deep features of the image = those of its symmetric padding by
    ``halo`` (whose own edges are too far to matter), cropped; the filter bank is unchanged
    (computed on the image as it is, not on the padded one)."""
    image = np.random.default_rng(1).gamma(2.0, 100.0, (1, 70, 61)).astype(np.float32)
    fs = parse_features(spec).fit([image])
    h, deep = fs.halo, fs.n_deep(1)
    whole = fs.compute(image)
    mirrored = np.pad(image, [(0, 0), (h, h), (h, h)], "symmetric")
    _assert_close(whole[:deep], fs.compute(mirrored)[:deep, h:-h, h:-h])
    if fs.filters is not None:
        np.testing.assert_array_equal(whole[deep:], compute_features(image, fs.filters))


@pytest.mark.parametrize("block", [16, 40])
@pytest.mark.parametrize("spec", ["vgg19-random-256", "vgg19-random-64@1,2+gaussian_smoothing:1"])
def test_classifier_blocks_at_the_edges_equal_the_whole_image(spec, block):
    """The classifier's block features (mirrored only where a block reads up to the image's
    edge; a block of 16 < halo reads up to it from its second core too) == whole-image ones."""
    image = np.random.default_rng(2).random((1, 150, 133), dtype=np.float32) * 1000
    fs = parse_features(spec).fit([image])
    whole = fs.compute(image)
    source = ImageSource(image, 2)
    tiled = np.full_like(whole, np.nan)
    reads = list(iter_blocks(image.shape[1:], fs.step * max(1, block // fs.step), fs.halo))
    assert len(reads) > 4
    for read, core in reads:
        assert all(r.start % fs.step == 0 for r in read)
        target = tuple(
            slice(r.start + c.start, r.start + c.stop) for r, c in zip(read, core, strict=True)
        )
        tiled[(slice(None), *target)] = _block_features(source, read, core, fs, None)
    _assert_close(tiled, whole)


def test_a_deep_classifier_predicts_in_blocks_as_on_the_whole_features():
    """Prediction (blocks of 128 with halo, edge blocks mirrored) == the forest on the
    whole-image features, at the edges too."""
    image, truth = _blobs((200, 180), margin=0, seed=3)
    labels = np.where(np.random.default_rng(0).random(truth.shape) < 0.03, truth, 0)
    clf = train_classifier(image, labels, features="vgg19-random-64", n_estimators=6, seed=0)
    feats = clf.features.compute(image)
    expected = clf.forest.predict_proba(feats.reshape(len(feats), -1).T).T
    np.testing.assert_array_equal(clf.predict(image[None])[0], expected.reshape(-1, 200, 180))


def test_a_flat_background_is_classed_alike_up_to_its_edges():
    """The user's symptom: a deep classifier classed the outer rows and columns of flat
    background unlike its interior (zero padding looks like an edge); mirrored, a flat image
    has the same features, so the same probabilities, everywhere."""
    image, truth = _blobs((120, 136), margin=14, seed=6)
    labels = np.where(np.random.default_rng(1).random(truth.shape) < 0.05, truth, 0)
    clf = train_classifier(image, labels, features="vgg19-random-256", n_estimators=20, seed=0)
    flat = np.full((1, 64, 72), 100.0, np.float32)  # the background's level
    background = clf.predict(flat[None])[0, 0]
    assert background.min() > 0.9 and np.ptp(background) < 0.02, np.ptp(background)
    assert (clf.predict_labels(flat) == 1).all()
