"""Dense CRF: improves boundaries of a noisy probability map; tiles with the halo are exact."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.post import crf_halo, dense_crf, dense_crf_probabilities
from scopeml.synthetic import synthetic_nuclei


def _noisy_problem(shape=(192, 192), seed=2):
    """Nuclei image + a blurry, noisy 'classifier output' for the nucleus class."""
    image, truth = synthetic_nuclei(shape, density=0.002, seed=seed)
    rng = np.random.default_rng(seed)
    soft = ndi.gaussian_filter((truth > 0).astype(float), 3) + rng.normal(0, 0.25, truth.shape)
    nucleus = np.clip(soft, 0.01, 0.99)
    probabilities = np.stack([1 - nucleus, nucleus]).astype(np.float32)
    return image[0].astype(np.float32), probabilities, truth > 0


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def _boundary_f1(pred, truth, tolerance=1):
    edge_p = pred ^ ndi.binary_erosion(pred)
    edge_t = truth ^ ndi.binary_erosion(truth)
    precision = (ndi.distance_transform_edt(~edge_t)[edge_p] <= tolerance).mean()
    recall = (ndi.distance_transform_edt(~edge_p)[edge_t] <= tolerance).mean()
    return 2 * precision * recall / (precision + recall)


def test_crf_improves_boundary_accuracy():
    image, probabilities, truth = _noisy_problem()
    before = probabilities.argmax(0) == 1
    sigma = 0.05 * float(np.ptp(image))  # from the whole image, as in global normalisation
    after = dense_crf(probabilities, image, intensity_sigma=sigma) == 2
    iou_before, iou_after = _iou(before, truth), _iou(after, truth)
    f1_before, f1_after = _boundary_f1(before, truth), _boundary_f1(after, truth)
    # measured on this seed: IoU 0.76 → 0.95, boundary F1 0.60 → 0.95; demand clear gains
    assert iou_after > iou_before + 0.1
    assert f1_after > f1_before + 0.2
    assert iou_after > 0.9


def test_tiles_with_the_halo_equal_the_whole_image():
    image, probabilities, _ = _noisy_problem((150, 170), seed=5)
    options = dict(
        intensity_sigma=0.05 * float(np.ptp(image)),
        bilateral_sigma=4.0,
        spatial_sigma=1.0,
        iterations=2,
    )
    halo = crf_halo(spatial_sigma=1.0, bilateral_sigma=4.0, iterations=2)
    whole = dense_crf_probabilities(probabilities, image, **options)
    tiled = np.zeros_like(whole)
    tile = 48
    for y0 in range(0, 150, tile):
        for x0 in range(0, 170, tile):
            ys, xs = max(0, y0 - halo), max(0, x0 - halo)
            ye, xe = min(150, y0 + tile + halo), min(170, x0 + tile + halo)
            q = dense_crf_probabilities(
                probabilities[:, ys:ye, xs:xe], image[ys:ye, xs:xe], origin=(ys, xs), **options
            )
            tiled[:, y0 : y0 + tile, x0 : x0 + tile] = q[
                :, y0 - ys : y0 - ys + tile, x0 - xs : x0 - xs + tile
            ]
    np.testing.assert_array_equal(tiled, whole)
    # without the origin, grid cells would not line up and tiles would differ
    q = dense_crf_probabilities(probabilities[:, 7:120, 9:130], image[7:120, 9:130], **options)
    assert not np.array_equal(q[:, 60:62, 60:62], whole[:, 67:69, 69:71])


def test_shapes_3d_and_multichannel():
    rng = np.random.default_rng(0)
    prob = rng.dirichlet([1, 1, 1], size=(6, 10, 12)).transpose(3, 0, 1, 2).astype(np.float32)
    image = rng.random((2, 6, 10, 12)).astype(np.float32)
    labels = dense_crf(prob, image, intensity_sigma=0.3, bilateral_sigma=3, iterations=2)
    assert labels.shape == (6, 10, 12) and labels.dtype == np.uint8 and labels.max() <= 3
    q = dense_crf_probabilities(prob, image, intensity_sigma=0.3, iterations=0)
    np.testing.assert_allclose(q, prob / prob.sum(0), atol=1e-5)  # no iterations: the input


def test_bad_requests():
    prob = np.full((2, 8, 8), 0.5, np.float32)
    with pytest.raises(InvalidRequestError, match="intensity_sigma"):
        dense_crf(prob, np.zeros((8, 8)), intensity_sigma=0)
    with pytest.raises(InvalidImageError, match="spatial shape"):
        dense_crf(prob, np.zeros((8, 9)), intensity_sigma=1)
    with pytest.raises(InvalidImageError, match="at most 3"):
        dense_crf(prob, np.zeros((4, 8, 8)), intensity_sigma=1)
    with pytest.raises(InvalidRequestError, match="grid"):
        dense_crf(prob, np.arange(64.0).reshape(8, 8) * 1e6, intensity_sigma=1e-3)
