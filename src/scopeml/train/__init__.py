"""Training small U-Nets with PyTorch and exporting them as containers (extra ``[train]``).

The nuclei helpers and the scores need no PyTorch; the rest imports it on first use, so
``from scopeml.train import nuclei_instances`` works without the ``[train]`` extra.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from scopeml.train.metrics import class_scores, confusion_matrix, object_scores
from scopeml.train.nuclei import NUCLEI_CLASSES, nuclei_instances, nuclei_targets

_LAZY = {
    "UNet": "scopeml.train.unet",
    "Normalize": "scopeml.train.unet",
    "ChannelsLastClassifier": "scopeml.train.unet",
    "receptive_halo": "scopeml.train.unet",
    "TrainConfig": "scopeml.train.loop",
    "TrainResult": "scopeml.train.loop",
    "train_unet": "scopeml.train.loop",
    "masked_loss": "scopeml.train.loop",
    "export_onnx": "scopeml.train.export",
    "measure_halo": "scopeml.train.export",
    "save_czann": "scopeml.train.export",
}

__all__ = [
    "NUCLEI_CLASSES",
    "class_scores",
    "confusion_matrix",
    "nuclei_instances",
    "nuclei_targets",
    "object_scores",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scopeml.train' has no attribute {name!r}")
