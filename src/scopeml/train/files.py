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
    return read_pair_files(pair_files(images, labels), spatial_dims=spatial_dims)


def pair_files(
    images: str | os.PathLike[str], labels: str | os.PathLike[str]
) -> list[tuple[Path, Path]]:
    """``(image, labels)`` file pairs: the two files, or the files of two folders paired by
    file stem (in the order of the stems)."""
    images, labels = Path(images), Path(labels)
    if images.is_dir() != labels.is_dir():
        raise InvalidRequestError(f"{images} and {labels} must both be files or both folders")
    if not images.is_dir():
        return [(images, labels)]
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
    return [(image_files[stem], label_files[stem]) for stem in sorted(image_files)]


def read_pair_files(
    pairs: list[tuple[Path, Path]], *, spatial_dims: int = 2
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images (``C×[Z×]Y×X``) and label images of ``(image, labels)`` file pairs; a label image
    of another shape than its image (one of several channels too) is refused, naming it."""
    out_images, out_labels = [], []
    for image_path, label_path in pairs:
        image = as_channels_first(read_array(image_path), spatial_dims, image_path)
        label = read_array(label_path)
        if label.shape != image.shape[1:]:
            problem = _shape_problem(label.shape, image.shape[1:], image_path)
            raise InvalidLabelsError(problem, path=label_path)
        if not np.issubdtype(label.dtype, np.integer):
            hint = "; the image given as the labels (the image comes first)?" * (
                label.dtype.kind == "f"
            )
            raise InvalidLabelsError(
                f"labels must be integers; got {label.dtype}{hint}", path=label_path
            )
        out_images.append(image)
        out_labels.append(label)
    return out_images, out_labels


def _shape_problem(shape: tuple[int, ...], spatial: tuple[int, ...], image: Path) -> str:
    """Why labels of ``shape`` do not fit an image of ``spatial`` shape: several channels (a
    colour image), or another size.

    >>> _shape_problem((4, 5, 3), (4, 5), Path("a.tif"))[:57]
    'labels have 3 channels (shape (4, 5, 3)); labels must be '
    """
    for channels, rest in ((shape[-1], shape[:-1]), (shape[0], shape[1:])):
        if len(shape) == len(spatial) + 1 and rest == tuple(spatial) and channels <= 4:
            return (
                f"labels have {channels} channels (shape {shape}); labels must be one channel "
                "of class values (0 = background, k = class k; --sparse: 0 = unlabelled), "
                "e.g. a grey 8-bit TIFF"
            )
    return f"labels have shape {shape}; the image {image.name} is {tuple(spatial)}"


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in SUFFIXES}
