"""Model containers (czann, legacy czseg/czmodel), metadata, ONNX Runtime sessions, converters."""

from scopeml.model.spec import Model, ModelSpec

__all__ = ["Model", "ModelSpec"]
