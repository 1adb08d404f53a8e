"""Multi-scale filter features for pixel classification.

Every filter of a :class:`FeatureSet` runs on every channel (multi-spectral features, channel
-major). Families: Gaussian smoothing, Laplacian of Gaussian, Gaussian gradient magnitude,
difference of Gaussians, structure-tensor eigenvalues and Hessian-of-Gaussian eigenvalues, at
ilastik's scales (derivatives exact up to ``EXACT_DERIVATIVES_MAX_SIGMA``, differences of the
smoothed image above). A feature set's :attr:`FeatureSet.halo` is what a tile needs so that tiled
features equal whole-image features bit for bit.

Deep features (:mod:`scopeml.features.deep`): a network's layers upsampled to the pixel grid,
named like ``vgg19-256+basic25``; :func:`parse_features` and :func:`compute_features` take
them as they take a filter bank.

Examples
--------
>>> import numpy as np
>>> image = np.zeros((1, 8, 8), np.float32)
>>> compute_features(image, "gaussian_smoothing:1.0").shape
(1, 8, 8)
"""

from scopeml.features._bank import (
    BASIC25,
    BASIC33,
    EXACT_DERIVATIVES_MAX_SIGMA,
    FAMILIES,
    PRESETS,
    SIGMAS,
    FeatureSet,
    filter_radius,
    parse_features,
)
from scopeml.features._filters import compute_features, symmetric_eigenvalues
from scopeml.features.deep import DEEP_PRESETS, DeepFeatures, parse_deep_features

__all__ = [
    "BASIC25",
    "BASIC33",
    "DEEP_PRESETS",
    "EXACT_DERIVATIVES_MAX_SIGMA",
    "FAMILIES",
    "PRESETS",
    "SIGMAS",
    "DeepFeatures",
    "FeatureSet",
    "compute_features",
    "filter_radius",
    "parse_deep_features",
    "parse_features",
    "symmetric_eigenvalues",
]
