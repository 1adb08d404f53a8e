"""TorchScript weights of a bioimage.io package → ONNX (needs the ``train`` extra: torch).

A TorchScript archive holds TorchScript code and tensors, read by ``torch.jit.load``'s own
restricted unpickler (tensors and primitive values, no arbitrary Python objects). It is traced
once on the package's test input to an ONNX graph with dynamic batch and spatial axes, which
then goes the way of ONNX weights.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scopeml.errors import InvalidContainerError, InvalidRequestError

OPSET = 17


def torchscript_to_onnx(
    data: bytes, example: np.ndarray, roles: Sequence[str], *, path: Path | None = None
) -> bytes:
    """ONNX bytes of a TorchScript module, traced on ``example`` (axes as ``roles``)."""
    try:
        import torch
    except ImportError as err:
        raise InvalidRequestError(
            "TorchScript weights need the train extra (torch): pip install 'scopeml[train]'",
            path=path,
        ) from err
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    except Exception as err:  # torch raises RuntimeError and friends for a bad archive
        raise InvalidContainerError(f"the TorchScript weights cannot be loaded ({err})"[:400],
                                    path=path) from err  # fmt: skip
    from scopeml.model.convert import torch_to_onnx

    dynamic = {i: f"{role}_size" for i, role in enumerate(roles) if role != "channel"}
    tensor = torch.from_numpy(np.ascontiguousarray(example, np.float32))
    try:
        return torch_to_onnx(module, tensor, dynamic, opset=OPSET)
    except Exception as err:  # an operator ONNX cannot express, a failing forward
        raise InvalidContainerError(f"the TorchScript weights do not export to ONNX ({err})"[:400],
                                    path=path) from err  # fmt: skip
