"""Pixel classifier: accuracy from sparse labels, Model protocol, exact tiling, label checks."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml.pixel._classifier as classifier_module
import scopeml.pixel._sources as sources_module
from scopeml.errors import (
    IncompatibleModelError,
    InvalidImageError,
    InvalidLabelsError,
    InvalidRequestError,
)
from scopeml.io import Image
from scopeml.model.spec import Model
from scopeml.pixel import PixelClassifier, train_classifier
from scopeml.synthetic import synthetic_nuclei, synthetic_textures

from .conftest import sparse_labels


def _f1(pred: np.ndarray, truth: np.ndarray, cls: int) -> float:
    tp = np.sum((pred == cls) & (truth == cls))
    return 2 * tp / (np.sum(pred == cls) + np.sum(truth == cls))


def test_nuclei_from_one_percent_of_pixels() -> None:
    image, instances = synthetic_nuclei((192, 192), seed=0)
    truth = (instances > 0) + 1
    labels = sparse_labels(truth, 0.01, seed=10)
    assert (labels > 0).mean() <= 0.011
    clf = train_classifier(image, labels, n_estimators=30, n_jobs=1, seed=0)
    pred = clf.predict_labels(image)
    # Measured on seeds 0–2: accuracy 0.982–0.987, nucleus F1 0.962–0.968. The bars leave ~3
    # points of margin for sklearn version drift; a broken feature or class mapping falls far
    # below (predicting all background gives accuracy ~0.8 and F1 0).
    assert (pred == truth).mean() > 0.95
    assert _f1(pred, truth, 2) > 0.92


def test_textures_need_the_filter_bank() -> None:
    image, truth = synthetic_textures((192, 192), seed=0)
    labels = sparse_labels(truth, 0.01, seed=10)
    clf = train_classifier(image, labels, n_estimators=30, n_jobs=1, seed=0)
    accuracy = (clf.predict_labels(image) == truth).mean()
    # Measured on seeds 0–2: 0.85–0.88 with basic25. Intensity alone (below) cannot tell the
    # textures apart, since all three have the same mean and spread.
    assert accuracy > 0.78
    smooth_only = train_classifier(
        image, labels, features="gaussian_smoothing:0.7", n_estimators=30, n_jobs=1, seed=0
    )
    assert (smooth_only.predict_labels(image) == truth).mean() < accuracy - 0.2


def test_model_protocol_and_output_convention(small_classifier: PixelClassifier) -> None:
    clf = small_classifier
    assert isinstance(clf, Model)
    spec = clf.spec
    assert spec.classes == ("background", "nucleus")
    assert spec.in_channels == 1 and spec.spatial_dims == 2
    assert spec.halo == (clf.features.halo,) * 2 == (6, 6)
    assert len(clf.feature_names) == clf.forest.n_features == 6
    batch = np.random.default_rng(0).random((2, 1, 20, 30), dtype=np.float32) * 30000
    proba = clf.predict(batch)
    assert proba.shape == (2, 2, 20, 30) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    # channel k is label value k + 1
    labels = clf.predict_labels(batch[0])
    np.testing.assert_array_equal(labels, np.argmax(proba[0], axis=0) + 1)


def test_predict_refuses_wrong_channels(small_classifier: PixelClassifier) -> None:
    with pytest.raises(IncompatibleModelError, match="expects N×1×Y×X"):
        small_classifier.predict(np.zeros((1, 2, 16, 16), np.float32))


def test_tiles_with_halo_equal_whole_image(
    small_classifier: PixelClassifier, nuclei: tuple[np.ndarray, np.ndarray]
) -> None:
    image = nuclei[0].astype(np.float32)
    whole = small_classifier.predict(image[None])
    halo, step = small_classifier.spec.halo[0], 25
    tiled = np.full_like(whole, np.nan)
    for y in range(0, image.shape[1], step):
        for x in range(0, image.shape[2], step):
            y0, x0 = max(y - halo, 0), max(x - halo, 0)
            tile = image[:, y0 : y + step + halo, x0 : x + step + halo]
            out = small_classifier.predict(tile[None])
            core = out[:, :, y - y0 : y - y0 + step, x - x0 : x - x0 + step]
            tiled[:, :, y : y + step, x : x + step] = core
    np.testing.assert_array_equal(tiled, whole)


def test_internal_blocks_and_threads_do_not_change_results(
    small_classifier: PixelClassifier, nuclei: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    batch = nuclei[0][None].astype(np.float32)
    whole = small_classifier.predict(batch)
    monkeypatch.setitem(classifier_module.BLOCK, 2, 16)
    monkeypatch.setattr(small_classifier, "n_jobs", 3)
    np.testing.assert_array_equal(small_classifier.predict(batch), whole)


def test_labels_of_a_lazy_image_are_read_block_by_block(
    small_classifier: PixelClassifier, nuclei: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    image = nuclei[0]
    expected = small_classifier.predict_labels(image)
    monkeypatch.setitem(classifier_module.BLOCK, 2, 32)
    pixels = _Recorder(image[None, None, :, None])
    np.testing.assert_array_equal(small_classifier.predict_labels(Image(pixels)), expected)
    halo = small_classifier.features.halo
    assert len(pixels.reads) == 3 * 4 and all(max(r[-2:]) <= 32 + 2 * halo for r in pixels.reads)


def test_training_does_not_depend_on_blocks_or_threads(
    nuclei: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    # samples are gathered in raster order, whatever blocks computed them
    image, truth = nuclei
    labels = sparse_labels(truth, 0.05, seed=3)

    def train(n_jobs: int) -> dict[str, np.ndarray]:
        clf = train_classifier(image, labels, n_estimators=4, n_jobs=n_jobs, seed=0)
        return clf.forest.arrays()

    first = train(1)
    monkeypatch.setitem(classifier_module.BLOCK, 2, 24)
    again = train(2)
    for name, array in first.items():
        np.testing.assert_array_equal(again[name], array, err_msg=name)


def test_through_the_tiling_engine(
    small_classifier: PixelClassifier, nuclei: tuple[np.ndarray, np.ndarray], tmp_path
) -> None:
    api = pytest.importorskip("scopeml.api")
    from scopeml.io import open_image

    image = nuclei[0]
    whole = small_classifier.predict(image[None].astype(np.float32))[0]
    out = api.segment(
        Image(image[None, None, :, None]),
        small_classifier,
        tmp_path / "out.ome.zarr",
        outputs=("labels", "probabilities"),
        tile_size=32,
    )
    proba = open_image(out / "probabilities").read()[0, 0, :, 0]
    np.testing.assert_array_equal(proba, whole)
    labels = open_image(out / "labels").read()[0, 0, 0, 0]
    np.testing.assert_array_equal(labels, np.argmax(whole, axis=0) + 1)  # = training labels


def test_predict_index_is_the_argmax_of_predict(
    small_classifier: PixelClassifier, nuclei: tuple[np.ndarray, np.ndarray]
) -> None:
    image = nuclei[0].astype(np.float32)
    batch = np.stack([image, image[:, ::-1]])
    index = small_classifier.predict_index(batch)
    np.testing.assert_array_equal(index, small_classifier.predict(batch).argmax(axis=1))
    assert small_classifier.predict_index(batch[:0]).shape == (0, *image.shape[1:])


def test_the_engine_writes_labels_and_masks_from_class_indices(
    small_classifier: PixelClassifier, nuclei: tuple[np.ndarray, np.ndarray], tmp_path, monkeypatch
) -> None:
    # labels and masks alone skip the probabilities (predict_index); they equal the labels of
    # a run that writes probabilities too
    api = pytest.importorskip("scopeml.api")
    from scopeml.io import open_image

    image = Image(nuclei[0][None, None, :, None])
    full = api.segment(
        image, small_classifier, tmp_path / "full.ome.zarr",
        outputs=("labels", "probabilities"), tile_size=32,
    )  # fmt: skip

    def no_probabilities(batch: np.ndarray) -> np.ndarray:
        raise AssertionError("labels-only run asked for probabilities")

    monkeypatch.setattr(small_classifier, "predict", no_probabilities)
    fast = api.segment(
        image, small_classifier, tmp_path / "fast.ome.zarr",
        outputs=("labels", "mask"), extract_class="nucleus", tile_size=32,
    )  # fmt: skip
    expected = open_image(full / "labels").read()
    np.testing.assert_array_equal(open_image(fast / "labels").read(), expected)
    np.testing.assert_array_equal(open_image(fast / "mask").read(), (expected == 2) * 1)


def test_several_images_and_an_image_object() -> None:
    pairs = [synthetic_nuclei((64, 64), density=0.003, seed=s) for s in (1, 2)]
    images = [p[0] for p in pairs]
    labels = [sparse_labels((p[1] > 0) + 1, 0.05, seed=s) for s, p in enumerate(pairs)]
    fs = "gaussian_smoothing:1;laplacian_of_gaussian:1.6"
    both = train_classifier(images, labels, features=fs, n_estimators=5, n_jobs=1)
    assert both.info["n_samples"] == sum(int((lab > 0).sum()) for lab in labels)
    one = train_classifier(
        Image(images[0][None, None, :, None]),
        labels[0].tolist(),  # nested lists are arrays too
        features=fs,
        n_estimators=5,
        n_jobs=1,
    )
    assert one.info["n_samples"] == int((labels[0] > 0).sum())
    assert one.spec.spatial_dims == 2


class _Recorder:
    """A 6-D array that records the shape of every region read from it."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.reads: list[tuple[int, ...]] = []

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        self.reads.append(self.array[key].shape)
        return self.array[key]


def test_training_reads_images_block_by_block(
    nuclei: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    # a lazy label image is read in regions of a few blocks, the image in blocks (plus halo)
    # and only where there are labels, neither whole; the forest is the one trained in memory
    monkeypatch.setitem(classifier_module.BLOCK, 2, 32)
    monkeypatch.setattr(sources_module, "SCAN_PIXELS", 64 * 64)  # regions of 2×2 blocks
    image, truth = nuclei
    labels = sparse_labels(truth, 0.05, seed=2)
    labels[:, 40:] = 0  # labels only in the first blocks of each row
    fs = "gaussian_smoothing:1;hessian_of_gaussian_eigenvalues:1.6"
    pixels = _Recorder(image[None, None, :, None])
    marks = _Recorder(labels[None, None, None, None])
    lazy = train_classifier(Image(pixels), Image(marks), features=fs, n_estimators=4, n_jobs=2)
    eager = train_classifier(image, labels, features=fs, n_estimators=4, n_jobs=2)
    for name, array in eager.forest.arrays().items():
        np.testing.assert_array_equal(lazy.forest.arrays()[name], array, err_msg=name)
    halo = lazy.features.halo
    assert all(max(r[-2:]) <= 32 + 2 * halo for r in pixels.reads)
    # three block rows, two block columns (0–31, 32–63) hold labels: six image reads with the
    # halo for the features, then the six cores again for the recorded intensity range
    features, cores = pixels.reads[:6], pixels.reads[6:]
    assert len(features) == 3 * 2 and any(max(r[-2:]) > 32 for r in features)
    assert len(cores) == 3 * 2 and all(max(r[-2:]) <= 32 for r in cores)
    # the scan reads label regions starting every 64 pixels (rows 0, 64 × columns 0, 64),
    # then each labelled block's core is read again beside its image block
    scan, again = marks.reads[:4], marks.reads[4:]
    assert sorted(r[-2:] for r in scan) == [(32, 48), (32, 64), (64, 48), (64, 64)]
    assert len(again) == 6 and all(max(r[-2:]) <= 32 for r in again)


def test_labels_from_an_image_object_are_checked_and_named() -> None:
    image = np.random.default_rng(0).random((1, 12, 12))
    stack = Image(np.ones((1, 1, 2, 1, 12, 12), np.uint8), path="marks.tif")
    with pytest.raises(InvalidLabelsError, match=r"marks.tif: labels have 2 channels"):
        train_classifier(image, stack, features="gaussian_smoothing:1")
    scenes = Image(np.zeros((2, 1, 1, 1, 12, 12)), path="two.czi")
    with pytest.raises(InvalidImageError, match=r"two.czi: image has 2 scenes .* --scene N"):
        train_classifier(scenes, np.ones((12, 12), int), features="gaussian_smoothing:1")
    negative = Image(np.full((1, 1, 1, 1, 12, 12), -1, np.int8), path="marks.tif")
    with pytest.raises(InvalidLabelsError, match=r"marks.tif: labels contain -1"):
        train_classifier(image, negative, features="gaussian_smoothing:1")


def test_three_dimensional_training_and_prediction() -> None:
    image, instances = synthetic_nuclei((16, 40, 40), density=0.0006, radius=(4, 6), seed=3)
    truth = (instances > 0) + 1
    clf = train_classifier(
        image, sparse_labels(truth, 0.05, seed=3), features="basic25", n_estimators=10, n_jobs=1
    )
    assert clf.spec.spatial_dims == 3 and clf.forest.n_features == 30
    proba = clf.predict(image[None].astype(np.float32))
    assert proba.shape == (1, 2, 16, 40, 40)
    assert (np.argmax(proba[0], axis=0) + 1 == truth).mean() > 0.9


def test_three_dimensional_training_from_image_objects(monkeypatch) -> None:
    # Z×Y×X blocks read from 6-D images give the forest trained on the arrays
    monkeypatch.setitem(classifier_module.BLOCK, 3, 12)
    image, instances = synthetic_nuclei((16, 40, 40), density=0.0006, radius=(4, 6), seed=5)
    labels = sparse_labels((instances > 0) + 1, 0.05, seed=5)
    fs = "gaussian_smoothing:1;hessian_of_gaussian_eigenvalues:1"
    eager = train_classifier(image, labels, features=fs, n_estimators=4, n_jobs=2)
    pixels = _Recorder(image[None, None])
    lazy = train_classifier(
        Image(pixels), Image(labels[None, None, None]), features=fs, n_estimators=4, n_jobs=2
    )
    assert lazy.spec.spatial_dims == 3
    assert max(max(r[-3:]) for r in pixels.reads) <= 12 + 2 * lazy.features.halo
    for name, array in eager.forest.arrays().items():
        np.testing.assert_array_equal(lazy.forest.arrays()[name], array, err_msg=name)


@pytest.mark.parametrize(
    ("labels", "classes", "match"),
    [
        (np.ones((10, 12), int), None, "shape"),
        (np.zeros((12, 12), int), None, "no pixel is labelled"),
        (np.full((12, 12), 3), ["a", "b"], "2 class names were given"),
        (np.full((12, 12), -1), None, "≥ 0"),
        (np.full((12, 12), 1.5), None, "whole numbers"),
        (np.ones((12, 12), int), None, "at least two classes"),
        (np.array([[1, 3] * 6] * 12), None, r"values 1, 3, none for 2 "),
        (np.full((12, 12), "a"), None, "dtype"),
    ],
)
def test_malformed_labels(labels: np.ndarray, classes: list[str] | None, match: str) -> None:
    image = np.random.default_rng(0).random((1, 12, 12))
    with pytest.raises(InvalidLabelsError, match=match):
        train_classifier(image, labels, classes=classes, features="gaussian_smoothing:1")


def test_bad_options() -> None:
    image = np.random.default_rng(0).random((1, 12, 12))
    labels = np.tile([1, 2], (12, 6))
    with pytest.raises(InvalidRequestError, match="#rrggbb"):
        train_classifier(image, labels, colors=["red"], features="gaussian_smoothing:1")
    with pytest.raises(InvalidLabelsError, match="2 images need as many"):
        train_classifier([image, image], labels)
