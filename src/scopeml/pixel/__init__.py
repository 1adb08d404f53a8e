"""The random-forest pixel classifier, trained from sparse labels.

Train on multi-scale filter features of one or several images with sparse labels (0 unlabelled,
``1..K`` classes), predict class probabilities through the :class:`~scopeml.model.spec.Model`
protocol (so the tiling engine runs it like any DNN), save and load as a ``.czseg`` zip
container without pickle. Output channel ``k`` is the probability of label value ``k + 1``.

Examples
--------
>>> import numpy as np
>>> from scopeml.synthetic import synthetic_nuclei
>>> image, truth = synthetic_nuclei((64, 64), density=0.003, seed=0)
>>> labels = np.zeros_like(truth)
>>> labels[::7, ::7] = (truth[::7, ::7] > 0) + 1        # sparse points, classes 1 and 2
>>> clf = train_classifier(image, labels, classes=["background", "nucleus"], n_estimators=10)
>>> clf.predict(image[None].astype(np.float32)).shape   # N×K×Y×X
(1, 2, 64, 64)
"""

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from scopeml.model.registry import register_format
from scopeml.model.safezip import peek_json
from scopeml.pixel._cache import FeatureCache
from scopeml.pixel._classifier import PixelClass, PixelClassifier, train_classifier
from scopeml.pixel._container import (
    FORMAT,
    ClassifierMetadata,
    load_classifier,
    read_metadata,
    save_classifier,
)
from scopeml.pixel._sources import check_labels


def _is_pixel_classifier(path: Path) -> bool:
    meta = peek_json(path, "model.json")
    return isinstance(meta, dict) and meta.get("Format") == FORMAT


def _open_pixel_classifier(
    path: Path, workers: int | None, *, allowed_roots: Sequence[str | PathLike[str]] | None = None
) -> PixelClassifier:
    return load_classifier(path, n_jobs=workers or -1, allowed_roots=allowed_roots)


register_format(
    "pixel-classifier",
    description="scopeml pixel classifier .czseg: random forest on filter features",
    sniff=_is_pixel_classifier,
    load=_open_pixel_classifier,
    names_files=True,  # its feature network, when not stored inside it
)

__all__ = [
    "FORMAT",
    "ClassifierMetadata",
    "FeatureCache",
    "PixelClass",
    "PixelClassifier",
    "check_labels",
    "load_classifier",
    "read_metadata",
    "save_classifier",
    "train_classifier",
]
