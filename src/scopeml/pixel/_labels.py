"""A label file opened for training: the one rule for a plain TIFF of a series' time points.

A label image has one channel, and Z planes only where its image has them. A file that does not
name its axes cannot say whether its pages are planes or time points: a plain multi-page TIFF
(``tifffile.imwrite`` of a ``T×Y×X`` array, ImageJ's or napari's plain stack) reads as Z planes,
and one of 3 or 4 pages is written as one RGB(A) page, which reads as channels. For an image
with several time points and one plane, label pages read as planes or as channels can only be
its time points, so a TIFF of ``T×Y×X`` pages is read so (``axes="TYX"``). ``scopeml pixel
train``, :func:`scopeml.train_pixel_classifier` and the napari scribbles import all open label
files here; each then checks the sizes against its image's.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from os import PathLike

from scopeml.errors import InvalidLabelsError, ScopeMLError, find_stack_level
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.io.registry import takes_axes


def pages_are_time_points(labels: Mapping[str, int], image: Mapping[str, int]) -> bool:
    """Whether labels read with ``labels`` sizes are the time points of an image of ``image``
    sizes: the image has time points and one plane, the labels one time point and pages read
    as planes or as the channels of one colour page (one of them, not both).

    Examples
    --------
    >>> movie = {"T": 6, "Z": 1}
    >>> pages_are_time_points({"T": 1, "C": 1, "Z": 6}, movie)
    True
    >>> pages_are_time_points({"T": 1, "C": 3, "Z": 1}, movie)  # a 3-page TIFF is one RGB page
    True
    >>> pages_are_time_points({"T": 1, "C": 1, "Z": 6}, {"T": 1, "Z": 1})  # not a series
    False
    """
    t, c, z = (labels.get(a, 1) for a in "TCZ")
    series = image.get("T", 1) > 1 and image.get("Z", 1) == 1
    return series and t == 1 and labels.get("S", 1) == 1 and (c == 1) != (z == 1)


def open_training_labels(path: str | PathLike[str], image: Mapping[str, int]) -> Image:
    """The label image at ``path`` for an image of ``image`` sizes (``{"T": 6, "Z": 1, …}``;
    an :class:`Image`'s ``sizes``), as a lazy :class:`Image` the caller closes.

    Read by the axes the file names; pages that :func:`pages_are_time_points` says are time
    points are read as ``T×Y×X`` (the warning that they were read as planes is then not
    given). Labels left with several channels are refused with one line saying what was found.
    The caller checks the sizes against the image's.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = open_image(path)
    try:
        found = labels.sizes
        if pages_are_time_points(found, image) and takes_axes(path):
            as_time = _as_time_points(path, found)
            if as_time is not None:
                labels.close()
                return as_time
        if found["C"] > 1:
            raise InvalidLabelsError(_channels_problem(found, image), path=path)
    except BaseException:
        labels.close()
        raise
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=find_stack_level())
    return labels


def _as_time_points(path: str | PathLike[str], found: Mapping[str, int]) -> Image | None:
    """The file read as ``T×Y×X``, if that gives its pages as time points of the same Y×X
    (``None`` for a file with more axes, or samples stored with each pixel)."""
    try:
        as_time = open_image(path, axes="TYX")
    except ScopeMLError:
        return None
    pages = found["Z"] * found["C"]
    if (as_time.sizes["T"], as_time.sizes["Y"], as_time.sizes["X"]) == (
        pages,
        found["Y"],
        found["X"],
    ):
        return as_time
    as_time.close()
    return None


def _channels_problem(found: Mapping[str, int], image: Mapping[str, int]) -> str:
    """What a label image of several channels is, in one line."""
    sizes = " ".join(f"{a}={n}" for a, n in found.items() if n > 1 or a in "YX")
    text = (
        f"labels have {found['C']} channels ({sizes}); labels must be one channel of class "
        "values (0 = unlabelled, 1..K = class), e.g. a grey 8-bit TIFF"
    )
    t = image.get("T", 1)
    if t > 1:
        text += (
            f"; the image has {t} time points: a T×Y×X label TIFF of {t} pages, or one naming "
            "its axes (OME-TIFF)"
        )
    return text
