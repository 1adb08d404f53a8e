"""The range of each feature an object classifier was trained on, and the warning when a table
lies far outside it.

A classifier trained on 8-bit images put every nucleus of a 16-bit movie in its "bright" class
(their mean intensities in the thousands, its training objects' at most 255), without a word:
its classes mean nothing there. The pixel classifier checks its training intensities the same
way (``Training["intensity_range"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from scopeml.errors import InvalidContainerError

__all__ = ["check_ranges", "out_of_range_warning", "training_ranges"]

#: Share of the objects that must lie outside a feature's range for a warning: a few objects
#: larger or brighter than any annotated one are no sign of another kind of image.
MOST = 0.5


def training_ranges(x: np.ndarray, names: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Each feature's smallest and largest value over the training objects (rows of ``x``).

    >>> training_ranges(np.array([[1.0, 5.0], [3.0, 5.0]]), ["area", "solidity"])
    {'area': (1.0, 3.0), 'solidity': (5.0, 5.0)}
    """
    lows, highs = x.min(0), x.max(0)
    return {str(n): (float(lo), float(hi)) for n, lo, hi in zip(names, lows, highs, strict=True)}


def out_of_range_warning(
    table: pd.DataFrame, ranges: Mapping[str, tuple[float, float]], known: np.ndarray
) -> str | None:
    """A warning where most of the classifiable objects (``known``) lie outside a feature's
    training range widened by its width on each side (at least 1: a constant feature); ``None``
    otherwise.

    >>> t = pd.DataFrame({"intensity_mean_C0": [900.0, 1500.0, 30.0], "area": [50, 60, 55]})
    >>> ranges = {"intensity_mean_C0": (10.0, 250.0), "area": (40.0, 70.0)}
    >>> print(out_of_range_warning(t, ranges, np.ones(3, bool)))
    2 of 3 objects lie far outside the range of intensity_mean_C0 the classifier was trained \
on (10..250; here 30..1500): another bit depth, gain or pixel size? Its classes may mean \
nothing here
    """
    if not known.any():
        return None
    outside = []
    for name, (lo, hi) in ranges.items():
        if name not in table.columns:
            continue
        values = table[name].to_numpy(dtype=np.float64)[known]
        width = max(hi - lo, 1.0)
        far = (values < lo - width) | (values > hi + width)
        if far.mean() > MOST:
            outside.append((name, lo, hi, values, int(far.sum())))
    if not outside:
        return None
    name, lo, hi, values, n = outside[0]
    more = f" (and {len(outside) - 1} more features)" if len(outside) > 1 else ""
    return (
        f"{n} of {values.size} objects lie far outside the range of {name}{more} the "
        f"classifier was trained on ({lo:g}..{hi:g}; here {values.min():g}..{values.max():g}): "
        "another bit depth, gain or pixel size? Its classes may mean nothing here"
    )


def check_ranges(value: Any, features: Sequence[str], path: Any) -> dict[str, tuple[float, float]]:
    """The ``ranges`` a saved classifier records, validated (older files have none: ``{}``)."""
    if value is None:
        return {}
    ok = isinstance(value, dict) and set(value) <= set(features)
    pairs = list(value.values()) if ok else []
    ok = ok and all(
        isinstance(p, list) and len(p) == 2 and all(map(_finite, p)) and p[0] <= p[1] for p in pairs
    )
    if not ok:
        raise InvalidContainerError(
            "'ranges' must map features to [low, high], finite numbers, low <= high", path=path
        )
    return {str(k): (float(v[0]), float(v[1])) for k, v in value.items()}


def _finite(value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and bool(np.isfinite(value))
