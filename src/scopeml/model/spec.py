"""What the engine knows about a model: its :class:`ModelSpec` and the :class:`Model` protocol.

Batches are channels-first inside scopeml (``N×C×Y×X`` or ``N×C×Z×Y×X``); a model adapter that
wraps a channels-last graph (czmodel containers are NHWC) transposes at its own boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """The contract between a model and the tiling engine.

    Attributes
    ----------
    spatial_dims
        2 for ``Y×X`` models, 3 for ``Z×Y×X`` models.
    in_channels
        Number of input channels ``C`` the model expects.
    classes
        Class names, one per output channel ``K`` (index 0 is usually background).
    halo
        Minimum overlap per spatial axis (``(Y, X)`` or ``(Z, Y, X)``), in pixels on each side,
        that a tile needs so its core is free of border effects (``MinOverlap`` of a czann).
    tile_step
        Tile offsets and sizes are multiples of this per spatial axis (``2**depth`` for U-Nets).
    tile_shape
        Fixed input size per spatial axis when the graph has one (every tile is padded to it),
        ``None`` when any size that is a multiple of ``tile_step`` works.
    name
        Human-readable model name.
    pixel_size
        Physical pixel size the model was trained at, per spatial axis, in metres, if known.
    normalize
        The input normalisation policy the model was trained with (``"percentile:1,99.8"``,
        ``"meanstd"``), applied by the engine from whole-image statistics when the user gives
        none; ``None`` = raw values, as ZEN feeds a czann model.
    """

    spatial_dims: int
    in_channels: int
    classes: tuple[str, ...]
    halo: tuple[int, ...]
    tile_step: tuple[int, ...] = ()
    tile_shape: tuple[int, ...] | None = None
    name: str = ""
    pixel_size: tuple[float, ...] | None = None
    normalize: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if not self.tile_step:
            object.__setattr__(self, "tile_step", (1,) * self.spatial_dims)
        for name in ("halo", "tile_step") + (("tile_shape",) if self.tile_shape else ()):
            value = getattr(self, name)
            if len(value) != self.spatial_dims:
                raise ValueError(
                    f"{name} has {len(value)} entries; "
                    f"the model has {self.spatial_dims} spatial dims"
                )

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@runtime_checkable
class Model(Protocol):
    """Anything the engine can run: a DNN container, a pixel classifier, a test double.

    A model may also offer ``predict_index(batch) -> N×[Z×]Y×X`` integers: the index of the most
    probable class, exactly ``argmax`` over :meth:`predict` (ties to the lower index). The engine
    calls it when a run writes only labels or a mask without a confidence threshold; a random
    forest can skip the trees that cannot change a pixel's winner.
    """

    spec: ModelSpec

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Map an ``N×C×[Z×]Y×X`` float32 batch to ``N×K×[Z×]Y×X`` float32 class probabilities."""
        ...


def recorded_normalize(model: object) -> str | None:
    """The normalisation policy a model records: its spec's, else its container metadata's.

    Examples
    --------
    >>> class Toy:
    ...     spec = ModelSpec(2, 1, ("bg", "fg"), (0, 0), normalize="percentile:1,99.8")
    >>> recorded_normalize(Toy())
    'percentile:1,99.8'
    """
    spec = getattr(model, "spec", None)
    policy = getattr(spec, "normalize", None)
    if policy is None:  # a container-backed model whose spec was built without the key
        policy = getattr(getattr(model, "metadata", None), "normalize", None)
    return policy
