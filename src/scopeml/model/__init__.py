"""Model containers (czann, legacy czseg/czmodel), metadata, ONNX Runtime sessions, converters.

>>> from scopeml.model import load_model, read_container, write_container, convert_onnx
"""

from scopeml.model.container import Container, read_container, write_container
from scopeml.model.convert import convert_keras, convert_onnx, convert_torch
from scopeml.model.metadata import LegacyModelMetadata, ModelMetadata, ModelType
from scopeml.model.runtime import OnnxModel, load_model
from scopeml.model.spec import Model, ModelSpec

__all__ = [
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
    "load_model",
    "read_container",
    "write_container",
]
