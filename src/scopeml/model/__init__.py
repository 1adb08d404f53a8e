"""Model containers (czann, legacy czseg/czmodel), metadata, ONNX Runtime sessions, converters,
and the model-format registry through which every kind of model file is opened.

>>> from scopeml.model import open_model, read_container, write_container, convert_onnx
"""

from scopeml.model.container import Container, read_container, write_container
from scopeml.model.convert import convert_keras, convert_onnx, convert_torch
from scopeml.model.metadata import LegacyModelMetadata, ModelMetadata, ModelType
from scopeml.model.registry import (
    BUILTIN_MODELS,
    format_of,
    model_formats,
    open_model,
    register_format,
    resolve_model,
)
from scopeml.model.runtime import OnnxModel, load_model
from scopeml.model.spec import Model, ModelSpec

__all__ = [
    "BUILTIN_MODELS",
    "Container",
    "LegacyModelMetadata",
    "Model",
    "ModelMetadata",
    "ModelSpec",
    "ModelType",
    "OnnxModel",
    "convert_keras",
    "convert_onnx",
    "convert_torch",
    "format_of",
    "load_model",
    "model_formats",
    "open_model",
    "read_container",
    "register_format",
    "resolve_model",
    "write_container",
]
