"""Feature bank: counts and names, agreement with reference filters, exact tiling with the halo."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
from scipy import ndimage as ndi

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.features import (
    BASIC25,
    BASIC33,
    EXACT_DERIVATIVES_MAX_SIGMA,
    FAMILIES,
    FeatureSet,
    compute_features,
    parse_features,
    symmetric_eigenvalues,
)

ALL_3D = FeatureSet(tuple((family, 1.6) for family in FAMILIES))
ALL_3D_DIFFERENCES = FeatureSet(tuple((family, 2.5) for family in FAMILIES))


def _image(shape: tuple[int, ...], channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random((channels, *shape)), (0,) + (1.0,) * len(shape)) * 1000


def test_preset_counts_and_names() -> None:
    assert BASIC25.n_per_channel(2) == 25
    assert BASIC33.n_per_channel(2) == 33
    assert BASIC25.n_per_channel(3) == 30
    names = BASIC25.names(n_channels=2, spatial_dims=2)
    assert len(names) == 50 == len(set(names))
    assert "gaussian_gradient_magnitude(sigma=1.6)[C0]" in names
    assert "hessian_of_gaussian_eigenvalues(sigma=3.5)[C1][1]" in names


def test_shape_contract_multichannel_is_channel_major() -> None:
    image = _image((20, 24), channels=2)
    fs = parse_features("gaussian_smoothing:1;structure_tensor_eigenvalues:1.6")
    features = compute_features(image, fs)
    assert features.shape == (6, 20, 24) and features.dtype == np.float32
    alone = compute_features(image[1:], fs)
    np.testing.assert_array_equal(features[3:], alone)


def _reference_derivatives(image: np.ndarray, sigma: float):
    """Reference smoothed image, gradient and Hessian: scipy's Gaussian derivative filters up
    to EXACT_DERIVATIVES_MAX_SIGMA, 3-tap difference correlations of the smoothed image above."""
    image = image.astype(np.float64)
    dims = image.ndim
    smoothed = ndi.gaussian_filter(image, sigma, mode="reflect")
    if sigma <= EXACT_DERIVATIVES_MAX_SIGMA:

        def derivative(*axes: int) -> np.ndarray:
            orders = [sum(a == i for a in axes) for i in range(dims)]
            return ndi.gaussian_filter(image, sigma, order=orders, mode="reflect")

        grad = [derivative(i) for i in range(dims)]
        return smoothed, grad, lambda i, j: derivative(i, j)

    def d(array: np.ndarray, axis: int) -> np.ndarray:
        return ndi.correlate1d(array, [-0.5, 0.0, 0.5], axis=axis, mode="reflect")

    grad = [d(smoothed, i) for i in range(dims)]

    def hessian(i: int, j: int) -> np.ndarray:
        if i == j:
            return ndi.correlate1d(smoothed, [1.0, -2.0, 1.0], axis=i, mode="reflect")
        return d(grad[min(i, j)], max(i, j))

    return smoothed, grad, hessian


@pytest.mark.parametrize("sigma", [1.6, 3.5])  # exact Gaussian derivatives; differences
@pytest.mark.parametrize("shape", [(40, 36), (12, 20, 18)])
def test_filters_match_references(shape: tuple[int, ...], sigma: float) -> None:
    image = _image(shape).astype(np.float32)
    dims = len(shape)
    fs = FeatureSet(
        (
            ("gaussian_smoothing", sigma),
            ("laplacian_of_gaussian", sigma),
            ("gaussian_gradient_magnitude", sigma),
            ("difference_of_gaussians", sigma),
        )
    )
    got = compute_features(image, fs)
    smoothed, grad, hessian = _reference_derivatives(image[0], sigma)
    ref = [
        smoothed,
        sum(hessian(a, a) for a in range(dims)),
        np.sqrt(sum(g**2 for g in grad)),
        smoothed - ndi.gaussian_filter(image[0].astype(np.float64), 0.66 * sigma),
    ]
    # Filters accumulate in float32: a few ulps of the image's values, absolute, which the
    # differences of the smoothed image (above EXACT_DERIVATIVES_MAX_SIGMA) keep as they are.
    float32_error = 16 * np.finfo(np.float32).eps * np.abs(image).max()
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * np.abs(r).max() + float32_error)
    # either way, the features approximate scipy's exact Gaussian derivatives
    exact_log = ndi.gaussian_laplace(image[0].astype(np.float64), sigma)
    assert np.corrcoef(got[1].ravel(), exact_log.ravel())[0, 1] > 0.97


@pytest.mark.parametrize("sigma", [1.6, 3.5])
@pytest.mark.parametrize("shape", [(30, 34), (10, 14, 12)])
def test_eigenvalue_features_match_numpy(shape: tuple[int, ...], sigma: float) -> None:
    image = _image(shape, seed=3).astype(np.float32)
    dims = len(shape)
    got = compute_features(
        image,
        FeatureSet(
            (("hessian_of_gaussian_eigenvalues", sigma), ("structure_tensor_eigenvalues", sigma))
        ),
    )
    _, grad, second = _reference_derivatives(image[0], sigma)
    hessian = np.empty((*shape, dims, dims))
    tensor = np.empty_like(hessian)
    for i in range(dims):
        for j in range(dims):
            hessian[..., i, j] = second(min(i, j), max(i, j))
            tensor[..., i, j] = ndi.gaussian_filter(grad[i] * grad[j], 0.5 * sigma)
    for values, matrix in ((got[:dims], hessian), (got[dims:], tensor)):
        ref = np.moveaxis(np.linalg.eigvalsh(matrix)[..., ::-1], -1, 0)
        np.testing.assert_allclose(values, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def test_closed_form_eigenvalues_on_random_and_degenerate_matrices() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 3, 3))
    a = a + a.transpose(0, 2, 1)
    a[:50] = np.eye(3) * rng.normal(size=(50, 1, 1))  # triple eigenvalue
    a[50:60] = 0.0
    entries = [a[:, i, j] for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))]
    ref = np.linalg.eigvalsh(a)[:, ::-1].T
    np.testing.assert_allclose(symmetric_eigenvalues(entries), ref, atol=1e-5)
    b = a[:, :2, :2]
    ref2 = np.linalg.eigvalsh(b)[:, ::-1].T
    got2 = symmetric_eigenvalues([b[:, 0, 0], b[:, 0, 1], b[:, 1, 1]])
    np.testing.assert_allclose(got2, ref2, atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "features", "block"),
    [
        ((90, 77), BASIC33, 30),
        ((90, 77), BASIC25, 25),
        ((20, 22, 24), ALL_3D, 8),
        ((6, 8, 52), ALL_3D_DIFFERENCES, 8),
    ],
)
def test_tiles_with_halo_equal_whole_image_bit_for_bit(
    shape: tuple[int, ...], features: FeatureSet, block: int
) -> None:
    # Edge tiles are clipped to the image (not padded), so they reflect at the real border
    # exactly as the whole image does; inner borders are pushed out of the core by the halo.
    image = _image(shape, channels=2, seed=5).astype(np.float32)
    whole = compute_features(image, features)
    tiled = np.full_like(whole, np.nan)
    halo = features.halo
    for origin in product(*(range(0, n, block) for n in shape)):
        core = tuple(slice(o, min(o + block, n)) for o, n in zip(origin, shape, strict=True))
        read = tuple(
            slice(max(c.start - halo, 0), min(c.stop + halo, n))
            for c, n in zip(core, shape, strict=True)
        )
        tile = compute_features(image[(slice(None), *read)], features)
        inner = tuple(
            slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, read, strict=True)
        )
        tiled[(slice(None), *core)] = tile[(slice(None), *inner)]
    np.testing.assert_array_equal(tiled, whole)


@pytest.mark.parametrize(
    "spec",
    [
        "structure_tensor_eigenvalues:1.6",
        "structure_tensor_eigenvalues:3.5",
        "hessian_of_gaussian_eigenvalues:1.6",
        "hessian_of_gaussian_eigenvalues:3.5",
    ],
)
def test_a_halo_one_short_breaks_exactness(spec: str) -> None:
    # The halo is tight: the largest filter reaches exactly `halo` pixels.
    image = _image((70, 70), seed=2).astype(np.float32)
    fs = parse_features(spec)
    whole = compute_features(image, fs)
    read, core = (slice(0, 30 + fs.halo - 1),) * 2, (slice(0, 30),) * 2
    short = compute_features(image[(slice(None), *read)], fs)[(slice(None), *core)]
    assert not np.array_equal(short, whole[:, :30, :30])


def test_halo_from_largest_support() -> None:
    assert parse_features("gaussian_smoothing:1.6").halo == 6  # int(4 * 1.6 + 0.5)
    assert parse_features("laplacian_of_gaussian:1.6").halo == 6  # exact derivative filter
    assert parse_features("laplacian_of_gaussian:3.5").halo == 14 + 1  # a difference reaches 1
    assert parse_features("difference_of_gaussians:3.5").halo == 14
    assert parse_features("structure_tensor_eigenvalues:1.6").halo == 6 + 3
    assert parse_features("structure_tensor_eigenvalues:3.5").halo == 14 + 1 + 7
    assert BASIC33.halo == 41  # laplacian_of_gaussian:10


def test_spec_round_trip_and_errors() -> None:
    fs = parse_features("gaussian_smoothing:0.7,1.6 hessian_of_gaussian_eigenvalues:3.5")
    assert FeatureSet.from_dict(fs.to_dict()) == fs
    assert parse_features(BASIC25.to_dict()) == BASIC25
    with pytest.raises(InvalidRequestError, match="unknown feature 'sobel'"):
        parse_features("sobel:1")
    with pytest.raises(InvalidRequestError, match="sigma"):
        parse_features("gaussian_smoothing:0")
    with pytest.raises(InvalidRequestError, match="sigma"):
        parse_features("gaussian_smoothing:nan")
    with pytest.raises(InvalidRequestError, match="expected family:sigma"):
        parse_features("basic99")
    with pytest.raises(InvalidRequestError, match="twice"):
        parse_features("gaussian_smoothing:1,1")
    assert set(FAMILIES) == {f for f, _ in BASIC33.filters}


def test_bad_images_are_refused() -> None:
    with pytest.raises(InvalidImageError, match="C×Y×X"):
        compute_features(np.zeros((8, 8)), BASIC25)
    with pytest.raises(InvalidImageError, match="real pixel values"):
        compute_features(np.zeros((1, 8, 8), complex), BASIC25)
    with pytest.raises(InvalidImageError, match="non-empty"):
        compute_features(np.zeros((1, 0, 8), np.float32), BASIC25)


@pytest.mark.parametrize("width", [1, 2, 63, 64, 65, 130])
def test_row_ends_and_narrow_images_reflect_like_scipy(width: int) -> None:
    # Rows are padded to a multiple of 64 for OpenCV; whatever the width, every pixel (those
    # near the right end, and images narrower than the filter too) must see scipy's border.
    image = _image((9, width), seed=7).astype(np.float32)
    got = compute_features(image, "gaussian_smoothing:1.6,5")
    for sigma, g in zip((1.6, 5.0), got, strict=True):
        ref = ndi.gaussian_filter(image[0].astype(np.float64), sigma, mode="reflect")
        np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
