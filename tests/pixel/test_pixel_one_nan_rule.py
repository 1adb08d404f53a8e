"""One rule for NaN and infinite pixels (:mod:`scopeml.io.nonfinite`): the pixel classifier keeps
the pixels' dtype, the tiling engine hands the model float32; the pixels replaced, the mask and
every other value are the same."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.io.nonfinite import replace_nonfinite
from scopeml.pixel._classifier import finite_pixels
from scopeml.tiling.kernel import mask_invalid


def _block(dtype: type, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``2×Z×Y×X`` pixels with NaN, +inf and -inf scattered over both channels, and the mask of
    the pixels non-finite in either."""
    rng = np.random.default_rng(seed)
    pixels = rng.normal(100, 30, (2, 3, 9, 11)).astype(dtype)
    bad = rng.random(pixels.shape) < 0.1
    pixels[bad] = rng.choice([np.nan, np.inf, -np.inf], int(bad.sum()))
    return pixels, bad.any(axis=0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_both_callers_replace_the_same_pixels(dtype: type) -> None:
    pixels, bad = _block(dtype, seed=3)
    kept, kept_bad = finite_pixels(pixels.copy())
    engine, engine_bad = mask_invalid(pixels.copy())
    np.testing.assert_array_equal(kept_bad, bad)
    np.testing.assert_array_equal(engine_bad, bad)
    assert kept.dtype == dtype and engine.dtype == np.float32
    assert np.all(kept[:, bad] == 0) and np.all(np.isfinite(kept))
    np.testing.assert_array_equal(kept[:, ~bad], pixels[:, ~bad])  # the rest untouched
    np.testing.assert_array_equal(engine, kept.astype(np.float32))


def test_finite_and_integer_pixels_come_back_as_they_are() -> None:
    finite = np.random.default_rng(0).random((2, 5, 6))
    for pixels in (finite, (finite * 1000).astype(np.uint16)):
        for rule in (replace_nonfinite, finite_pixels, mask_invalid):
            out, bad = rule(pixels)
            assert out is pixels and bad is None  # no copy, no cast, no mask


def test_a_pixel_bad_in_one_channel_is_zero_in_all() -> None:
    pixels = np.ones((3, 2, 2), np.float64)
    pixels[1, 0, 1] = -np.inf
    out, bad = replace_nonfinite(pixels)
    assert bad.tolist() == [[False, True], [False, False]]
    assert out[:, 0, 1].tolist() == [0.0, 0.0, 0.0] and out.sum() == 9
    assert pixels[1, 0, 1] == -np.inf  # the input is not written to
