"""Training on a time series: every time point with scribbles counts, features are computed per
time point (never across), and time points without scribbles are never read."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidLabelsError
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.pixel import load_classifier, train_classifier
from scopeml.synthetic import synthetic_nuclei

from .conftest import sparse_labels

FEATURES = "gaussian_smoothing:1,3.5;gaussian_gradient_magnitude:1"
T, SIZE, LAST = 21, 48, 20
SQUARES = [(6, 6), (30, 28)]  # class 3: bright 10×10 plateaus, on frames 10 and 20 only


def series(channels: int = 1):
    """``T×C×Y×X`` float32 frames of nuclei, squares on frames 10 and 20, the truth of frame
    20 (1 background, 2 nucleus, 3 square) and the interior of the squares."""
    frames, truths = [], []
    for t in range(T):
        image, instances = synthetic_nuclei((SIZE, SIZE), density=0.002, seed=t)
        frames.append(np.repeat(image.astype(np.float32), channels, axis=0))
        truths.append((instances > 0).astype(np.uint8) + 1)
    square = np.zeros((SIZE, SIZE), bool)
    for y, x in SQUARES:
        square[y : y + 10, x : x + 10] = True
    for t in (10, LAST):
        frames[t][:, square] = 3 * frames[t].max()
        truths[t][square] = 3
    inside = np.zeros_like(square)
    for y, x in SQUARES:
        inside[y + 3 : y + 7, x + 3 : x + 7] = True
    return np.stack(frames), truths, inside


def scribbles(truths: list[np.ndarray]) -> np.ndarray:
    """``T×Y×X`` labels: background and nuclei on frame 0, squares (and background) on frame 20
    only; class 3 is seen nowhere else."""
    labels = np.zeros((T, SIZE, SIZE), np.uint8)
    labels[0] = sparse_labels(truths[0], 0.08, seed=0)
    last = sparse_labels(truths[LAST], 0.15, seed=1)
    labels[LAST] = np.where(last != 2, last, 0)
    assert 3 not in labels[0] and np.count_nonzero(labels[LAST] == 3) > 20
    return labels


class Recorder:
    """A 6-D array that records the time points read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.times = data, set()
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, key):
        self.times.update(range(*key[1].indices(self.shape[1])))
        return self.data[key]


def test_every_scribbled_time_point_counts_and_no_other_is_read():
    frames, truths, inside = series()
    labels = scribbles(truths)
    pixels = Recorder(frames[None, :, :, None])
    clf = train_classifier(Image(pixels), labels, features=FEATURES, n_estimators=10, n_jobs=1)
    assert pixels.times == {0, LAST}  # frames 1..19 have no scribbles: their pixels are not read
    counts = [int(np.count_nonzero(labels == k)) for k in (1, 2, 3)]
    assert clf.info["samples_per_class"] == counts
    # class 3, scribbled only on frame 20, is found on frame 10, which was not scribbled
    predicted = clf.predict_labels(frames[10])
    assert np.mean(predicted[inside] == 3) > 0.9
    assert np.mean(predicted[truths[10] == 2] == 3) < 0.05
    # features per time point: the same forest as the two frames given as two images
    pairs = train_classifier(
        [frames[0], frames[LAST]],
        [labels[0], labels[LAST]],
        features=FEATURES,
        n_estimators=10,
        n_jobs=1,
    )
    for name, array in pairs.forest.arrays().items():
        np.testing.assert_array_equal(clf.forest.arrays()[name], array, err_msg=name)


def test_a_3d_series_trains_per_time_point():
    rng = np.random.default_rng(0)
    data = rng.normal(100, 10, (1, 3, 2, 6, 20, 20)).astype(np.float32)
    data[0, 2, :, 2:4, 5:10, 5:10] += 500  # a bright cube, on time point 2 only
    labels = np.zeros((3, 6, 20, 20), np.uint8)
    labels[0, :, 15, 12:18] = 1
    labels[2, 3, 6:9, 6:9] = 2
    pixels = Recorder(data)
    clf = train_classifier(Image(pixels), labels, features="gaussian_smoothing:1", n_estimators=4)
    assert clf.spec.spatial_dims == 3 and clf.spec.in_channels == 2
    assert pixels.times == {0, 2} and clf.info["samples_per_class"] == [36, 9]
    assert clf.predict_labels(data[0, 2])[3, 7, 7] == 2


def test_series_labels_must_have_its_time_points():
    frames, truths, _ = series()
    image = Image(frames[None, :, :, None])
    with pytest.raises(InvalidLabelsError, match=r"^labels have shape \(48, 48\); the image has "):
        train_classifier(image, truths[0], features=FEATURES)
    with pytest.raises(InvalidLabelsError, match="no pixel is labelled in any of the 21 time"):
        train_classifier(image, np.zeros((T, SIZE, SIZE), np.uint8), features=FEATURES)


def test_cli_trains_a_tcyx_series_with_napari_s_plain_label_tiff(tmp_path, capsys):
    frames, truths, inside = series(channels=2)
    labels = scribbles(truths)
    image = tmp_path / "movie.tif"
    tifffile.imwrite(image, frames, imagej=True, metadata={"axes": "TCYX"})
    plain = tmp_path / "scribbles.tif"
    tifffile.imwrite(plain, labels)  # no axes: as napari's export writes a T×Y×X layer
    model = tmp_path / "m.czseg"
    args = ["pixel", "train", str(image), str(plain), "-o", str(model), "--features", FEATURES]
    assert main([*args, "--n-estimators", "10", "--jobs", "1"]) == 0
    counts = [int(np.count_nonzero(labels == k)) for k in (1, 2, 3)]
    assert f"(class 1 {counts[0]}, class 2 {counts[1]}, class 3 {counts[2]} labelled" in (
        capsys.readouterr().out
    )
    clf = load_classifier(model)
    assert clf.spec.in_channels == 2 and clf.info["samples_per_class"] == counts
    assert np.mean(clf.predict_labels(frames[10])[inside] == 3) > 0.9
    # labels of one frame for a series: one line naming the labels file
    one = tmp_path / "one.tif"
    tifffile.imwrite(one, labels[LAST])
    assert main(["pixel", "train", str(image), str(one), "-o", str(tmp_path / "x.czseg")]) == 2
    assert capsys.readouterr().err == (
        f"error: {one}: labels have 1 time point; the image has 21: give labels with the image's "
        "time points (0 where a time point is not labelled)\n"
    )
    with open_image(plain) as read:  # read alone, the pages are planes (with a warning)
        assert read.sizes["Z"] == T


def test_the_facade_trains_a_series_with_labels_as_array_or_file(tmp_path):
    sm = pytest.importorskip("scopeml.api")
    frames, truths, inside = series()
    labels = scribbles(truths)
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, frames[:, 0], imagej=True, metadata={"axes": "TYX"})
    marks = tmp_path / "marks.tif"
    tifffile.imwrite(marks, labels, imagej=True, metadata={"axes": "TYX"})
    counts = [int(np.count_nonzero(labels == k)) for k in (1, 2, 3)]
    for given in (labels, marks):  # frames 1..19 without scribbles are skipped, not refused
        clf = sm.train_pixel_classifier(movie, given, features=FEATURES, n_estimators=10)
        assert clf.info["samples_per_class"] == counts
        assert np.mean(clf.predict_labels(frames[10])[inside] == 3) > 0.9


def test_a_feature_cache_keeps_every_time_points_features_apart():
    """Retraining on a series reuses each painted time point's own features (the key names the
    plane), and never one time point's for another's equal-looking block."""
    from scopeml.pixel import FeatureCache

    rng = np.random.default_rng(4)
    movie = rng.random((3, 1, 1, 1, 32, 40)).astype(np.float32)[None, :, 0]  # S T C Z Y X
    labels = np.zeros((3, 32, 40), np.uint8)
    labels[:, 2, :] = 1
    labels[:, 20, 5:30] = 2
    cache = FeatureCache()
    train = dict(classes=["a", "b"], features="gaussian_smoothing:1", n_estimators=3, cache=cache)
    first = sm.train_pixel_classifier(Image(movie), labels, **train)
    assert cache.misses >= 3 and cache.hits == 0  # one plane at least per time point
    again = sm.train_pixel_classifier(Image(movie), labels, **train)
    assert cache.hits == cache.misses  # every time point's features found again
    plane = movie[0, 1, :, 0][None]  # N×C×Y×X
    np.testing.assert_array_equal(first.predict(plane), again.predict(plane))
