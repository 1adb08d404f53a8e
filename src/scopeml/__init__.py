"""scopeml: machine-learning segmentation and classification of large microscopy images.

One import gives the whole flow; each step takes what the previous one returned::

    import scopeml as sm

    image = sm.open_image("cells.ome.tif")
    classifier = sm.train_pixel_classifier(image, "scribbles.tif")
    seg = sm.segment(image, classifier, "cells.ome.zarr")
    objects = sm.label_objects(seg, "objects.ome.zarr", class_="class 2")
    table = sm.measure_objects(objects, image)

The names are imported on first use, so ``import scopeml`` stays fast.

>>> import scopeml as sm
>>> sm.open_model("nuclei").spec.classes
('background', 'nucleus', 'boundary')
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from scopeml.errors import ScopeMLError

__version__ = "0.1.0"

_LAZY = {
    "open_image": "scopeml.io",
    "open_model": "scopeml.api",
    "inspect_model": "scopeml.model.describe",
    "validate_model": "scopeml.model.validate",
    "segment": "scopeml.api",
    "predict_region": "scopeml.api",
    "Segmentation": "scopeml.api",
    "SegmentOptions": "scopeml.tiling.options",
    "InstanceOptions": "scopeml.objects.instances",
    "train_pixel_classifier": "scopeml.api",
    "label_objects": "scopeml.api",
    "grow_objects": "scopeml.objects.grow",
    "filter_objects": "scopeml.api",
    "measure_objects": "scopeml.api",
    "train_object_classifier": "scopeml.api",
    "classify_objects": "scopeml.api",
    "paint_objects": "scopeml.api",
    "classify_images": "scopeml.classify",
    "classify_object_crops": "scopeml.classify",
    "import_bioimageio": "scopeml.model.bioimageio",
    "export_bioimageio": "scopeml.model.bioimageio",
    "train_unet": "scopeml.train",
    "TrainConfig": "scopeml.train",
    "analyze": "scopeml.analysis",
    "Image": "scopeml.io.image",
    "ProgressEvent": "scopeml.progress",
    "Cancelled": "scopeml.errors",
}

__all__ = [
    "Cancelled",
    "Image",
    "InstanceOptions",
    "ProgressEvent",
    "ScopeMLError",
    "SegmentOptions",
    "Segmentation",
    "TrainConfig",
    "__version__",
    "analyze",
    "classify_images",
    "classify_object_crops",
    "classify_objects",
    "export_bioimageio",
    "filter_objects",
    "grow_objects",
    "import_bioimageio",
    "inspect_model",
    "label_objects",
    "measure_objects",
    "open_image",
    "open_model",
    "paint_objects",
    "predict_region",
    "segment",
    "train_object_classifier",
    "train_pixel_classifier",
    "train_unet",
    "validate_model",
]

if TYPE_CHECKING:
    from scopeml.analysis import analyze
    from scopeml.api import (
        Segmentation,
        classify_objects,
        filter_objects,
        label_objects,
        measure_objects,
        open_model,
        paint_objects,
        predict_region,
        segment,
        train_object_classifier,
        train_pixel_classifier,
    )
    from scopeml.classify import classify_images, classify_object_crops
    from scopeml.errors import Cancelled
    from scopeml.io import open_image
    from scopeml.io.image import Image
    from scopeml.model.bioimageio import export_bioimageio, import_bioimageio
    from scopeml.model.describe import inspect_model
    from scopeml.model.validate import validate_model
    from scopeml.objects.grow import grow_objects
    from scopeml.objects.instances import InstanceOptions
    from scopeml.progress import ProgressEvent
    from scopeml.tiling.options import SegmentOptions
    from scopeml.train import TrainConfig, train_unet


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scopeml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
