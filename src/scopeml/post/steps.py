"""Morphology steps as values: parsed from ``name[:size]``, each knowing the halo it needs.

A step runs on every class of a semantic label image (0 = background, ≥ 1 = class), as
:func:`~scopeml.post.morphology.clean_classes` does: a class loses pixels to background and
grows only into background, never into another class. Every step is local, so a tile read with
:attr:`PostStep.halo` more pixels on each side gives exactly the whole-image result in its core:

- ``opening:r`` / ``closing:r``: a ball of radius ``r`` eroded then dilated (or the reverse)
  reaches ``2 r`` pixels;
- ``remove_small:n``: a component that reaches ``n - 1`` pixels away has at least ``n`` pixels,
  so within that halo a tile decides every core pixel as the whole image does;
- ``fill_holes:n``: holes (background not connected to the image border) with fewer than ``n``
  pixels are filled, by the same argument.

``fill_holes`` without a size fills holes of any size. That is not local — one pixel far away
can open a hole to the border — so it has no halo (:attr:`PostStep.local` is false):
:func:`~scopeml.post.tiled.post_process_tiled` runs it as a pass of exact tiled connected
components over the whole plane (:func:`scopeml.post.planes.fill_holes_tiled`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from scopeml.errors import InvalidRequestError
from scopeml.post.morphology import binary_close, binary_open, fill_holes, remove_small_objects


def _fill_small_holes(mask: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:  # any size
        return fill_holes(mask)
    holes = fill_holes(mask) & ~mask
    return mask | (holes & ~remove_small_objects(holes, size))


def _remove_small(mask: np.ndarray, size: int) -> np.ndarray:
    return remove_small_objects(mask, size)


#: name → (operation on a boolean mask, halo for a size, default size or None if required);
#: ``fill_holes`` alone takes no size (``None``: holes of any size).
_STEPS: dict[str, tuple[Callable[[np.ndarray, int], np.ndarray], Callable[[int], int], int | None]]
_STEPS = {
    "fill_holes": (_fill_small_holes, lambda n: max(n - 1, 0), None),
    "remove_small": (_remove_small, lambda n: max(n - 1, 0), None),
    "opening": (binary_open, lambda r: 2 * r, 1),
    "closing": (binary_close, lambda r: 2 * r, 1),
}


@dataclass(frozen=True)
class PostStep:
    """One morphology step: its name and size (pixels, or a radius for opening/closing);
    ``fill_holes`` with size ``None`` fills holes of any size.

    Examples
    --------
    >>> PostStep.parse("remove_small:50"), PostStep.parse("opening").halo
    (PostStep(name='remove_small', size=50), 2)
    >>> PostStep.parse("fill_holes"), PostStep.parse("fill_holes").local
    (PostStep(name='fill_holes', size=None), False)
    """

    name: str
    size: int | None

    def __post_init__(self) -> None:
        if self.name not in _STEPS:
            known = ", ".join(sorted(_STEPS))
            raise InvalidRequestError(f"unknown post-processing step {self.name!r}; known: {known}")
        if self.size is None:
            if self.name != "fill_holes":
                raise InvalidRequestError(f"step {self.name} needs a size: {self.name}:SIZE")
        elif self.size < 1:
            raise InvalidRequestError(f"step {self.name}: size must be >= 1; got {self.size}")

    @classmethod
    def parse(cls, text: str) -> PostStep:
        """A step from ``name`` or ``name:size`` (``remove_small`` needs its size)."""
        name, _, size = text.strip().partition(":")
        if not size:
            if name == "fill_holes":
                return cls(name, None)  # holes of any size
            default = _STEPS[name][2] if name in _STEPS else 1
            if default is None:
                raise InvalidRequestError(f"step {name} needs a size: {name}:PIXELS")
            return cls(name, default)
        try:
            value = int(size)
        except ValueError as err:
            problem = f"step {text!r}: size {size!r} is not a whole number"
            raise InvalidRequestError(problem) from err
        return cls(name, value)  # a size below 1 is refused there, saying so

    @property
    def local(self) -> bool:
        """Whether a tile with :attr:`halo` more pixels decides its core exactly (all but
        ``fill_holes`` of any size, which needs the whole plane)."""
        return self.size is not None

    @property
    def halo(self) -> int:
        """Pixels of context a tile needs on each side for this step to be exact in its core."""
        if self.size is None:
            raise InvalidRequestError(
                f"step {self.name} of any size is not local: it has no halo (run it with "
                "post_process_tiled, which fills holes over the whole plane)"
            )
        return _STEPS[self.name][1](self.size)

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """This step on one boolean mask."""
        return _STEPS[self.name][0](np.asarray(mask, bool), self.size)


def steps_halo(steps: Sequence[PostStep]) -> int:
    """The halo of steps run one after the other: their halos add up."""
    return sum(step.halo for step in steps)


def apply_steps(labels: np.ndarray, steps: Sequence[PostStep]) -> np.ndarray:
    """Run ``steps`` in order on each class of a semantic label image; same shape and dtype.

    Examples
    --------
    >>> semantic = np.array([[1, 1, 1, 0, 2], [1, 0, 1, 0, 0], [1, 1, 1, 0, 0]], np.uint8)
    >>> apply_steps(semantic, [PostStep("fill_holes", 10), PostStep("remove_small", 2)])
    array([[1, 1, 1, 0, 0],
           [1, 1, 1, 0, 0],
           [1, 1, 1, 0, 0]], dtype=uint8)
    """
    labels = np.asarray(labels)
    masks = ((value, run_steps(labels == value, steps)) for value in class_values(labels))
    return merge_classes(labels, masks)


def run_steps(mask: np.ndarray, steps: Sequence[PostStep]) -> np.ndarray:
    """``steps`` one after the other on one boolean mask."""
    for step in steps:
        mask = step.apply(mask)
    return mask


def class_values(labels: np.ndarray) -> list[int]:
    """The classes of a label image (every value but 0), ascending."""
    return [value for value in np.unique(labels).tolist() if value != 0]


def merge_classes(labels: np.ndarray, masks: Iterable[tuple[int, np.ndarray]]) -> np.ndarray:
    """``labels`` with each class replaced by its processed mask, classes in the order given:
    a class loses pixels to background and grows only into background (a later class wins a
    background pixel two classes grow into). Pixel by pixel, so a tile merges as the image does.
    """
    out = labels.copy()
    for value, mask in masks:
        original = labels == value
        out[original & ~mask] = 0
        out[mask & ((labels == 0) | original)] = value
    return out
