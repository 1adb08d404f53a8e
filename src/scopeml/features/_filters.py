"""Computing a feature set on an image: Gaussian derivatives, shared within a scale.

Filtering is OpenCV's separable ``sepFilter2D`` in float32 (about six times faster than
``scipy.ndimage`` on our blocks), with scipy's Gaussian (derivative) kernels and its border,
``mode="reflect"`` (b a | a b). For each channel and scale the gradient and Hessian are computed
two ways. Up to :data:`EXACT_DERIVATIVES_MAX_SIGMA` they are exact Gaussian derivative filters
(short kernels, so cheap; in 3-D the pass along Z is shared): differences would blur the finest
textures, which costs accuracy. Above it they are central differences of the smoothed image, as
in scikit-image's ``multiscale_basic_features``: one cheap pass each instead of a long filter
per derivative, and the difference error shrinks as the scale grows. Eigenvalues of the
symmetric 2×2/3×3 tensors are in closed form, vectorised.

Tiles equal the whole image bit for bit: every intermediate image reflects at the real border
(a tile clipped at the image edge sees what the whole image sees), a difference reaches one pixel
beyond the smoothing (:attr:`FeatureSet.halo` counts it), and rows are stored padded so that
OpenCV computes every real pixel with the same code (see :class:`_Rows`).
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from itertools import combinations_with_replacement
from typing import Any

import cv2
import numpy as np

from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.features._bank import (
    DOG_RATIO,
    EXACT_DERIVATIVES_MAX_SIGMA,
    ST_OUTER_RATIO,
    FeatureSet,
    filter_radius,
    parse_features,
)


def compute_features(
    image: np.ndarray,
    features: str | FeatureSet = "basic25",
    *,
    planes: tuple[int, int] | None = None,
) -> np.ndarray:
    """Compute every filter of ``features`` on every channel of ``image``.

    Parameters
    ----------
    image
        ``C×Y×X`` or ``C×Z×Y×X`` array (the channel axis is always present), any real dtype.
    features
        A :class:`FeatureSet`, a preset name (``"basic25"``, ``"basic33"``) or a spec string.
    planes
        ``(lo, hi)``: only planes ``lo:hi`` of a ``C×Z×Y×X`` image, equal bit for bit to those
        planes of the whole result but computed from the planes they need only (a tile's core
        along Z, one plane of a stack), so much cheaper when few are wanted.

    Returns
    -------
    numpy.ndarray
        ``F×Y×X`` (``F×Z×Y×X``, Z ``hi - lo`` with ``planes``) float32,
        ``F = C * features.n_per_channel(spatial_dims)``, channel-major, in the order of
        ``features.names(C, spatial_dims)``.

    Examples
    --------
    >>> image = np.random.default_rng(0).random((2, 16, 16))
    >>> compute_features(image, "basic25").shape
    (50, 16, 16)
    >>> compute_features(np.stack([image] * 3, 1), "basic25", planes=(1, 2)).shape
    (60, 1, 16, 16)
    """
    fs = parse_features(features)
    image = np.asarray(image)
    if planes is not None:
        _check_planes(image, planes)
    # NaN or infinite pixels give NaN or infinite features near them, quietly: the classifier
    # (training and prediction) and the engine replace them by 0 before (tiling.kernel.mask_invalid)
    with np.errstate(invalid="ignore", over="ignore"):
        if planes is None or isinstance(fs, FeatureSet):
            return _compute(image, fs, planes)
        return _compute(image, fs)[:, planes[0] : planes[1]]  # deep features: all, then cut


def _check_planes(image: np.ndarray, planes: tuple[int, int]) -> None:
    lo, hi = planes
    if image.ndim != 4 or not 0 <= lo < hi <= image.shape[1]:
        raise InvalidRequestError(
            f"features of planes {lo}:{hi} need a C×Z×Y×X image with those planes; "
            f"got shape {image.shape}"
        )


def _margin(fs: FeatureSet, sigma: float) -> int:
    """Planes beyond the output that a scale's intermediates need: differences (at most two
    in a row, the mixed second derivative) and the structure tensor's outer smoothing."""
    families = {f for f, s in fs.filters if s == sigma}
    st = "structure_tensor_eigenvalues" in families
    return 2 + (filter_radius(ST_OUTER_RATIO * sigma, fs.truncate) if st else 0)


def _span(planes: tuple[int, int], margin: int, n: int) -> tuple[int, int]:
    """The planes ``planes`` grown by ``margin`` on each side, clipped to ``n``."""
    return max(0, planes[0] - margin), min(n, planes[1] + margin)


def _compute(image: np.ndarray, fs: Any, planes: tuple[int, int] | None = None) -> np.ndarray:
    if not isinstance(fs, FeatureSet):  # deep features (and their filter bank)
        return fs.compute(image)
    if image.ndim not in (3, 4):
        raise InvalidImageError(
            f"features need a C×Y×X or C×Z×Y×X image; got {image.ndim} axes {image.shape}"
        )
    if not (np.issubdtype(image.dtype, np.number) and not np.iscomplexobj(image)):
        raise InvalidImageError(f"features need real pixel values; got dtype {image.dtype}")
    if 0 in image.shape:
        raise InvalidImageError(f"features need a non-empty image; got shape {image.shape}")
    dims = image.ndim - 1
    widths = fs.widths(dims)
    starts = np.concatenate([[0], np.cumsum(widths)]).astype(int)
    per_channel = int(starts[-1])
    n = image.shape[-1]
    reach = max(1, *(filter_radius(sigma, fs.truncate) for _, sigma in fs.filters))
    width = -(-(n + reach) // ROW_MULTIPLE) * ROW_MULTIPLE
    inner = image.shape[1:-1] if planes is None else (planes[1] - planes[0], *image.shape[2:-1])
    out = np.empty((image.shape[0] * per_channel, *inner, width), np.float32)
    by_sigma: dict[float, list[int]] = defaultdict(list)
    for index, (_, sigma) in enumerate(fs.filters):
        by_sigma[sigma].append(index)
    rows = _Rows(n, width)
    for c in range(image.shape[0]):
        channel = rows.extend(image[c])
        for sigma, indices in by_sigma.items():
            span = None if planes is None else _span(planes, _margin(fs, sigma), image.shape[1])
            scale = _Scale(channel, sigma, fs.truncate, rows, span, planes)
            for index in indices:
                lo = c * per_channel + starts[index]
                target = out[lo : lo + widths[index]]
                _FAMILY_FUNCS[fs.filters[index][0]](scale, target)
    return out[..., :n]


#: OpenCV computes the last pixels of a row (past its widest SIMD step) by scalar code that may
#: round differently, so rows are extended to a multiple of this width (see :class:`_Rows`).
ROW_MULTIPLE = 64


class _Rows:
    """Rows of ``n`` real pixels, stored ``width`` long: a multiple of :data:`ROW_MULTIPLE`, so
    every real pixel is filtered by the same code wherever its row ends and tiles equal the
    whole image bit for bit.

    The extra pixels hold the row's reflection (``… b a | a b …``), refreshed by :meth:`reflect`
    before anything reads across the end along rows: a filter along X, or a difference. That is
    the border of scipy's ``mode="reflect"``, applied to every intermediate image. Filters along
    other axes treat columns alike, so they keep the reflection.
    """

    def __init__(self, n: int, width: int) -> None:
        self.n = n
        period = np.arange(n, width) % (2 * n)
        self._mirror = np.where(period < n, period, 2 * n - 1 - period)

    def extend(self, image: np.ndarray) -> np.ndarray:
        """A float32 copy of ``image`` with its rows extended."""
        out = np.empty((*image.shape[:-1], self.n + len(self._mirror)), np.float32)
        out[..., : self.n] = image
        return self.reflect(out)

    def reflect(self, array: np.ndarray) -> np.ndarray:
        """Refresh the extension of ``array`` in place; return it."""
        array[..., self.n :] = array[..., self._mirror]
        return array


class _Scale:
    """One channel at one scale: smoothed image and derivatives, computed on demand, shared."""

    def __init__(
        self,
        image: np.ndarray,
        sigma: float,
        truncate: float,
        rows: _Rows,
        span: tuple[int, int] | None = None,
        planes: tuple[int, int] | None = None,
    ) -> None:
        self.image = image
        #: Planes of ``image`` (Z) that intermediates are computed on; ``None``: all.
        self.span = span
        #: The output planes within the span (a family computes only those).
        self.keep = (
            slice(None)
            if span is None or planes is None
            else slice(planes[0] - span[0], planes[1] - span[0])
        )
        self.sigma = sigma
        self.truncate = truncate
        self.rows = rows
        self.ndim = image.ndim
        self.exact = sigma <= EXACT_DERIVATIVES_MAX_SIGMA
        self._kernels = [gaussian_kernel(sigma, order, truncate) for order in range(3)]
        self._passes: dict[tuple[int, ...], np.ndarray] = {}
        self._gradient: list[np.ndarray] | None = None
        self._second: dict[tuple[int, int], np.ndarray] = {}

    def smooth(self, image: np.ndarray, sigma: float) -> np.ndarray:
        kernel = gaussian_kernel(sigma, 0, self.truncate)
        image = self.rows.reflect(image)
        if self.span is None or image.ndim != 3:
            return correlate_separable(image, [kernel] * image.ndim)
        return correlate_separable(self._along_z(image, kernel), [None, kernel, kernel])

    def _along_z(self, image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        """The pass along Z; of the whole block (not of an array already on the span), only
        the span's planes, from the planes within the kernel's reach of them."""
        if self.span is None or image.shape[0] != self.image.shape[0]:
            return correlate_separable(image, [kernel, None, None])
        (a, b), r = self.span, len(kernel) // 2
        start, stop = max(0, a - r), min(image.shape[0], b + r)
        along = correlate_separable(image[start:stop], [kernel, None, None])
        return along[a - start : b - start]

    def gaussian(self, orders: tuple[int, ...]) -> np.ndarray:
        """The image filtered by the Gaussian derivative of ``orders`` (one per axis)."""
        if orders not in self._passes:
            kernels = [self._kernels[o] for o in orders]
            if self.ndim == 3:  # the pass along Z is shared by all entries of one Z order
                along_z = self._passes.get((orders[0],))
                if along_z is None:
                    along_z = self._along_z(self.image, kernels[0])
                    self._passes[(orders[0],)] = along_z
                self._passes[orders] = correlate_separable(along_z, [None, *kernels[1:]])
            else:
                self._passes[orders] = correlate_separable(self.image, kernels)
        return self._passes[orders]

    def smoothed(self) -> np.ndarray:
        return self.gaussian((0,) * self.ndim)

    def gradient(self) -> list[np.ndarray]:
        if self._gradient is None:
            if self.exact:
                units = [tuple(int(a == i) for a in range(self.ndim)) for i in range(self.ndim)]
                self._gradient = [self.gaussian(u) for u in units]
            else:
                self._gradient = [self._difference(self.smoothed(), a) for a in range(self.ndim)]
        return self._gradient

    def second(self, i: int, j: int) -> np.ndarray:
        """Hessian entry ``H[i, j]``, ``i <= j``."""
        if (i, j) not in self._second:
            if self.exact:
                entry = self.gaussian(tuple(int(a == i) + int(a == j) for a in range(self.ndim)))
            elif i == j:
                entry = self._difference(self.smoothed(), i, second=True)
            else:
                entry = self._difference(self.gradient()[i], j)
            self._second[i, j] = entry
        return self._second[i, j]

    def hessian(self) -> list[np.ndarray]:
        """Upper-triangle entries ``H[i, j]``, ``i <= j``, row by row."""
        pairs = combinations_with_replacement(range(self.ndim), 2)
        return [self.second(i, j) for i, j in pairs]

    def _difference(self, array: np.ndarray, axis: int, second: bool = False) -> np.ndarray:
        if axis == self.ndim - 1:
            self.rows.reflect(array)
        return (second_difference if second else difference)(array, axis)


@lru_cache(maxsize=256)
def gaussian_kernel(sigma: float, order: int, truncate: float) -> np.ndarray:
    """Correlation weights of scipy's ``gaussian_filter1d(sigma, order, truncate)``.

    Examples
    --------
    >>> from scipy.ndimage import gaussian_filter1d
    >>> impulse = np.eye(1, 21, 10)[0]
    >>> weights = gaussian_kernel(1.6, 2, 4.0)
    >>> np.allclose(np.correlate(impulse, weights, "same"),
    ...             gaussian_filter1d(impulse, 1.6, order=2, mode="constant"))
    True
    """
    radius = filter_radius(sigma, truncate)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 * (x / sigma) ** 2)
    phi /= phi.sum()
    polynomial = (np.ones_like(x), -x / sigma**2, x**2 / sigma**4 - 1.0 / sigma**2)[order]
    weights = (polynomial * phi)[::-1].copy()
    weights.flags.writeable = False  # cached: shared by every caller
    return weights


_IDENTITY = np.ones(1)


def correlate_separable(image: np.ndarray, kernels: list[np.ndarray | None]) -> np.ndarray:
    """Correlate a 2-D or 3-D float32 array with one 1-D kernel per axis (``None``: leave
    that axis), reflecting at the border (``b a | a b``), accumulating in float32.

    OpenCV's separable filter, about six times faster than ``scipy.ndimage`` here.

    Examples
    --------
    >>> image = np.array([[0, 0, 0], [0, 4, 0], [0, 0, 0]], np.float32)
    >>> correlate_separable(image, [None, np.array([0.25, 0.5, 0.25])])[1]
    array([1., 2., 1.], dtype=float32)
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim == 2:
        return _filter2d(image, kernels[0], kernels[1])
    out = image
    if kernels[0] is not None:  # along Z: the volume as a Z×(Y·X) plane, filtered down columns
        out = _filter2d(image.reshape(image.shape[0], -1), kernels[0], None).reshape(image.shape)
    if kernels[1] is None and kernels[2] is None:
        return out
    planes = np.empty_like(out)
    for z in range(out.shape[0]):
        _filter2d(out[z], kernels[1], kernels[2], dst=planes[z])
    return planes


def _filter2d(
    image: np.ndarray,
    along_y: np.ndarray | None,
    along_x: np.ndarray | None,
    dst: np.ndarray | None = None,
) -> np.ndarray:
    return cv2.sepFilter2D(
        image,
        cv2.CV_32F,
        _IDENTITY if along_x is None else along_x,
        _IDENTITY if along_y is None else along_y,
        dst=dst,
        borderType=cv2.BORDER_REFLECT,
    )


def difference(array: np.ndarray, axis: int) -> np.ndarray:
    """Central difference ``(a[i+1] - a[i-1]) / 2`` along ``axis``, reflecting at the ends.

    Examples
    --------
    >>> difference(np.array([0.0, 1.0, 4.0, 9.0], np.float32), 0)
    array([0.5, 2. , 4. , 2.5], dtype=float32)
    """
    out = np.empty_like(array)
    n = array.shape[axis]
    if n < 2:
        out[...] = 0.0
        return out
    at = _along(array.ndim, axis)
    np.subtract(array[at(2, n)], array[at(0, n - 2)], out=out[at(1, n - 1)])
    np.subtract(array[at(1, 2)], array[at(0, 1)], out=out[at(0, 1)])
    np.subtract(array[at(n - 1, n)], array[at(n - 2, n - 1)], out=out[at(n - 1, n)])
    out *= 0.5
    return out


def second_difference(array: np.ndarray, axis: int) -> np.ndarray:
    """Second difference ``a[i+1] - 2 a[i] + a[i-1]`` along ``axis``, reflecting at the ends.

    Examples
    --------
    >>> second_difference(np.array([0.0, 1.0, 4.0, 9.0], np.float32), 0)
    array([ 1.,  2.,  2., -5.], dtype=float32)
    """
    out = np.empty_like(array)
    n = array.shape[axis]
    if n < 2:
        out[...] = 0.0
        return out
    at = _along(array.ndim, axis)
    inner = out[at(1, n - 1)]
    np.add(array[at(2, n)], array[at(0, n - 2)], out=inner)
    inner -= array[at(1, n - 1)]
    inner -= array[at(1, n - 1)]
    np.subtract(array[at(1, 2)], array[at(0, 1)], out=out[at(0, 1)])
    np.subtract(array[at(n - 2, n - 1)], array[at(n - 1, n)], out=out[at(n - 1, n)])
    return out


def _along(ndim: int, axis: int):
    def at(start: int, stop: int) -> tuple[slice, ...]:
        return (slice(None),) * axis + (slice(start, stop),) + (slice(None),) * (ndim - axis - 1)

    return at


def _gaussian_smoothing(s: _Scale, out: np.ndarray) -> None:
    out[0] = s.smoothed()[s.keep]


def _laplacian_of_gaussian(s: _Scale, out: np.ndarray) -> None:
    np.add(s.second(0, 0)[s.keep], s.second(1, 1)[s.keep], out=out[0])
    for axis in range(2, s.ndim):
        out[0] += s.second(axis, axis)[s.keep]


def _gaussian_gradient_magnitude(s: _Scale, out: np.ndarray) -> None:
    grad = [g[s.keep] for g in s.gradient()]
    np.multiply(grad[0], grad[0], out=out[0])
    for g in grad[1:]:
        out[0] += g * g
    np.sqrt(out[0], out=out[0])


def _difference_of_gaussians(s: _Scale, out: np.ndarray) -> None:
    narrow = s.smooth(s.image, DOG_RATIO * s.sigma)
    np.subtract(s.smoothed()[s.keep], narrow[s.keep], out=out[0])


def _structure_tensor_eigenvalues(s: _Scale, out: np.ndarray) -> None:
    grad = s.gradient()
    outer = ST_OUTER_RATIO * s.sigma
    tensor = [
        s.smooth(grad[i] * grad[j], outer)[s.keep]
        for i, j in combinations_with_replacement(range(s.ndim), 2)
    ]
    symmetric_eigenvalues(tensor, out=out)


def _hessian_of_gaussian_eigenvalues(s: _Scale, out: np.ndarray) -> None:
    symmetric_eigenvalues([h[s.keep] for h in s.hessian()], out=out)


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
