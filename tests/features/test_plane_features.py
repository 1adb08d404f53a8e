"""Features of a few planes of a Z stack (``compute_features(..., planes=)``) equal those planes
of the whole stack's features bit for bit, computed from the planes they need only."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidRequestError
from scopeml.features import compute_features
from scopeml.features._bank import parse_features

CUSTOM = "gaussian_smoothing:0.7,5;structure_tensor_eigenvalues:1,3.5;difference_of_gaussians:2"


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    rng = np.random.default_rng(4)
    return (rng.random((2, 40, 33, 70)) * 200).astype(np.float32)


@pytest.mark.parametrize("features", ["basic25", "basic33", CUSTOM])
@pytest.mark.parametrize("planes", [(0, 1), (19, 20), (39, 40), (5, 17), (0, 40)])
def test_planes_equal_whole_stack_planes(stack, features, planes):
    whole = compute_features(stack, features)
    part = compute_features(stack, features, planes=planes)
    assert part.shape == (whole.shape[0], planes[1] - planes[0], *whole.shape[2:])
    np.testing.assert_array_equal(part, whole[:, planes[0] : planes[1]])


def test_plane_of_a_block_cut_at_the_halo_equals_the_whole_stack():
    """The preview's case: a plane from the block of the planes within the halo of it."""
    fs = parse_features("basic25")
    z, h = 25, fs.halo
    stack = np.random.default_rng(5).random((1, 52, 20, 30)).astype(np.float32)
    block = stack[:, z - h : z + h + 1]
    np.testing.assert_array_equal(
        compute_features(block, fs, planes=(h, h + 1)),
        compute_features(stack, fs)[:, z : z + 1],
    )


def test_planes_filter_fewer_voxels_than_the_whole_stack(stack, monkeypatch):
    """Fewer planes are filtered: one plane's features pass well under half the voxels through
    the filters that the whole stack's do (counted, not timed)."""
    from scopeml.features import _filters

    filtered = []
    real = _filters.correlate_separable

    def counting(image, kernels):
        filtered.append(image.size)
        return real(image, kernels)

    monkeypatch.setattr(_filters, "correlate_separable", counting)

    def voxels(**kwargs) -> int:
        filtered.clear()
        compute_features(stack[:1], "basic25", **kwargs)
        return sum(filtered)

    assert voxels(planes=(20, 21)) < 0.5 * voxels()


@pytest.mark.parametrize("planes", [(3, 3), (-1, 2), (30, 41)])
def test_bad_planes_are_refused(stack, planes):
    with pytest.raises(InvalidRequestError, match="planes"):
        compute_features(stack, "basic25", planes=planes)


def test_planes_of_a_2d_image_are_refused():
    with pytest.raises(InvalidRequestError, match="C×Z×Y×X"):
        compute_features(np.zeros((1, 16, 16), np.float32), "basic25", planes=(0, 1))
