"""From class probabilities to the written outputs: labels, probabilities, confidence, mask;
and from a regression model's output to its ``image`` output (values as the model gives them).

Output dtypes follow from the model (its class count), never from the input image.
Labels follow ilastik and ZEN: class ``k`` (output channel ``k``) is label ``k + 1``, and 0 means
unclassified (below ``min_confidence``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scopeml.errors import IncompatibleModelError, InvalidRequestError
from scopeml.io.dtypes import label_dtype

#: The czann model type whose output is an image, not class probabilities.
REGRESSION = "Regression"


@dataclass(frozen=True)
class OutputSpec:
    """One output array: its name, dtype and channel names (``()`` when it has no channel axis)."""

    name: str
    dtype: np.dtype
    channel_names: tuple[str, ...] = ()


def output_specs(
    classes: Sequence[str], outputs: Sequence[str], probability_dtype: str = "float32"
) -> list[OutputSpec]:
    """Describe the arrays a run writes, in the order of ``outputs``."""
    specs = []
    for name in outputs:
        if name == "labels":
            specs.append(OutputSpec(name, label_dtype(len(classes))))
        elif name == "probabilities":
            specs.append(OutputSpec(name, np.dtype(probability_dtype), tuple(classes)))
        elif name == "confidence":
            specs.append(OutputSpec(name, np.dtype(np.float32)))
        elif name == "mask":
            specs.append(OutputSpec(name, np.dtype(np.uint8)))
        elif name == "image":
            if probability_dtype not in ("float32", "float16"):
                raise InvalidRequestError(
                    f"the image output is float32 or float16; got {probability_dtype!r}"
                )
            specs.append(OutputSpec(name, np.dtype(probability_dtype), tuple(classes)))
        else:
            raise InvalidRequestError(f"unknown output {name!r}")
    return specs


def model_outputs(
    model_type: str | None, outputs: Sequence[str], min_confidence: float | None = None
) -> tuple[str, ...]:
    """The outputs a run writes for a model of ``model_type`` (a czann ``Type``, or ``None``).

    A ``Regression`` model's output is an image, not classes: it writes ``image`` only, and the
    default ``("labels",)`` becomes ``("image",)``; class outputs and a ``min_confidence`` (of
    a class) are refused. Other models cannot write ``image``.

    Examples
    --------
    >>> model_outputs("Regression", ["labels"]), model_outputs(None, ["labels", "mask"])
    (('image',), ('labels', 'mask'))
    """
    outputs = tuple(outputs)
    if model_type == REGRESSION:
        if min_confidence is not None:
            raise IncompatibleModelError(
                "a Regression model writes an image, not classes: min_confidence (the least "
                "probability of a labelled class) does not apply; leave it out"
            )
        if outputs == ("labels",):
            return ("image",)
        wrong = [name for name in outputs if name != "image"]
        if wrong:
            raise IncompatibleModelError(
                f"a Regression model writes an image, not {', '.join(wrong)}; choose outputs=image"
            )
    elif "image" in outputs:
        raise IncompatibleModelError(
            f"only Regression models write an image output; this is a "
            f"{model_type or 'classifying'} model (choose labels, probabilities, confidence, mask)"
        )
    return outputs


def class_index(classes: Sequence[str], name: str) -> int:
    """Index of a class by name; an unknown name lists the known ones."""
    try:
        return list(classes).index(name)
    except ValueError as err:
        raise InvalidRequestError(
            f"class {name!r} is not a class of the model; classes are {', '.join(classes)}"
        ) from err


#: A one-class model's class is where its probability is at least this (a sigmoid's half).
ONE_CLASS_LEVEL = 0.5


def class_labels(
    probabilities: np.ndarray, *, axis: int = 0, min_confidence: float | None = None
) -> np.ndarray:
    """Labels as scopeml writes them: class ``k`` (index ``k`` along ``axis``) is ``k + 1``.

    Pixels whose maximum probability is below ``min_confidence`` become 0 (unclassified). A
    model of one class (a sigmoid: its class against the rest) has its class where the
    probability is at least :data:`ONE_CLASS_LEVEL` unless ``min_confidence`` says otherwise
    (its argmax was that class everywhere). The one place this convention lives: the engine,
    post-processing, the server and the CLI use it.

    Examples
    --------
    >>> class_labels(np.array([[0.9, 0.4, 0.2], [0.1, 0.6, 0.8]]), min_confidence=0.7)
    array([1, 0, 2], dtype=uint8)
    >>> class_labels(np.array([[0.9, 0.4, 0.5]]))
    array([1, 0, 1], dtype=uint8)
    """
    return _labels_and_confidence(np.moveaxis(probabilities, axis, 0), min_confidence)[0]


def _labels_and_confidence(
    probabilities: np.ndarray, min_confidence: float | None
) -> tuple[np.ndarray, np.ndarray]:
    if len(probabilities) == 1 and min_confidence is None:
        min_confidence = ONE_CLASS_LEVEL
    index, confidence = _argmax_max(probabilities)
    labels = index.astype(label_dtype(len(probabilities)))
    labels += 1
    if min_confidence is not None:
        labels[confidence < min_confidence] = 0
    labels[np.isnan(confidence)] = 0  # a model that answers NaN classified nothing
    return labels, confidence


def compute_outputs(
    probabilities: np.ndarray,
    specs: Sequence[OutputSpec],
    *,
    min_confidence: float | None = None,
    extract_index: int | None = None,
) -> dict[str, np.ndarray]:
    """Turn a ``K×…`` float32 probability block into the requested outputs.

    Returns arrays of shape ``K×…`` (probabilities) or ``…`` (the others).

    Examples
    --------
    >>> p = np.array([[[0.75, 0.25, 0.375]], [[0.25, 0.75, 0.625]]], np.float32)
    >>> specs = output_specs(["bg", "fg"], ["labels", "confidence"])
    >>> out = compute_outputs(p, specs, min_confidence=0.7)
    >>> out["labels"].tolist(), out["confidence"].tolist()
    ([[1, 2, 0]], [[0.75, 0.75, 0.625]])
    """
    names = {spec.name: spec for spec in specs}
    result: dict[str, np.ndarray] = {}
    need_labels = "labels" in names or "mask" in names
    labels = confidence = None
    if need_labels:
        labels, confidence = _labels_and_confidence(probabilities, min_confidence)
    elif "confidence" in names:
        confidence = probabilities.max(axis=0)
    for name, spec in names.items():
        if name == "labels":
            result[name] = labels.astype(spec.dtype)
        elif name == "confidence":
            result[name] = confidence.astype(np.float32)
        elif name == "mask":
            result[name] = (labels == extract_index + 1).astype(np.uint8)
        elif name == "probabilities":
            result[name] = _cast_probabilities(probabilities, spec.dtype)
        elif name == "image":
            result[name] = probabilities.astype(spec.dtype)
    return result


def needs_probabilities(specs: Sequence[OutputSpec], min_confidence: float | None) -> bool:
    """Whether the outputs need class probabilities, or only each pixel's most probable class."""
    return min_confidence is not None or any(
        spec.name in ("probabilities", "confidence", "image") for spec in specs
    )


def index_outputs(
    index: np.ndarray, specs: Sequence[OutputSpec], *, extract_index: int | None = None
) -> dict[str, np.ndarray]:
    """Labels and mask from the most probable class index per pixel (``…`` integers), when
    :func:`needs_probabilities` is false; equal to :func:`compute_outputs` on probabilities.

    Examples
    --------
    >>> specs = output_specs(["bg", "fg"], ["labels", "mask"])
    >>> out = index_outputs(np.array([[0, 1, 1]]), specs, extract_index=1)
    >>> out["labels"].tolist(), out["mask"].tolist()
    ([[1, 2, 2]], [[0, 1, 1]])
    """
    result: dict[str, np.ndarray] = {}
    for spec in specs:
        if spec.name == "labels":
            labels = index.astype(spec.dtype)
            labels += 1
            result["labels"] = labels
        elif spec.name == "mask":
            result["mask"] = (index == extract_index).astype(np.uint8)
        else:
            raise ValueError(f"output {spec.name!r} needs probabilities")
    return result


def _argmax_max(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``argmax`` and ``max`` over axis 0 in one pass over contiguous class planes.

    ``ndarray.argmax(axis=0)`` strides across planes and is several times slower; ties go to
    the first class, as with ``argmax``.
    """
    best = probabilities[0].copy()
    index = np.zeros(best.shape, np.uint8 if len(probabilities) <= 256 else np.uint32)
    for k in range(1, len(probabilities)):
        better = probabilities[k] > best
        index[better] = k
        np.maximum(best, probabilities[k], out=best)
    return index, best


def probability_scale(dtype: Any) -> float:
    """What a stored probability of ``dtype`` is at 1: 255 for ``probability_dtype`` uint8
    (probability × 255, rounded), else 1. Divide by it before comparing with a probability.

    Examples
    --------
    >>> probability_scale(np.uint8), probability_scale("float16")
    (255.0, 1.0)
    """
    return 255.0 if np.dtype(dtype) == np.uint8 else 1.0


def _cast_probabilities(probabilities: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        scale = probability_scale(dtype)
        return np.rint(np.clip(probabilities, 0.0, 1.0) * scale).astype(np.uint8)
    return probabilities.astype(dtype)
