"""Training inputs read block by block, so training never holds a whole image.

A classifier needs features only around labelled pixels. Training scans the label image once in
blocks, checking values as it goes, and then reads the image only in the blocks that hold
labels, grown by the feature halo. Its memory follows the block size and the number of labelled
pixels, not the image size: scribbles on a slide scan of hundreds of gigabytes train like
scribbles on a thumbnail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError, InvalidLabelsError, summarize
from scopeml.io.dtypes import label_dtype
from scopeml.pixel._blocks import iter_blocks

#: Most classes a label image may have unless the classes are named: more is almost always an
#: instance label image (one value per object) passed by mistake, which would otherwise cost
#: gigabytes before failing. Naming the classes (``classes=``) sets the limit to their count.
MAX_CLASSES = 255
#: Labels can never go beyond this (they are stored as uint16 at most).
LABEL_LIMIT = 65535
#: Labels are checked in regions of about this many pixels (several blocks at a time).
SCAN_PIXELS = 2**22


def _is_image(source: Any) -> bool:
    """A 6-D lazy :class:`~scopeml.io.Image` (duck-typed, as the readers return it)."""
    return hasattr(source, "read") and len(getattr(source, "shape", ())) == 6


def _is_array(source: Any) -> bool:
    """Sliceable without loading: numpy, zarr, dask, a tifffile zarr store…"""
    return hasattr(source, "shape") and hasattr(source, "__getitem__") and hasattr(source, "dtype")


class ImageSource:
    """``C×[Z×]Y×X`` pixels read region by region from an array or a one-scene :class:`Image`.

    Examples
    --------
    >>> src = ImageSource(np.arange(24).reshape(1, 4, 6), spatial_dims=2)
    >>> src.shape, src.read((slice(1, 2), slice(0, 3))).tolist()
    ((1, 4, 6), [[[6, 7, 8]]])
    """

    def __init__(self, image: Any, spatial_dims: int, at: tuple[int, int] | None = None) -> None:
        self.path = getattr(image, "path", None)
        self.spatial_dims = spatial_dims
        #: ``(scene, time point)`` read of an :class:`Image` with several (``None``: the one)
        self.at = at
        if _is_image(image):
            s, t, c, z, y, x = image.shape
            if at is None and (s != 1 or t != 1):
                raise InvalidImageError(
                    f"image has {s} scenes and {t} time points; give one scene "
                    "(open_image(path, scene=N), or --scene N), or train_classifier the whole "
                    "image, which pairs each time point with its labels",
                    path=self.path,
                )
            if spatial_dims == 2 and z != 1:
                raise InvalidImageError(
                    f"image has {z} Z planes; a 2-D classifier needs one", path=self.path
                )
            self._image, self._array = image, None
            self.shape = (c, y, x) if spatial_dims == 2 else (c, z, y, x)
        else:
            array = image if _is_array(image) else np.asarray(image)
            if len(array.shape) != spatial_dims + 1:
                raise InvalidImageError(
                    f"image has shape {tuple(array.shape)}; expected "
                    f"C×{'×'.join('ZYX'[3 - spatial_dims :])}"
                )
            self._image, self._array = None, array
            self.shape = tuple(int(n) for n in array.shape)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """All channels of a spatial region, as numpy."""
        if self._array is not None:
            return np.asarray(self._array[(slice(None), *region)])
        s, t = self.at or (0, 0)
        if self.spatial_dims == 3:
            z, y, x = region
            return self._image.read(S=s, T=t, Z=z, Y=y, X=x)[0, 0]
        y, x = region
        return self._image.read(S=s, T=t, Y=y, X=x)[0, 0, :, 0]


class LabelSource:
    """``[Z×]Y×X`` labels read region by region from an array or a one-plane :class:`Image`.

    An :class:`Image` of labels must have one scene, time point and channel; a 2-D label image
    may come as a 6-D image with one Z plane.
    """

    def __init__(self, labels: Any, spatial_dims: int, at: tuple[int, int] | None = None) -> None:
        self.path = getattr(labels, "path", None)
        self.spatial_dims = spatial_dims
        self.at = at  # (scene, time point) of an Image with several, as ImageSource's
        if _is_image(labels):
            s, t, c, z, y, x = labels.shape
            if at is not None and c != 1:
                raise InvalidLabelsError(
                    f"labels have {c} channels; labels must be one channel of class values "
                    "(0 = unlabelled, 1..K = class)",
                    path=self.path,
                )
            if at is None and s * t * c != 1:
                hint = (
                    f"labels have {c} channels (a colour image?); labels must be one channel of "
                    "class values (0 = unlabelled, 1..K = class), e.g. a grey 8-bit TIFF"
                    if s * t == 1
                    else f"labels have {s} scenes, {t} time points, {c} channels; expected one "
                    "of each (one channel of class values: 0 = unlabelled, 1..K = class)"
                )
                raise InvalidLabelsError(hint, path=self.path)
            self._image, self._array = labels, None
            self.shape = (y, x) if spatial_dims == 2 and z == 1 else (z, y, x)
        else:
            self._image = None
            self._array = labels if _is_array(labels) else np.asarray(labels)
            self.shape = tuple(int(n) for n in self._array.shape)
        self.dtype = np.dtype((labels if self._array is None else self._array).dtype)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        if self._array is not None:
            return np.asarray(self._array[region])
        s, t = self.at or (0, 0)
        if len(region) == 2:
            return self._image.read(S=s, T=t, Y=region[0], X=region[1])[0, 0, 0, 0]
        return self._image.read(S=s, T=t, Z=region[0], Y=region[1], X=region[2])[0, 0, 0]


class _Part:
    """``array[index]`` of a labels array with leading scene/time axes, read lazily: only the
    regions asked for are sliced (a zarr or dask array is not loaded whole)."""

    def __init__(self, array: Any, index: tuple[int, ...]) -> None:
        self.array, self.index = array, index
        self.path = getattr(array, "path", None)
        self.shape = tuple(int(n) for n in array.shape[len(index) :])
        self.dtype = array.dtype

    def __getitem__(self, region: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.array[(*self.index, *region)])


def time_point_sources(
    image: Any, labels: Any, spatial_dims: int
) -> list[tuple[ImageSource, LabelSource]]:
    """One ``(ImageSource, LabelSource)`` per scene and time point of an :class:`Image` with
    several, each time point's image paired with the labels of that time point.

    ``labels``: an :class:`Image` with the same scenes and time points (one channel), or an
    array ``T×[Z×]Y×X`` (one scene), ``S×T×[Z×]Y×X`` or ``S×T×1×Z×Y×X``. Nothing is read here;
    a time point without labels costs one pass over its labels when they are scanned.

    Examples
    --------
    >>> from scopeml.io.image import Image
    >>> image = Image(np.zeros((1, 3, 1, 1, 4, 4), np.float32))
    >>> pairs = time_point_sources(image, np.zeros((3, 4, 4), np.uint8), 2)
    >>> [(im.at, lab.shape) for im, lab in pairs]
    [((0, 0), (4, 4)), ((0, 1), (4, 4)), ((0, 2), (4, 4))]
    """
    s, t, _, z, y, x = image.shape
    spatial = (y, x) if spatial_dims == 2 else (z, y, x)
    steps = [(a, b) for a in range(s) for b in range(t)]
    path = getattr(labels, "path", None)
    want = f"{s} scene{'s' * (s != 1)} and {t} time point{'s' * (t != 1)}"
    given = tuple(getattr(labels, "shape", None) or np.shape(labels))
    scenes = given[0] == s if _is_image(labels) else len(given) >= 2 + spatial_dims
    if s > 1 and not scenes:
        raise InvalidImageError(
            f"image has {want}; give one scene (open_image(path, scene=N), or --scene N), or "
            "labels with its scenes and time points",
            path=getattr(image, "path", None),
        )
    if _is_image(labels):
        if tuple(labels.shape[:2]) != (s, t):
            raise InvalidLabelsError(
                f"labels have {labels.shape[0]} scene(s) and {labels.shape[1]} time point(s); "
                f"the image has {want}: give labels with the image's time points (0 where a "
                "time point is not labelled)",
                path=path,
            )
        return [
            (ImageSource(image, spatial_dims, at), LabelSource(labels, spatial_dims, at))
            for at in steps
        ]
    array = labels if _is_array(labels) else np.asarray(labels)
    shape = tuple(int(n) for n in array.shape)
    if s == 1 and shape == (t, *spatial):
        parts = [_Part(array, (b,)) for _, b in steps]
    elif shape == (s, t, *spatial):
        parts = [_Part(array, at) for at in steps]
    elif shape == (s, t, 1, z, y, x):
        parts = [_Part(array, (*at, 0) if spatial_dims == 3 else (*at, 0, 0)) for at in steps]
    else:
        axes = "×".join("ZYX"[3 - spatial_dims :])
        raise InvalidLabelsError(
            f"labels have shape {shape}; the image has {want}: give labels "
            f"{'T×' if s == 1 else 'S×T×'}{axes} "
            f"{(t, *spatial) if s == 1 else (s, t, *spatial)} (0 where a time point is not "
            "labelled)",
            path=path,
        )
    return [
        (ImageSource(image, spatial_dims, at), LabelSource(part, spatial_dims))
        for at, part in zip(steps, parts, strict=True)
    ]


@dataclass(frozen=True)
class LabelScan:
    """What a pass over a label image found: the largest label value and, per block that holds
    labels, ``(read, core_in_read, core)``: the region to read with its halo, the core inside
    it, and the core in image coordinates."""

    top: int
    blocks: list[tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]]]
    #: the label values > 0 that occur, ascending
    values: tuple[int, ...] = ()


def scan_labels(
    labels: LabelSource,
    spatial_shape: tuple[int, ...],
    classes: Sequence[str] | None,
    block: int,
    halo: int,
    max_classes: int | None = None,
    *,
    empty_ok: bool = False,
) -> LabelScan:
    """Check a label image and find the blocks (of :func:`iter_blocks`) that hold labels.

    Labels are read in regions of several blocks (about :data:`SCAN_PIXELS`), so a chunked
    file is not decompressed once per small block. Raises :class:`InvalidLabelsError`, naming
    the label file, for a wrong shape or dtype, negative or fractional values, more classes
    than named (or than ``max_classes``, default :data:`MAX_CLASSES`, when none are named: as
    soon as the region that shows it is read), or no labelled pixel (unless ``empty_ok``: a
    time point of a series that was not labelled gives ``top`` 0 and no blocks).
    """
    limit = class_limit(classes, max_classes)
    check_shape(labels.shape, spatial_shape, labels.path)
    check_dtype(labels.dtype, labels.path)
    span = block * max(1, round(SCAN_PIXELS ** (1 / len(labels.shape))) // block)
    regions: dict[tuple[int, ...], list] = {}
    for read, core in iter_blocks(labels.shape, block, halo):
        target = tuple(
            slice(r.start + c.start, r.start + c.stop) for r, c in zip(read, core, strict=True)
        )
        regions.setdefault(tuple(t.start // span for t in target), []).append((read, core, target))
    top, blocks = 0, []
    seen = np.zeros(limit + 1, bool)
    for members in regions.values():
        origin = [min(m[2][d].start for m in members) for d in range(len(labels.shape))]
        stop = [max(m[2][d].stop for m in members) for d in range(len(labels.shape))]
        region = labels.read(tuple(slice(a, b) for a, b in zip(origin, stop, strict=True)))
        top = max(top, check_values(region, labels.path))
        if top > limit:
            raise too_many_classes(region, top, limit, classes, labels.path)
        labelled = region[region > 0]  # scribbles are sparse: count only labelled pixels
        if labelled.size:
            seen[: top + 1] |= np.bincount(labelled.astype(np.intp), minlength=top + 1) > 0
        for read, core, target in members:
            inside = zip(target, origin, strict=True)
            if np.any(region[tuple(slice(t.start - o, t.stop - o) for t, o in inside)]):
                blocks.append((read, core, target))
    if top == 0 and empty_ok:
        return LabelScan(0, [], ())
    check_top(top, classes, labels.path)
    return LabelScan(top, blocks, tuple(int(v) for v in np.flatnonzero(seen[1:]) + 1))


def _classes_text(numbers: Sequence[int]) -> str:
    """``[1]`` → ``class 1``; ``[1, 3]`` → ``classes 1, 3``."""
    return f"class {numbers[0]}" if len(numbers) == 1 else f"classes {summarize(numbers)}"


def check_classes(values: Sequence[int], n_classes: int, path: Any = None) -> None:
    """Check that the label values ``values`` (> 0, those that occur) use every class 1..K.

    The message shows a handful of values at most, and names the usual mistakes: a binary
    mask (0/255) or an instance image given as scribbles.

    Examples
    --------
    >>> check_classes([1, 2], 2)
    >>> check_classes([2], 2)
    Traceback (most recent call last):
    scopeml.errors.InvalidLabelsError: labels use only class 2: 0 is unlabelled, classes are 1..2 \
and at least two must be labelled — label class 1 too
    >>> try:
    ...     check_classes([255], 255)
    ... except InvalidLabelsError as err:
    ...     print(str(err)[:53])
    labels use only the values 0 and 255 (a binary mask?)
    """
    values = sorted(values)
    absent = sorted(set(range(1, n_classes + 1)) - set(values))
    if len(values) == 1 and 1 < values[0] <= min(n_classes, MANY_CLASSES):  # one of the named
        raise InvalidLabelsError(  # classes alone ("map 2 to 1" contradicted --classes bg,fg)
            f"labels use only class {values[0]}: 0 is unlabelled, classes are 1..{n_classes} "
            f"and at least two must be labelled — label {_classes_text(absent)} too",
            path=path,
        )
    if len(values) == 1:
        value = values[0]
        mask, fix = (" (a binary mask?)", f"map {value} to 1 and ") if value > 1 else ("", "")
        raise InvalidLabelsError(
            f"labels use only the values 0 and {value}{mask}: 0 is unlabelled, classes are 1..K "
            f"and at least two classes must be labelled — {fix}label a second class (e.g. the "
            "background) as 2",
            path=path,
        )
    if absent:
        raise InvalidLabelsError(
            f"every class 1..{n_classes} needs labelled pixels; labels use values "
            f"{summarize(values)}, none for {summarize(absent)} (0 is unlabelled; number the "
            f"classes 1..K without gaps){like_an_image(values, n_classes)}",
            path=path,
        )
    if len(values) > MANY_CLASSES:
        import warnings

        from scopeml.errors import find_stack_level

        warnings.warn(
            f"{'' if path is None else f'{path}: '}the labels have {len(values)} classes"
            f"{like_an_image(values, len(values))}",
            UserWarning,
            stacklevel=find_stack_level(),
        )


#: More classes than scribbles have, for a person painting them: an instance mask or an image.
MANY_CLASSES = 32


def like_an_image(values: Sequence[int], n_classes: int) -> str:
    """What labels of many values and classes usually are, said after the count: an
    instance mask (each object a class), or the image itself given where the labels go."""
    if len(values) <= MANY_CLASSES // 2 or n_classes <= MANY_CLASSES:
        return ""
    return "; an instance mask, or the image given as the labels (the image comes first)?"


def check_labels(
    labels: Any,
    spatial_shape: tuple[int, ...],
    classes: Sequence[str] | None = None,
    max_classes: int | None = None,
) -> np.ndarray:
    """Return ``labels`` in the smallest unsigned type that holds them (no copy if already
    so) after checking shape, values, the class limit (see :func:`class_limit`) and that some
    are labelled.

    Examples
    --------
    >>> check_labels(np.array([[0, 1], [2, 0]]), (2, 2)).dtype
    dtype('uint8')
    """
    labels = np.asarray(labels)
    check_shape(labels.shape, spatial_shape)
    check_dtype(labels.dtype)
    top = check_values(labels)
    limit = class_limit(classes, max_classes)
    if top > limit:
        raise too_many_classes(labels, top, limit, classes)
    check_top(top, classes)
    return labels.astype(label_dtype(top), copy=False)


def check_shape(shape: tuple[int, ...], spatial_shape: tuple[int, ...], path: Any = None) -> None:
    if tuple(shape) != tuple(spatial_shape):
        hint = ""
        if len(shape) == len(spatial_shape) + 1 and tuple(shape[1:]) == tuple(spatial_shape):
            hint = (f"; labels per time point need the image's {shape[0]} planes read as "
                    "time points (axes='TYX')")  # fmt: skip
        elif len(shape) == 2 and spatial_shape[-1] in (3, 4) and shape[1] == spatial_shape[0]:
            hint = (f"; an RGB array of Y×X×{spatial_shape[-1]} is read channels first: give "
                    "axes='YXC'")  # fmt: skip
        raise InvalidLabelsError(
            f"labels have shape {tuple(shape)}; the image's spatial shape is "
            f"{tuple(spatial_shape)}{hint}",
            path=path,
        )


def check_dtype(dtype: np.dtype, path: Any = None) -> None:
    if dtype.kind not in "buif":
        raise InvalidLabelsError(f"labels have dtype {dtype}; expected integers", path=path)


def check_values(labels: np.ndarray, path: Any = None) -> int:
    """The largest value of a block of labels, after checking they are whole and ≥ 0."""
    if labels.size == 0:
        return 0
    floating = labels.dtype.kind == "f"
    if floating and (not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels))):
        raise InvalidLabelsError("labels must be whole numbers (0 = unlabelled, 1..K)", path=path)
    if labels.dtype.kind in "if" and labels.min() < 0:
        raise InvalidLabelsError(f"labels contain {labels.min()}; values must be ≥ 0", path=path)
    return int(labels.max())


def class_limit(classes: Sequence[str] | None, max_classes: int | None = None) -> int:
    """The largest label value allowed: the number of named classes, else ``max_classes``."""
    if classes is not None:
        return min(len(classes), LABEL_LIMIT)
    return min(MAX_CLASSES if max_classes is None else int(max_classes), LABEL_LIMIT)


def too_many_classes(
    region: np.ndarray, top: int, limit: int, classes: Sequence[str] | None, path: Any = None
) -> InvalidLabelsError:
    """The error for labels beyond the class limit, with their values summarised.

    Examples
    --------
    >>> message = str(too_many_classes(np.arange(5001), 5000, 255, None))
    >>> message[:59]
    'labels go up to 5000 (values 1, 2, 3, 4, 5, … (5000 in all)'
    >>> len(message) < 300
    True
    """
    values = np.unique(region)
    values = values[values > 0]
    found = f"values {summarize(values.astype(np.int64).tolist())} in one region"
    if classes is not None:
        return InvalidLabelsError(
            f"labels go up to {top} ({found}); {len(classes)} class names were given", path=path
        )
    return InvalidLabelsError(
        f"labels go up to {top} ({found}), more than the {limit} classes allowed; these look "
        "like instance labels (one value per object): give class labels 1..K, or name every "
        "class (classes=, --classes) to allow more",
        path=path,
    )


def check_top(top: int, classes: Sequence[str] | None, path: Any = None) -> None:
    if top == 0:
        raise InvalidLabelsError("no pixel is labelled (all labels are 0)", path=path)
    if classes is not None and top > len(classes):
        raise InvalidLabelsError(
            f"labels go up to {top}; {len(classes)} class names were given", path=path
        )
    if top > LABEL_LIMIT:
        raise InvalidLabelsError(f"labels go up to {top}; at most {LABEL_LIMIT} classes", path=path)
