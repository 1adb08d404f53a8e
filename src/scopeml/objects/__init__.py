"""Objects: instance labels across tiles, measurements, hierarchical classes, object classifier.

0 is background in every label image; ids ≥ 1 are objects (instance labels) or classes
(semantic labels).
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
from scopeml.objects.label import iter_tiles, label_instances, label_instances_tiled
from scopeml.objects.measure import measure_objects
from scopeml.objects.measure_tiled import measure_objects_tiled
from scopeml.objects.table import read_table, write_table

__all__ = [
    "ObjectClass",
    "ObjectClassifier",
    "Segmenter",
    "assign_parents",
    "default_features",
    "iter_tiles",
    "label_instances",
    "label_instances_tiled",
    "load_object_classifier",
    "majority_class",
    "measure_hierarchy",
    "measure_objects",
    "measure_objects_tiled",
    "model_segmenter",
    "read_table",
    "segment_hierarchy",
    "summarize_children",
    "threshold_segmenter",
    "train_object_classifier",
    "write_table",
]
