"""Shared builders for the model container tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort

from scopeml.model import ModelMetadata, ModelType, write_container
from scopeml.model.testing import tiny_unet_onnx

CPU = ["CPUExecutionProvider"]
MODEL_ID = "b511d295-91ff-46ca-bb60-b2e26c393809"


def unet_metadata(
    *, in_channels: int = 1, n_classes: int = 2, spatial: tuple[int, ...] = (64, 64), **fields
) -> ModelMetadata:
    values = {
        "model_type": ModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION,
        "input_shape": (*spatial, in_channels),
        "output_shape": (*spatial, n_classes),
        "classes": tuple(f"c{k}" for k in range(n_classes)),
        "min_overlap": (24,) * len(spatial),
        "model_name": "tiny",
        "model_id": uuid.UUID(MODEL_ID),
    }
    values.update(fields)
    return ModelMetadata(**values)


def run_onnx(graph_bytes: bytes, channels_last: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(graph_bytes, providers=CPU)
    return session.run(None, {session.get_inputs()[0].name: channels_last})[0]


def write_czann(folder: Path, name: str = "tiny.czann", **fields) -> Path:
    """A valid 2-D czann: tiny U-Net, 1 channel in, 2 classes out, MinOverlap 24."""
    return write_container(folder / name, tiny_unet_onnx(), unet_metadata(**fields))
