"""Morphology steps as values: parsed from ``name[:size]``, each knowing the halo it needs.

A step runs on every class of a semantic label image but the background. Two conventions for
the background, chosen by ``background``:

- ``None`` (masks, 0-background labels): 0 is the background. A class loses pixels to 0 and
  grows only into 0, never into another class.
- a label value ``b`` (a pixel classifier's labels, where every pixel has a class and the
  background is one of them, ``b``): the steps run on every class but ``b`` and 0
  (unclassified). A class grows into ``b`` and 0, never into another class, so ``fill_holes``
  fills a class's holes of background with that class. A pixel a class loses goes to the
  class around it: the nearest pixel (in steps along the axes) that kept or got a class (not
  0), looked for as far as :func:`removal_reach` (ties: ``b`` first, then the lower value);
  none that near gives ``b``.

Every step is local, so a tile read with :attr:`PostStep.halo` more pixels on each side (plus
:func:`removal_reach` with a background class: :func:`post_halo`) gives exactly the
whole-image result in its core:

- ``opening:r`` / ``closing:r``: a ball of radius ``r`` eroded then dilated (or the reverse)
  reaches ``2 r`` pixels;
- ``remove_small:n``: a component that reaches ``n - 1`` pixels away has at least ``n`` pixels,
  so within that halo a tile decides every core pixel as the whole image does;
- ``fill_holes:n``: holes (pixels of no class of its own not connected to the image border)
  with fewer than ``n`` pixels are filled, by the same argument.

``fill_holes`` without a size fills holes of any size. That is not local — one pixel far away
can open a hole to the border — so it has no halo (:attr:`PostStep.local` is false):
:func:`~scopeml.post.tiled.post_process_tiled` runs it as a pass of exact tiled connected
components over the whole plane (:func:`scopeml.post.planes.fill_holes_tiled`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from scopeml.errors import InvalidRequestError
from scopeml.post.morphology import binary_close, binary_open, fill_holes, remove_small_objects

# The largest sizes a request may give, the one place they are set (post steps, analysis
# settings, instances, object splits). Each is generous for microscopy yet bounds the memory
# and time one tile needs, whatever the image: past them a request is refused up front.

#: Largest radius (pixels) of an opening or closing (``opening:r``, settings ``radius``): every
#: pixel visits every offset of a ball of that radius (radius 48 takes ~5 s and 650 MB on a
#: 1024² tile; time and memory grow as r²) and the tiles' halo is 2 r.
MAX_BALL_RADIUS = 50
#: Largest distance (pixels) a seed grows (instances' ``grow``, ``--grow``) or split seeds keep
#: apart (``watershed_split``'s ``min_distance``): each searches a (2 d + 1)ⁿ neighbourhood
#: (100: 8 million offsets, ~300 MB, in a Z stack) and adds d to the tiles' halo.
MAX_DISTANCE = 100
#: Largest Gaussian sigma (pixels) of smoothing before a threshold: its kernel reaches 4 σ,
#: :data:`MAX_DISTANCE`.
MAX_SIGMA = MAX_DISTANCE / 4


def size_problem(name: str, value: object, limit: float) -> str | None:
    """Why ``value`` is no size ``name`` may have (not a finite number, or past ``limit``
    pixels), or ``None`` where it may: the words of every check against the limits above.

    Examples
    --------
    >>> size_problem("grow", 4.0, MAX_DISTANCE) is None
    True
    >>> size_problem("grow", float("nan"), MAX_DISTANCE)
    'grow must be a finite number of pixels; got nan'
    >>> print(size_problem("radius", 5000, MAX_BALL_RADIUS))
    radius must be at most 50 pixels (scopeml's limit, which bounds each tile's memory and \
time); got 5000
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return f"{name} must be a number of pixels; got {value!r}"
    if not np.isfinite(number):
        return f"{name} must be a finite number of pixels; got {value!r}"
    if number > limit:
        return (
            f"{name} must be at most {limit:g} pixels (scopeml's limit, which bounds each "
            f"tile's memory and time); got {value!r}"
        )
    return None


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
            from scopeml.errors import did_you_mean

            known = sorted([*_STEPS, "crf"])  # crf: scopeml.post.crf_tiled
            raise InvalidRequestError(
                f"unknown post-processing step {self.name!r}{did_you_mean(self.name, known)}; "
                f"known: {', '.join(known)}"
            )
        if self.size is None:
            if self.name != "fill_holes":
                raise InvalidRequestError(f"step {self.name} needs a size: {self.name}:SIZE")
        elif self.size < 1:
            raise InvalidRequestError(f"step {self.name}: size must be >= 1; got {self.size}")
        elif self.name in ("opening", "closing"):
            problem = size_problem("the radius", self.size, MAX_BALL_RADIUS)
            if problem:
                raise InvalidRequestError(f"step {self.name}:{self.size}: {problem}")

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


def removal_reach(steps: Sequence[PostStep]) -> int:
    """How far (pixels) a pixel a class loses looks for the class around it: the largest
    distance a step removes pixels from the class's other pixels or its border
    (``remove_small:n``: ``n - 1``, a removed component has fewer than ``n`` pixels;
    ``opening:r``: ``r``, a removed pixel has no ball of radius ``r`` inside the class)."""
    reach = [step.size - 1 for step in steps if step.name == "remove_small" and step.size]
    reach += [step.size for step in steps if step.name == "opening" and step.size]
    return max(reach, default=0)


def post_halo(steps: Sequence[PostStep], background: int | None = None) -> int:
    """Pixels of context a tile needs for :func:`apply_steps` to be exact in its core: the
    steps' halo, plus :func:`removal_reach` where lost pixels go to the class around them."""
    return steps_halo(steps) + (removal_reach(steps) if background is not None else 0)


def apply_steps(
    labels: np.ndarray, steps: Sequence[PostStep], *, background: int | None = None
) -> np.ndarray:
    """Run ``steps`` in order on each class of a semantic label image; same shape and dtype.

    ``background``: the label value of the background class (see the module docstring), or
    ``None`` where 0 is the background.

    Examples
    --------
    >>> semantic = np.array([[1, 1, 1, 0, 2], [1, 0, 1, 0, 0], [1, 1, 1, 0, 0]], np.uint8)
    >>> apply_steps(semantic, [PostStep("fill_holes", 10), PostStep("remove_small", 2)])
    array([[1, 1, 1, 0, 0],
           [1, 1, 1, 0, 0],
           [1, 1, 1, 0, 0]], dtype=uint8)
    >>> classified = semantic + 1  # a pixel classifier's: background is class 1
    >>> apply_steps(classified, [PostStep("fill_holes", 10), PostStep("remove_small", 2)],
    ...             background=1)
    array([[2, 2, 2, 1, 1],
           [2, 2, 2, 1, 1],
           [2, 2, 2, 1, 1]], dtype=uint8)
    """
    labels = np.asarray(labels)
    masks = (
        (value, run_steps(labels == value, steps)) for value in class_values(labels, background)
    )
    return merge_classes(labels, masks, background=background, reach=removal_reach(steps))


def run_steps(mask: np.ndarray, steps: Sequence[PostStep]) -> np.ndarray:
    """``steps`` one after the other on one boolean mask."""
    for step in steps:
        mask = step.apply(mask)
    return mask


def class_values(labels: np.ndarray, background: int | None = None) -> list[int]:
    """The classes the steps run on (every value but 0 and ``background``), ascending."""
    return [value for value in np.unique(labels).tolist() if value not in (0, background)]


def merge_classes(
    labels: np.ndarray,
    masks: Iterable[tuple[int, np.ndarray]],
    *,
    background: int | None = None,
    reach: int = 0,
) -> np.ndarray:
    """``labels`` with each class replaced by its processed mask, classes in the order given:
    a class grows only into background (0, and ``background``; a later class wins a pixel two
    classes grow into). A pixel a class loses becomes 0, or, with a ``background`` class, takes
    the nearest class within ``reach`` (:func:`give_to_nearest`). Local: a tile with ``reach``
    more pixels merges its core as the image does.
    """
    out = labels.copy()
    vacated = np.zeros(labels.shape, bool) if background is not None else None
    free = labels == 0 if background is None else (labels == 0) | (labels == background)
    for value, mask in masks:
        original = labels == value
        lost = original & ~mask
        out[lost] = 0
        if vacated is not None:
            vacated |= lost  # only this class may take these back, and it does not
        out[mask & (free | original)] = value
    if vacated is not None:
        give_to_nearest(out, vacated, background, reach)  # type: ignore[arg-type]
    return out


def give_to_nearest(out: np.ndarray, vacated: np.ndarray, background: int, reach: int) -> None:
    """Give each ``vacated`` pixel of ``out`` (in place) the class of the nearest other pixel
    with a class (not 0) within ``reach`` pixels (steps along the axes, as ``remove_small``
    connects pixels; ties: ``background``, then the lower value); ``background`` where there is
    none that near. A distance along the axes is found exactly in any cut-out that holds both
    pixels, so tiles agree with the whole image.

    Examples
    --------
    >>> out = np.array([[3, 3, 0, 2, 2, 2]]); vacated = out == 0
    >>> give_to_nearest(out, vacated, 1, 2); out  # a tie: the lower value
    array([[3, 3, 2, 2, 2, 2]])
    """
    if not vacated.any():
        return
    # the pixels within reach of a vacated one: exact distances there, however the image is cut
    box = _bounding_box(vacated, reach)
    here, near = vacated[box], out[box]
    kept = ~here
    values = [v for v in np.unique(near[kept]).tolist() if v != 0]
    order = sorted(values, key=lambda v: (v != background, v))
    choice = np.full(int(here.sum()), background, out.dtype)
    best = np.full(choice.shape, np.inf)
    for value in order:
        distance = ndi.distance_transform_cdt(~(kept & (near == value)), metric="taxicab")[here]
        closer = (distance >= 0) & (distance <= reach) & (distance < best)  # -1: none here
        choice[closer], best[closer] = value, distance[closer]
    near[here] = choice


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """The slices around ``mask``'s true pixels, grown by ``margin`` and clipped to it."""
    box = []
    for axis in range(mask.ndim):
        found = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(
            slice(
                max(int(found[0]) - margin, 0), min(int(found[-1]) + margin + 1, mask.shape[axis])
            )
        )
    return tuple(box)
