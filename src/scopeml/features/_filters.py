"""Computing a feature set on an image: separable Gaussian derivatives shared within a scale.

For each channel and scale, every Gaussian derivative a feature needs (smoothed image, gradient,
Hessian) is built from 1-D passes, axis by axis, and the partial results are cached by their
prefix of orders: in 2-D the six derivatives up to order two cost nine 1-D passes instead of
twelve, and the smoothed image comes free. Eigenvalues of the symmetric 2×2/3×3 tensors are in
closed form, vectorised. All filters reflect at the border (``mode="reflect"``), so a tile that
is clipped at the real image edge sees the same pixels as the whole image does.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations_with_replacement

import numpy as np
from scipy import ndimage as ndi

from scopeml.errors import InvalidImageError
from scopeml.features._bank import DOG_RATIO, ST_OUTER_RATIO, FeatureSet, parse_features


def compute_features(image: np.ndarray, features: str | FeatureSet = "basic25") -> np.ndarray:
    """Compute every filter of ``features`` on every channel of ``image``.

    Parameters
    ----------
    image
        ``C×Y×X`` or ``C×Z×Y×X`` array (the channel axis is always present), any real dtype.
    features
        A :class:`FeatureSet`, a preset name (``"basic25"``, ``"basic33"``) or a spec string.

    Returns
    -------
    numpy.ndarray
        ``F×Y×X`` (``F×Z×Y×X``) float32, ``F = C * features.n_per_channel(spatial_dims)``,
        channel-major, in the order of ``features.names(C, spatial_dims)``.

    Examples
    --------
    >>> image = np.random.default_rng(0).random((2, 16, 16))
    >>> compute_features(image, "basic25").shape
    (50, 16, 16)
    """
    fs = parse_features(features)
    image = np.asarray(image)
    if image.ndim not in (3, 4):
        raise InvalidImageError(
            f"features need a C×Y×X or C×Z×Y×X image; got {image.ndim} axes {image.shape}"
        )
    if not (np.issubdtype(image.dtype, np.number) and not np.iscomplexobj(image)):
        raise InvalidImageError(f"features need real pixel values; got dtype {image.dtype}")
    dims = image.ndim - 1
    widths = fs.widths(dims)
    starts = np.concatenate([[0], np.cumsum(widths)]).astype(int)
    per_channel = int(starts[-1])
    out = np.empty((image.shape[0] * per_channel, *image.shape[1:]), np.float32)
    by_sigma: dict[float, list[int]] = defaultdict(list)
    for index, (_, sigma) in enumerate(fs.filters):
        by_sigma[sigma].append(index)
    for c in range(image.shape[0]):
        channel = np.ascontiguousarray(image[c], dtype=np.float32)
        for sigma, indices in by_sigma.items():
            derivatives = _Derivatives(channel, sigma, fs.truncate)
            for index in indices:
                lo = c * per_channel + starts[index]
                target = out[lo : lo + widths[index]]
                _FAMILY_FUNCS[fs.filters[index][0]](derivatives, target)
    return out


class _Derivatives:
    """Gaussian derivatives of one channel at one scale, computed on demand and shared."""

    def __init__(self, image: np.ndarray, sigma: float, truncate: float) -> None:
        self.image = image
        self.sigma = sigma
        self.truncate = truncate
        self._cache: dict[tuple[int, ...], np.ndarray] = {(): image}

    @property
    def ndim(self) -> int:
        return self.image.ndim

    def get(self, orders: tuple[int, ...]) -> np.ndarray:
        """The derivative of the Gaussian-smoothed image with ``orders[a]`` along axis ``a``."""
        if orders not in self._cache:
            prev = self.get(orders[:-1])
            self._cache[orders] = ndi.gaussian_filter1d(
                prev,
                self.sigma,
                axis=len(orders) - 1,
                order=orders[-1],
                output=np.float32,
                mode="reflect",
                truncate=self.truncate,
            )
        return self._cache[orders]

    def smoothed(self) -> np.ndarray:
        return self.get((0,) * self.ndim)

    def gradient(self) -> list[np.ndarray]:
        return [self.get(_unit(self.ndim, a)) for a in range(self.ndim)]

    def hessian(self) -> list[np.ndarray]:
        """Upper-triangle entries ``H[i, j]``, ``i <= j``, row by row."""
        pairs = combinations_with_replacement(range(self.ndim), 2)
        return [self.get(_orders(self.ndim, i, j)) for i, j in pairs]


def _unit(ndim: int, axis: int) -> tuple[int, ...]:
    return tuple(int(a == axis) for a in range(ndim))


def _orders(ndim: int, i: int, j: int) -> tuple[int, ...]:
    return tuple(int(a == i) + int(a == j) for a in range(ndim))


def _gaussian_smoothing(d: _Derivatives, out: np.ndarray) -> None:
    out[0] = d.smoothed()


def _laplacian_of_gaussian(d: _Derivatives, out: np.ndarray) -> None:
    out[0] = d.get(_orders(d.ndim, 0, 0))
    for axis in range(1, d.ndim):
        out[0] += d.get(_orders(d.ndim, axis, axis))


def _gaussian_gradient_magnitude(d: _Derivatives, out: np.ndarray) -> None:
    grad = d.gradient()
    np.square(grad[0], out=out[0])
    for g in grad[1:]:
        out[0] += g * g
    np.sqrt(out[0], out=out[0])


def _difference_of_gaussians(d: _Derivatives, out: np.ndarray) -> None:
    narrow = ndi.gaussian_filter(
        d.image, DOG_RATIO * d.sigma, output=np.float32, mode="reflect", truncate=d.truncate
    )
    np.subtract(d.smoothed(), narrow, out=out[0])


def _structure_tensor_eigenvalues(d: _Derivatives, out: np.ndarray) -> None:
    grad = d.gradient()
    outer = ST_OUTER_RATIO * d.sigma
    tensor = [
        ndi.gaussian_filter(
            grad[i] * grad[j], outer, output=np.float32, mode="reflect", truncate=d.truncate
        )
        for i, j in combinations_with_replacement(range(d.ndim), 2)
    ]
    symmetric_eigenvalues(tensor, out=out)


def _hessian_of_gaussian_eigenvalues(d: _Derivatives, out: np.ndarray) -> None:
    symmetric_eigenvalues(d.hessian(), out=out)


_FAMILY_FUNCS = {
    "gaussian_smoothing": _gaussian_smoothing,
    "laplacian_of_gaussian": _laplacian_of_gaussian,
    "gaussian_gradient_magnitude": _gaussian_gradient_magnitude,
    "difference_of_gaussians": _difference_of_gaussians,
    "structure_tensor_eigenvalues": _structure_tensor_eigenvalues,
    "hessian_of_gaussian_eigenvalues": _hessian_of_gaussian_eigenvalues,
}


def symmetric_eigenvalues(
    entries: list[np.ndarray], *, out: np.ndarray | None = None
) -> np.ndarray:
    """Eigenvalues, largest first, of a field of symmetric 2×2 or 3×3 matrices, in closed form.

    Parameters
    ----------
    entries
        Upper-triangle entries row by row: ``[a00, a01, a11]`` (2×2) or
        ``[a00, a01, a02, a11, a12, a22]`` (3×3), arrays of one shape.
    out
        Optional ``(n, *shape)`` array to write into.

    Returns
    -------
    numpy.ndarray
        ``(n, *shape)``, ``n`` = 2 or 3, sorted descending along the first axis.

    Examples
    --------
    >>> symmetric_eigenvalues([np.array([2.0]), np.array([1.0]), np.array([2.0])]).ravel()
    array([3., 1.], dtype=float32)
    """
    if len(entries) == 3:
        a, b, c = (np.asarray(e, np.float32) for e in entries)
        if out is None:
            out = np.empty((2, *a.shape), np.float32)
        half_diff = np.subtract(a, c, out=out[1])
        half_diff *= 0.5
        root = half_diff * half_diff
        root += b * b
        np.sqrt(root, out=root)
        np.add(a, c, out=out[0])
        out[0] *= 0.5
        np.subtract(out[0], root, out=out[1])
        out[0] += root
        return out
    if len(entries) != 6:
        raise ValueError(f"expected 3 or 6 tensor entries; got {len(entries)}")
    values = _eigenvalues_3x3(*(np.asarray(e, np.float64) for e in entries))
    if out is None:
        out = np.empty((3, *values[0].shape), np.float32)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _eigenvalues_3x3(
    a00: np.ndarray, a01: np.ndarray, a02: np.ndarray, a11: np.ndarray, a12: np.ndarray,
    a22: np.ndarray,
) -> list[np.ndarray]:  # fmt: skip
    """Trigonometric solution (Smith 1961) for real symmetric 3×3 matrices, vectorised."""
    q = (a00 + a11 + a22) / 3.0
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p2 = b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * (a01 * a01 + a02 * a02 + a12 * a12)
    p = np.sqrt(p2 / 6.0)
    safe = np.where(p > 0, p, 1.0)
    det = (
        b00 * (b11 * b22 - a12 * a12)
        - a01 * (a01 * b22 - a12 * a02)
        + a02 * (a01 * a12 - b11 * a02)
    )
    r = np.clip(det / (2.0 * safe**3), -1.0, 1.0)
    phi = np.arccos(r) / 3.0
    largest = q + 2.0 * p * np.cos(phi)
    smallest = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    middle = 3.0 * q - largest - smallest
    return [largest, middle, smallest]
