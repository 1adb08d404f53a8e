"""Hard labels from class probabilities, with a confidence threshold."""

from __future__ import annotations

import numpy as np

from scopeml.errors import InvalidRequestError
from scopeml.tiling.outputs import class_labels


def threshold_confidence(
    probabilities: np.ndarray, min_confidence: float | None = None, *, channel_axis: int = 0
) -> np.ndarray:
    """Label each pixel with its most probable class, or 0 where the model is unsure.

    Channel ``k`` becomes label ``k + 1``, as the engine writes labels (and ilastik and ZEN);
    pixels whose maximum probability is below ``min_confidence`` become 0 (unclassified), as
    ZEN's confidence threshold does.

    Parameters
    ----------
    probabilities
        Class probabilities with the classes along ``channel_axis``.
    min_confidence
        Threshold in [0, 1] on the maximum probability; ``None``: none (a one-class model's
        class where its probability is at least 0.5, :func:`~scopeml.tiling.outputs.class_labels`).
    channel_axis
        The axis of the classes.

    Returns
    -------
    numpy.ndarray
        Labels, the input's shape without the class axis, the smallest unsigned dtype that fits.

    Examples
    --------
    >>> p = np.array([[0.9, 0.4, 0.2], [0.1, 0.6, 0.8]])
    >>> threshold_confidence(p, 0.7)
    array([1, 0, 2], dtype=uint8)
    """
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise InvalidRequestError(f"min_confidence must be in [0, 1]; got {min_confidence}")
    return class_labels(np.asarray(probabilities), axis=channel_axis, min_confidence=min_confidence)
