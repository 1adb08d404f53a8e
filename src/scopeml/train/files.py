"""Read training pairs from files: one image + one label file, or two folders of pairs.

Formats by suffix: ``.npy`` (no pickle), ``.tif``/``.tiff``, ``.png``. An image is ``Y×X``,
``C×Y×X`` or ``Y×X×C`` (RGB-like: last axis ≤ 4 and first > 4) in 2-D, ``Z×Y×X`` or ``C×Z×Y×X``
in 3-D; labels are ``[Z×]Y×X`` integers. Folders are paired by file stem.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def training_arrays(
    images: Sequence[Any], labels: Sequence[Any], *, spatial_dims: int = 2
) -> tuple[list[Any], list[Any], list[tuple[str, str]] | None]:
    """``train_unet``'s images and labels as arrays: files and ``Image`` objects read as the
    pixel classifier reads them (:func:`~scopeml.inputs.open_training_pair`), arrays as given;
    with the ``(image, labels)`` names to show when any came from a file (else ``None``).

    One image given where a list is expected is refused: an array's first axis would be taken
    as the list of images (rows for images), a path's letters likewise.
    """
    from scopeml.io.image import Image

    for given, what, error in ((images, "images", InvalidImageError),
                               (labels, "labels", InvalidLabelsError)):  # fmt: skip
        if isinstance(given, (np.ndarray, str, os.PathLike, Image)):
            raise error(
                f"{what} must be a list (one entry per image); got one "
                f"{type(given).__name__}{_shown_shape(given)}: pass [image], [labels]"
            )
    images, labels = list(images), list(labels)
    if not any(_is_read(one) for one in (*images, *labels)):
        return images, labels, None
    out_images, out_labels, names = [], [], []
    for index, (image, label) in enumerate(zip(images, labels, strict=False)):
        with contextlib.ExitStack() as opened:
            pixels, its = _read_pair(image, label, opened, spatial_dims, index)
            out_images.append(pixels)
            out_labels.append(its)
        names.append((_name_of(image, f"image {index}"), _name_of(label, f"labels {index}")))
    # a count mismatch is check_pairs's to say; the pairs read are those zip made
    out_images += images[len(out_images) :]
    out_labels += labels[len(out_labels) :]
    return out_images, out_labels, names if len(images) == len(labels) else None


def _shown_shape(given: Any) -> str:
    shape = getattr(given, "shape", None)
    return f" of shape {tuple(shape)}" if shape is not None and not isinstance(given, str) else ""


def _is_read(source: Any) -> bool:
    from scopeml.io.image import Image

    return isinstance(source, (str, os.PathLike, Image))


def _name_of(source: Any, default: str) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return os.fspath(getattr(source, "path", None) or default)


def _read_pair(
    image: Any, labels: Any, opened: contextlib.ExitStack, spatial_dims: int, index: int
) -> tuple[Any, Any]:
    """One pair as ``C×[Z×]Y×X`` pixels and ``[Z×]Y×X`` labels, read whole."""
    from scopeml.inputs import open_training_pair
    from scopeml.io.image import Image

    if not _is_read(image):
        image = np.asarray(image)
        if image.ndim not in (spatial_dims, spatial_dims + 1) or not _is_read(labels):
            return image, labels  # as given: check_pairs says what is wrong with it
        axes = "C" * (image.ndim > spatial_dims) + "ZYX"[3 - spatial_dims :]
        image, labels = open_training_pair(image, labels, opened, axes=axes)
    else:
        image, labels = open_training_pair(image, labels, opened)
    pixels = _one_volume(image, spatial_dims, _name_of(image, f"image {index}"), InvalidImageError)
    if isinstance(labels, Image):
        name = _name_of(labels, f"labels {index}")
        labels = _one_volume(labels, spatial_dims, name, InvalidLabelsError)[0]
    return pixels, labels


def _one_volume(image: Any, spatial_dims: int, name: str, error: type[Exception]) -> np.ndarray:
    """An ``Image``'s pixels as ``C×[Z×]Y×X``, refusing what a U-Net does not train on."""
    sizes = image.sizes
    extra = [f"{sizes[a]} {w}" for a, w in (("S", "scenes"), ("T", "time points")) if sizes[a] > 1]
    if spatial_dims == 2 and sizes["Z"] > 1:
        extra.append(f"{sizes['Z']} Z planes (channels? sm.open_image(path, axes='CYX'); a "
                     "stack: TrainConfig(spatial_dims=3) trains on Z×Y×X)")  # fmt: skip
    if extra:
        raise error(
            f"{name}: has {', '.join(extra)}; a U-Net trains on one {'Z×' * (spatial_dims - 2)}"
            "Y×X image per entry: give each as its own entry"
        )
    pixels = np.asarray(image.read())[0, 0]
    return pixels if spatial_dims == 3 else pixels[:, 0]
