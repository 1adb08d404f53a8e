"""Model doubles and helpers for the engine tests: tiny seeded U-Nets run by onnxruntime.

A uniquely named module (not ``conftest``) so test files can import it by name.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from scopeml.io.image import Image
from scopeml.model.spec import ModelSpec
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo


class OnnxDouble:
    """The Model protocol over an in-memory channels-last ONNX graph; records input shapes."""

    def __init__(self, graph: onnx.ModelProto, spec: ModelSpec) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(
            graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.spec = spec
        self.input_shapes: list[tuple[int, ...]] = []
        self._lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self.input_shapes.append(batch.shape)
        channels_last = np.ascontiguousarray(np.moveaxis(batch, 1, -1))
        (out,) = self._session.run(None, {"input": channels_last})
        return np.ascontiguousarray(np.moveaxis(out, -1, 1))


def unet_double(
    *,
    in_channels: int = 1,
    n_classes: int = 2,
    depth: int = 2,
    spatial_dims: int = 2,
    tile_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    halo: int | None = None,
) -> OnnxDouble:
    graph = tiny_unet_onnx(
        in_channels=in_channels,
        n_classes=n_classes,
        depth=depth,
        spatial_dims=spatial_dims,
        tile_shape=tile_shape,
        seed=seed,
    )
    need = unet_receptive_halo(depth) if halo is None else halo
    spec = ModelSpec(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        classes=tuple(f"class{i}" for i in range(n_classes)),
        halo=(need,) * spatial_dims,
        tile_step=(2**depth,) * spatial_dims,
        tile_shape=tile_shape,
        name=f"unet{spatial_dims}d",
    )
    return OnnxDouble(graph, spec)


def whole_image_probabilities(model: OnnxDouble, block: np.ndarray) -> np.ndarray:
    """Run a model on a whole ``C×[Z×]Y×X`` float32 block, padded at the far end to the step."""
    step = model.spec.tile_step
    pad = [(0, 0)] + [(0, -(-n // s) * s - n) for n, s in zip(block.shape[1:], step, strict=True)]
    out = model.predict(np.pad(block, pad)[None].astype(np.float32))[0]
    return out[(slice(None), *tuple(slice(0, n) for n in block.shape[1:]))]


def random_image(shape: tuple[int, ...], seed: int = 0, **kwargs) -> Image:
    """A seeded uint16 6-D image (S T C Z Y X)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 1000, shape).astype(np.uint16)
    return Image(data, **kwargs)


def write_model_file(
    path, *, in_channels: int = 1, n_classes: int = 2, depth: int = 2, seed: int = 0
):
    """A ``.czann`` holding a tiny U-Net whose min overlap covers its receptive field."""
    from scopeml.model import convert_onnx

    graph = tiny_unet_onnx(in_channels=in_channels, n_classes=n_classes, depth=depth, seed=seed)
    return convert_onnx(
        graph,
        path,
        classes=[f"class{i}" for i in range(n_classes)],
        min_overlap=unet_receptive_halo(depth),
        model_type="MultiClassSemanticSegmentation",
        name=f"unet-seed{seed}",
        overwrite=True,  # tests replace a model at its path
    )


def write_image_file(path, data: np.ndarray, *, axes: str = "CYX", pixel_sizes=None):
    """Write an array as an OME-TIFF (the engine opens it with ``open_image``)."""
    from scopeml.io import write_ome_tiff

    write_ome_tiff(
        path, data, axes=axes, pixel_sizes=pixel_sizes or {"Y": 0.5, "X": 0.5}, tile=(16, 16)
    )
    return path


class FailingAfter:
    """A model that breaks down after ``n`` batches (an interrupted run, in-process)."""

    def __init__(self, model, n):
        self.spec, self.path, self._model, self._left = model.spec, model.path, model, n

    def predict(self, batch):
        if self._left == 0:
            raise RuntimeError("power cut")
        self._left -= 1
        return self._model.predict(batch)


def published_as_before(out: Path) -> None:
    """The store of a call stopped at its instances as scopeml published it before it made
    them in the partial store: in place, its run's bookkeeping removed, without instances
    (such stores still resume, or are refused as another run's)."""
    import os
    import shutil

    from scopeml.tiling import store

    os.replace(store.partial_path(out), out)
    shutil.rmtree(out / store._DONE)
    for name in (store._RUN, store._TILES, store._LOCK):
        (out / name).unlink(missing_ok=True)
