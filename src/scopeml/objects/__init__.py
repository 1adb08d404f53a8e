"""Objects: instance labels across tiles, measurements, hierarchical classes, object classifier.

0 is background in every label image; ids ≥ 1 are objects (instance labels) or classes
(semantic labels). A class is chosen by its name or by its label value (:func:`label_value`).
Every scene, time point and Z plane of an image is handled (:mod:`scopeml.objects.images`).
"""

from scopeml.objects.classifier import (
    ObjectClassifier,
    default_features,
    load_object_classifier,
    majority_class,
    train_object_classifier,
)
from scopeml.objects.hierarchy import (
    ObjectClass,
    Segmenter,
    assign_parents,
    measure_hierarchy,
    model_segmenter,
    segment_hierarchy,
    summarize_children,
    threshold_segmenter,
)
from scopeml.objects.images import (
    filter_image,
    iter_stacks,
    label_image,
    measure_image,
    open_labels,
)
from scopeml.objects.instances import InstanceOptions, instance_image, instance_labels
from scopeml.objects.label import (
    iter_tiles,
    label_instances,
    label_instances_tiled,
    label_value,
    tile_sizes,
)
from scopeml.objects.measure import measure_objects
from scopeml.objects.measure_tiled import measure_objects_tiled
from scopeml.objects.table import read_table, write_table

__all__ = [
    "InstanceOptions",
    "ObjectClass",
    "ObjectClassifier",
    "Segmenter",
    "assign_parents",
    "default_features",
    "filter_image",
    "instance_image",
    "instance_labels",
    "iter_stacks",
    "iter_tiles",
    "label_image",
    "label_instances",
    "label_instances_tiled",
    "label_value",
    "load_object_classifier",
    "majority_class",
    "measure_hierarchy",
    "measure_image",
    "measure_objects",
    "measure_objects_tiled",
    "model_segmenter",
    "open_labels",
    "read_table",
    "segment_hierarchy",
    "summarize_children",
    "threshold_segmenter",
    "tile_sizes",
    "train_object_classifier",
    "write_table",
]
