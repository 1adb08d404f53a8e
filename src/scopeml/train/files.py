"""Read training pairs from files: one image + one label file, or two folders of pairs.

Formats by suffix: ``.npy`` (no pickle), ``.tif``/``.tiff``, ``.png``. An image is ``Y×X``,
``C×Y×X`` or ``Y×X×C`` (RGB-like: last axis ≤ 4 and first > 4) in 2-D, ``Z×Y×X`` or ``C×Z×Y×X``
in 3-D; labels are ``[Z×]Y×X`` integers. Folders are paired by file stem.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from scopeml.errors import (
    InputNotFoundError,
    InvalidImageError,
    InvalidLabelsError,
    InvalidRequestError,
)

SUFFIXES = (".npy", ".tif", ".tiff", ".png")


def read_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Load one ``.npy``/``.tif``/``.tiff``/``.png`` file as a numpy array."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidImageError(
            f"unknown format {suffix!r}; known: {', '.join(SUFFIXES)}", path=path
        )
    if not path.is_file():
        raise InputNotFoundError("no such file", path=path)
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".png":
            from PIL import Image as PILImage

            with PILImage.open(path) as picture:
                return np.asarray(picture)
        import tifffile

        return tifffile.imread(path)
    except (ValueError, OSError, EOFError) as err:
        raise InvalidImageError(f"cannot read ({err})", path=path) from err


def as_channels_first(
    array: np.ndarray, spatial_dims: int, path: str | os.PathLike[str]
) -> np.ndarray:
    """``C×[Z×]Y×X`` from the layouts listed in the module docstring."""
    if array.ndim == spatial_dims:
        return array[None]
    if array.ndim == spatial_dims + 1:
        if spatial_dims == 2 and array.shape[-1] <= 4 and array.shape[0] > 4:
            return np.moveaxis(array, -1, 0)
        return array
    raise InvalidImageError(
        f"image has shape {array.shape}; expected {spatial_dims} spatial axes and at most one "
        "channel axis",
        path=path,
    )


def read_pairs(
    images: str | os.PathLike[str], labels: str | os.PathLike[str], *, spatial_dims: int = 2
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images (``C×[Z×]Y×X``) and label images from two files or two folders of pairs."""
    images, labels = Path(images), Path(labels)
    if images.is_dir() != labels.is_dir():
        raise InvalidRequestError(f"{images} and {labels} must both be files or both folders")
    if images.is_dir():
        image_files = _by_stem(images)
        label_files = _by_stem(labels)
        missing = sorted(set(image_files) ^ set(label_files))
        if missing:
            raise InvalidLabelsError(
                f"images and labels do not pair up by file name: unmatched {missing[:5]}",
                path=labels,
            )
        if not image_files:
            raise InvalidRequestError(f"no {'/'.join(SUFFIXES)} files", path=images)
        pairs = [(image_files[stem], label_files[stem]) for stem in sorted(image_files)]
    else:
        pairs = [(images, labels)]
    out_images, out_labels = [], []
    for image_path, label_path in pairs:
        image = as_channels_first(read_array(image_path), spatial_dims, image_path)
        label = read_array(label_path)
        if label.shape != image.shape[1:]:
            raise InvalidLabelsError(
                f"labels have shape {label.shape}; the image {image_path.name} is "
                f"{image.shape[1:]}",
                path=label_path,
            )
        if not np.issubdtype(label.dtype, np.integer):
            raise InvalidLabelsError(f"labels must be integers; got {label.dtype}", path=label_path)
        out_images.append(image)
        out_labels.append(label)
    return out_images, out_labels


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in SUFFIXES}
