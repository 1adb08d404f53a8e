"""Synthetic images with known ground truth, for tests, benchmarks, training and the demo.

Nuclei are filled ellipses (ellipsoids in 3-D) of varied size, elongation, orientation and
brightness, some placed in touching clusters, on an unevenly lit background, blurred, with
shot and read noise. The instance labels are exact: what the image was drawn from. Textures are
regions told apart by texture alone, for pixel classifiers.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

HOLD_OUT_SEED = 900_000  # realistic_nuclei seeds from here on are never used for training


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
    overlap: bool = True,
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
    overlap
        ``False``: a nucleus that would cover part of an earlier one is placed elsewhere (up
        to 8 tries, then left out), so nuclei touch but never hide each other (the image then
        shows every true outline). ``True`` (default) keeps the draws of earlier versions.

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
        for _ in range(1 if overlap else 8):  # apart: a few places tried, then it is left out
            if centres and rng.random() < cluster_fraction:
                anchor = centres[rng.integers(len(centres))]
                direction = rng.normal(size=ndim)
                direction /= np.linalg.norm(direction) + 1e-9
                centre = anchor + direction * semi_minor * 1.9
            else:
                centre = rng.uniform(0, 1, ndim) * np.array(shape)
            if margin:
                centre = np.clip(centre, margin, np.array(shape) - margin)
            angle = rng.uniform(0, np.pi)
            if _draw_ellipsoid(labels, centre, semi_axes, angle, index, overwrite=overlap):
                centres.append(centre)
                break
        else:
            if overlap:  # drawn off the image: still an anchor, as it always was
                centres.append(centre)
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
    labels: np.ndarray,
    centre: np.ndarray,
    semi_axes: np.ndarray,
    angle: float,
    value: int,
    *,
    overwrite: bool = True,
) -> bool:
    """Paint one rotated ellipse (rotation in the Y–X plane) into ``labels``; without
    ``overwrite``, only if it covers no labelled pixel. Returns whether it was painted.

    Bounds are Python integers and the grids sparse: this runs once per try of every nucleus
    (hundreds of thousands of times for the demo's sample), so its cost is its numpy calls."""
    reach = math.ceil(max(semi_axes)) + 1
    lo = [max(math.floor(c) - reach, 0) for c in centre]
    hi = [min(math.floor(c) + reach + 1, n) for c, n in zip(centre, labels.shape, strict=True)]
    if any(b <= a for a, b in zip(lo, hi, strict=True)):
        return False
    y = (np.arange(lo[-2], hi[-2]) - centre[-2])[:, None]
    x = np.arange(lo[-1], hi[-1]) - centre[-1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = x * cos + y * sin, -x * sin + y * cos
    inside = (u / semi_axes[-1]) ** 2 + (v / semi_axes[-2]) ** 2
    if labels.ndim == 3:
        z = (np.arange(lo[0], hi[0]) - centre[0])[:, None, None]
        inside = inside + (z / semi_axes[0]) ** 2
    region = labels[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    inside = inside <= 1.0
    if not overwrite and region[inside].any():
        return False
    region[inside] = value
    return True


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


def realistic_nuclei(
    shape: tuple[int, int] = (256, 256),
    *,
    seed: int = 0,
    cultured: bool = False,
    speckled: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A fluorescence nuclei scene drawn from wide, seeded ranges, for training and hold-outs.

    Closer to real nuclear stains than :func:`synthetic_nuclei`: each image draws its own
    typical radius (4–40 px), shape irregularity and elongation, crowding (dense clumps of
    touching nuclei), textured chromatin with nucleoli, a few small bright mitotic nuclei,
    unlabelled debris specks, dim nuclei beside bright ones (a 7× brightness range), in some
    scenes bright chromocentres, dim cell bodies around the nuclei, out-of-focus light and a
    saturated detector, uneven illumination and background, defocus blur, and Poisson +
    Gaussian noise at a random photon budget. The absolute intensity is arbitrary (models see it
    through a global normalisation).

    ``cultured`` draws cultured cells as a nuclear stain shows them beside their cytoplasm: every
    nucleus in a wider cell body that dims away from it, bean-shaped and lobed nuclei
    whose notch the cytoplasm fills, and bright vesicles in the cytoplasm — all background in
    the labels — so a model learns not to cut a cell body into nuclei.

    ``speckled`` gives about half of the nuclei, chosen at random, a mottled chromatin of dense
    bright speckles (tens to a hundred in a large nucleus) over a dimmer base, as cycling
    cells' nuclei show beside smooth ones, each still one nucleus in the labels: so a model
    learns not to cut a coarse-textured nucleus along its dark gaps.

    Returns
    -------
    tuple
        ``(1×Y×X float32 image, Y×X int32 instance labels)``, 0 = background, 1..N = nuclei.

    Examples
    --------
    >>> image, labels = realistic_nuclei((96, 96), seed=3)
    >>> image.shape, image.dtype.name, labels.shape, bool(labels.max() > 0)
    ((1, 96, 96), 'float32', (96, 96), True)
    """
    rng = np.random.default_rng(seed)
    area = float(shape[0] * shape[1])
    typical = float(np.exp(rng.uniform(np.log(5.0), np.log(30.0))))
    spread = rng.uniform(0.1, 0.35)
    irregular = rng.uniform(0.0, 0.12) * (2.5 if cultured else 1.0)
    stretch = rng.uniform(1.0, 1.8)
    coverage = rng.uniform(0.05, 0.35)
    clumped = rng.uniform(0.0, 0.6)
    n_nuclei = max(1, round(coverage * area / (np.pi * typical**2 * (1 + stretch) / 2)))
    labels = np.zeros(shape, np.int32)
    brightness = [0.0]
    nucleoli: list[tuple[float, float, float]] = []
    centres: list[tuple[np.ndarray, float]] = []
    for _ in range(n_nuclei):
        mitotic = rng.random() < 0.05
        radius = float(np.clip(typical * np.exp(rng.normal(0, spread)), 4.0, 40.0))
        if mitotic:
            radius = rng.uniform(3.5, max(4.0, 0.6 * radius))
        axes = (radius, radius * (rng.uniform(1.0, stretch) if not mitotic else 1.0))
        if centres and rng.random() < clumped:  # touching a neighbour, pressed against it
            anchor, other = centres[rng.integers(len(centres))]
            direction = rng.normal(size=2)
            direction /= np.linalg.norm(direction) + 1e-9
            centre = anchor + direction * (other + radius) * rng.uniform(0.9, 1.05)
        else:
            centre = rng.uniform(0, 1, 2) * np.array(shape)
        index = len(brightness)
        if not _draw_blob(labels, centre, axes, rng.uniform(0, np.pi), irregular, index, rng):
            continue
        centres.append((centre, radius))
        level = float(np.exp(rng.uniform(np.log(0.15), 0.0)))
        brightness.append(level * (rng.uniform(1.5, 2.5) if mitotic else 1.0))
        if not mitotic and radius > 7 and rng.random() < 0.6:
            for _ in range(rng.integers(1, 4)):
                offset = rng.normal(0, 0.35 * radius, 2)
                nucleoli.append((*(centre + offset), rng.uniform(1.0, 0.2 * radius)))
    levels = np.asarray(brightness, np.float32)[labels]  # by drawing id, before renumbering
    labels = _relabel_visible(labels)
    mottle = _mottled(labels, typical, np.random.default_rng([seed, 1])) if speckled else None
    image = _render_realistic(labels, levels, nucleoli, typical, rng, cultured, mottle)
    return image[None], labels


def _draw_blob(
    labels: np.ndarray,
    centre: np.ndarray,
    axes: tuple[float, float],
    angle: float,
    irregular: float,
    value: int,
    rng: np.random.Generator,
) -> bool:
    """Paint a rotated ellipse whose radius wobbles with low angular harmonics (irregular).

    Nuclei do not overlap in a monolayer: the blob takes only free pixels (flattened where it
    touches another), and is not drawn at all (``False``) when over 15 % of it is taken.
    """
    reach = int(np.ceil(max(axes) * (1 + 4 * irregular))) + 1
    lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
    hi = np.minimum(np.floor(centre).astype(int) + reach + 1, labels.shape)
    if np.any(hi <= lo):
        return False
    y = (np.arange(lo[0], hi[0]) - centre[0])[:, None]
    x = (np.arange(lo[1], hi[1]) - centre[1])[None, :]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = x * cos + y * sin, -x * sin + y * cos
    theta = np.arctan2(v, u)
    wobble = np.ones_like(theta)
    for k in range(2, 6):
        wobble += irregular * rng.normal(0, 1.0 / k) * np.cos(k * theta + rng.uniform(0, 6.3))
    inside = (u / axes[1]) ** 2 + (v / axes[0]) ** 2 <= np.maximum(wobble, 0.5) ** 2
    region = labels[lo[0] : hi[0], lo[1] : hi[1]]
    taken = inside & (region > 0)
    if taken.sum() > 0.15 * inside.sum():
        return False
    region[inside & ~taken] = value
    return True


def _render_realistic(
    labels: np.ndarray,
    levels: np.ndarray,
    nucleoli: list[tuple[float, float, float]],
    typical: float,
    rng: np.random.Generator,
    cultured: bool = False,
    mottle: np.ndarray | None = None,
) -> np.ndarray:
    """Labels and per-pixel nucleus brightness → a noisy float32 fluorescence image (``mottle``:
    a factor on the nuclei's brightness, see :func:`_mottled`)."""
    shape = labels.shape
    nucleus = np.where(labels > 0, levels, 0).astype(np.float32)
    grain = ndi.gaussian_filter(rng.normal(size=shape).astype(np.float32), rng.uniform(0.7, 2.0))
    nucleus *= 1.0 + rng.uniform(0.1, 0.45) * grain / (grain.std() + 1e-9)
    inside = labels > 0
    if inside.any():  # a dome: the nucleus is thicker in the middle (brighter), edges softer
        depth = ndi.distance_transform_edt(inside)
        nucleus *= 1.0 - rng.uniform(0.0, 0.4) * np.exp(-depth / max(typical * 0.3, 1.0))
    if nucleoli:
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        dark = np.zeros(shape, np.float32)
        for cy, cx, r in nucleoli:
            dark = np.maximum(dark, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
        nucleus *= 1.0 - rng.uniform(0.3, 0.7) * dark
    if inside.any() and rng.random() < 0.35:  # chromocentres: bright chromatin spots
        nucleus *= 1.0 + rng.uniform(0.5, 1.5) * _spots(inside, typical, rng)
    if mottle is not None:  # its own generator: the rest of the scene is drawn as without
        nucleus *= mottle
    debris = np.zeros(shape, np.float32)
    for _ in range(rng.poisson(labels.size * rng.uniform(0, 4e-5))):
        y, x = rng.integers(shape[0]), rng.integers(shape[1])
        debris[y, x] += rng.uniform(1.0, 20.0)
    debris = ndi.gaussian_filter(debris, 1.0)
    signal = nucleus + debris * (labels == 0)
    if inside.any() and (rng.random() < 0.4 or cultured):  # a dim cell body around each nucleus
        signal += _cytoplasm(labels, levels, typical, rng, cultured)
    if rng.random() < 0.3:  # out-of-focus light of nuclei above and below (widefield)
        signal += rng.uniform(0.05, 0.3) * ndi.gaussian_filter(nucleus, rng.uniform(4, 12))
    signal = ndi.gaussian_filter(signal, rng.uniform(0.5, 2.5))  # defocus
    coarse = [max(2, s // 64) for s in shape]
    zoom = [s / c for s, c in zip(shape, coarse, strict=True)]
    field = ndi.zoom(rng.uniform(0, 1, coarse), zoom, order=3)
    field = ndi.gaussian_filter(field[: shape[0], : shape[1]], 8)
    light = 1.0 - rng.uniform(0.0, 0.6) * (field - field.min()) / (np.ptp(field) + 1e-9)
    background = rng.uniform(0.0, 0.15) * (0.5 + field[: shape[0], : shape[1]])
    mean = (signal * light + background).clip(0, None)
    photons = float(np.exp(rng.uniform(np.log(15.0), np.log(3000.0))))
    counts = rng.poisson(mean * photons).astype(np.float32) / photons
    read = rng.normal(0, rng.uniform(0.002, 0.03), shape).astype(np.float32)
    image = counts + read
    if inside.any() and rng.random() < 0.25:  # a detector saturated on the brightest nuclei
        image = np.minimum(image, np.percentile(image[inside], rng.uniform(70, 99)))
    return image.astype(np.float32)


def _spots(inside: np.ndarray, typical: float, rng: np.random.Generator) -> np.ndarray:
    """Small bright blobs (0..1) scattered over a mask: chromocentres in nuclei, vesicles in
    cell bodies."""
    spots = np.zeros(inside.shape, np.float32)
    where = np.flatnonzero(inside)
    picks = rng.choice(where, size=min(where.size, max(1, int(where.size / (3 * typical**2)))))
    spots.flat[picks] = 1.0
    spots = ndi.gaussian_filter(spots, rng.uniform(0.8, max(1.0, 0.15 * typical)))
    return spots / (spots.max() + 1e-9) * inside


def _mottled(labels: np.ndarray, typical: float, rng: np.random.Generator) -> np.ndarray:
    """A brightness factor that mottles about half of the nuclei (chosen at random): a dimmer
    base with dense, small bright speckles; 1 elsewhere."""
    chosen = (rng.random(int(labels.max()) + 1) < 0.5)[labels] & (labels > 0)
    where = np.flatnonzero(chosen)
    if where.size == 0:
        return np.ones(labels.shape, np.float32)
    size = rng.uniform(0.8, 1.6)  # a speckle's radius (px): it survives the scene's defocus
    density = 1.0 / (rng.uniform(2.0, 8.0) * (2 * size + 1) ** 2)  # speckles per pixel
    speckles = np.zeros(labels.shape, np.float32)
    speckles.flat[rng.choice(where, size=max(1, int(where.size * density)))] = 1.0
    speckles = ndi.gaussian_filter(speckles, size)
    speckles /= np.percentile(speckles[chosen], 99) + 1e-9
    factor = rng.uniform(0.5, 0.8) + rng.uniform(1.0, 2.0) * speckles.clip(0, 1.5)
    return np.where(chosen, factor, 1.0).astype(np.float32)


def _cytoplasm(
    labels: np.ndarray,
    levels: np.ndarray,
    typical: float,
    rng: np.random.Generator,
    cultured: bool = False,
) -> np.ndarray:
    """Dim, textured cell bodies around the nuclei (background in the labels): each pixel
    within reach of a nucleus takes a fraction of the nearest nucleus's brightness; cultured
    cells reach further, fall off from the nucleus, and carry bright vesicles."""
    distance, (iy, ix) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    ragged = ndi.gaussian_filter(rng.normal(size=labels.shape), max(1.0, 0.5 * typical))
    reach = typical * rng.uniform(0.4, 1.5) * (1 + ragged / (ragged.std() + 1e-9) * 0.3)
    if cultured:
        reach *= rng.uniform(1.0, 2.0)
    body = (labels == 0) & (distance <= reach)
    grain = ndi.gaussian_filter(rng.normal(size=labels.shape), rng.uniform(1.0, 3.0))
    texture = 1.0 + 0.3 * grain / (grain.std() + 1e-9)
    fraction = rng.uniform(0.08, 0.4)
    if cultured:
        fraction = rng.uniform(0.1, 0.35) * (1.0 - 0.6 * distance / np.maximum(reach, 1.0))
        texture *= 1.0 + rng.uniform(1.0, 4.0) * _spots(body, 0.7 * typical, rng)
    return np.where(body, fraction * levels[iy, ix] * texture, 0).clip(0).astype(np.float32)
