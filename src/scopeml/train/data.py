"""Training data: label conventions, global normalisation, patch sampling and augmentation.

Images are ``C×[Z×]Y×X`` arrays held in memory (training sets are small; applying a model is
what runs out of core). Targets are ``[Z×]Y×X`` int64 with ``-1`` = ignored, ``0..K-1`` = class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scopeml.errors import InvalidImageError, InvalidLabelsError, InvalidRequestError

IGNORE = -1


def targets_from_labels(
    labels: np.ndarray, *, sparse: bool, n_classes: int, path: str | None = None
) -> np.ndarray:
    """Turn a user label image into loss targets.

    Dense labels hold the class index of every pixel (``0`` = background). Sparse labels hold
    ``0`` = unlabelled and ``k >= 1`` = class ``k - 1``; unlabelled pixels are ignored by the loss.
    Errors name ``path`` (the label file), if given.

    Examples
    --------
    >>> targets_from_labels(np.array([[0, 1, 2]]), sparse=True, n_classes=2).tolist()
    [[-1, 0, 1]]
    >>> targets_from_labels(np.array([[0, 1, 2]]), sparse=False, n_classes=3).tolist()
    [[0, 1, 2]]
    """
    if not np.issubdtype(labels.dtype, np.integer) and not np.all(np.mod(labels, 1) == 0):
        raise InvalidLabelsError(f"labels must be integers; got dtype {labels.dtype}", path=path)
    values = labels.astype(np.int64)
    low = 0
    high = n_classes if sparse else n_classes - 1
    if values.size and (values.min() < low or values.max() > high):
        raise InvalidLabelsError(
            f"labels range {values.min()}..{values.max()}; {n_classes} classes allow "
            f"{low}..{high} ({'0 = unlabelled, k = class k-1' if sparse else 'class index'})",
            path=path,
        )
    targets = values - 1 if sparse else values
    if not np.any(targets >= 0):
        raise InvalidLabelsError("labels contain no labelled pixels", path=path)
    return targets


def normalize_globally(image: np.ndarray, policy: str) -> np.ndarray:
    """Normalise a ``C×[Z×]Y×X`` image as the engine will: statistics over the whole image.

    Training through the engine's own :func:`~scopeml.tiling.normalize.compute_normalization`
    means the network sees at training time exactly what ``segment`` feeds it later.

    Examples
    --------
    >>> ramp = np.arange(11, dtype=np.uint16).reshape(1, 1, 11)
    >>> out = normalize_globally(ramp, "percentile:0,100")
    >>> out.dtype.name, float(out.min()), float(out.max())
    ('float32', 0.0, 1.0)
    """
    from scopeml.io.image import Image
    from scopeml.tiling.normalize import compute_normalization

    image = np.asarray(image)
    full = image[None, None, :, None] if image.ndim == 3 else image[None, None]
    normalization = compute_normalization(Image(full), policy)
    if normalization is None:
        return image.astype(np.float32)
    return normalization.at(0).apply(image)


def channel_statistics(images: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over all finite pixels of all images, baked into the exported
    graph.

    Examples
    --------
    >>> mean, std = channel_statistics([np.array([[[0.0, 2.0]]]), np.array([[[4.0, 6.0]]])])
    >>> mean, [round(s, 3) for s in std]
    ([3.0], [2.236])
    """
    n_channels = images[0].shape[0]
    total = np.zeros(n_channels)
    squares = np.zeros(n_channels)
    count = np.zeros(n_channels)
    for image in images:
        flat = image.reshape(n_channels, -1).astype(np.float64)
        finite = np.isfinite(flat)  # NaN and infinite pixels are left out, as the engine does
        flat = np.where(finite, flat, 0.0)
        total += flat.sum(axis=1)
        squares += (flat**2).sum(axis=1)
        count += finite.sum(axis=1)
    count = np.maximum(count, 1)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return [float(m) for m in mean], [float(max(s, 1e-6)) for s in std]


def sample_patches(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    patch_shape: tuple[int, ...],
    batch_size: int,
    rng: np.random.Generator,
    *,
    augment: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a batch of patches centred near labelled pixels, optionally flipped and rotated.

    Returns
    -------
    batch
        ``N×C×[Z×]Y×X`` float32 raw pixel values.
    batch_targets
        ``N×[Z×]Y×X`` int64 targets.
    """
    patches, patch_targets = [], []
    for _ in range(batch_size):
        index = int(rng.integers(len(images)))
        image, target = images[index], targets[index]
        labelled = np.flatnonzero(target >= 0)
        centre = np.unravel_index(labelled[rng.integers(labelled.size)], target.shape)
        starts = [
            int(np.clip(c - p // 2 + rng.integers(-(p // 4), p // 4 + 1), 0, s - p))
            for c, p, s in zip(centre, patch_shape, target.shape, strict=True)
        ]
        region = tuple(slice(a, a + p) for a, p in zip(starts, patch_shape, strict=True))
        patch, patch_target = image[(slice(None), *region)], target[region]
        if augment:
            patch, patch_target = _flip_rotate(patch, patch_target, rng)
        patches.append(np.ascontiguousarray(patch, dtype=np.float32))
        patch_targets.append(np.ascontiguousarray(patch_target))
    return np.stack(patches), np.stack(patch_targets)


def _flip_rotate(
    image: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips along each spatial axis and a random quarter turn in the Y–X plane."""
    for axis in range(target.ndim):
        if rng.random() < 0.5:
            image, target = np.flip(image, axis + 1), np.flip(target, axis)
    if target.shape[-1] == target.shape[-2]:
        turns = int(rng.integers(4))
        image = np.rot90(image, turns, axes=(-2, -1))
        target = np.rot90(target, turns, axes=(-2, -1))
    return image, target


def split_validation(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    val_fraction: float,
    min_shape: tuple[int, ...],
    seed: int,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Hold out whole images (several given) or the last rows of Y (one image) for validation.

    Returns ``train_images, train_targets, val_images, val_targets``; the validation lists are
    empty when ``val_fraction`` is 0.
    """
    if not 0 <= val_fraction < 1:
        raise InvalidRequestError(f"val_fraction must be in [0, 1); got {val_fraction}")
    images, targets = list(images), list(targets)
    if val_fraction == 0:
        return images, targets, [], []
    if len(images) >= 2:
        val, train = split_indices(len(images), val_fraction, seed)
        return (
            [images[i] for i in train],
            [targets[i] for i in train],
            [images[i] for i in val],
            [targets[i] for i in val],
        )
    image, target = images[0], targets[0]
    rows = target.shape[-2]
    cut = rows - max(min_shape[-2], round(rows * val_fraction))
    if cut < min_shape[-2]:
        raise InvalidRequestError(
            f"one image of {rows} rows cannot hold a training and a validation region of "
            f"{min_shape[-2]} rows each; give more images, a smaller patch or val_fraction 0"
        )
    return (
        [image[..., :cut, :]],
        [target[..., :cut, :]],
        [image[..., cut:, :]],
        [target[..., cut:, :]],
    )


def split_indices(n_images: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Which of ``n_images`` (≥ 2) images :func:`split_validation` holds out for validation,
    and which it trains on, in the order drawn.

    >>> split_indices(5, 0.2, seed=0)
    ([2], [4, 3, 0, 1])
    """
    order = [int(i) for i in np.random.default_rng(seed).permutation(n_images)]
    n_val = min(max(1, round(n_images * val_fraction)), n_images - 1)
    return order[:n_val], order[n_val:]


def with_channel_axis(image: np.ndarray, spatial_dims: int) -> np.ndarray:
    """A ``[Z×]Y×X`` image as one channel (``1×[Z×]Y×X``), as ``segment`` reads a plane; any
    other image as it is.

    >>> plane, two = np.zeros((4, 5)), np.zeros((2, 4, 5))
    >>> with_channel_axis(plane, 2).shape, with_channel_axis(two, 2).shape
    ((1, 4, 5), (2, 4, 5))
    """
    return image[None] if image.ndim == spatial_dims else image


def check_pairs(
    images: Sequence[np.ndarray], labels: Sequence[np.ndarray], spatial_dims: int
) -> None:
    """Raise if images are not ``C×[Z×]Y×X`` with one channel count, or labels do not match."""
    if not images:
        raise InvalidImageError("no images given to train on")
    if len(images) != len(labels):
        raise InvalidLabelsError(f"got {len(images)} images and {len(labels)} label images")
    channels = images[0].shape[0] if images[0].ndim == spatial_dims + 1 else None
    spatial = f"{'Z×' * (spatial_dims - 2)}Y×X"
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        if image.ndim != spatial_dims + 1 or image.shape[0] != channels:
            same = f" with C = {channels}, as image 0" if channels is not None and index else ""
            raise InvalidImageError(
                f"image {index} has shape {image.shape}; expected C×{spatial}{same} (or {spatial}"
                " for one channel)"
            )
        if label.shape != image.shape[1:]:
            raise InvalidLabelsError(
                f"labels {index} have shape {label.shape}; image {index} is {image.shape[1:]}"
            )
