"""Object classes by rules on measurements (CellProfiler's ClassifyObjects and FilterObjects).

A class's ``rules`` name its objects by bounds on the columns of its own table: an object
takes the name of the first rule whose every bound it meets (``min ≤ value ≤ max``), in the
``object_class`` column an object classifier would write. A missing value (NaN: the mean
size of a parent's children where it has none) meets no bound; an object meeting no rule has
no class (an empty cell). A rule without bounds (``other: {}``, last) takes every object left.
Thresholds drawn by hand are how a small screen sorts mitotic from interphase nuclei or
drops debris, without annotating objects to train a classifier.

Examples
--------
>>> table = pd.DataFrame({"area": [30, 300, 120], "intensity_mean_DNA": [900, 200, np.nan]})
>>> rules = {"mitotic": {"area": Bounds(max=150), "intensity_mean_DNA": Bounds(min=500)},
...          "other": {}}
>>> classify_by_rules(table, rules, "nucleus")["object_class"].tolist()
['mitotic', 'other', 'other']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from scopeml.errors import InvalidImageError

if TYPE_CHECKING:
    from scopeml.analysis.settings import AnalysisSettings, ClassSettings

__all__ = ["Bounds", "Rules", "classify_by_rules", "table_columns"]

#: The column rules write, as an object classifier does (the report counts it).
COLUMN = "object_class"


def _number(value: Any) -> Any:
    """A bound as YAML gave it: ``true`` is no number (it was taken for 1)."""
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is no number: a bound is one (max: 60)")
    return value


Bound = Annotated[float | None, BeforeValidator(_number)]


class Bounds(BaseModel):
    """The values of one column an object may have: ``min ≤ value ≤ max`` (either or both)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: Bound = Field(None, allow_inf_nan=False)
    max: Bound = Field(None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounded(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both (a rule without bounds is written {})")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}: no value meets both")
        return self


#: A rule's name is a value of the tables' ``object_class`` and part of the summary's column
#: names (``nucleus_class_mitotic``): a class name's characters.
RuleName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
]


def _plain(rules: Any) -> Any:
    """Rules as a person writes them, said plainly where YAML read them otherwise: a name
    YAML takes for another type (``true:``, ``null:``, ``1:``), a column without bounds."""
    if not isinstance(rules, dict):
        return rules
    for name, bounds in rules.items():
        if not isinstance(name, str):
            raise ValueError(f"rule name {name!r} is read as {type(name).__name__}: quote it")
        for column, bound in (bounds or {}).items() if isinstance(bounds, dict) else ():
            if bound is None:
                raise ValueError(
                    f"rule {name!r}: {column} has no bounds: give min, max or both "
                    "({min: 10}); a rule without bounds is written {}"
                )
    return rules


#: Rule name → column → bounds, in order: the first rule an object meets names it.
Rules = Annotated[dict[RuleName, dict[str, Bounds]], BeforeValidator(_plain)]


#: Names pandas (and R) read back from a CSV table as a missing value.
_MISSING = frozenset({"na", "nan", "null", "none"})


def check_name(name: str) -> str:
    """Refuse a name a table's reader takes for a missing value (a rule ``NA`` vanished from
    its ``object_class`` column and from the counts)."""
    if name.casefold() in _MISSING:
        raise ValueError(f"{name!r} reads as a missing value in a table (pandas, R): name it "
                         "otherwise")  # fmt: skip
    return name


def check_order(rules: Rules) -> None:
    """Refuse a rule after one without bounds (it takes every object left), and a name read
    as a missing value (:func:`check_name`)."""
    for name in rules:
        check_name(name)
    names = list(rules)
    for index, name in enumerate(names[:-1]):
        if not rules[name]:
            raise ValueError(
                f"rule {name!r} has no bounds, so it takes every object left and "
                f"{', '.join(map(repr, names[index + 1 :]))} after it would name none; "
                "put it last"
            )


def classify_by_rules(table: pd.DataFrame, rules: Rules, name: str) -> pd.DataFrame:
    """``table`` with ``object_class``: each object's first rule met (missing where none).

    A column the table lacks is refused naming the rule: the settings' check knows a class's
    columns, but not whether an image is 2-D (``perimeter``) or 3-D (``volume_um3``)."""
    named = np.full(len(table), None, dtype=object)
    left = np.ones(len(table), dtype=bool)
    for rule, bounds in rules.items():
        met = left.copy()
        for column, bound in bounds.items():
            if column not in table.columns:
                raise InvalidImageError(f"class {name!r}, rule {rule!r}: {_missing(column, table)}")
            values = table[column].to_numpy(np.float64)
            with np.errstate(invalid="ignore"):  # NaN meets no bound
                if bound.min is not None:
                    met &= values >= bound.min
                if bound.max is not None:
                    met &= values <= bound.max
        named[met] = rule
        left &= ~met
    return table.assign(**{COLUMN: named})


def _missing(column: str, table: pd.DataFrame) -> str:
    """Why an image's table lacks a column its class's rules may name: a size in µm without
    the image's pixel size (a Z stack's Z step too), or a column of 2-D or 3-D tables only
    (:func:`scopeml.objects.classifier._dims`)."""
    from scopeml.objects.classifier import _dims, physical_features

    dims = _dims([column])
    if dims is not None and ("centroid-2" in table.columns) != (dims == 3):
        return f"this image's table has no column {column!r}: only {dims}-D images have it"
    if physical_features([column]):
        stack = " (a Z stack: its Z step too)" * ("centroid-2" in table.columns)
        return (f"{column} needs a pixel size, and this image records none{stack} "
                "(pixel_size:, --pixel-size)")  # fmt: skip
    return f"this image's table has no column {column!r}"


def table_columns(settings: AnalysisSettings, cls: ClassSettings) -> set[str]:
    """The columns rules may name in ``cls``'s table: its measurements, as measured on a 2-D
    and a 3-D image with a pixel size (the same code as the tables), and its child classes'
    counts and sizes."""
    from scopeml.objects.measure import measure_objects

    channels = settings.channels if cls.measurements.intensity is None else (
        cls.measurements.intensity)  # fmt: skip
    columns: set[str] = set()
    for ndim in (2, 3):
        labels = np.zeros((4,) * ndim, np.int32)
        labels[(slice(1, 3),) * ndim] = 1
        pixels = np.ones((len(channels), *labels.shape)) if channels else None
        columns |= set(measure_objects(
            labels, pixels, pixel_sizes=dict.fromkeys("ZYX"[-ndim:], 1.0),
            channel_names=list(channels) or None, shape_features=cls.measurements.shape,
        ).columns)  # fmt: skip
    for child in (c.name for c in settings.classes if c.parent == cls.name):
        columns.add(f"{child}_count")
        sizes = ("area", "area_um2", "volume_um3")
        columns |= {f"{child}_{size}_{stat}" for size in sizes for stat in ("mean", "sum")}
    return columns - {"label"}


def unknown_column(settings: AnalysisSettings, cls: ClassSettings) -> tuple[str, str, str] | None:
    """The first (rule, column, why) of ``cls``'s rules naming no column of its table."""
    if not cls.rules:
        return None
    known = table_columns(settings, cls)
    for rule, bounds in cls.rules.items():
        for column in bounds:
            if column not in known:
                return rule, column, _why_unknown(column, known, cls)
    return None


def _why_unknown(column: str, known: set[str], cls: ClassSettings) -> str:
    from scopeml.errors import did_you_mean, summarize

    said = f"the {cls.name} table has no column {column!r}"
    if column.startswith("intensity_"):
        mean = "intensity_mean_"
        measured = sorted(c[len(mean) :] for c in known if c.startswith(mean)) or ["no channel"]
        return f"{said} (it measures {', '.join(measured)}: measurements: intensity)"
    if not cls.measurements.shape:
        said += " (shape features are not measured: measurements: shape: false)"
    return said + (did_you_mean(column, known) or f" (it has {summarize(sorted(known), head=6)})")


def physical_columns(rules: Mapping[str, Mapping[str, Bounds]]) -> list[str]:
    """The columns in micrometres ``rules`` name (measured only with a pixel size)."""
    from scopeml.objects.classifier import physical_features

    return physical_features(dict.fromkeys(c for bounds in rules.values() for c in bounds))
