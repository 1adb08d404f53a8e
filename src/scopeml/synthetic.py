"""Synthetic images with known ground truth, for tests, benchmarks, training and the demo.

Nuclei are filled ellipses (ellipsoids in 3-D) of varied size, elongation, orientation and
brightness, some placed in touching clusters, on an unevenly lit background, blurred, with
shot and read noise. The instance labels are exact: what the image was drawn from. Textures are
regions told apart by texture alone, for pixel classifiers.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def synthetic_nuclei(
    shape: tuple[int, ...] = (256, 256),
    *,
    density: float = 0.001,
    radius: tuple[float, float] = (5.0, 11.0),
    elongation: tuple[float, float] = (1.0, 1.6),
    cluster_fraction: float = 0.3,
    channels: int = 1,
    illumination: float = 0.4,
    blur: float = 1.0,
    noise: float = 0.04,
    dtype: np.dtype | type = np.uint16,
    seed: int = 0,
    margin: float = 0.0,
    origin: tuple[int, ...] | None = None,
    canvas_shape: tuple[int, ...] | None = None,
    illumination_seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw nuclei with known instance labels.

    Parameters
    ----------
    shape
        ``(Y, X)`` or ``(Z, Y, X)``.
    density
        Nuclei per pixel (per voxel in 3-D) of the image area, before clustering.
    radius
        Range of the nucleus semi-minor axis, in pixels.
    cluster_fraction
        Fraction of nuclei placed touching a previous one.
    channels
        ``1`` gives a nuclear stain; more add channels that are other mixes of the same objects
        (a cytoplasm-like ring, a dim copy) so multi-channel models have something to learn.
    margin, origin, canvas_shape, illumination_seed
        For drawing a large image block by block without seams: nuclei centres stay ``margin``
        pixels inside the block, and the illumination field is evaluated at the block's
        ``origin`` within a canvas of ``canvas_shape``, drawn from ``illumination_seed``.

    Returns
    -------
    image
        ``C×(Z×)Y×X`` array of ``dtype`` (``C`` always present).
    labels
        ``(Z×)Y×X`` int32 instance labels, 0 = background, 1..N = nuclei.

    Examples
    --------
    >>> image, labels = synthetic_nuclei((64, 64), seed=1)
    >>> image.shape, labels.shape, bool(labels.max() > 0)
    ((1, 64, 64), (64, 64), True)
    """
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    if ndim not in (2, 3):
        raise ValueError(f"shape must be (Y, X) or (Z, Y, X); got {shape}")
    labels = np.zeros(shape, np.int32)
    n_nuclei = max(1, round(density * float(np.prod(shape))))
    centres: list[np.ndarray] = []
    for index in range(1, n_nuclei + 1):
        semi_minor = rng.uniform(*radius)
        semi_axes = np.full(ndim, semi_minor)
        semi_axes[-1] *= rng.uniform(*elongation)
        if centres and rng.random() < cluster_fraction:
            anchor = centres[rng.integers(len(centres))]
            direction = rng.normal(size=ndim)
            direction /= np.linalg.norm(direction) + 1e-9
            centre = anchor + direction * semi_minor * 1.9
        else:
            centre = rng.uniform(0, 1, ndim) * np.array(shape)
        if margin:
            centre = np.clip(centre, margin, np.array(shape) - margin)
        centres.append(centre)
        _draw_ellipsoid(labels, centre, semi_axes, rng.uniform(0, np.pi), index)
    labels = _relabel_visible(labels)
    light = _illumination(shape, illumination, origin, canvas_shape, illumination_seed, rng)
    image = _render(labels, channels, light, blur, noise, rng)
    if np.issubdtype(np.dtype(dtype), np.integer):
        image = np.clip(image * np.iinfo(dtype).max * 0.5, 0, np.iinfo(dtype).max)
    return image.astype(dtype), labels


def synthetic_textures(shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three regions of equal mean and spread that differ only in texture: fine grain, coarse
    grain, stripes.

    Returns
    -------
    tuple
        ``(1×Y×X float32 image, Y×X truth in 1..3)``.

    Examples
    --------
    >>> image, truth = synthetic_textures((64, 64), seed=0)
    >>> image.shape, np.unique(truth).tolist()
    ((1, 64, 64), [1, 2, 3])
    """
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=(2, *shape)), (0, 12, 12))
    truth = np.argmax(np.concatenate([np.zeros((1, *shape)), field]), axis=0) + 1
    fine = ndi.gaussian_filter(rng.normal(size=shape), 0.8)
    coarse = ndi.gaussian_filter(rng.normal(size=shape), 3.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    stripes = np.sin(xx * 0.9 + yy * 0.4) + 0.3 * rng.normal(size=shape)
    layers = [(t - t.mean()) / t.std() for t in (fine, coarse, stripes)]
    image = np.choose(truth - 1, layers)
    return (100 + 20 * image)[None].astype(np.float32), truth


def _draw_ellipsoid(
    labels: np.ndarray, centre: np.ndarray, semi_axes: np.ndarray, angle: float, value: int
) -> None:
    """Paint one rotated ellipse (rotation in the Y–X plane) into ``labels``, overwriting."""
    reach = int(np.ceil(semi_axes.max())) + 1
    lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
    hi = np.minimum(np.floor(centre).astype(int) + reach + 1, labels.shape)
    if np.any(hi <= lo):
        return
    grids = np.meshgrid(
        *[np.arange(a, b) - c for a, b, c in zip(lo, hi, centre, strict=True)],
        indexing="ij",
        sparse=True,
    )
    y, x = grids[-2], grids[-1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = x * cos + y * sin, -x * sin + y * cos
    inside = (u / semi_axes[-1]) ** 2 + (v / semi_axes[-2]) ** 2
    if len(grids) == 3:
        inside = inside + (grids[0] / semi_axes[0]) ** 2
    region = labels[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    region[inside <= 1.0] = value


def _relabel_visible(labels: np.ndarray) -> np.ndarray:
    """Drop ids fully painted over and split ids cut into pieces, then number 1..N."""
    out = np.zeros_like(labels)
    next_id = 1
    for index, region in enumerate(ndi.find_objects(labels), start=1):
        if region is None:
            continue
        pieces, n = ndi.label(labels[region] == index)
        for piece in range(1, n + 1):
            mask = pieces == piece
            if mask.sum() >= 8:
                out[region][mask] = next_id
                next_id += 1
    return out


def _illumination(
    shape: tuple[int, ...],
    strength: float,
    origin: tuple[int, ...] | None,
    canvas_shape: tuple[int, ...] | None,
    seed: int | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """A smooth vignetting-like light field, continuous across blocks of one canvas."""
    origin = origin or (0,) * len(shape)
    canvas_shape = canvas_shape or shape
    tilt = (rng if seed is None else np.random.default_rng(seed)).normal(size=len(shape))
    coords = np.meshgrid(
        *[
            (np.arange(o, o + n, dtype=np.float32) / max(c - 1, 1)) * 2 - 1
            for o, n, c in zip(origin, shape, canvas_shape, strict=True)
        ],
        indexing="ij",
        sparse=True,
    )
    ramp = sum(t * c for t, c in zip(tilt, coords, strict=True))
    return 1.0 - strength * 0.5 * (1 + np.tanh(ramp))


def _render(
    labels: np.ndarray,
    channels: int,
    light: np.ndarray,
    blur: float,
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Turn labels into a blurred, unevenly lit, noisy float image in about [0, 1]."""
    shape = labels.shape
    n = labels.max()
    per_object = np.concatenate([[0.0], rng.uniform(0.45, 1.0, n)]) if n else np.zeros(1)
    nucleus = per_object[labels].astype(np.float32)
    texture = ndi.gaussian_filter(rng.normal(size=shape).astype(np.float32), 1.5)
    nucleus *= 1.0 + 0.25 * texture / (texture.std() + 1e-9)
    layers = [nucleus]
    if channels > 1:
        ring = ndi.grey_dilation(labels, size=(5,) * len(shape)) > 0
        layers.append(0.5 * (ring & (labels == 0)).astype(np.float32) + 0.2 * (labels > 0))
    for c in range(2, channels):
        layers.append(nucleus * (0.3 + 0.2 * c / channels))
    image = np.stack(layers)
    out = np.empty_like(image)
    for c in range(channels):
        blurred = ndi.gaussian_filter(image[c], blur) if blur > 0 else image[c]
        background = 0.08 + 0.02 * c
        signal = (blurred + background) * light
        shot = rng.normal(size=shape).astype(np.float32) * np.sqrt(
            np.maximum(signal, 0) * noise * 0.1
        )
        out[c] = signal + shot + rng.normal(scale=noise * 0.5, size=shape).astype(np.float32)
    return np.clip(out, 0, None)
