"""A pixel size given for images whose files record none.

Plain TIFFs, PNGs and arrays carry no calibration, so their objects would only ever be measured
in pixels. ``scopeml analyze`` (settings ``pixel_size``, ``--pixel-size``), ``scopeml segment
--pixel-size`` and their Python functions take one, in the forms ``scopeml objects measure
--pixel-size`` takes: micrometres per pixel as one number for every axis (Z, Y and X), or
``Y,X``, or ``Z,Y,X`` for a Z stack with another Z step; here also a list of those numbers or a
mapping by axis (``{X: 0.5, Y: 0.5}``, which may give a time series its seconds per time point,
``{T: 60, X: 0.5, Y: 0.5}``). A size given fills only the axes an image's file records
no size of: a file's own is kept (a batch of several magnifications is not rescaled to one),
with a warning where the two differ by more than 1 %. Z is filled only in a Z stack; a Z stack
left without a Z step is measured in voxels (a warning says so).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from scopeml.errors import find_stack_level

__all__ = ["PixelSize", "parse_pixel_size", "pixel_size_value", "resolve_pixel_sizes"]

#: A pixel size as given: one number, ``"Y,X"``/``"Z,Y,X"`` text, those numbers, or by axis.
PixelSize = float | str | Sequence[float] | Mapping[str, float]

#: Where two sizes of an axis differ by more than this fraction, a warning says so.
TOLERANCE = 0.01


#: A Y:X pixel aspect past which a pixel size given is warned of (``0.65,6.5``).
ASPECT = 2.0


def parse_pixel_size(value: Any) -> dict[str, float]:
    """Micrometres per pixel by axis, from any form of :data:`PixelSize`: one number is every
    axis's, two are ``Y,X``, three ``Z,Y,X`` (as ``objects measure --pixel-size`` reads them);
    a mapping by axis may also give ``T``, seconds per time point.

    Examples
    --------
    >>> parse_pixel_size(0.5), parse_pixel_size("2, 0.26,0.26")
    ({'Z': 0.5, 'Y': 0.5, 'X': 0.5}, {'Z': 2.0, 'Y': 0.26, 'X': 0.26})
    >>> parse_pixel_size({"x": 0.3, "Y": 0.2}), parse_pixel_size({"T": 60, "Y": 0.5, "X": 0.5})
    ({'Y': 0.2, 'X': 0.3}, {'T': 60.0, 'Y': 0.5, 'X': 0.5})
    >>> parse_pixel_size("0,65")
    Traceback (most recent call last):
    ValueError: reads '0,65' as Y 0 µm, X 65 µm: for 0.65 write a point
    >>> parse_pixel_size("0.5,0")
    Traceback (most recent call last):
    ValueError: takes positive micrometres per pixel: one number, Y,X or Z,Y,X; got '0.5,0'
    """
    problem = f"takes positive micrometres per pixel: one number, Y,X or Z,Y,X; got {value!r}"
    if isinstance(value, str) and _decimal_comma(value):  # "0,65": one number, not Y 0, X 65
        whole, fraction = (part.strip() for part in value.split(","))
        both = f"; for Y and X, write them with points ({whole}.0,{fraction}.0)"
        raise ValueError(
            f"reads {value!r} as Y {whole} µm, X {fraction} µm: for {whole}.{fraction} write a "
            f"point{both if int(whole) else ''}"
        )
    if isinstance(value, Mapping):
        sizes = {str(axis).strip().upper(): size for axis, size in value.items()}
        if not {"Y", "X"} <= set(sizes) or any(axis not in ("T", "Z", "Y", "X") for axis in sizes):
            raise ValueError(
                "takes micrometres per pixel by axis: Y and X (and Z), and seconds per time "
                f"point as T; got {value!r}"
            )
        axes = "".join(a for a in "TZYX" if a in sizes)
        values = [sizes[a] for a in axes]
    else:
        parts = value.split(",") if isinstance(value, str) else value
        parts = parts if isinstance(parts, Sequence) and not isinstance(parts, str) else [parts]
        values, axes = list(parts), "ZYX"[-len(parts) :] if 2 <= len(parts) <= 3 else "ZYX"
    try:
        numbers = [_number(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(problem) from None
    if not numbers or len(numbers) > len(axes) or not all(0 < n < math.inf for n in numbers):
        raise ValueError(problem)
    if len(numbers) == 1 and not isinstance(value, Mapping):
        return dict.fromkeys("ZYX", numbers[0])
    sizes = dict(zip(axes, numbers, strict=True))
    if max(sizes["Y"], sizes["X"]) > ASPECT * min(sizes["Y"], sizes["X"]):
        warnings.warn(
            f"pixel size Y {sizes['Y']:g} µm, X {sizes['X']:g} µm: pixels "
            f"{max(sizes['Y'], sizes['X']) / min(sizes['Y'], sizes['X']):.3g} times longer "
            "than wide; microscopes write square pixels (a mistyped point?)",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    return sizes


def _decimal_comma(text: str) -> bool:
    """Whether ``text`` is two different whole numbers around a comma (``1,5``, ``0,65``): a
    decimal comma far more often than square-less pixels of whole micrometres.

    >>> _decimal_comma("0,65"), _decimal_comma("0.65,0.65"), _decimal_comma("2,2")
    (True, False, False)
    """
    parts = [part.strip() for part in text.split(",")]
    return len(parts) == 2 and all(p.isdigit() for p in parts) and parts[0] != parts[1]


def _number(value: Any) -> float:
    if isinstance(value, bool):  # YAML's yes/no: not a size
        raise TypeError(value)
    return float(value.strip() if isinstance(value, str) else value)


def pixel_size_value(value: Any) -> float | dict[str, float] | None:
    """A pixel size in the one form the settings keep it (so equal sizes make equal settings
    and a resume compares them): one number where every axis has it, else sizes by axis.

    Examples
    --------
    >>> pixel_size_value("0.5"), pixel_size_value([2, 0.5, 0.5]), pixel_size_value(None)
    (0.5, {'Z': 2.0, 'Y': 0.5, 'X': 0.5}, None)
    """
    if value is None:
        return None
    sizes = parse_pixel_size(value)
    if set(sizes) == {"Z", "Y", "X"} and len(set(sizes.values())) == 1:
        return sizes["X"]
    return sizes


_UNIT = {"T": "s", "Z": "µm", "Y": "µm", "X": "µm"}


def resolve_pixel_sizes(
    found: Mapping[str, float],
    given: Mapping[str, float] | None,
    *,
    stack: bool,
    name: str,
    source: str = "settings",
    series: bool = False,
) -> tuple[dict[str, float], dict[str, str], list[str]]:
    """The pixel sizes of an image whose file records ``found``: the file's own for each
    spatial axis it records, ``given``'s for the others (Z only in a Z ``stack``); where each
    spatial axis's size came from (``"file"`` or ``source``); and what to warn of, naming the
    image by ``name``: a file's size that differs from the one given by more than 1 %, a Z
    step taken from one number given for every axis, a Z stack left without a Z step. The
    caller warns (once an image, and never by swapping the warning hook, which threads
    share). A time ``series`` takes ``given``'s seconds per time point (``T``) likewise.

    Examples
    --------
    >>> resolve_pixel_sizes({}, {"Z": 0.5, "Y": 0.5, "X": 0.5}, stack=False, name="a.tif")
    ({'Y': 0.5, 'X': 0.5}, {'Y': 'settings', 'X': 'settings'}, [])
    >>> resolve_pixel_sizes({"Y": 0.2, "X": 0.2}, {"Z": 2.0, "Y": 0.2, "X": 0.2}, stack=True,
    ...                     name="a.tif")
    ({'Y': 0.2, 'X': 0.2, 'Z': 2.0}, {'Z': 'settings', 'Y': 'file', 'X': 'file'}, [])
    """
    axes = ("T" if series else "") + ("ZYX" if stack else "YX")
    sizes = dict(found)
    sources = {axis: "file" for axis in axes if found.get(axis)}
    notes: list[str] = []
    if not given:
        return sizes, sources, notes
    differ = [a for a in axes if found.get(a) and given.get(a)
              and abs(found[a] - given[a]) > TOLERANCE * given[a]]  # fmt: skip
    if differ:
        own = ", ".join(f"{a} {found[a]:g} {_UNIT[a]}" for a in differ)
        other = ", ".join(f"{a} {given[a]:g} {_UNIT[a]}" for a in differ)
        notes.append(f"{name}: the file records its own pixel size ({own}), not the {other} "
                     "given: the file's is used")  # fmt: skip
    for axis in axes:
        if not found.get(axis) and given.get(axis):
            sizes[axis], sources[axis] = float(given[axis]), source
    one_number = len(set(given.values())) == 1 and len(given) == 3
    if stack and sources.get("Z") == source and one_number:
        notes.append(f"{name}: the Z step is taken as {sizes['Z']:g} µm, the one number given "
                     "for every axis; give the pixel size as Z,Y,X if it differs")  # fmt: skip
    if stack and sizes.get("Y") and sizes.get("X") and not sizes.get("Z"):
        notes.append(f"{name}: a Z stack without a Z step (neither its file nor the pixel size "
                     "given has one): its objects are measured in voxels; give the pixel size "
                     "as Z,Y,X")  # fmt: skip
    return sizes, {axis: sources[axis] for axis in axes if axis in sources}, notes
