"""Model containers (czann, legacy czseg/czmodel), metadata, ONNX Runtime sessions, converters,
and the model-format registry through which every kind of model file is opened.

The names are imported on first use: the spec and the registry are light, while containers,
converters and sessions bring ONNX (and ONNX Runtime) with them, which code that only needs
:class:`ModelSpec` (the pixel and object classifiers, the engine) should not pay for.

>>> from scopeml.model import open_model, read_container, write_container, convert_onnx
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Container": "scopeml.model.container",
    "read_container": "scopeml.model.container",
    "write_container": "scopeml.model.container",
    "convert_container": "scopeml.model.convert",
    "convert_keras": "scopeml.model.convert",
    "convert_onnx": "scopeml.model.convert",
    "convert_torch": "scopeml.model.convert",
    "inspect_model": "scopeml.model.describe",
    "validate_model": "scopeml.model.validate",
    "LegacyModelMetadata": "scopeml.model.metadata",
    "ModelMetadata": "scopeml.model.metadata",
    "ModelType": "scopeml.model.metadata",
    "BUILTIN_MODELS": "scopeml.model.registry",
    "format_of": "scopeml.model.registry",
    "model_formats": "scopeml.model.registry",
    "open_model": "scopeml.model.registry",
    "register_format": "scopeml.model.registry",
    "resolve_model": "scopeml.model.registry",
    "OnnxModel": "scopeml.model.runtime",
    "load_model": "scopeml.model.runtime",
    "Model": "scopeml.model.spec",
    "ModelSpec": "scopeml.model.spec",
}

__all__ = [
    "BUILTIN_MODELS",
    "Container",
    "LegacyModelMetadata",
    "Model",
    "ModelMetadata",
    "ModelSpec",
    "ModelType",
    "OnnxModel",
    "convert_container",
    "convert_keras",
    "convert_onnx",
    "convert_torch",
    "format_of",
    "inspect_model",
    "load_model",
    "model_formats",
    "open_model",
    "read_container",
    "register_format",
    "resolve_model",
    "validate_model",
    "write_container",
]

if TYPE_CHECKING:
    from scopeml.model.container import Container, read_container, write_container
    from scopeml.model.convert import (
        convert_container,
        convert_keras,
        convert_onnx,
        convert_torch,
    )
    from scopeml.model.describe import inspect_model
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
    from scopeml.model.validate import validate_model


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scopeml.model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
