"""Length and time units of microscopy metadata (OME-XML, NGFF, ImageJ, CZI) converted to
micrometres and seconds; a size that is given but is no size (0, negative, NaN, ∞) is warned
about once, naming the axis, and then taken as unknown."""

from __future__ import annotations

import math
import warnings

from scopeml.errors import find_stack_level

# micrometres per unit; OME-XML symbols and NGFF (UDUNITS-2) names
_MICROMETRES: dict[str, float] = {
    "pm": 1e-6,
    "picometer": 1e-6,
    "å": 1e-4,
    "angstrom": 1e-4,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "µm": 1.0,  # micro sign U+00B5
    "μm": 1.0,  # greek mu U+03BC
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
}


def to_micrometres(value: object, unit: str | None = "µm") -> float | None:
    """A physical length in micrometres, or ``None`` if value or unit is missing or not a length.

    Examples
    --------
    >>> to_micrometres("250", "nm"), to_micrometres(0.5, None), to_micrometres(1, "s")
    (0.25, 0.5, None)
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    factor = _MICROMETRES.get((unit or "µm").strip().lower())
    if factor is None or not math.isfinite(number) or number <= 0:
        return None
    return number * factor


# seconds per unit; OME-XML symbols, NGFF (UDUNITS-2) names and ImageJ's spellings
_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "nanosecond": 1e-9,
    "µs": 1e-6,
    "μs": 1e-6,
    "us": 1e-6,
    "microsecond": 1e-6,
    "ms": 1e-3,
    "millisecond": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def to_seconds(value: object, unit: str | None = "s") -> float | None:
    """A time interval in seconds, or ``None`` if value or unit is missing or not a time.

    Examples
    --------
    >>> to_seconds("30", "s"), to_seconds(2, "min"), to_seconds(500, "ms"), to_seconds(1, "µm")
    (30.0, 120.0, 0.5, None)
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    factor = _SECONDS.get((unit or "s").strip().lower())
    if factor is None or not math.isfinite(number) or number <= 0:
        return None
    return number * factor


def is_time_unit(unit: object) -> bool:
    """Whether ``unit`` names a unit of time (``"second"``, ``"ms"``, …)."""
    return isinstance(unit, str) and unit.strip().lower() in _SECONDS


#: Pixel sizes (µm) a microscope image can have: 0.1 nm (electron microscopy) to 1 cm (a
#: slide scanner's overview); outside, the metadata is in another unit than it says.
PLAUSIBLE_UM = (1e-4, 1e4)


def checked_size(
    value: object, unit: str | None, axis: str, *, path: str, what: str = "pixel size"
) -> float | None:
    """:func:`to_micrometres` (or :func:`to_seconds` for ``T``), with one warning when the
    metadata gives a number that is no size (≤ 0, NaN, ∞): that axis's size is then unknown;
    and one when a pixel size lies outside :data:`PLAUSIBLE_UM` (kept: the file says so).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     checked_size("0", "µm", "X", path="a.tif"), checked_size("0.5", "nm", "Y", path="a")
    (None, 0.0005)
    >>> str(caught[0].message)
    'a.tif: X pixel size 0 is not a size (≤ 0 or not finite); X pixel size unknown'
    """
    convert = to_seconds if axis == "T" else to_micrometres
    size = convert(value, unit)
    if size is not None and axis != "T" and not PLAUSIBLE_UM[0] <= size <= PLAUSIBLE_UM[1]:
        warnings.warn(
            f"{path}: {axis} {what} {size:g} µm is outside {PLAUSIBLE_UM[0]:g}–"
            f"{PLAUSIBLE_UM[1]:,g} µm (0.1 nm to 1 cm), so the µm columns of tables are off: "
            "check the file's metadata (metres written where µm were meant?)",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    if size is None and value is not None:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number) or number <= 0:
            warnings.warn(
                f"{path}: {axis} {what} {value} is not a size (≤ 0 or not finite); "
                f"{axis} {what} unknown",
                UserWarning,
                stacklevel=find_stack_level(),
            )
    return size


#: The order in which sizes are listed everywhere (``info``, descriptions, readers).
SIZE_ORDER = "TZYX"


def ordered_sizes(sizes: dict[str, float]) -> dict[str, float]:
    """``sizes`` in :data:`SIZE_ORDER` (T, Z, Y, X), whatever order a reader found them in.

    Examples
    --------
    >>> ordered_sizes({"X": 0.5, "Y": 0.5, "Z": 2.0})
    {'Z': 2.0, 'Y': 0.5, 'X': 0.5}
    """
    first = {a: sizes[a] for a in SIZE_ORDER if a in sizes}
    return {**first, **{a: v for a, v in sizes.items() if a not in first}}
