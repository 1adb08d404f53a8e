"""Post-processing of probability maps and label images.

Confidence threshold, dense CRF refinement (tile-wise, with :func:`crf_halo`), and binary
operations per class (fill holes, small-object removal, open/close, watershed splitting).
"""

from scopeml.post.crf import crf_halo, dense_crf, dense_crf_probabilities
from scopeml.post.morphology import (
    binary_close,
    binary_open,
    clean_classes,
    fill_holes,
    remove_small_objects,
    split_touching,
)
from scopeml.post.threshold import threshold_confidence

__all__ = [
    "binary_close",
    "binary_open",
    "clean_classes",
    "crf_halo",
    "dense_crf",
    "dense_crf_probabilities",
    "fill_holes",
    "remove_small_objects",
    "split_touching",
    "threshold_confidence",
]
