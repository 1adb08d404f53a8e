"""Length units of microscopy metadata (OME-XML, NGFF, ImageJ) converted to micrometres."""

from __future__ import annotations

import math

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
