"""The facade with images in memory, as a cellpose or scikit-image user calls it: numpy in,
numpy out; an ``Image`` as an array; a dask array read tile by tile, never whole.

Each test is a call from a user's trial that failed before: ``np.asarray(image)`` a 0-d
object array, ``Image(plane)`` refused, ``dask.array.from_array(image.data)`` an
AttributeError, ``predict_region(..., outputs="instances")`` refused, a lazy dask array
loaded whole before the first tile, ``train_pixel_classifier(progress=...)`` a TypeError.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import scopeml as sm
from scopeml.errors import Cancelled, InvalidRequestError
from scopeml.model.spec import ModelSpec
from scopeml.synthetic import synthetic_nuclei
from tests.test_facade import Threshold  # foreground above 5 in the first channel

da = pytest.importorskip("dask.array")


class Cells:
    """Objects where the first channel is above 5 (classes background, cell)."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("background", "cell"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return Threshold().predict(batch)


def _pixels(seed: int = 0, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    """Blobs above 5 on a dark background, as uint16."""
    rng = np.random.default_rng(seed)
    plane = np.zeros(shape, np.uint16)
    for y, x in rng.integers(4, min(shape) - 4, size=(9, 2)):
        plane[y - 2 : y + 3, x - 3 : x + 2] = 9
    return plane


# ---------------------------------------------------------------- Image as an array (#5)


def test_an_image_is_an_array_to_numpy_and_dask():
    plane = _pixels()
    image = sm.Image(plane)  # Y×X, as segment takes it
    assert image.shape == (1, 1, 1, 1, *plane.shape)
    whole = np.asarray(image)  # reads every pixel
    assert whole.shape == image.shape and whole.dtype == plane.dtype
    np.testing.assert_array_equal(whole[0, 0, 0, 0], plane)
    assert np.asarray(image, dtype=np.float32).dtype == np.float32
    lazy = da.from_array(image.data, chunks=(1, 1, 1, 1, 16, 16))
    assert lazy.ndim == 6
    np.testing.assert_array_equal(lazy[0, 0, 0, 0, 5:30, 7:9].compute(), plane[5:30, 7:9])
    channels = sm.Image(np.stack([plane, plane + 1]))  # C×Y×X, as image_of_array reads it
    assert channels.sizes["C"] == 2 and channels.read(C=1)[0, 0, 0, 0, 0, 0] == plane[0, 0] + 1


def test_image_refuses_an_array_it_cannot_read_with_the_layouts_it_can():
    with pytest.raises(sm.ScopeMLError, match=r"has 5 axes; expected Y×X \(one channel\)"):
        sm.Image(np.zeros((2, 2, 2, 4, 4)))


# ---------------------------------------------------------------- in-memory instances (#5)


def test_in_memory_instances_equal_the_segment_store(tmp_path):
    pixels, _ = synthetic_nuclei((72, 80), seed=5)
    got = sm.predict_region(pixels, "nuclei", outputs="instances")
    seg = sm.segment(pixels, "nuclei", tmp_path / "n.ome.zarr", outputs="instances")
    want = seg.instances.read()[0, 0, 0, 0]
    assert got.shape == pixels.shape[-2:] and got.dtype == want.dtype  # Y×X, one channel
    assert got.max() >= 3  # several nuclei, not an empty image
    np.testing.assert_array_equal(got, want)


def test_in_memory_instances_of_a_time_series_keep_its_time_axis(tmp_path):
    movie = np.stack([_pixels(1), _pixels(2)])[None, :, None, None]  # S T C Z Y X, T = 2
    got = sm.predict_region(movie, Cells(), outputs="instances")
    seg = sm.segment(movie, Cells(), tmp_path / "m.ome.zarr", outputs="instances")
    assert got.shape == (2, 48, 64)  # T×Y×X: the axes of length one dropped
    np.testing.assert_array_equal(got, seg.instances.read()[0, :, 0, 0])
    assert list(tmp_path.iterdir()) == [tmp_path / "m.ome.zarr"]  # no store left behind


def test_in_memory_instances_of_a_region_are_refused():
    with pytest.raises(InvalidRequestError, match="instances are made over the whole image"):
        sm.predict_region(_pixels(), Cells(), {"Y": (0, 10)}, outputs="instances")


# ---------------------------------------------------------------- dask input read lazily (#6)


class _Counted:
    """A numpy array behind a dask graph that counts the chunks read from it."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim
        self.reads = 0
        self._lock = threading.Lock()

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        block = self.array[key]
        if block.size:  # dask probes the dtype with empty slices
            with self._lock:
                self.reads += 1
        return block


def test_a_dask_array_is_read_tile_by_tile_not_whole(tmp_path):
    plane = _pixels(3, (64, 64))
    source = _Counted(plane)
    lazy = da.from_array(source, chunks=(16, 16))  # 16 chunks; one per 16² tile
    seen: list[int] = []

    def first_tile(event: sm.ProgressEvent) -> None:
        if event.stage == "segment" and event.done >= 1:
            seen.append(source.reads)
            raise Cancelled("enough")

    with pytest.raises(Cancelled):
        sm.segment(
            lazy, Threshold(), tmp_path / "a.ome.zarr", tile_size=16, workers=1, progress=first_tile
        )
    assert seen and seen[0] <= 2  # not all 16 chunks before the first tile was written
    source.reads = 0
    seg = sm.segment(lazy, Threshold(), tmp_path / "b.ome.zarr", tile_size=16, workers=1)
    want = sm.segment(plane, Threshold(), tmp_path / "c.ome.zarr", tile_size=16, workers=1)
    np.testing.assert_array_equal(seg.labels.read(), want.labels.read())
    assert source.reads == 16  # each chunk read once, by its tile


# ---------------------------------------------------------------- training progress (#8)


def test_train_pixel_classifier_reports_progress_and_can_be_cancelled():
    image = _pixels(4)
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[0, :] = 1
    scribbles[image > 5] = 2
    events: list[tuple[str, int, int | None, str]] = []
    clf = sm.train_pixel_classifier(
        image, scribbles, features="gaussian_smoothing:1", n_estimators=3,
        progress=lambda e: events.append((e.stage, e.done, e.total, e.unit)),
    )  # fmt: skip
    # one labelled block, then the trees a round of the threads at a time
    features = [e for e in events if e[0] == "features"]
    assert features == [("features", 0, 1, "block"), ("features", 1, 1, "block")]
    trees = [e for e in events if e[0] == "train"]
    assert trees[0] == ("train", 0, 3, "tree") and trees[-1] == ("train", 3, 3, "tree")
    assert [e[1] for e in trees] == sorted({e[1] for e in trees}) and len(events) == 2 + len(trees)
    assert clf.spec.classes == ("class 1", "class 2")

    def stop(event: sm.ProgressEvent) -> None:
        raise Cancelled("no")

    with pytest.raises(Cancelled):
        sm.train_pixel_classifier(image, scribbles, n_estimators=3, progress=stop)


def test_a_cancel_stops_training_between_two_batches_of_trees():
    image = np.random.default_rng(0).normal(size=(1, 200, 200)).astype(np.float32)
    image[:, 50:150, 50:150] += 3
    scribbles = np.zeros(image.shape[1:], np.uint8)
    scribbles[:20] = 1
    scribbles[80:120, 80:120] = 2
    seen: list[int] = []

    def stop_at_half(event: sm.ProgressEvent) -> None:
        if event.stage == "train":
            seen.append(event.done)
            if event.done >= 50:
                raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        sm.train_pixel_classifier(
            image, scribbles, n_estimators=100, workers=2, progress=stop_at_half,
            features="gaussian_smoothing:1",
        )  # fmt: skip
    assert seen == list(range(0, 51, 2))  # rounds of two trees (a thread each); no more fitted
