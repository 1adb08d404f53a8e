"""Global normalisation: exact percentiles for integer images, close ones for floats."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image
from scopeml.tiling import normalize
from scopeml.tiling.normalize import compute_normalization, parse_normalize


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(normalize, "_BLOCK", 64)  # many blocks even on a small image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_integer_percentiles_equal_numpy(dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    data = rng.integers(max(info.min, -3000), min(info.max, 3000), (1, 2, 2, 2, 150, 130))
    data = data.astype(dtype)
    result = compute_normalization(Image(data), "percentile:1,99.8")
    for c in range(2):
        low, high = np.percentile(data[:, :, c], [1, 99.8])
        assert result.offset[c] == pytest.approx(low, abs=1e-9)
        assert result.offset[c] + 1 / result.scale[c] == pytest.approx(high, rel=1e-9)


def test_float_percentiles_within_a_bin():
    data = np.random.default_rng(1).normal(size=(1, 1, 1, 1, 300, 200)).astype(np.float32)
    result = compute_normalization(Image(data), "percentile:2,98")
    low, high = np.percentile(data, [2, 98])
    width = (data.max() - data.min()) / 65535
    assert abs(result.offset[0] - low) <= 2 * width
    assert abs(result.offset[0] + 1 / result.scale[0] - high) <= 2 * width


def test_meanstd_equals_numpy():
    data = np.random.default_rng(2).integers(0, 5000, (1, 1, 3, 1, 100, 90)).astype(np.uint16)
    result = compute_normalization(Image(data), "meanstd")
    for c in range(3):
        assert result.offset[c] == pytest.approx(data[:, :, c].mean())
        assert 1 / result.scale[c] == pytest.approx(data[:, :, c].std())


def test_raw_and_bad_values():
    assert compute_normalization(Image(np.zeros((1,) * 6, np.uint8)), None) is None
    assert parse_normalize("none") == ("none", ())
    for bad in ("percentile:99,1", "percentile:x", "zscore"):
        with pytest.raises(InvalidRequestError, match=r"normali[sz]"):
            parse_normalize(bad)
