"""Post-processing of probability maps and label images.

Confidence threshold, dense CRF refinement (tile-wise, with :func:`crf_halo`), and binary
operations per class (fill holes, small-object removal, open/close, watershed splitting).
:class:`PostStep` makes a morphology step a value with its halo, run on every class but the
background class (0, or a pixel classifier's background class: :mod:`scopeml.post.steps`), and
:func:`post_process_file` runs steps tile by tile from one label image (or, with a first
:class:`CrfStep`, a segment store's probabilities) into an OME-Zarr;
:func:`fill_holes_tiled` fills holes of any size as one exact pass over a plane out of core.
"""

from scopeml.post.crf import crf_halo, dense_crf, dense_crf_probabilities
from scopeml.post.crf_tiled import CrfStep
from scopeml.post.morphology import (
    binary_close,
    binary_open,
    clean_classes,
    fill_holes,
    remove_small_objects,
    split_touching,
)
from scopeml.post.planes import fill_holes_tiled
from scopeml.post.steps import PostStep, apply_steps
from scopeml.post.threshold import threshold_confidence
from scopeml.post.tiled import post_process_file, post_process_tiled

__all__ = [
    "CrfStep",
    "PostStep",
    "apply_steps",
    "binary_close",
    "binary_open",
    "clean_classes",
    "crf_halo",
    "dense_crf",
    "dense_crf_probabilities",
    "fill_holes",
    "fill_holes_tiled",
    "post_process_file",
    "post_process_tiled",
    "remove_small_objects",
    "split_touching",
    "threshold_confidence",
]
