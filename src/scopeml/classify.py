"""Classification models (czann ``SingleClassClassification`` / ``MultiClassClassification``):
one class per image plane, or per object of a label image.

A classification graph takes a fixed ``H×W×C`` input (``InputShape``) and returns ``K`` scores
(``OutputShape`` ``[K]``). **Input size:** a whole plane is *resized* to ``H×W`` (linear
interpolation with anti-aliasing), as ZEN feeds whole-image classifiers: the model sees the
whole field of view, as in training, whatever the image size. (Averaging over ``H×W`` tiles
would instead ask the model about parts it was never shown whole.) Per object, a window of
``H×W`` centred on the object is cut out (larger when the object is larger, then resized), so
the model sees the object at its own scale with its surroundings.

Scores are read as probabilities: with ``K == 1`` (a single class) ``p`` is the probability of
that class and ``1 - p`` of ``not <class>``; with ``K > 1`` the class is the argmax. A policy in
the container (``ScopeMLNormalize``) is applied from whole-image statistics, never per crop.

Layer 3 (uses the model layer, the image readers and the objects' public API).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeml.errors import IncompatibleModelError, InvalidLabelsError, InvalidRequestError
from scopeml.io.image import Image
from scopeml.model.metadata import default_classes
from scopeml.progress import Progress, ProgressEvent, as_progress

__all__ = [
    "ImageClassifier",
    "classify_images",
    "classify_object_crops",
    "open_image_classifier",
]

CLASSIFICATION_TYPES = ("SingleClassClassification", "MultiClassClassification")


class ImageClassifier:
    """A classification container ready to run: metadata and one ONNX Runtime session.

    ``predict`` maps ``N×C×H×W`` (channels first, as everywhere in scopeml) to ``N×K`` class
    probabilities.
    """

    def __init__(self, path: str | PathLike[str], *, time_budget: float | None = None) -> None:
        import onnxruntime as ort

        from scopeml.model.container import read_container
        from scopeml.model.registry import resolve_model
        from scopeml.model.runtime import (
            check_constant_tensors,
            choose_providers,
            resolve_time_budget,
        )

        path = resolve_model(path)  # a built-in name too, as everywhere a model is asked for
        from scopeml.model.bioimageio.package import is_package
        from scopeml.model.registry import check_kind

        check_kind(path, ["object-classifier", "pixel-classifier"], "a classification model")

        if is_package(path):  # a bioimage.io package, imported in memory as it converts
            from scopeml.model.bioimageio.run import package_container

            container = package_container(path)
        else:
            container = read_container(path)
        self.path = Path(path)
        meta = container.metadata
        kind = getattr(getattr(meta, "model_type", None), "value", "legacy segmentation")
        if kind == "ObjectDetection":
            raise IncompatibleModelError(
                "ObjectDetection models are not supported yet (boxes have no scopeml output); "
                "scopeml model inspect shows its metadata",
                path=path,
            )
        if kind not in CLASSIFICATION_TYPES:
            raise IncompatibleModelError(
                f"a {kind} model is not a classifier; run it with scopeml segment", path=path
            )
        if meta.spatial_dims != 2:
            raise IncompatibleModelError(
                "3-D classification models are not supported (InputShape "
                f"{list(meta.input_shape)})",
                path=path,
            )
        self.metadata = meta
        self.input_size: tuple[int, int] = tuple(int(n) for n in meta.input_shape[:2])
        self.in_channels = int(meta.in_channels)
        count = int(meta.output_shape[-1])
        self.classes: tuple[str, ...] = tuple(meta.classes or default_classes(count))
        self.normalize: str | None = meta.normalize
        self.time_budget = resolve_time_budget(time_budget)
        check_constant_tensors(container)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            container.onnx_bytes, sess_options=options, providers=choose_providers()
        )
        self._input = self._session.get_inputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``N×C×H×W`` float32 → ``N×K`` float32 probabilities (see the module docstring)."""
        scores = self.scores(batch)
        if len(self.classes) == 1:
            return np.concatenate([scores, 1 - scores], axis=1)
        return scores

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """The graph's ``N×K`` output as it is (one class: its probability alone)."""
        expected = (self.in_channels, *self.input_size)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise IncompatibleModelError(
                f"batch has shape {batch.shape}; the model expects N×{expected} (N×C×H×W)",
                path=self.path,
            )
        nhwc = np.ascontiguousarray(np.moveaxis(batch, 1, -1), dtype=np.float32)
        scores = np.asarray(self._run(nhwc), np.float32).reshape(len(batch), -1)
        if scores.shape[1] != len(self.classes):
            raise IncompatibleModelError(
                f"the graph returned {scores.shape[1]} scores; the model has "
                f"{len(self.classes)} classes",
                path=self.path,
            )
        return scores

    @property
    def labels(self) -> tuple[str, ...]:
        """The names of the columns of :meth:`predict`."""
        if len(self.classes) == 1:
            return (self.classes[0], f"not {self.classes[0]}")
        return self.classes

    def _run(self, nhwc: np.ndarray) -> np.ndarray:
        from scopeml.model.runtime import run_within_budget

        feeds = {self._input: nhwc}
        return run_within_budget(
            self._session, None, feeds, time_budget=self.time_budget, path=self.path
        )[0]


def open_image_classifier(path: str | PathLike[str] | ImageClassifier) -> ImageClassifier:
    """Open a classification ``.czann`` (an opened one is returned as it is)."""
    return path if isinstance(path, ImageClassifier) else ImageClassifier(path)


def fit_size(block: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize a ``C×Y×X`` block to ``C×H×W`` (linear, anti-aliased when shrinking), float32.

    Examples
    --------
    >>> fit_size(np.ones((2, 40, 30)), (8, 8)).shape
    (2, 8, 8)
    """
    from skimage.transform import resize

    block = block.astype(np.float32, copy=False)
    if tuple(block.shape[1:]) == tuple(size):
        return block
    out = resize(block, (block.shape[0], *size), order=1, anti_aliasing=True, preserve_range=True)
    return out.astype(np.float32)


def _normalization(image: Image, policy: str | None, scene: int) -> Any:
    from scopeml.tiling.normalize import compute_normalization

    return compute_normalization(image, policy, scene=scene)


def _finite_block(block: np.ndarray, where: str) -> np.ndarray | None:
    """``C×Y×X`` pixels by the one rule for NaN and infinite ones (0 in every channel, see
    :mod:`scopeml.io.nonfinite`), with a warning naming ``where`` and how many; ``None``, with
    a warning, where no pixel is finite: nothing to classify (the row gets no class)."""
    import warnings

    from scopeml.errors import find_stack_level
    from scopeml.io.nonfinite import replace_nonfinite

    filled, invalid = replace_nonfinite(block)
    if invalid is None:
        return block
    count, total = int(invalid.sum()), invalid.size
    if count == total:
        problem = "every pixel is NaN or infinite: nothing to classify (its row has no class)"
    else:
        problem = f"{count} of {total} pixels are NaN or infinite; the model sees them as 0"
    warnings.warn(f"{where}: {problem}", UserWarning, stacklevel=find_stack_level())
    return None if count == total else filled


def _row(scores: np.ndarray | None, labels: Sequence[str]) -> dict[str, Any]:
    if scores is None:  # nothing to classify: no class, no probabilities
        return {
            "class": None,
            "probability": np.nan,
            **{f"probability_{n}": np.nan for n in labels},
        }
    best = int(np.argmax(scores))
    row: dict[str, Any] = {"class": labels[best], "probability": float(scores[best])}
    row.update({f"probability_{name}": float(p) for name, p in zip(labels, scores, strict=True)})
    return row


def classify_images(
    images: Iterable[str | PathLike[str] | Image],
    model: str | PathLike[str] | ImageClassifier,
    *,
    output: str | PathLike[str] | None = None,
    overwrite: bool = False,
    channels: Sequence[int | str] | int | str | None = None,
    axes: str | None = None,
    progress: Progress = None,
) -> pd.DataFrame:
    """Classify every plane (scene × time point × Z plane) of each image; one row per plane.

    Columns: ``image``, ``scene``, ``t``, ``z``, ``class``, ``probability`` and one
    ``probability_<class>`` per class. With ``output`` the table is also written (``.csv`` or
    ``.parquet``; a file already there is refused before any work unless ``overwrite``).
    ``channels`` are those fed to the model (names or indices, as in :func:`scopeml.segment`),
    ``axes`` a file's axes as there. ``progress`` hears stage ``"classify"`` in unit ``"plane"``.

    Examples
    --------
    >>> import numpy as np
    >>> class Bright:  # anything with input_size, in_channels, labels, normalize, predict
    ...     input_size, in_channels, labels, normalize = (4, 4), 1, ("dim", "bright"), None
    ...     def predict(self, batch):
    ...         p = (batch.mean(axis=(1, 2, 3)) > 5).astype(np.float32)
    ...         return np.stack([1 - p, p], axis=1)
    >>> planes = np.stack([np.zeros((9, 9)), np.full((9, 9), 9.0)]).reshape(1, 2, 1, 1, 9, 9)
    >>> classify_images([Image(planes)], Bright())["class"].tolist()
    ['dim', 'bright']
    """
    from scopeml.io import open_image
    from scopeml.objects.table import check_table_output, write_table
    from scopeml.tiling.engine import check_pixel_values

    if output is not None:
        check_table_output(output, overwrite=overwrite)
    classifier = open_image_classifier(model) if isinstance(model, (str, PathLike)) else model
    report = as_progress(progress)
    rows: list[dict[str, Any]] = []
    for source in images:
        opened = not isinstance(source, Image)
        image = open_image(source, axes=axes) if opened else source
        name = str(source) if opened else str(image.path or "")
        try:
            image = chosen_channels(image, channels)
            check_pixel_values(image)
            _check_channels(image, classifier)
            rows.extend(_classify_planes(image, name, classifier, report, len(rows)))
        finally:
            if opened:
                image.close()
    table = pd.DataFrame(rows)
    if output is not None:
        write_table(table, output, overwrite=overwrite)
    return table


def _classify_planes(
    image: Image, name: str, classifier: Any, report: Any, before: int
) -> list[dict[str, Any]]:
    """One row per scene × time point × Z plane of one image."""
    rows: list[dict[str, Any]] = []
    sizes = image.sizes
    for s in range(sizes["S"]):
        normalization = _normalization(image, classifier.normalize, s)
        for t in range(sizes["T"]):
            for z in range(sizes["Z"]):
                block = image.read(S=s, T=t, Z=z)[0, 0, :, 0]
                if normalization is not None:
                    block = normalization.at(t).apply(block)
                block = _finite_block(block, f"{name}: scene {s}, t {t}, z {z}")
                scores = (
                    None if block is None
                    else classifier.predict(fit_size(block, classifier.input_size)[None])[0]
                )  # fmt: skip
                rows.append({"image": name, "scene": s, "t": t, "z": z,
                             **_row(scores, classifier.labels)})  # fmt: skip
                report(ProgressEvent("classify", before + len(rows), None, "plane"))
    return rows


def chosen_channels(image: Image, channels: Sequence[int | str] | int | str | None) -> Image:
    """``image`` with only ``channels`` (one name or index, or several), or all of them."""
    if channels is None:
        return image
    return image.select_channels([channels] if isinstance(channels, (int, str)) else channels)


def _check_channels(image: Image, classifier: Any) -> None:
    if image.sizes["C"] != classifier.in_channels:
        raise IncompatibleModelError(
            f"image has {image.sizes['C']} channels; the model expects {classifier.in_channels}: "
            f"choose with --channels (channels= in Python) from {', '.join(image.channel_names)}",
            path=getattr(image, "path", None),
        )


def object_windows(
    labels: np.ndarray, size: Sequence[int]
) -> list[tuple[int, tuple[slice, slice]]]:
    """``(id, (rows, cols))`` of a window at least ``size`` centred on each object's box.

    Windows may run past the image edge (the caller pads); ids in increasing order.

    Examples
    --------
    >>> labels = np.zeros((10, 10), int); labels[4:6, 4:6] = 1
    >>> object_windows(labels, (4, 4))
    [(1, (slice(3, 7, None), slice(3, 7, None)))]
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]  # the ids present, compacted to 1..n: find_objects sizes by the largest
    compact = np.where(labels > 0, np.searchsorted(ids, labels) + 1, 0)
    windows = []
    for index, box in enumerate(ndimage.find_objects(compact)):
        window = []
        for axis, want in zip(box, size, strict=True):
            extent = max(axis.stop - axis.start, int(want))
            start = (axis.start + axis.stop - extent) // 2
            window.append(slice(start, start + extent))
        windows.append((int(ids[index]), (window[0], window[1])))
    return windows


def object_labels(labels: np.ndarray | Image) -> np.ndarray:
    """Instance labels as ``objects measure`` takes them (integers, none negative, ids below
    2**63: its checks); errors name an :class:`Image`'s file.

    >>> object_labels(np.array([[0, -1]]))
    Traceback (most recent call last):
    scopeml.errors.InvalidLabelsError: labels must be non-negative; found -1
    """
    from scopeml.objects.images import check_label_image
    from scopeml.objects.measure import _check_labels

    path = labels.path if isinstance(labels, Image) else None
    try:
        if isinstance(labels, Image):
            check_label_image(labels)  # one channel of integers, before any pixel is read
            labels = _plane(labels, "labels")[0]
        labels = _check_labels(labels)
    except InvalidLabelsError as err:
        if err.path or path is None:
            raise
        raise InvalidLabelsError(err.problem, path=path) from err
    return labels


def _plane(image: Image, name: str) -> np.ndarray:
    """The ``C×Y×X`` pixels of an image of one plane (one scene, time point and Z plane)."""
    extra = {axis: n for axis, n in image.sizes.items() if axis in "STZ" and n > 1}
    if extra:
        raise InvalidRequestError(
            f"per-object classification takes one 2-D plane; the {name} has {extra}",
            path=image.path,
        )
    return image.read()[0, 0, :, 0]


def _object_pixels(image: np.ndarray | Image) -> np.ndarray:
    """``C×Y×X`` pixels of a plane, refused (naming an :class:`Image`'s file) where they are
    no numbers to compute with (complex: :func:`~scopeml.tiling.engine.check_pixel_values`)."""
    from scopeml.tiling.engine import check_pixel_values

    if isinstance(image, Image):
        check_pixel_values(image)
        return _plane(image, "image")
    pixels = np.asarray(image)
    pixels = pixels[None] if pixels.ndim == 2 else pixels
    if pixels.ndim == 3:
        check_pixel_values(Image(pixels[None, None, :, None]))
    return pixels


def _cut(block: np.ndarray, window: tuple[slice, slice]) -> np.ndarray:
    """``C×Y×X`` → the window, padded with edge values where it leaves the image."""
    pads, inside = [(0, 0)], [slice(None)]
    for axis, sl in zip(block.shape[1:], window, strict=True):
        lo, hi = max(sl.start, 0), min(sl.stop, axis)
        pads.append((lo - sl.start, sl.stop - hi))
        inside.append(slice(lo, hi))
    return np.pad(block[tuple(inside)], pads, mode="edge")


def classify_object_crops(
    labels: np.ndarray | Image,
    image: np.ndarray | Image,
    model: str | PathLike[str] | ImageClassifier,
    *,
    table: pd.DataFrame | None = None,
    column: str = "class",
) -> pd.DataFrame:
    """Classify each object of a ``Y×X`` instance-label image from a crop of ``image`` around it.

    ``image`` is ``Y×X`` or ``C×Y×X`` (normalised here with the model's policy over the whole
    image); either may be an opened one-plane :class:`~scopeml.io.image.Image`, whose file a
    bad one's error then names. Labels are checked as ``objects measure`` checks them
    (integers, none negative). Returns ``table`` (default:
    :func:`scopeml.objects.measure_objects` of the labels) with ``column``,
    ``<column>_probability`` and one ``probability_<class>`` column per class, matched on
    ``label``.

    Examples
    --------
    >>> class Bright:
    ...     input_size, in_channels, labels, normalize = (4, 4), 1, ("dim", "bright"), None
    ...     def predict(self, batch):
    ...         p = (batch.max(axis=(1, 2, 3)) > 5).astype(np.float32)
    ...         return np.stack([1 - p, p], axis=1)
    >>> labels = np.zeros((12, 12), int); labels[1:3, 1:3] = 1; labels[8:10, 8:10] = 2
    >>> pixels = np.where(labels == 2, 9.0, 1.0)
    >>> classify_object_crops(labels, pixels, Bright())[["label", "class"]].values.tolist()
    [[1, 'dim'], [2, 'bright']]
    """
    from scopeml.objects import measure_objects

    classifier = open_image_classifier(model) if isinstance(model, (str, PathLike)) else model
    labels = object_labels(labels)
    pixels = _object_pixels(image)
    if labels.ndim != 2 or pixels.shape[1:] != labels.shape:
        raise InvalidRequestError(
            f"labels {labels.shape} and image {pixels.shape} must be Y×X and (C×)Y×X of the "
            "same plane"
        )
    if pixels.shape[0] != classifier.in_channels:
        raise IncompatibleModelError(
            f"image has {pixels.shape[0]} channels; the model expects {classifier.in_channels}",
            path=getattr(classifier, "path", None),
        )
    normalization = _normalization(Image(pixels[None, None, :, None]), classifier.normalize, 0)
    if normalization is not None:
        pixels = normalization.at(0).apply(pixels)
    rows = []
    for label, window in object_windows(labels, classifier.input_size):
        crop = fit_size(_cut(pixels, window), classifier.input_size)
        scores = classifier.predict(crop[None])[0]
        best = int(np.argmax(scores))
        row = {"label": label, column: classifier.labels[best],
               f"{column}_probability": float(scores[best])}  # fmt: skip
        names = classifier.labels
        row.update({f"probability_{n}": float(p) for n, p in zip(names, scores, strict=True)})
        rows.append(row)
    predicted = pd.DataFrame(rows)
    base = measure_objects(labels, shape_features=False) if table is None else table
    base = base.drop(columns=[c for c in predicted.columns if c != "label" and c in base])
    return base.merge(predicted, on="label", how="left")
