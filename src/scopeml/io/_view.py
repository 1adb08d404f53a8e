"""Six-dimensional views over arrays that have fewer or differently ordered axes.

Readers describe their pixel source by the axis letters it has (``"TCZYX"``, ``"YXC"`` for a
channels-last RGB PNG, …); :class:`AxesView` presents it as ``S T C Z Y X`` and slices the source
only where asked, so a region read touches only the region's chunks. :class:`SceneStack` puts
several equally shaped series (CZI scenes, TIFF series, NGFF images) on the ``S`` axis.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from scopeml.errors import InvalidImageError, ScopeMLError
from scopeml.io.image import AXES

Key = tuple[slice | int, ...]


def normalize_key(key: Any, shape: Sequence[int]) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    """Turn a numpy-style key into one contiguous slice per axis, plus the axes indexed by int.

    Examples
    --------
    >>> normalize_key((0, slice(1, 3)), (2, 5, 4))
    ((slice(0, 1, None), slice(1, 3, None), slice(0, 4, None)), (0,))
    """
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - len(key) + 1) + key[at + 1 :]
    if len(key) > len(shape):
        raise IndexError(f"too many indices: {len(key)} for {len(shape)} axes")
    key = key + (slice(None),) * (len(shape) - len(key))
    slices = []
    dropped = []
    for axis, (k, size) in enumerate(zip(key, shape, strict=True)):
        if isinstance(k, (int, np.integer)):
            i = int(k) + size if k < 0 else int(k)
            if not 0 <= i < size:
                raise IndexError(f"index {int(k)} out of range for axis of size {size}")
            slices.append(slice(i, i + 1))
            dropped.append(axis)
        elif isinstance(k, slice):
            start, stop, step = k.indices(size)
            if step != 1:
                raise IndexError("only contiguous regions (step 1) can be read")
            slices.append(slice(start, max(start, stop)))
        else:
            raise IndexError(f"index must be an int or a slice; got {type(k).__name__}")
    return tuple(slices), tuple(dropped)


class AxesView:
    """A 6-D ``S T C Z Y X`` view of an array whose axes are the letters ``axes``.

    Parameters
    ----------
    array
        Anything sliceable with a ``shape`` and ``dtype`` (a zarr array, a numpy array, a reader).
    axes
        One letter of ``STCZYX`` per axis of ``array``, in the array's order; ``_`` marks an
        axis of size 1 that has no meaning here (dropped).
    path
        The file the pixels come from: a failing read raises :class:`InvalidImageError` naming it.

    Examples
    --------
    >>> rgb = np.arange(2 * 3 * 3).reshape(2, 3, 3)            # Y, X, samples
    >>> view = AxesView(rgb, "YXC")
    >>> view.shape, view[0, 0, 1:3, 0, 0:1, 0:2].ravel().tolist()
    ((1, 1, 3, 1, 2, 3), [1, 4, 2, 5])

    It is an array-like to dask too (``shape``, ``dtype``, ``ndim``, slicing):

    >>> import dask.array as da
    >>> da.from_array(view, chunks=(1, 1, 3, 1, 1, 3))[0, 0, 2, 0].compute().tolist()
    [[2, 5, 8], [11, 14, 17]]
    """

    def __init__(self, array: Any, axes: str, *, path: str | None = None) -> None:
        known = axes.replace("_", "")
        if len(axes) != len(array.shape) or set(known) - set(AXES) or len(set(known)) != len(known):
            raise ValueError(f"axes {axes!r} do not name the {len(array.shape)} axes of the array")
        if any(n != 1 for a, n in zip(axes, array.shape, strict=True) if a == "_"):
            raise ValueError(
                f"placeholder axes '_' must have size 1; axes {axes!r}, shape {array.shape}"
            )
        self.array = array
        self.axes = axes
        self.path = path
        sizes = dict(zip(axes, array.shape, strict=True))
        self.shape: tuple[int, ...] = tuple(int(sizes.get(a, 1)) for a in AXES)
        self.dtype = np.dtype(array.dtype)
        # placeholders (size 1) first, then the known axes in STCZYX order
        self._order = [i for i, a in enumerate(axes) if a == "_"]
        self._order += [axes.index(a) for a in AXES if a in axes]

    @property
    def ndim(self) -> int:
        """Always 6 (``S T C Z Y X``)."""
        return len(AXES)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The array's chunk shape in ``S T C Z Y X`` (1 on axes it lacks), so that
        ``dask.array.from_array(view)`` reads whole chunks of a zarr array, not one block of
        the whole image. An array without regular chunks has none (``AttributeError``).

        >>> import zarr
        >>> AxesView(zarr.zeros((4, 100, 80), chunks=(1, 64, 64)), "ZYX").chunks
        (1, 1, 1, 1, 64, 64)
        """
        own = getattr(self.array, "chunks", None)
        if not isinstance(own, tuple) or not all(isinstance(n, (int, np.integer)) for n in own):
            raise AttributeError("chunks")
        sizes = dict(zip(self.axes, own, strict=True))
        return tuple(int(sizes.get(a, 1)) for a in AXES)

    def __getitem__(self, key: Any) -> np.ndarray:
        slices, dropped = normalize_key(key, self.shape)
        source_key = tuple(slice(0, 1) if a == "_" else slices[AXES.index(a)] for a in self.axes)
        if any(s.stop == s.start for s in slices):
            empty = np.empty(tuple(s.stop - s.start for s in slices), self.dtype)
            return empty.squeeze(axis=dropped) if dropped else empty
        try:
            block = np.asarray(self.array[source_key])
        except (ScopeMLError, MemoryError):
            raise
        except Exception as err:  # any failure to decode pixels means the file is unreadable
            region = ", ".join(f"{a}={s.start}:{s.stop}" for a, s in zip(AXES, slices, strict=True))
            raise InvalidImageError(
                f"cannot read pixels at {region}: {err}", path=self.path
            ) from err
        out_shape = tuple(s.stop - s.start for s in slices)
        out = block.transpose(self._order).reshape(out_shape)
        return out.squeeze(axis=dropped) if dropped else out


class SceneStack:
    """Several equally shaped 6-D views (``S`` = 1 each) stacked on the ``S`` axis.

    Examples
    --------
    >>> a, b = AxesView(np.zeros((2, 3)), "YX"), AxesView(np.ones((2, 3)), "YX")
    >>> stack = SceneStack([a, b])
    >>> stack.shape, stack[1:2, 0, 0, 0, 0, 0].tolist()
    ((2, 1, 1, 1, 2, 3), [1.0])
    """

    def __init__(self, scenes: Sequence[Any]) -> None:
        shapes = {tuple(s.shape) for s in scenes}
        if not scenes or len(shapes) != 1 or next(iter(shapes))[0] != 1:
            raise ValueError(f"scenes must be equally shaped with S = 1; got {sorted(shapes)}")
        self.scenes = list(scenes)
        self.shape: tuple[int, ...] = (len(scenes), *scenes[0].shape[1:])
        self.dtype = np.dtype(scenes[0].dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        slices, dropped = normalize_key(key, self.shape)
        scenes = range(slices[0].start, slices[0].stop)
        blocks = [self.scenes[s][(slice(0, 1), *slices[1:])] for s in scenes]
        if blocks:
            out = np.concatenate(blocks, axis=0)
        else:
            out = np.empty(tuple(s.stop - s.start for s in slices), self.dtype)
        return out.squeeze(axis=dropped) if dropped else out


def scene_sizes(shapes: Sequence[Sequence[int]], names: Sequence[str] = ()) -> str:
    """Describe series shapes for an error message: ``"0: 40×50, 1: 30×20"`` (Y×X, with Z if
    >1), each scene with the file's name for it where it has one (``"0 A1-Pos1: 40×50"``)."""
    parts = []
    for i, shape in enumerate(shapes):
        z, y, x = shape[-3:]
        parts.append(f"{_scene(i, names)}: " + (f"{z}×" if z > 1 else "") + f"{y}×{x}")
    return ", ".join(parts)


def _scene(index: int, names: Sequence[str]) -> str:
    """A scene's number, and its name where the file gives one other than a reader's default
    (``Image:1``).

    >>> _scene(1, ["A1-Pos1", "B2"]), _scene(1, ["Image:0", "Image:1"]), _scene(1, [])
    ('1 B2', '1', '1')
    """
    name = names[index] if index < len(names) else ""
    default = re.fullmatch(rf"(Image:?)?{index}", name)
    return f"{index} {name}" if name and not default else str(index)


def select_scene(
    series: Sequence[Any], scene: int | None, *, path: str, names: Sequence[str] = ()
) -> Any:
    """Pick series ``scene``, or stack all series on ``S`` when they are equally shaped.

    A file whose scenes differ in size cannot be one 6-D array without padding, and padding
    would invent pixels; such a file must be opened one scene at a time. ``names``: the file's
    names of its scenes, said in the errors.
    """
    n = len(series)
    if scene is not None:
        if not 0 <= scene < n:
            listed = ", ".join(_scene(i, names) for i in range(n)) if names else f"0–{n - 1}"
            raise InvalidImageError(
                f"scene {scene} does not exist; the image has {n} ({listed})", path=path
            )
        return series[scene]
    if n == 1:
        return series[0]
    if len({(tuple(s.shape), np.dtype(s.dtype)) for s in series}) == 1:
        return SceneStack(series)
    raise InvalidImageError(
        f"the image has {n} scenes of different sizes "
        f"({scene_sizes([s.shape for s in series], names)}); "
        f"open one scene at a time: --scene N (0–{n - 1}), scene= in Python, or scene: in "
        "analysis settings",
        path=path,
    )
