"""The intensity range a pixel classifier was trained on, recorded in its container.

A random forest splits on feature values in the units of its training pixels: trained on
16-bit images, it sees an 8-bit image as all dark and classes every pixel as background. The
range recorded here lets a run warn when an image's intensities are far from it
(:func:`scopeml.tiling.model_inputs.warn_intensity_range`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The percentiles recorded, per channel.
PERCENTILES = (0.1, 99.9)
#: Labelled blocks read for the range (spread over all training images), and the pixels kept
#: of each (a regular subsample): the range costs a bounded read whatever the image size.
MAX_BLOCKS = 32
MAX_BLOCK_PIXELS = 65536


def training_range(sources: Sequence[tuple[Any, Any]], scans: Sequence[Any]) -> dict[str, Any]:
    """Per-channel :data:`PERCENTILES` of the pixels in the blocks that hold labels.

    ``sources`` are ``(ImageSource, LabelSource)`` pairs and ``scans`` their
    :class:`~scopeml.pixel._sources.LabelScan`\\ s (the cores of the labelled blocks). Up to
    :data:`MAX_BLOCKS` blocks, evenly chosen, of at most :data:`MAX_BLOCK_PIXELS` pixels each.
    Non-finite pixels are left out.

    Returns ``{"percentiles": [LOW, HIGH], "low": [per channel], "high": [per channel]}``.

    Examples
    --------
    >>> from scopeml.pixel._sources import ImageSource, LabelSource, scan_labels
    >>> image = ImageSource(np.arange(400, dtype=np.uint16).reshape(1, 20, 20), 2)
    >>> labels = LabelSource(np.ones((20, 20), np.uint8), 2)
    >>> scan = scan_labels(labels, image.spatial_shape, None, 8, 0)
    >>> training_range([(image, labels)], [scan])
    {'percentiles': [0.1, 99.9], 'low': [0.399], 'high': [398.601]}
    """
    blocks = [
        (image, target)
        for (image, _), scan in zip(sources, scans, strict=True)
        for _, _, target in scan.blocks
    ]
    if len(blocks) > MAX_BLOCKS:
        picked = np.linspace(0, len(blocks) - 1, MAX_BLOCKS).round().astype(int)
        blocks = [blocks[i] for i in picked]
    parts = []
    for image, target in blocks:
        pixels = image.read(target)
        flat = pixels.reshape(pixels.shape[0], -1)
        step = max(1, -(-flat.shape[1] // MAX_BLOCK_PIXELS))
        parts.append(flat[:, ::step].astype(np.float64))
    values = np.concatenate(parts, axis=1)
    low, high = [], []
    for channel in values:
        finite = channel[np.isfinite(channel)]
        lo, hi = np.percentile(finite, PERCENTILES) if finite.size else (0.0, 0.0)
        low.append(round(float(lo), 6))
        high.append(round(float(hi), 6))
    return {"percentiles": list(PERCENTILES), "low": low, "high": high}
