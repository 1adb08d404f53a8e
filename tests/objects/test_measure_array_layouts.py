"""How ``measure_objects`` reads the layout of arrays. An RGB picture shaped like the labels,
colour last, is read so (its Y×X×3 was taken for Y=1280, X=3 and refused). A 3-D label array
is measured as a Z stack unless ``axes`` says otherwise: the instances of
a time series passed on from ``predict_region(..., axes="TYX")`` (ids numbered on from frame
to frame) were measured as one-plane volumes without a word, and per-frame masks numbered from
1 (cellpose, StarDist) joined across frames; both are warned of, a real Z stack is not."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from skimage.measure import label

import scopeml as sm


def _frames() -> np.ndarray:
    """Four frames of three discs drifting by a pixel a frame (overlapping frame to frame)."""
    yy, xx = np.mgrid[:64, :64]
    frames = np.zeros((4, 64, 64), bool)
    for t in range(4):
        for cy, cx in ((15, 15), (40, 20), (30, 48)):
            frames[t] |= (yy - cy - t) ** 2 + (xx - cx) ** 2 < 36
    return frames


def test_a_movie_numbered_on_from_frame_to_frame_is_warned_of() -> None:
    frames = _frames()
    numbered_on = np.zeros(frames.shape, np.int32)
    for t, frame in enumerate(frames):
        ids = label(frame)
        numbered_on[t] = np.where(ids > 0, ids + 3 * t, 0)  # as scopeml's instances of a movie
    with pytest.warns(UserWarning, match="no id lies on two neighbouring planes"):
        as_z = sm.measure_objects(numbered_on)
    assert set(as_z["t"]) == {0}  # twelve one-plane volumes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_t = sm.measure_objects(numbered_on, axes="TYX")
    assert as_t.groupby("t").size().tolist() == [3, 3, 3, 3]


def test_per_frame_masks_numbered_from_one_are_warned_of() -> None:
    per_frame = np.stack([label(frame) for frame in _frames()]).astype(np.int32)
    per_frame[1::2] = np.where(per_frame[1::2] > 0, 4 - per_frame[1::2], 0)  # order differs
    with pytest.warns(UserWarning, match="recur on neighbouring planes without overlapping"):
        sm.measure_objects(per_frame)


def test_a_z_stack_is_measured_without_a_word() -> None:
    stack = label(_frames()).astype(np.int32)  # each disc one object through the planes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = sm.measure_objects(stack)
    assert len(table) == 3 and (table["bbox-3"] - table["bbox-0"] == 4).all()


def test_a_sparse_ground_truth_stack_is_measured_without_a_word() -> None:
    """Objects annotated on planes 2 and 7 only, one id each: a Z stack, not frames."""
    stack = np.zeros((10, 64, 64), np.int32)
    frames = _frames()
    stack[2], stack[7] = label(frames[0]), label(frames[1]) + 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(sm.measure_objects(stack)) == 6


def test_an_rgb_array_shaped_like_the_labels_is_measured_per_colour() -> None:
    """Y×X×3 was read as Y=1280, X=3 and refused (the labels tell its layout)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (60, 80, 3)).astype(np.uint8)
    objects = label(_frames()[0, :60, :64])
    objects = np.pad(objects, ((0, 0), (0, 16))).astype(np.int32)
    last = sm.measure_objects(objects, rgb)
    first = sm.measure_objects(objects, np.moveaxis(rgb, -1, 0))
    pd.testing.assert_frame_equal(last, first)
    assert {"intensity_mean_C0", "intensity_mean_C2"} <= set(last.columns)


def test_per_frame_masks_read_as_a_stack_are_not_also_called_grey_values() -> None:
    """The frames' objects joined across planes cover the image many times over, which the
    grey-values warning took for an intensity image ("segment it first"): these are masks."""
    rng = np.random.default_rng(0)
    masks = np.zeros((12, 96, 96), np.int32)
    for t in range(12):
        for k in range(1, 31):  # 30 small objects per frame, numbered from 1 in each
            y, x = rng.integers(0, 93, 2)
            masks[t, y : y + 3, x : x + 3] = k
    with pytest.warns(UserWarning) as said:
        sm.measure_objects(masks)
    text = " | ".join(str(w.message) for w in said)
    assert "pass axes='TYX'" in text and "times over" not in text, text
