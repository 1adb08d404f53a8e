"""Seeded synthetic training data with known ground truth for the pixel-classifier tests."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.pixel import PixelClassifier, train_classifier
from scopeml.synthetic import synthetic_nuclei


def sparse_labels(truth: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Label a random ``fraction`` of pixels with their true class; the rest stay 0."""
    rng = np.random.default_rng(seed)
    labels = np.zeros_like(truth)
    pick = rng.random(truth.shape) < fraction
    labels[pick] = truth[pick]
    return labels


@pytest.fixture(scope="module")
def nuclei() -> tuple[np.ndarray, np.ndarray]:
    """``(1×96×112 uint16 image, truth 1 = background, 2 = nucleus)``."""
    image, instances = synthetic_nuclei((96, 112), density=0.002, seed=4)
    return image, (instances > 0).astype(np.int32) + 1


@pytest.fixture(scope="module")
def small_classifier(nuclei: tuple[np.ndarray, np.ndarray]) -> PixelClassifier:
    image, truth = nuclei
    return train_classifier(
        image,
        sparse_labels(truth, 0.03, seed=1),
        features="gaussian_smoothing:0.7,1.6;hessian_of_gaussian_eigenvalues:1.6;"
        "structure_tensor_eigenvalues:1",
        classes=["background", "nucleus"],
        colors=["#000000", "#ff0000"],
        n_estimators=8,
        n_jobs=1,
        seed=0,
    )
