"""A numpy movie given to segment / predict_region with ``axes="TYX"`` is read as frames,
each segmented as that frame alone, not refused (the default reads 3-D arrays as C×Y×X)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.errors import InvalidImageError


@pytest.fixture(scope="module")
def frames():
    """Three 96² frames of 6–8 round nuclei on noise."""
    rng = np.random.default_rng(1)
    movie = np.zeros((3, 96, 96), np.uint16)
    for t in range(3):
        for _ in range(6 + t):
            y, x = rng.integers(12, 84, 2)
            yy, xx = np.ogrid[:96, :96]
            movie[t][(yy - y) ** 2 + (xx - x) ** 2 < 64] = 900
    return movie + rng.integers(0, 60, movie.shape).astype(np.uint16)


def test_an_array_movie_is_segmented_frame_by_frame(frames, tmp_path):
    movie = frames
    seg = sm.segment(movie, "nuclei", tmp_path / "m.ome.zarr", axes="TYX")
    assert seg.labels.sizes["T"] == 3 and seg.labels.sizes["C"] == 1
    tifffile.imwrite(tmp_path / "m.tif", movie)
    from_file = sm.segment(tmp_path / "m.tif", "nuclei", tmp_path / "f.ome.zarr", axes="TYX")
    np.testing.assert_array_equal(seg.labels.read(), from_file.labels.read())
    region = sm.predict_region(movie, "nuclei", axes="tyx")
    np.testing.assert_array_equal(region, np.asarray(seg.labels.read())[0, :, 0, 0])


def test_axes_that_do_not_fit_the_array_are_one_line(frames, tmp_path):
    movie = frames
    with pytest.raises(InvalidImageError, match=r"axes 'TZYX' name 4 axes; the image array of "
                       r"shape \(3, 96, 96\) has 3"):  # fmt: skip
        sm.segment(movie, "nuclei", tmp_path / "x.ome.zarr", axes="TZYX")
