"""The :class:`Image`: a lazy, always six-dimensional view of a microscopy image.

Every reader returns an ``Image`` whose axes are ``S T C Z Y X`` (missing axes have size 1), so
the engine never branches on the file format. Pixels are read region by region on demand.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any, Protocol

import numpy as np

from scopeml.errors import InvalidRequestError, find_stack_level

AXES = "STCZYX"
SPATIAL_AXES = "ZYX"


def default_channel_names(n: int) -> list[str]:
    """The names of the channels of a file that names none: ``C0``, ``C1``…"""
    return [f"C{i}" for i in range(n)]


def names_no_channels(names: Sequence[Any]) -> bool:
    """Whether ``names`` are those a file that names none of its channels is read with, in
    order (:func:`default_channel_names`): where a name tells nothing of the channel.

    >>> names_no_channels(["C0", "C1"]), names_no_channels(["C1"]), names_no_channels(["DAPI"])
    (True, False, False)
    """
    return [str(name) for name in names] == default_channel_names(len(names))


def names_tell_nothing(names: Sequence[Any]) -> bool:
    """Whether ``names`` say nothing of what the channels hold, so named channels may be
    read in their order: a file's that names none (``C0``…), or ``R, G, B``, which readers
    give the samples of a colour TIFF (tifffile saves a 3-channel stack so by default).

    >>> names_tell_nothing(["R", "G", "B"]), names_tell_nothing(["DAPI", "G", "B"])
    (True, False)
    """
    return names_no_channels(names) or [str(name) for name in names] == ["R", "G", "B"]


#: How a pixel array of fewer axes is read (channels first, as scikit-image's
#: ``channel_axis=0``): by :class:`Image` and by every facade call that takes an array.
ARRAY_AXES = {2: "YX", 3: "CYX", 4: "CZYX", 6: "STCZYX"}


def axis_keys(
    keys: Any, allowed: str, what: str, *, path: str | PathLike[str] | None = None
) -> dict[str, str]:
    """Each of ``keys`` (axis names as a user writes them: ``"Y"`` or ``"y"``) with the axis
    letter it names; any that names none of ``allowed`` is refused, with the valid ones.

    Axis names are case-insensitive everywhere an axis is named (``Image.read``, a region,
    pixel sizes): ``y`` is ``Y``, never a silently ignored key.

    Examples
    --------
    >>> axis_keys(["y", "X"], "TZYX", "region")
    {'y': 'Y', 'X': 'X'}
    >>> axis_keys(["W", "x"], "ZYX", "pixel_sizes")
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: pixel_sizes: unknown axes ['W']; valid axes are Z, Y, X
    """
    letters = {key: key.upper() if isinstance(key, str) else key for key in keys}
    unknown = [key for key, axis in letters.items() if axis not in tuple(allowed)]
    if unknown:
        raise InvalidRequestError(
            f"{what}: unknown axes {unknown}; valid axes are {', '.join(allowed)}", path=path
        )
    repeated = sorted({a for a in letters.values() if list(letters.values()).count(a) > 1})
    if repeated:
        raise InvalidRequestError(
            f"{what}: axis {', '.join(repeated)} given twice (axis names are case-insensitive)",
            path=path,
        )
    return letters


class ArrayLike(Protocol):
    """A 6-D source of pixels: ``shape``, ``dtype`` and basic slicing that returns numpy."""

    shape: tuple[int, ...]
    dtype: Any

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray: ...


class Image:
    """A lazy 6-D image with axes ``S T C Z Y X``, physical pixel sizes and channel names.

    Parameters
    ----------
    data
        Any 6-D array-like whose slicing returns numpy (a zarr array, a tifffile zarr store,
        a CZI region reader, a numpy or dask array); or one of fewer axes, read as the facade
        reads arrays (:data:`ARRAY_AXES`: ``Y×X``, ``C×Y×X``, ``C×Z×Y×X``), still lazily.
    pixel_sizes
        Physical size of one pixel in micrometres, keyed by ``"Z"``, ``"Y"``, ``"X"`` (any
        case); axes of unknown size are absent.
    channel_names
        One name per channel (``C``); defaults to ``C0, C1, …``.
    path
        The file the pixels come from, for error messages.
    close
        Called by :meth:`close` to release file handles.

    Examples
    --------
    >>> img = Image(np.zeros((1, 1, 2, 1, 4, 5), np.uint8), pixel_sizes={"X": 0.5, "Y": 0.5})
    >>> img.sizes["C"], img.read(Y=slice(0, 2)).shape
    (2, (1, 1, 2, 1, 2, 5))
    >>> plane = Image(np.ones((4, 5), np.uint8))  # Y×X: one channel
    >>> plane.shape, np.asarray(plane).shape
    ((1, 1, 1, 1, 4, 5), (1, 1, 1, 1, 4, 5))
    """

    def __init__(
        self,
        data: ArrayLike,
        *,
        pixel_sizes: Mapping[str, float] | None = None,
        channel_names: Sequence[str] | None = None,
        path: str | PathLike[str] | None = None,
        close: Any = None,
    ) -> None:
        if isinstance(data, (list, tuple)):  # nested lists, as segment and predict take them
            data = np.asarray(data)
        if not hasattr(data, "shape") or not hasattr(data, "dtype"):
            raise InvalidRequestError(
                f"Image data must be an array (numpy, dask, zarr), not {type(data).__name__}",
                path=path,
            )
        if len(data.shape) != len(AXES):
            data = _as_six_d(data, path)
        self.data = data
        self.shape: tuple[int, ...] = tuple(int(n) for n in data.shape)
        self.dtype = np.dtype(data.dtype)
        sizes = dict(pixel_sizes or {})
        letters = axis_keys(sizes, AXES, "pixel_sizes", path=path)
        self.pixel_sizes: dict[str, float] = {
            letters[axis]: float(size) for axis, size in sizes.items() if size
        }
        for axis, size in self.pixel_sizes.items():  # 0 or None: unknown, left out
            if not np.isfinite(size) or size < 0:
                raise InvalidRequestError(
                    f"pixel_sizes: {axis} {size} is not a size (> 0)", path=path
                )
        n_channels = self.shape[AXES.index("C")]
        names = list(channel_names) if channel_names else default_channel_names(n_channels)
        if len(names) != n_channels:
            raise InvalidRequestError(
                f"{len(names)} channel names given for {n_channels} channels",
                path=path,
            )
        self.channel_names: tuple[str, ...] = tuple(names)
        self.path = None if path is None else str(path)
        self._close = close
        self._file_scene: int | None = None  # the scene open_image read (None: all)
        self.scene_names: tuple[str, ...] = ()  # the file's names of its scenes, where it has
        self._from_file = False  # pixels read from `path` by open_image, not merely named
        #: The axes ``open_image`` was told the file has (``axes='TYX'``), which a run
        #: records, as for a path: what measures its objects reads the file so again.
        self.file_axes: str | None = None
        #: A field saved one file per channel: each channel's file (``path`` the first),
        #: all of which a run fingerprints; ``()`` for an image of one file.
        self.channel_files: tuple[str, ...] = ()

    @property
    def sizes(self) -> dict[str, int]:
        """Size of each axis, keyed by axis letter."""
        return dict(zip(AXES, self.shape, strict=True))

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """``(Z, Y, X)`` sizes."""
        return self.shape[3], self.shape[4], self.shape[5]

    def read(self, **region: slice | int) -> np.ndarray:
        """Read a region as a 6-D numpy array; axes not named are read whole.

        Axes are named in either case (``Y=`` or ``y=``). An ``int`` selects one index but
        keeps the axis (length 1), so the result is always 6-D; an index outside the axis is
        refused, a negative one counts from the end. A slice, or ``(start, stop)`` as regions
        elsewhere, is clipped to the image as numpy clips it.

        Examples
        --------
        >>> Image(np.zeros((4, 5))).read(y=slice(0, 2), X=-1).shape
        (1, 1, 1, 1, 2, 1)
        >>> Image(np.zeros((4, 5))).read(y=(1, 3)).shape
        (1, 1, 1, 1, 2, 5)
        >>> Image(np.zeros((4, 5))).read(T=1)
        Traceback (most recent call last):
        ...
        scopeml.errors.InvalidRequestError: Image.read: T=1 is outside the image (T has 1)
        """
        letters = axis_keys(region, AXES, "Image.read", path=self.path)
        region = {letters[key]: sel for key, sel in region.items()}
        key = []
        for axis, size in zip(AXES, self.shape, strict=True):
            sel = given = region.get(axis, slice(None))
            if isinstance(sel, (int, np.integer)) and not isinstance(sel, bool):
                if not -size <= sel < size:
                    raise InvalidRequestError(
                        f"Image.read: {axis}={sel} is outside the image ({axis} has {size})",
                        path=self.path,
                    )
                sel = slice(int(sel) % size, int(sel) % size + 1)
            elif isinstance(sel, tuple) and len(sel) == 2:
                sel = slice(*sel)
            try:
                start, stop, step = sel.indices(size)
            except (AttributeError, TypeError):
                raise InvalidRequestError(
                    f"Image.read: {axis} takes an index, a slice or (start, stop); got {given!r}",
                    path=self.path,
                ) from None
            if step != 1:
                raise InvalidRequestError("Image.read takes contiguous regions only (step 1)")
            key.append(slice(start, stop))
        return np.asarray(self.data[tuple(key)])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The whole image as one 6-D numpy array (``np.asarray(image)``).

        This reads every pixel into memory: for a large image read a region with
        :meth:`read` instead, or let :func:`scopeml.segment` tile it.
        """
        array = self.read()
        return array if dtype is None else array.astype(dtype, copy=False)

    @property
    def ndim(self) -> int:
        """Always 6 (``S T C Z Y X``)."""
        return len(AXES)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.data[key])

    def select_channels(
        self, channels: Sequence[int | str], *, names: Sequence[str] | None = None
    ) -> Image:
        """A lazy view with only ``channels`` (names, or indices from 0), in the order given,
        called ``names`` where given (one per channel: a file's unnamed ``C0`` read as the
        ``DAPI`` an analysis names it), else as this image calls them.

        A channel given twice (by name or index) and a negative index are refused. Names for
        every channel of an image whose file names none (``C0``, ``C1``…) read it in order,
        with a warning, as an analysis reads such a file: ``--channels DAPI`` of a plain TIFF.

        Examples
        --------
        >>> img = Image(np.arange(3).reshape(1, 1, 3, 1, 1, 1), channel_names=["a", "b", "c"])
        >>> view = img.select_channels(["c", 0])
        >>> view.channel_names, view.read().ravel().tolist()
        (('c', 'a'), [2, 0])
        >>> img.select_channels([1, 2]).read().ravel().tolist()  # one contiguous read
        [1, 2]
        """
        if self._names_unnamed(channels):
            read = ", ".join(f"{self.channel_names[i]} as {c}" for i, c in enumerate(channels))
            where = "" if self.path is None else f"{self.path}: "
            warnings.warn(f"{where}the file names no channels: read {read} (in order)",
                          UserWarning, stacklevel=find_stack_level())  # fmt: skip
            names, channels = names or [str(c) for c in channels], range(len(channels))
        indices = [self._channel_index(channel) for channel in channels]
        if not indices:
            raise InvalidRequestError("select at least one channel", path=self.path)
        for i in sorted(set(indices)):
            given = [c for c, j in zip(channels, indices, strict=True) if j == i]
            if len(given) > 1:
                several = len(set(map(str, given))) > 1  # 'DAPI' and 0, not '0' and 0
                spelled = f" (given as {' and '.join(map(repr, given))})" if several else ""
                raise InvalidRequestError(
                    f"duplicate channel {self.channel_names[i]!r}{spelled}", path=self.path
                )
        if names is not None and len(names) != len(indices):
            raise InvalidRequestError(
                f"give one name per channel selected: {len(names)} for {len(indices)}",
                path=self.path,
            )
        shown = [self.channel_names[i] for i in indices] if names is None else list(names)
        return self._selected(_ChannelView(self.data, indices), shown)

    def select_scene(self, scene: int) -> Image:
        """A lazy view of one scene (``S`` = 1), as a reader opening that scene gives.

        Examples
        --------
        >>> img = Image(np.arange(3).reshape(3, 1, 1, 1, 1, 1))
        >>> view = img.select_scene(2)
        >>> view.shape, view.read().ravel().tolist()
        ((1, 1, 1, 1, 1, 1), [2])
        """
        if not 0 <= scene < self.sizes["S"]:
            raise InvalidRequestError(
                f"scene {scene} does not exist; the image has {self.sizes['S']}", path=self.path
            )
        return self._selected(_SceneView(self.data, scene), self.channel_names)

    @property
    def source_channels(self) -> int:
        """Channels of the image this view was cut from (:meth:`select_channels`,
        :meth:`select_scene`; its own where it is no view): a model trained on ``C0`` of a
        two-channel file may take ``C0`` of another such file by name, not of a one-channel
        one's.

        >>> Image(np.zeros((1, 1, 3, 1, 2, 2))).select_channels([1]).source_channels
        3
        """
        data = self.data
        while isinstance(data, (_ChannelView, _SceneView)):
            data = data.data
        return int(data.shape[2])

    def mark_read_from_file(self, scene: int | None, axes: str | None = None) -> None:
        """Say that a reader read these pixels from the file at ``path`` (``scene``: the one
        it opened; ``None``: all; ``axes``: as told, :attr:`file_axes`):
        :func:`~scopeml.io.open_image` does, so that :meth:`view` tells a file's pixels from
        an array that merely names the file."""
        self._file_scene, self._from_file, self.file_axes = scene, True, axes

    def view(self) -> dict[str, Any]:
        """Which pixels of its file this image shows: ``from_file`` (read by a reader, not an
        array that names the file), the file's ``scene`` (``None``: the scenes as opened) and
        its ``channels`` (indices; ``None``: all), through every :meth:`select_scene` and
        :meth:`select_channels`. A run records it: views of one file share path and shape.

        Examples
        --------
        >>> img = Image(np.zeros((3, 1, 4, 1, 2, 2), np.uint8), path="a.tif")
        >>> img.view()
        {'from_file': False, 'scene': None, 'channels': None}
        >>> img.mark_read_from_file(None)
        >>> img.select_scene(2).select_channels([3, 1]).select_channels([0]).view()
        {'from_file': True, 'scene': 2, 'channels': [3]}
        """
        scene, channels, data = None, None, self.data
        while isinstance(data, (_ChannelView, _SceneView)):
            if isinstance(data, _ChannelView):
                channels = [data.indices[c] for c in channels or range(len(data.indices))]
            else:
                scene = data.scene + (scene or 0)  # a view of a view of one scene: 0
            data = data.data
        if self._file_scene is not None:
            scene = self._file_scene + (scene or 0)
        return {"from_file": self._from_file, "scene": scene, "channels": channels}

    def _selected(self, data: ArrayLike, channel_names: Sequence[str]) -> Image:
        """A view of ``data`` (this image's, selected) that keeps where its pixels come from."""
        view = Image(
            data,
            pixel_sizes=self.pixel_sizes,
            channel_names=channel_names,
            path=self.path,
            close=self.close,
        )
        view._file_scene, view._from_file = self._file_scene, self._from_file
        view.file_axes, view.channel_files = self.file_axes, self.channel_files
        view.scene_names = self.scene_names  # the file's, as view() numbers its scenes
        return view

    def _names_unnamed(self, channels: Sequence[int | str]) -> bool:
        """Whether ``channels`` are names, none of them the image's, for each of the channels
        of an image whose file names none (read as ``C0``, ``C1``…)."""
        have = list(self.channel_names)
        return (
            names_tell_nothing(have)
            and len(set(channels)) == len(channels) == len(have)
            and all(isinstance(c, str) and not c.strip().lstrip("-").isdigit() for c in channels)
            and not any(c in have for c in channels)
        )

    def _channel_index(self, channel: int | str) -> int:
        if isinstance(channel, str) and channel in self.channel_names:
            return self.channel_names.index(channel)
        if isinstance(channel, str) and channel.lstrip("-").isdigit():
            channel = int(channel)
        if isinstance(channel, (int, np.integer)) and 0 <= channel < len(self.channel_names):
            return int(channel)  # no negative indices: on a command line -1 is no channel
        from scopeml.errors import did_you_mean

        last = len(self.channel_names) - 1
        close = did_you_mean(channel, self.channel_names) if isinstance(channel, str) else ""
        raise InvalidRequestError(
            f"no channel {channel!r}{close}; the image has {', '.join(self.channel_names)} "
            f"(or {f'indices 0..{last}' if last else 'index 0'})",
            path=self.path,
        )

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        sizes = " ".join(f"{a}={n}" for a, n in self.sizes.items())
        return f"Image({sizes}, dtype={self.dtype}, path={self.path!r})"


def _as_six_d(data: Any, path: str | PathLike[str] | None) -> Any:
    """An array of fewer axes as the 6-D view the facade makes of it (:data:`ARRAY_AXES`);
    anything else is refused with the layouts that are read."""
    from scopeml.errors import InvalidImageError

    shape = tuple(data.shape)
    axes = ARRAY_AXES.get(len(shape))
    if axes is None:
        raise InvalidImageError(
            f"Image data of shape {shape} has {len(shape)} axes; expected Y×X (one channel), "
            f"C×Y×X, C×Z×Y×X or {'×'.join(AXES)} (scopeml.open_image reads files with any axes)",
            path=path,
        )
    from scopeml.io._view import AxesView

    return AxesView(data, axes, path=None if path is None else str(path))


def stack_channels(images: Sequence[Image], channel_names: Sequence[str] | None = None) -> Image:
    """The channels of ``images`` one after another, as one lazy image: a field whose channels
    a microscope saved one file each (CellProfiler's NamesAndTypes). Every image has the
    others' scenes, time points, Z, Y and X; the pixels are of the type that holds them all
    (``uint8`` and ``uint16``: ``uint16``) and the pixel sizes the first image's. Channel
    names: ``channel_names``, else the images' own, which must not repeat (files that name
    none are all ``C0``). Closing it closes them.

    Examples
    --------
    >>> dapi = Image(np.zeros((4, 5), np.uint8), channel_names=["DAPI"])
    >>> gfp = Image(np.ones((4, 5), np.uint16))
    >>> both = stack_channels([dapi, gfp], ["DAPI", "GFP"])
    >>> both.channel_names, both.dtype.name, both.read(C=slice(1, 2)).max()
    (('DAPI', 'GFP'), 'uint16', np.uint16(1))
    """
    first = images[0]
    for image in images[1:]:
        other = {a: n for a, n in image.sizes.items() if a != "C" and n != first.sizes[a]}
        if other:
            said = ", ".join(f"{a}={n} (not {first.sizes[a]})" for a, n in other.items())
            raise InvalidRequestError(
                f"cannot stack its channels after {first.path or 'the first image'}'s: {said}",
                path=image.path,
            )
    names = list(channel_names or [n for image in images for n in image.channel_names])
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated or not all(n.strip() for n in names):
        said = f"repeat ({', '.join(repeated)})" if repeated else "include an empty one"
        whose = "channel names" if channel_names else "images' channel names"
        raise InvalidRequestError(
            f"the {whose} {said}: name each channel once (--channel-names DAPI,GFP,…)"
        )
    dtype = np.result_type(*(image.dtype for image in images))

    def close() -> None:
        for image in images:
            image.close()

    stacked = Image(_ChannelStack([image.data for image in images], dtype),
                    pixel_sizes=first.pixel_sizes, channel_names=names, path=first.path,
                    close=close)  # fmt: skip
    stacked.scene_names, stacked.file_axes = first.scene_names, first.file_axes  # a plate's wells
    return stacked


class _ChannelStack:
    """The channels of several 6-D sources of one shape, one source after another."""

    def __init__(self, sources: Sequence[ArrayLike], dtype: np.dtype) -> None:
        self.sources, self.dtype = list(sources), np.dtype(dtype)
        self.starts = np.cumsum([0] + [int(s.shape[2]) for s in self.sources])
        shape = [int(n) for n in self.sources[0].shape]
        shape[2] = int(self.starts[-1])
        self.shape = tuple(shape)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        start, stop, _ = key[2].indices(self.shape[2])
        parts = []
        for source, first in zip(self.sources, self.starts[:-1], strict=False):
            low, high = max(start - first, 0), min(stop - first, source.shape[2])
            if low < high:
                part = source[(*key[:2], slice(low, high), *key[3:])]
                parts.append(np.asarray(part).astype(self.dtype, copy=False))
        if not parts:  # no channel asked for
            sizes = [len(range(*k.indices(n))) for k, n in zip(key, self.shape, strict=True)]
            return np.zeros(sizes, self.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


class _ChannelView:
    """Some channels of a 6-D source, read one contiguous run of channels at a time."""

    def __init__(self, data: ArrayLike, indices: Sequence[int]) -> None:
        self.data, self.indices = data, list(indices)
        self.dtype = data.dtype
        shape = list(data.shape)
        shape[2] = len(self.indices)
        self.shape = tuple(shape)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        start, stop, _ = key[2].indices(len(self.indices))
        runs: list[list[int]] = []  # [first, stop) of consecutive source channels
        for channel in self.indices[start:stop]:
            if runs and runs[-1][1] == channel:
                runs[-1][1] += 1
            else:
                runs.append([channel, channel + 1])
        parts = [np.asarray(self.data[(*key[:2], slice(a, b), *key[3:])]) for a, b in runs]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


class _SceneView:
    """One scene of a 6-D source, as a 6-D source with ``S`` = 1."""

    def __init__(self, data: ArrayLike, scene: int) -> None:
        self.data, self.scene = data, scene
        self.dtype = data.dtype
        self.shape = (1, *data.shape[1:])

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        start, stop, _ = key[0].indices(1)
        return np.asarray(self.data[(slice(self.scene + start, self.scene + stop), *key[1:])])
