"""Image-analysis settings (a class tree, a segmenter per class, post-processing steps,
measurements, object classifiers) and running them over many images.

>>> from scopeml.analysis import AnalysisSettings, load_settings, run_analysis
"""

from scopeml.analysis.runner import AnalysisResult, collect_images, run_analysis
from scopeml.analysis.settings import (
    AnalysisSettings,
    ClassSettings,
    GrowSegmenter,
    InstancesSegmenter,
    InvalidSettingsError,
    Measurements,
    ModelSegmenter,
    Outputs,
    ThresholdSegmenter,
    dump_settings,
    load_settings,
    parse_settings,
    save_settings,
)

#: ``sm.analyze`` is :func:`run_analysis`.
analyze = run_analysis

__all__ = [
    "AnalysisResult",
    "AnalysisSettings",
    "ClassSettings",
    "GrowSegmenter",
    "InstancesSegmenter",
    "InvalidSettingsError",
    "Measurements",
    "ModelSegmenter",
    "Outputs",
    "ThresholdSegmenter",
    "analyze",
    "collect_images",
    "dump_settings",
    "load_settings",
    "parse_settings",
    "run_analysis",
    "save_settings",
]
