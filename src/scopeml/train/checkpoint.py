"""Training checkpoints as a zip of JSON and ``.npy`` arrays: no pickle, safe to load.

``torch.save`` writes pickles, and even ``torch.load(weights_only=True)`` runs a (restricted)
unpickler on whatever file it is given. A checkpoint is untrusted input like any model file, so
it is stored as ``checkpoint.json`` (the structure: dicts, lists, numbers, strings) plus one
``tensor-<i>.npy`` member per tensor, read with the zip limits of model containers and
``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scopeml.errors import InputNotFoundError, InvalidContainerError
from scopeml.io.replace import atomic_write
from scopeml.model.safezip import ZipLimits, read_zip_members

_STRUCTURE = "checkpoint.json"
# One member per tensor: weights, best weights and two Adam moments each (deep nets have many).
_LIMITS = ZipLimits(max_members=1 << 14)


def save_checkpoint(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` (nested dicts/lists of tensors, numbers, strings) atomically.

    Examples
    --------
    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "run.ckpt"
    >>> _ = save_checkpoint(file, {"w": torch.ones(2), "state": {0: {"step": 3}}, "best": 1e9})
    >>> restored = load_checkpoint(file)
    >>> restored["w"].tolist(), restored["state"][0]["step"], restored["best"]
    ([1.0, 1.0], 3, 1000000000.0)
    """
    path = Path(path)
    tensors: list[np.ndarray] = []
    structure = _encode(payload, tensors)
    with atomic_write(path) as temp, zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_STRUCTURE, json.dumps(structure))
        for index, array in enumerate(tensors):
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(f"tensor-{index}.npy", buffer.getvalue())
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Read a checkpoint written by :func:`save_checkpoint`; tensors come back on the CPU."""
    if Path(path).is_dir():
        raise InvalidContainerError("is a folder, not a checkpoint file", path=path)
    if not Path(path).is_file():
        raise InputNotFoundError("no such checkpoint file", path=path)
    members = read_zip_members(path, limits=_LIMITS)
    if _STRUCTURE not in members:
        raise InvalidContainerError(f"not a scopeml checkpoint (no {_STRUCTURE})", path=path)
    try:
        structure = json.loads(members[_STRUCTURE])
        return _decode(structure, members)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise InvalidContainerError(f"corrupt checkpoint ({err})", path=path) from err


def _encode(value: Any, tensors: list[np.ndarray]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors.append(value.detach().cpu().numpy())
        return {"tensor": len(tensors) - 1}
    if isinstance(value, dict):  # keys may be ints (optimiser state): keep their type
        return {"dict": [[_key(k), _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"list": [_encode(v, tensors) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint")


def _key(key: Any) -> Any:
    if isinstance(key, (bool, int, str)):
        return key
    raise TypeError(f"checkpoint dict keys must be ints or strings; got {key!r}")


def _decode(node: Any, members: dict[str, bytes]) -> Any:
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"unexpected node {str(node)[:80]}")
    ((kind, content),) = node.items()
    if kind == "tensor":
        data = members[f"tensor-{int(content)}.npy"]
        array = np.load(io.BytesIO(data), allow_pickle=False)
        return torch.from_numpy(np.array(array))
    if kind == "dict":
        return {_key(key): _decode(value, members) for key, value in content}
    if kind == "list":
        return [_decode(value, members) for value in content]
    if kind == "value":
        if content is not None and not isinstance(content, (bool, int, float, str)):
            raise ValueError(f"unexpected value {str(content)[:80]}")
        return content
    raise ValueError(f"unknown node kind {kind!r}")
