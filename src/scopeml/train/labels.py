"""U-Net training labels checked before any training, each problem said naming the label file.

Dense labels hold the class index of every pixel (``0`` = background, ``k`` = class ``k``);
sparse labels (scribbles) hold ``0`` = unlabelled and ``k`` = class ``k - 1``. The usual
mistakes are refused in one line: an instance mask or the image itself given as the labels
(many values; the pixel classifier's limits and wording, :mod:`scopeml.pixel._sources`), a
binary 0/255 mask (a gap in the class numbers), values not whole or negative, one class only;
dense labels that are almost all 0 in every image (scribbles given without ``sparse``) are
warned about.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from scopeml.errors import InvalidLabelsError, find_stack_level, summarize
from scopeml.pixel._sources import (
    MANY_CLASSES,
    MAX_CLASSES,
    check_dtype,
    check_values,
    like_an_image,
)

#: Share of 0 in every dense label image above which the labels look like scribbles.
SCRIBBLE_ZEROS = 0.95
_SPARSE_HINT = "scribbles (0 = unlabelled, k = class k-1)? train with --sparse"


def check_training_labels(
    labels: Sequence[np.ndarray],
    classes: Sequence[str] | None,
    *,
    sparse: bool,
    names: Sequence[str | None] | None = None,
) -> tuple[str, ...]:
    """Check label images; return the class names, ``background, class 1, …`` up to the
    largest label when ``classes`` is ``None`` (else ``classes`` as given, as a tuple).

    ``names``: the label files, named in the messages (``None``: none named).

    Examples
    --------
    >>> check_training_labels([np.array([[0, 1], [2, 0]])], None, sparse=False)
    ('background', 'class 1', 'class 2')
    >>> check_training_labels([np.zeros((2, 2), int)], None, sparse=False, names=["a.tif"])
    Traceback (most recent call last):
    scopeml.errors.InvalidLabelsError: a.tif: only one class (0) in the labels: a network \
needs at least two (dense labels: 0 = background, k = class k; scribbles: --sparse)
    """
    names = list(names) if names is not None else [None] * len(labels)
    first = 1 if sparse else 0
    counts = np.zeros(1, np.int64)
    tops = []
    for label, name in zip(labels, names, strict=True):
        found = _value_counts(np.asarray(label), classes, sparse, name)
        counts = _added(counts, found)
        tops.append(len(found) - 1)
    present = [int(v) for v in np.flatnonzero(counts) if v >= first]
    everywhere = _common(names)
    if classes is None:
        top = max(tops)
        _check_numbering(present, first, top, names[int(np.argmax(tops))])
        classes = ["background", *(f"class {k}" for k in range(1, max(top + 1 - first, 2)))]
    if len(present) < 2:
        raise _one_class(present, sparse, everywhere)
    if not sparse and len(present) >= 3:  # scribbles mark their background too: 0, 1, 2…
        _warn_scribbles(labels, everywhere)
    return tuple(classes)


def _value_counts(
    label: np.ndarray, classes: Sequence[str] | None, sparse: bool, name: str | None
) -> np.ndarray:
    """Pixels per label value (``bincount``) of one label image, after checking its values:
    whole, ≥ 0, within the named classes or few enough to be classes."""
    check_dtype(label.dtype, name)
    top = check_values(label, name)
    if classes is not None:
        high = len(classes) if sparse else len(classes) - 1
        if top > high:
            hint = f"; {_SPARSE_HINT}" if not sparse and top == high + 1 else ""
            raise InvalidLabelsError(
                f"labels range {int(label.min())}..{top}; {len(classes)} classes allow 0..{high} "
                f"({'0 = unlabelled, k = class k-1' if sparse else 'class index'}){hint}",
                path=name,
            )
    elif top > MAX_CLASSES:  # gaps (a 0/255 mask) or too many values: refused either way
        values = [int(v) for v in np.unique(label) if v >= int(sparse)]
        if len(values) <= MANY_CLASSES:
            _check_numbering(values, int(sparse), top, name)
        raise _many_values(label, sparse, name)
    counts = np.bincount(label.ravel().astype(np.intp), minlength=top + 1)
    if classes is None and np.count_nonzero(counts[int(sparse) :]) > MANY_CLASSES:
        raise _many_values(label, sparse, name)
    if sparse and top == 0:
        raise InvalidLabelsError(
            "labels contain no labelled pixels (all are 0: unlabelled, with --sparse)", path=name
        )
    return counts


def _added(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sum of two ``bincount`` results of any lengths."""
    out = np.zeros(max(len(a), len(b)), np.int64)
    out[: len(a)] += a
    out[: len(b)] += b
    return out


def _many_values(label: np.ndarray, sparse: bool, name: str | None) -> InvalidLabelsError:
    """Labels of more values than a person labels classes with, as one line."""
    values = np.unique(label)
    values = values[values > 0] if sparse else values
    n_classes = int(values[-1]) + (0 if sparse else 1)
    listed = summarize(int(v) for v in values)
    return InvalidLabelsError(
        f"labels have {len(values)} values ({listed}): {n_classes} classes"
        f"{like_an_image(values.tolist(), n_classes) or '?'} Give labels of a few classes "
        f"({'1.. = class, 0 = unlabelled' if sparse else '0 = background, 1.. = class'}), or "
        "name every class (--classes) to train that many",
        path=name,
    )


def _check_numbering(present: list[int], first: int, top: int, name: str | None) -> None:
    """Refuse class numbers with gaps (the classes are inferred from the largest label): a
    binary 0/255 mask, or an instance mask with some objects removed."""
    absent = sorted(set(range(first, top + 1)) - set(present))
    if not absent:
        return
    if not first and present == [0, top]:
        raise InvalidLabelsError(
            f"labels use only the values 0 and {top} (a binary mask?): classes are numbered "
            f"0, 1, … without gaps: map {top} to 1",
            path=name,
        )
    raise InvalidLabelsError(
        f"labels use the values {summarize(present)}, none for {summarize(absent)}: number "
        f"the classes {first}, {first + 1}, … without gaps"
        f"{like_an_image(present, top + 1 - first)}, or name every class (--classes)",
        path=name,
    )


def _one_class(present: list[int], sparse: bool, name: str | None) -> InvalidLabelsError:
    """Labels of one class only: nothing for a network to tell apart."""
    if sparse:
        return InvalidLabelsError(
            f"only one class ({present[0]}) is labelled: scribble at least two classes "
            "(1 = the first, 2 = the second, …)",
            path=name,
        )
    return InvalidLabelsError(
        f"only one class ({present[0] if present else 0}) in the labels: a network needs at "
        "least two (dense labels: 0 = background, k = class k; scribbles: --sparse)",
        path=name,
    )


def _warn_scribbles(labels: Sequence[np.ndarray], name: str | None) -> None:
    """Warn when almost every pixel of every dense label image is 0: scribbles, most likely,
    which train 0 as a class ("background") unless ``sparse``. Called for labels of three
    values or more: a dense mask of a few spots (0 and 1) is mostly 0 too."""
    zeros = [int(np.count_nonzero(np.asarray(label) == 0)) for label in labels]
    sizes = [max(np.asarray(label).size, 1) for label in labels]
    if min(z / s for z, s in zip(zeros, sizes, strict=True)) <= SCRIBBLE_ZEROS:
        return
    where = f"{name}: " if name else ""
    warnings.warn(
        f"{where}{100 * sum(zeros) / sum(sizes):.2f} % of the labels are 0: {_SPARSE_HINT}",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def _common(names: Sequence[str | None]) -> str | None:
    """What names all the label files: the file if one, else the folder they share."""
    if any(name is None for name in names):
        return None
    if len(names) == 1:
        return names[0]
    try:
        return os.path.commonpath([os.fspath(name) for name in names]) or None
    except ValueError:  # different drives
        return None
