"""A model that is quick on a small probe tile and slow on a large one (for time-budget tests)."""

from __future__ import annotations

import onnx

from scopeml.model.testing import endless_loop_onnx


def slow_onnx(*, trips: int, channels: int = 2) -> onnx.ModelProto:
    """``N×Y×X×C → N×Y×X×C``: ``Abs`` applied ``trips`` times in a ``Loop`` (output = input for
    non-negative pixels), so its run time grows with the tile's pixels: on one idle CPU core
    20000 trips take 0.02 s for 32×32 and 1.1 s for 512×512; 100000 trips 0.1 s and 5.4 s."""
    return endless_loop_onnx(channels=channels, trips=trips, body_op="Abs")
