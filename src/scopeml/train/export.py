"""Export a trained U-Net: an ONNX graph, then a czann container.

The graph takes ``N×[Z×]Y×X×C`` float32 pixel values, applies a fixed per-channel affine map
(the training set's mean/std, or the identity for a model trained on globally normalised
images, whose policy is then recorded in ``model.json`` for the engine to apply), runs the
U-Net and returns ``N×[Z×]Y×X×K`` softmax probabilities; batch and spatial sizes are dynamic
(multiples of ``2**depth``). The container's ``MinOverlap`` is the network's receptive halo, so
tiled inference is exact.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from scopeml.train.unet import ChannelsLastClassifier, receptive_halo

OPSET = 17


def export_onnx(classifier: ChannelsLastClassifier, *, opset: int = OPSET) -> bytes:
    """Serialise ``classifier`` (eval mode) as ONNX bytes, input ``"input"``, output ``"output"``.

    Examples
    --------
    >>> from scopeml.train.unet import Normalize, UNet
    >>> net = ChannelsLastClassifier(UNet(1, 2, depth=1, width=2), Normalize([0], [1]))
    >>> graph = export_onnx(net)
    >>> graph[:2] == b"\\x08\\x08"  # an ONNX ModelProto starts with its ir_version field
    True
    """
    classifier = classifier.eval()
    dims = classifier.net.spatial_dims
    channels = int(classifier.normalize.mean.shape[1])
    step = 2**classifier.net.depth
    example = torch.zeros((1, *(2 * step,) * dims, channels), dtype=torch.float32)
    names = ["N", *("Z", "Y", "X")[3 - dims :]]
    axes = {axis: name for axis, name in enumerate(names)}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of the dynamo one, but it is exact
        # for these few operators, needs no onnxscript and takes a fraction of a second.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            classifier,
            (example,),
            buffer,
            input_names=["input"],
            output_names=["output"],
            opset_version=opset,
            dynamic_axes={"input": axes, "output": axes},
            dynamo=False,
        )
    return buffer.getvalue()


def measure_halo(classifier: ChannelsLastClassifier, *, size: int | None = None) -> int:
    """The largest distance, per side, at which one input pixel changes the output.

    A check of :func:`~scopeml.train.unet.receptive_halo` on the actual weights: perturb the
    centre pixel of a random image and measure the spread of the output change (Chebyshev
    distance). Dead ReLUs can hide part of the field, so this is a lower bound. Measured in
    eval mode, as exported (the caller's mode is kept).
    """
    dims = classifier.net.spatial_dims
    step = 2**classifier.net.depth
    side = size or 2 * receptive_halo(classifier.net.depth) + 2 * step
    channels = int(classifier.normalize.mean.shape[1])
    generator = torch.Generator().manual_seed(0)
    mean = classifier.normalize.mean.reshape(-1)
    std = classifier.normalize.std.reshape(-1)
    x = torch.randn((1, *(side,) * dims, channels), generator=generator) * std + mean
    centre = (0, *(side // 2,) * dims)
    y = x.clone()
    y[centre] += 10 * std
    training = classifier.training
    classifier.eval()  # BatchNorm in training mode mixes the whole input
    try:
        with torch.no_grad():
            change = (classifier(y) - classifier(x)).abs().amax(dim=-1)[0]
    finally:
        classifier.train(training)
    where = torch.nonzero(change > 0)
    if where.numel() == 0:
        return 0
    return int((where - side // 2).abs().max())


def save_czann(
    classifier: ChannelsLastClassifier,
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str],
    model_name: str = "scopeml U-Net",
    tile_shape: int | None = None,
    scaling: Sequence[float] | None = None,
    model_id: str | None = None,
    normalize: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``classifier`` as a ``.czann`` container with ``MinOverlap`` = its receptive halo.

    ``tile_shape`` is the side of the ``InputShape`` the metadata advertises (default 256 in 2-D,
    64 in 3-D; the graph itself accepts any multiple of ``2**depth``); ``scaling`` is the czann
    ``Scaling`` (training pixel size, x, y[, z]); ``model_id`` a fixed UUID (default: random);
    ``normalize`` the global input normalisation the model was trained with
    (:attr:`TrainResult.normalize_policy`), recorded under scopeml's own ``model.json`` key;
    an existing file at ``path`` is replaced only if ``overwrite``.
    """
    from scopeml.model import ModelMetadata, ModelType, write_container

    net = classifier.net
    dims = net.spatial_dims
    channels = int(classifier.normalize.mean.shape[1])
    step = 2**net.depth
    tile_shape = tile_shape or (256 if dims == 2 else 64)
    if tile_shape % step:
        raise ValueError(f"tile_shape {tile_shape} must be a multiple of 2**depth = {step}")
    halo = receptive_halo(net.depth)
    metadata = ModelMetadata(
        model_type=ModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION,
        input_shape=(*(tile_shape,) * dims, channels),
        output_shape=(*(tile_shape,) * dims, len(classes)),
        classes=tuple(classes),
        min_overlap=(halo,) * dims,
        model_name=model_name,
        scaling=None if scaling is None else tuple(float(s) for s in scaling),
        normalize=normalize,
        **({} if model_id is None else {"model_id": model_id}),
    )
    return write_container(path, export_onnx(classifier), metadata, overwrite=overwrite)


def onnx_probabilities(graph: bytes, batch: np.ndarray) -> np.ndarray:
    """Run an exported graph on an ``N×[Z×]Y×X×C`` batch with ONNX Runtime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.ascontiguousarray(batch, np.float32)})[0]
