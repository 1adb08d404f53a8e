"""Validate a model by running it once: a small probe tile, a time budget, a memory bound.

A container can be well-formed and still hostile: a 400-byte ``Loop`` of 2**62 iterations, or a
``ConstantOfShape`` that asks for gigabytes. Before the probe runs, shape inference (with data
propagation, on the graph without its weights) sizes every tensor the graph would make for the
probe tile; one over the memory limit refuses the model without allocating anything. Then the
probe tile runs under the per-call time budget of :mod:`scopeml.model.runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np

from scopeml.errors import IncompatibleModelError, InvalidContainerError
from scopeml.model.container import Container, graph_skeleton, read_container
from scopeml.model.graph import MEMORY_LIMIT_ENV, largest_tensor, resolve_memory_limit
from scopeml.model.runtime import load_model, model_spec
from scopeml.model.spec import ModelSpec

#: Smallest side of the probe tile (rounded up to the tile step).
PROBE_SIZE = 32


@dataclass(frozen=True)
class ProbeResult:
    """What validating a model found: the probe's shapes and the largest inferred tensor."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    largest_tensor: str | None
    largest_tensor_bytes: int


def probe_spatial_shape(spec: ModelSpec) -> tuple[int, ...]:
    """The probe tile: the model's fixed input size, else ``PROBE_SIZE`` rounded to the step.

    Examples
    --------
    >>> probe_spatial_shape(ModelSpec(2, 1, ("a", "b"), (8, 8), tile_step=(16, 16)))
    (32, 32)
    """
    if spec.tile_shape is not None:
        return tuple(spec.tile_shape)
    return tuple(-(-max(PROBE_SIZE, step) // step) * step for step in spec.tile_step)


def probe_model(
    source: str | PathLike[str] | Container,
    *,
    time_budget: float | None = None,
    memory_limit: int | None = None,
) -> ProbeResult:
    """Check that a per-pixel model runs on a zero probe tile within time and memory bounds.

    Parameters
    ----------
    source
        Container file or an already read container.
    time_budget
        Seconds the probe run may take (see :func:`scopeml.model.runtime.resolve_time_budget`).
    memory_limit
        Largest tensor, in bytes, the graph may make for the probe tile (default 1 GiB or
        ``$SCOPEML_MODEL_MEMORY_LIMIT``).

    Raises
    ------
    InvalidContainerError
        The graph would make a tensor over the memory limit.
    ModelTimeoutError
        The probe ran past the time budget (it is stopped).
    IncompatibleModelError
        The graph fails on the probe or returns non-finite values.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from scopeml.model import ModelMetadata, write_container
    >>> from scopeml.model.testing import tiny_unet_onnx
    >>> meta = ModelMetadata(model_type="MultiClassSemanticSegmentation",
    ...     input_shape=(64, 64, 1), output_shape=(64, 64, 2), classes=("bg", "fg"))
    >>> path = write_container(pathlib.Path(tempfile.mkdtemp()) / "m.czann", tiny_unet_onnx(), meta)
    >>> probe_model(path, time_budget=10).output_shape
    (1, 2, 32, 32)
    """
    container = source if isinstance(source, Container) else read_container(source)
    limit = resolve_memory_limit(memory_limit)
    spec = model_spec(container)
    spatial = probe_spatial_shape(spec)
    graph_input = (1, *spatial, spec.in_channels)
    skeleton = graph_skeleton(container.onnx_bytes, path=container.path)
    name, size = largest_tensor(skeleton, graph_input)
    if size > limit:
        raise InvalidContainerError(
            f"the graph would make tensor {name!r} of {size / 2**30:.2f} GiB for a "
            f"{'×'.join(map(str, spatial))} probe tile; the limit is {limit / 2**30:.2f} GiB "
            f"(--memory-limit or {MEMORY_LIMIT_ENV})",
            path=container.path,
        )
    model = load_model(
        container,
        providers=["CPUExecutionProvider"],
        time_budget=time_budget,
        memory_limit=memory_limit,
    )
    batch = np.zeros((1, spec.in_channels, *spatial), np.float32)
    result = model.predict(batch)
    if not np.all(np.isfinite(result)):
        raise IncompatibleModelError(
            "the graph returns non-finite values on a zero input", path=container.path
        )
    return ProbeResult(tuple(batch.shape), tuple(result.shape), name, size)
