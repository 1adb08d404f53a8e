"""Rough edges a scripting user met with the flat API on real images (h151): an index outside
an image read as an empty array, a dask array of a store in one block, a NaN warning that
``segment`` gives and ``predict_region`` did not, ``axes=`` missing from one sibling, a missing
store said as "wrote nothing", bad ``Image`` arguments as plain ``ValueError``."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import scopeml as sm
from scopeml.errors import ImageNotFoundError, InvalidRequestError


def test_an_index_outside_an_image_is_refused_and_a_negative_one_counts_back() -> None:
    frames = np.arange(2 * 4 * 5, dtype=np.uint16).reshape(1, 2, 1, 1, 4, 5)
    image = sm.Image(frames)
    np.testing.assert_array_equal(image.read(T=-1), frames[:, 1:2])
    np.testing.assert_array_equal(image.read(y=(1, 3)), frames[..., 1:3, :])  # as region=
    assert image.read(Y=slice(0, 5000)).shape == frames.shape  # a slice clips, as numpy's
    for bad, said in [({"T": 2}, "T=2 is outside the image (T has 2)"),
                      ({"t": -3}, "T=-3 is outside"), ({"Y": [1, 2]}, "got [1, 2]")]:  # fmt: skip
        with pytest.raises(InvalidRequestError, match=re.escape(said)):
            image.read(**bad)


def test_a_stores_dask_array_follows_its_chunks(tmp_path) -> None:
    import dask.array as da

    pixels = (np.random.default_rng(0).random((300, 260)) * 1000).astype(np.uint16)
    seg = sm.segment(pixels, "nuclei", tmp_path / "r.ome.zarr", tile_size=128, scale=1)
    lazy = da.from_array(seg.labels.data, chunks=seg.labels.data.chunks)
    assert lazy.chunksize[-2:] == (128, 128)  # the store's tiles, not one block
    np.testing.assert_array_equal(lazy.compute(), seg.labels.read())


def test_predict_region_warns_of_nan_pixels_as_segment_does(tmp_path) -> None:
    pixels = np.random.default_rng(0).random((96, 96)).astype(np.float32)
    pixels[:10] = np.nan
    pixels[50, 50] = np.inf
    said = []
    for call in (lambda: sm.predict_region(pixels, "nuclei", {"y": (0, 64)}),
                 lambda: sm.segment(pixels, "nuclei", tmp_path / "s.ome.zarr")):  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        said.append([str(w.message) for w in caught if "NaN or infinite" in str(w.message)])
    assert said[0] == said[1] and said[0][0].startswith("961 pixels are NaN or infinite")


def test_train_pixel_classifier_takes_axes_as_its_siblings() -> None:
    frames = np.zeros((3, 32, 32), np.float32)
    frames[:, 8:24, 8:24] = 10
    scribbles = np.zeros((3, 32, 32), np.uint8)
    scribbles[0, 0, :4], scribbles[2, 16, 12:20] = 1, 2
    with pytest.raises(sm.ScopeMLError, match=r"read as time points \(axes='TYX'\)"):
        sm.train_pixel_classifier(frames, scribbles, n_estimators=3)  # read as 3 channels
    clf = sm.train_pixel_classifier(frames, scribbles, axes="TYX", n_estimators=3,
                                    features="gaussian_smoothing:1")  # fmt: skip
    assert clf.spec.in_channels == 1
    assert sm.predict_region(frames[1], clf)[16, 16] == 2
    with pytest.raises(InvalidRequestError, match="is open already"):
        sm.train_pixel_classifier(sm.Image(frames[None, :, None, None]), scribbles, axes="TYX")


def test_a_missing_store_is_said_so_with_its_unfinished_run(tmp_path) -> None:
    with pytest.raises(ImageNotFoundError, match=r"no such store$"):
        sm.Segmentation(tmp_path / "none.ome.zarr").output("labels")
    (tmp_path / "cut.ome.zarr.partial").mkdir()
    with pytest.raises(ImageNotFoundError, match=r"an unfinished run is at .*resume=True"):
        sm.Segmentation(tmp_path / "cut.ome.zarr").output("labels")


@pytest.mark.parametrize(
    ("keywords", "said"),
    [
        ({"channel_names": ["A"]}, "1 channel names given for 3 channels"),
        ({"pixel_sizes": {"X": -0.5}}, "pixel_sizes: X -0.5 is not a size"),
        ({"pixel_sizes": {"y": float("nan")}}, "pixel_sizes: Y nan is not a size"),
    ],
)
def test_bad_image_arguments_are_scopeml_errors(keywords, said) -> None:
    with pytest.raises(InvalidRequestError, match=said):
        sm.Image(np.zeros((3, 8, 8)), **keywords)


def test_predict_region_takes_segments_keywords(tmp_path) -> None:
    """``channels=``, ``scale=``, ``extract_class=`` … as :func:`segment` takes them, each in
    place of its option (was a TypeError: only ``options=SegmentOptions(...)``)."""
    plane = (np.random.default_rng(1).random((96, 112)) * 500).astype(np.uint16)
    plane[20:40, 30:50] += 3000
    alone = sm.predict_region(plane, "nuclei")
    np.testing.assert_array_equal(sm.predict_region(np.stack([plane] * 3), "nuclei",
                                                    channels=[1]), alone)  # fmt: skip
    mask = sm.predict_region(plane, "nuclei", outputs="mask", extract_class="nucleus")
    np.testing.assert_array_equal(mask > 0, alone == 2)
    scaled = sm.predict_region(plane, "nuclei", scale=2.0, tile_size=128)
    seg = sm.segment(plane, "nuclei", tmp_path / "s.ome.zarr", scale=2.0)
    np.testing.assert_array_equal(scaled, seg.labels.read()[0, 0, 0, 0])
    same = sm.SegmentOptions(workers=1, scale=2.0)
    np.testing.assert_array_equal(sm.predict_region(plane, "nuclei", options=same), scaled)
