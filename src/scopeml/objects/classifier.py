"""The object classifier: a random forest on measured object features, saved without pickle.

Training uses scikit-learn's ``RandomForestClassifier``; the fitted trees are then kept as
scopeml's one forest format (:class:`scopeml.model.forest.Forest`, shared with the pixel
classifier), so a saved classifier is a zip of JSON and ``.npy`` arrays that is validated on load
and never unpickled (read and written through :mod:`scopeml.model.safezip`, with the limits
every container shares).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scopeml.errors import (
    InvalidContainerError,
    InvalidLabelsError,
    InvalidRequestError,
    find_stack_level,
    summarize,
)
from scopeml.inputs import names_of
from scopeml.io.replace import check_output_file
from scopeml.model.forest import ARRAY_DTYPES, Forest, check_forest_options
from scopeml.model.registry import check_kind, model_formats, register_format
from scopeml.model.safezip import SafeZip, json_bytes, npy_bytes, peek_json, write_zip
from scopeml.objects.feature_range import check_ranges, out_of_range_warning, training_ranges
from scopeml.objects.quality import check_quality, forest_quality

FORMAT = "scopeml-object-classifier"
#: Version 2: the forest in :mod:`scopeml.model.forest`'s arrays (version 1 had its own).
VERSION = 2
#: Columns that locate an object rather than describe it; not used as features by default.
POSITION_PREFIXES = ("label", "bbox", "centroid", "parent", "metadata_")
#: Columns that say where in the image an object is (time point and its time, scene) or which
#: object it is (``analyze``'s ``object_id``); never features by default.
POSITION_COLUMNS = ("t", "time_s", "scene", "object_id")
#: Measurements left out of the default features: they change when the object is turned
#: (``orientation``, the raw central moments; ``moments_hu-*`` are their invariants), or repeat
#: another column (``moments_central-0-0`` is the area).
VARIANT_PREFIXES = ("orientation", "moments_central")
#: Left out too: ``extent`` is the area over the bounding box, which grows and shrinks as the
#: object turns (a square: 1, turned by 45°: about 0.5).
VARIANT_COLUMNS = ("extent",)
#: The sizes a measurement gives in pixels. Where a table has sizes in µm, one of these is left
#: out even without a µm copy: with pixels that are not square (a Z stack's voxels), a length in
#: pixels changes as the object turns.
PIXEL_SIZES = (
    "area",
    "area_convex",
    "axis_major_length",
    "axis_minor_length",
    "equivalent_diameter_area",
    "feret_diameter_max",
    "feret_diameter_min",
    "perimeter",
    "perimeter_crofton",
)
_ARRAYS = tuple(ARRAY_DTYPES)


class ObjectClassifier:
    """A trained object classifier: feature names, class names and the forest as arrays.

    Create one with :meth:`train` (or :func:`train_object_classifier`), apply it with
    :meth:`predict` / :meth:`classify`, keep it with :meth:`save` and
    :func:`load_object_classifier`.

    Examples
    --------
    >>> table = pd.DataFrame({"area": [10, 12, 11, 50, 55, 52], "kind": list("sssLLL")})
    >>> clf = ObjectClassifier.train(table, "kind", n_estimators=5)
    >>> clf.predict(pd.DataFrame({"area": [9, 60]})).tolist()
    ['s', 'L']
    """

    def __init__(
        self,
        features: Sequence[str],
        classes: Sequence[str],
        forest: Forest,
        ranges: Mapping[str, tuple[float, float]] | None = None,
        quality: Mapping[str, Any] | None = None,
    ) -> None:
        self.features = tuple(str(f) for f in features)
        #: How good it is by its training's out-of-bag votes, and the features deciding most
        #: (:func:`~scopeml.objects.quality.forest_quality`; none in files saved before).
        self.quality = dict(quality or {})
        #: Each feature's range over the training objects (none in files saved before it
        #: was kept): classifying a table far outside it is warned of.
        self.ranges = dict(ranges or {})
        self.classes = tuple(str(c) for c in classes)
        if (forest.n_features, forest.n_classes) != (len(self.features), len(self.classes)):
            raise InvalidRequestError(
                f"the forest has {forest.n_features} features and {forest.n_classes} classes; "
                f"got {len(self.features)} feature and {len(self.classes)} class names"
            )
        self.forest = forest

    @classmethod
    def train(
        cls,
        table: pd.DataFrame,
        class_column: str,
        *,
        features: Sequence[str] | None = None,
        n_estimators: int = 100,
        max_depth: int | None = None,
        seed: int = 0,
        workers: int | None = None,
    ) -> ObjectClassifier:
        """Fit a random forest on the rows of ``table`` that have a class.

        Rows whose ``class_column`` is empty (NaN/None/"") are ignored, so one table can hold
        annotated and unannotated objects. Numbers name classes by their value (1 and 2 give
        classes ``"1"`` and ``"2"``). ``features`` defaults to :func:`default_features`: the
        numeric columns that describe an object whichever way it is turned, one copy of each
        size (µm where the table has it). The names are saved with the classifier, so
        a classifier keeps the features it was trained on. ``workers`` threads fit the trees
        (``None``: one).
        """
        from sklearn.ensemble import RandomForestClassifier

        check_forest_options(n_estimators, max_depth, workers=workers)
        if not isinstance(table, pd.DataFrame):
            raise InvalidRequestError(
                f"the table must be a pandas DataFrame (or a .csv/.parquet file), not "
                f"{type(table).__name__}"
            )
        if class_column not in table.columns:
            from scopeml.errors import did_you_mean

            near = did_you_mean(class_column, [str(c) for c in table.columns], n=1)
            raise InvalidLabelsError(f"no column {class_column!r} in the table{near}")
        target = table[class_column]
        annotated = target.notna() & (target.astype(str) != "")
        if not annotated.any():
            raise InvalidLabelsError(f"column {class_column!r} names no classes")
        _check_class_values(target[annotated], class_column)
        if features is None:
            names = _usable(table, default_features(table, class_column), class_column)
        else:
            names = list(names_of(features) or ())
            _check_feature_names(names, table.columns)
        if not names:
            raise InvalidLabelsError("the table has no numeric feature columns")
        x = _feature_matrix(table.loc[annotated], names)
        kept = _trainable(table.loc[annotated], names)
        x = x[kept]
        _check_classes_left(table.loc[annotated], class_column, names, kept)
        annotated.loc[annotated] = kept  # the rows trained on, for their classes below
        classes, y = np.unique(class_names(target[annotated]), return_inverse=True)
        forest = RandomForestClassifier(
            n_estimators=n_estimators,
            max_depth=max_depth,
            random_state=seed,
            n_jobs=workers,
            class_weight="balanced",
            oob_score=True,  # each object judged by the trees that did not see it
        )
        with warnings.catch_warnings():  # a few trees leave some objects unjudged: said so
            warnings.filterwarnings("ignore", "Some inputs do not have OOB scores")
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            forest.fit(x, y)  # classes as 0..k-1: sklearn mistakes digit strings for numbers
        found = [str(classes[k]) for k in forest.classes_]
        quality = forest_quality(forest, x, y, found, names)
        return cls(names, found, Forest.from_sklearn(forest, len(names)),
                   training_ranges(x, names), quality)  # fmt: skip

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        """Class probabilities, ``n_objects × n_classes`` (order of :attr:`classes`)."""
        x = _feature_matrix(table, self.features)
        return self.forest.predict_proba(x).astype(np.float64)

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """The most probable class name of each object."""
        return np.asarray(self.classes, dtype=object)[self.predict_proba(table).argmax(1)]

    def classify(self, table: pd.DataFrame, *, column: str = "class") -> pd.DataFrame:
        """A copy of ``table`` with the predicted ``column`` and its ``{column}_probability``.

        An object with a NaN or infinite feature gets neither (NaN; one warning counts them):
        the forest took NaN for 0, and gave a table's missing ``area`` a class with
        probability 0.8. A child summary's mean of a parent without children
        (``spot_area_mean`` where ``spot_count`` is 0) is no such feature: it is 0, as in training.

        Neither may be in ``table`` already: ``analyze``'s tables have a ``class`` column (the
        class tree's), an annotated table may name its classes ``class``, and a classified table
        has both. Such a column would be lost, so it is refused, asking for another name.

        Examples
        --------
        >>> table = pd.DataFrame({"area": [10, 12, 50, 55], "class": ["nucleus"] * 4,
        ...                       "kind": list("ssLL")})
        >>> clf = ObjectClassifier.train(table, "kind", n_estimators=3)
        >>> clf.classify(table, column="kind_predicted")["kind_predicted"].tolist()
        ['s', 's', 'L', 'L']
        >>> clf.classify(table)
        Traceback (most recent call last):
        ...
        scopeml.errors.InvalidRequestError: the table already has a column 'class' ...
        """
        taken = [name for name in (column, f"{column}_probability") if name in table.columns]
        if taken:
            raise InvalidRequestError(
                f"the table already has a column {taken[0]!r} (it would be lost); name the "
                "predicted class column another way (--column NAME, column=NAME)"
            )
        proba = self.predict_proba(table)
        unknown = unclassifiable(table, self.features)
        out = table.copy()
        names = np.asarray(self.classes, dtype=object)[proba.argmax(1)]
        names[unknown] = np.nan
        out[column] = names
        out[f"{column}_probability"] = np.where(unknown, np.nan, proba.max(1) if len(proba) else 0)
        _warn_unclassified(table, self.features, unknown)
        said = out_of_range_warning(table, self.ranges, ~unknown)
        if said is not None:
            warnings.warn(said, UserWarning, stacklevel=find_stack_level())
        return out

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the classifier as a zip of ``classifier.json`` and ``.npy`` arrays, atomically
        (a uniquely named temporary file beside ``path``, renamed onto it when complete).

        An existing file at ``path`` is refused unless ``overwrite``: before any work and again
        as the file is moved into place (:func:`~scopeml.io.replace.check_output_file`).
        """
        path = Path(path)
        check_output_file(path, overwrite=overwrite)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "features": list(self.features),
            "classes": list(self.classes),
            **({"ranges": {k: list(v) for k, v in self.ranges.items()}} if self.ranges else {}),
            **({"quality": self.quality} if self.quality else {}),
        }
        members = [("classifier.json", json_bytes(meta))]
        arrays = self.forest.arrays()
        members += [(f"{name}.npy", npy_bytes(arrays[name])) for name in _ARRAYS]
        write_zip(path, members, overwrite=overwrite)
        return path

    def __repr__(self) -> str:
        return (
            f"ObjectClassifier(classes={list(self.classes)}, "
            f"{len(self.features)} features, {self.forest.n_trees} trees)"
        )


def train_object_classifier(
    table: pd.DataFrame,
    class_column: str,
    *,
    features: Sequence[str] | None = None,
    n_estimators: int = 100,
    max_depth: int | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> ObjectClassifier:
    """Fit an object classifier on the annotated rows of a table (:meth:`ObjectClassifier.train`).

    Examples
    --------
    >>> table = pd.DataFrame({"area": [10, 12, 50, 55], "t": [0, 1, 0, 1], "kind": list("ssLL")})
    >>> train_object_classifier(table, "kind", n_estimators=3).features
    ('area',)
    """
    return ObjectClassifier.train(
        table,
        class_column,
        features=features,
        n_estimators=n_estimators,
        max_depth=max_depth,
        seed=seed,
        workers=workers,
    )


def _check_class_values(target: pd.Series, column: str) -> None:
    """Refuse a column of measurements taken for classes (``"area"``: hundreds of values, each
    of which would become a class): fractions, most of them different, or more than 20 whole
    numbers, most of them different (pixel areas). A few fractional codes (2.5) and a few
    whole numbers name classes."""
    if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        values = target.to_numpy(dtype=np.float64)
        distinct = len(np.unique(values))
        whole = np.array_equal(values, np.round(values))
        if distinct > max(20 if whole else 2, len(values) // 2):
            raise InvalidLabelsError(
                f"column {column!r} holds measurements ({distinct} different numbers), "
                "not classes; name classes by words or a few whole numbers"
            )


def _check_classes_left(
    annotated: pd.DataFrame, column: str, names: Sequence[str], kept: np.ndarray
) -> None:
    """Refuse training on one class; where the objects left out for NaN or infinite features
    took the others, say so (naming those classes and features), not that the column names
    one class: it names more."""
    every = np.unique(class_names(annotated[column]))
    left = np.unique(class_names(annotated.loc[kept, column]))
    if len(left) >= 2:
        return
    if len(every) < 2:
        raise InvalidLabelsError(
            f"column {column!r} names one class ({every[0]}); a classifier needs two or more"
        )
    lost = [name for name in every if name not in left]
    features = _nonfinite(annotated, names, ~kept)
    raise InvalidLabelsError(
        f"one class ({left[0]}) is left once the objects with NaN or infinite features "
        f"({features}) are left out: every object of {summarize(lost, head=3)} has them; a "
        f"classifier needs two or more classes (measure them again, or leave {features} out of "
        "the features: --features, features=)"
    )


def _check_feature_names(names: Sequence[str], columns: Iterable[str]) -> None:
    """Refuse, before training, a feature that is not a column of the table, with the column
    it may mean (``intensity_mean_c0`` for ``intensity_mean_C0``)."""
    from scopeml.errors import did_you_mean

    columns = [str(c) for c in columns]
    for name in names:
        if name not in columns:
            near = did_you_mean(name, columns, n=1)
            raise InvalidLabelsError(f"features: no column {name!r} in the table{near}")


def load_object_classifier(path: str | os.PathLike[str]) -> ObjectClassifier:
    """Read a classifier written by :meth:`ObjectClassifier.save`, validating everything.

    Raises
    ------
    InvalidContainerError
        Not a zip, missing or oversized members, wrong format, inconsistent arrays.
    """
    path = Path(path)
    try:
        with SafeZip(path) as archive:
            for name in ("classifier.json", *(f"{name}.npy" for name in _ARRAYS)):
                if name not in archive:
                    raise InvalidContainerError(f"missing member {name!r}", path=path)
            meta = archive.read_json("classifier.json")
            trees = {name: archive.read_array(f"{name}.npy") for name in _ARRAYS}
    except InvalidContainerError as err:  # a model of another kind: said by what it is
        others = [kind for kind in model_formats() if kind != "object-classifier"]
        check_kind(path, others, "an object classifier")
        if err.problem.startswith("missing member"):
            raise
        raise InvalidContainerError(
            f"not a valid object classifier: {err.problem}", path=path
        ) from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InvalidContainerError(f"not a {FORMAT} file", path=path)
    if meta.get("version") != VERSION:
        raise InvalidContainerError(
            f"format version {meta.get('version')!r}; this scopeml reads {VERSION} "
            "(retrain the classifier to update it)",
            path=path,
        )
    features, classes = meta.get("features"), meta.get("classes")
    for key, value in (("features", features), ("classes", classes)):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise InvalidContainerError(f"{key!r} must be a non-empty list of names", path=path)
    forest = Forest.from_arrays(trees, n_features=len(features), n_classes=len(classes), path=path)
    ranges = check_ranges(meta.get("ranges"), features, path)
    quality = check_quality(meta.get("quality"), features, classes)
    return ObjectClassifier(features, classes, forest, ranges, quality)


def is_object_classifier(path: Path) -> bool:
    """Whether ``path`` is a classifier :meth:`ObjectClassifier.save` wrote (a sniff: never
    raises)."""
    meta = peek_json(path, "classifier.json")
    return isinstance(meta, dict) and meta.get("format") == FORMAT


register_format(
    "object-classifier",
    description="scopeml object classifier: random forest on measured object features",
    sniff=is_object_classifier,
    load=lambda path, workers: load_object_classifier(path),
)


def class_names(values: pd.Series) -> np.ndarray:
    """Class names of annotated ``values`` as strings: numbers by their value, so a class
    column of 1 and 2 names classes ``"1"`` and ``"2"`` also where blank rows made it float.

    Examples
    --------
    >>> class_names(pd.Series([1.0, 2.0, 2.5])).tolist(), class_names(pd.Series([2, 1])).tolist()
    (['1', '2', '2.5'], ['2', '1'])
    """
    if pd.api.types.is_float_dtype(values):
        whole = np.isfinite(values) & (values == np.round(values))
        text = values.astype(str).to_numpy(dtype=object)
        text[whole.to_numpy()] = [str(int(v)) for v in values[whole]]
        return text.astype(str)
    return values.astype(str).to_numpy(dtype=str)


def default_features(table: pd.DataFrame, class_column: str | None = None) -> list[str]:
    """Numeric columns that describe objects, the same whichever way an object is turned.

    Left out: position, id and class columns (``label``, ``bbox-*``, ``centroid*``,
    ``parent*``, ``t``, ``scene``, ``object_id``, the class column and a previous
    classification's ``*_probability``); ``orientation``, the raw ``moments_central-*`` and
    ``extent`` (they change with rotation; the Hu moments are kept); and a size in pixels where
    the table has it in micrometres too (``area`` beside ``area_um2``/``volume_um3``,
    ``perimeter`` beside ``perimeter_um``, an analysis table's ``spot_area_mean`` beside
    ``spot_area_um2_mean``, …): one copy of each size, in µm where there is one. In a table
    with sizes in µm, the measured sizes in pixels (:data:`PIXEL_SIZES`) are left out even
    without a µm copy (``perimeter`` on pixels that are not square).

    Examples
    --------
    >>> table = pd.DataFrame({"label": [1], "centroid-0": [2.0], "area": [3], "c": ["x"],
    ...                       "orientation": [0.3], "perimeter": [6.0], "perimeter_um": [3.0]})
    >>> default_features(table)
    ['area', 'perimeter_um']
    """
    columns = [str(c) for c in table.columns]
    present = set(columns)
    in_um = bool({"area_um2", "volume_um3"} & present)

    def has_um(name: str) -> bool:
        return bool(_um_twins(name) & present) or (in_um and name in PIXEL_SIZES)

    return [
        name
        for name, c in zip(columns, table.columns, strict=True)
        if c != class_column
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
        and not name.startswith(POSITION_PREFIXES + VARIANT_PREFIXES)
        and name not in POSITION_COLUMNS + VARIANT_COLUMNS
        and not name.endswith("_probability")
        and not has_um(name)
    ]


def _usable(table: pd.DataFrame, names: list[str], class_column: str | None) -> list[str]:
    """The default ``names`` but empty ones (no value: nothing to learn), with one warning for
    them and for columns of numbers with some text in them (``n/a``: read as text, not a
    feature), so a feature is never dropped unsaid."""
    import warnings

    empty = [name for name in names if table[name].isna().all()]
    texts = [str(c) for c in table.columns if c != class_column and _numbers_and_text(table[c])]
    said = []
    if texts:
        said.append(f"{summarize(texts, head=3)}: numbers with some text in them (such as "
                    f"{_text_in(table[texts[0]])!r}), read as text: fix those rows")  # fmt: skip
    if empty:
        said.append(f"{summarize(empty, head=3)}: no values")
    if said:
        warnings.warn(
            "left out of the classifier's features: " + "; ".join(said),
            UserWarning,
            stacklevel=find_stack_level(),
        )
    return [name for name in names if name not in empty]


def _numbers_and_text(column: pd.Series) -> bool:
    """Whether a column read as text (``object``, or pandas 3's ``str``) holds mostly numbers
    and some text: a measurement with a stray ``n/a``, not a column of names.

    >>> _numbers_and_text(pd.Series(["1.5", "2", "n/a"])), _numbers_and_text(pd.Series([1, None]))
    (True, False)
    """
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    numbers = pd.to_numeric(column, errors="coerce")
    text = numbers.isna() & column.notna()
    return bool(text.any() and numbers.notna().sum() > text.sum())


def _text_in(column: pd.Series) -> str:
    """The first value of ``column`` that is not a number."""
    numbers = pd.to_numeric(column, errors="coerce")
    return str(column[numbers.isna() & column.notna()].iloc[0])


def _um_twins(name: str) -> set[str]:
    """The columns that hold the size in ``name`` in micrometres: ``perimeter_um`` of
    ``perimeter``, ``area_um2``/``volume_um3`` of ``area``, and of a child class's summary
    (an analysis table's ``spot_area_mean``) the same summary of those (``spot_area_um2_mean``).

    Examples
    --------
    >>> sorted(_um_twins("spot_area_mean")), sorted(_um_twins("area_convex"))[0]
    (['spot_area_um2_mean', 'spot_volume_um3_mean'], 'area_convex_um')
    """
    summary = re.fullmatch(r"(.*)area_(mean|sum)", name)
    if summary:
        child, stat = summary.groups()
        return {f"{child}area_um2_{stat}", f"{child}volume_um3_{stat}"}
    twins = {f"{name}_um"}
    if name in ("area", "area_convex"):
        twins |= {f"{name}_um2", name.replace("area", "volume") + "_um3"}
    return twins


def majority_class(labels: np.ndarray, annotation: np.ndarray) -> pd.DataFrame:
    """The annotated class of each object: the most frequent non-zero annotation under it.

    ``labels`` are instance labels, ``annotation`` a class image of the same shape (0 = not
    annotated). Returns ``label`` and ``class_id`` (0 where the object is not annotated), ready
    to merge with a measurement table.

    Examples
    --------
    >>> labels = np.array([[1, 1, 0, 2, 2]])
    >>> majority_class(labels, np.array([[3, 3, 0, 0, 1]])).to_numpy().tolist()
    [[1, 3], [2, 1]]
    """
    labels, annotation = np.asarray(labels), np.asarray(annotation)
    if labels.shape != annotation.shape:
        raise InvalidLabelsError(
            f"annotation has shape {annotation.shape}; labels have shape {labels.shape}"
        )
    both = (labels > 0) & (annotation > 0)
    pairs, counts = np.unique(
        np.stack([labels[both].astype(np.int64), annotation[both].astype(np.int64)]),
        axis=1,
        return_counts=True,
    )
    ids = np.unique(labels[labels > 0]).astype(np.int64)
    best = np.zeros(ids.size, np.int64)
    order = np.lexsort((-counts, pairs[0]))  # per object, most frequent class first
    first = np.unique(pairs[0, order], return_index=True)[1]
    best[np.searchsorted(ids, pairs[0, order][first])] = pairs[1, order][first]
    return pd.DataFrame({"label": ids, "class_id": best})


def unclassifiable(table: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Per row of ``table`` (its features checked by :func:`_feature_matrix`), whether a
    feature of ``names`` is NaN or infinite, other than the children's mean of a parent with
    none (:func:`~scopeml.objects.hierarchy.summarize_children`: ``spot_area_mean`` is NaN
    where ``spot_count`` is 0, and taken as 0 in training as here).

    Examples
    --------
    >>> t = pd.DataFrame({"area": [1, np.nan, 3], "spot_count": [0, 1, 1],
    ...                   "spot_area_mean": [np.nan, 2, np.inf]})
    >>> unclassifiable(t, ["area", "spot_area_mean"]).tolist()
    [False, True, True]
    """
    values = table[list(names)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    counts = [c for c in table.columns if isinstance(c, str) and c.endswith("_count")]
    for j, name in enumerate(names):
        for count in counts:
            if name.startswith(count.removesuffix("count")) and name.endswith("_mean"):
                bad[:, j] &= ~((table[count].to_numpy() == 0) & np.isnan(values[:, j]))
    return bad.any(axis=1)


def _trainable(annotated: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Which ``annotated`` rows to train on: those classification would give a class (a row
    with a NaN or infinite feature was trained on as 0, and gets no class when classified),
    one warning counting the rest."""
    unknown = unclassifiable(annotated, names)
    if unknown.all():
        raise InvalidLabelsError(
            f"every annotated object has NaN or infinite features "
            f"({_nonfinite(annotated, names, unknown)}): nothing to train on"
        )
    if unknown.any():
        warnings.warn(
            f"{int(unknown.sum())} of {len(annotated)} annotated objects have NaN or infinite "
            f"features ({_nonfinite(annotated, names, unknown)}): left out of training, as "
            "classifying gives them no class",
            UserWarning,
            stacklevel=find_stack_level(),
        )
    return ~unknown


def _warn_unclassified(table: pd.DataFrame, names: Sequence[str], unknown: np.ndarray) -> None:
    """One warning for a classification: how many objects got no class, and by which features."""
    if not unknown.any():
        return
    warnings.warn(
        f"{int(unknown.sum())} of {len(table)} objects have NaN or infinite features "
        f"({_nonfinite(table, names, unknown)}): they get no class (NaN class and probability)",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def _nonfinite(table: pd.DataFrame, names: Sequence[str], rows: np.ndarray) -> str:
    """The features (of ``names``) NaN or infinite in some of the ``rows``, summarised."""
    values = table.loc[rows, list(names)].to_numpy(dtype=np.float64)
    return summarize([n for n, bad in zip(names, (~np.isfinite(values)).any(0), strict=True)
                      if bad], head=3)  # fmt: skip


def _feature_matrix(table: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise InvalidRequestError(missing_features_message(missing, names, table.columns))
    try:
        x = table[list(names)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidRequestError(f"feature columns must be numeric: {err}") from err
    # NaN features (e.g. a shape feature undefined for a 1-pixel object) become 0
    return np.nan_to_num(x, nan=0.0, posinf=np.finfo(np.float32).max, neginf=-1e38)


_INTENSITY = re.compile(r"intensity_(?:mean|min|max|std|sum|median)_(.+)")
_PHYSICAL = re.compile(r".*_um\d?(?:-\d+)?(?:_(?:mean|sum))?")  # a child's sizes: _um2_mean


def physical_features(names: Iterable[str]) -> list[str]:
    """The sizes in micrometres among ``names`` (``area_um2``, ``perimeter_um``,
    ``centroid_um-0``): measured only where the image has a pixel size.

    >>> physical_features(["area", "area_um2", "perimeter_um", "solidity", "spot_area_um2_mean"])
    ['area_um2', 'perimeter_um', 'spot_area_um2_mean']
    """
    return [str(name) for name in names if _PHYSICAL.fullmatch(str(name))]


#: Columns measured only with ``shape_features`` (each also with ``_um`` given a pixel size).
_SHAPE = (
    "perimeter",
    "perimeter_crofton",
    "circularity",
    "area_convex",
    "solidity",
    "feret_diameter_max",
    "feret_diameter_min",
)


#: Columns only a 2-D table has (as an object classifier's features) and only a 3-D one has.
_ONLY_2D = re.compile(r"eccentricity|orientation|circularity|moments_hu-\d|perimeter.*|area_um2|"
                      r"area_convex_um2|feret_diameter_min.*")  # fmt: skip
_ONLY_3D = re.compile(r"volume_um3|volume_convex_um3|centroid(_um)?-2|bbox-[45]")


def _dims(names: Iterable[str]) -> int | None:
    """2 or 3 where some of a table's columns (a classifier's features) exist only in 2-D or
    only in 3-D tables, else ``None``."""
    names = list(names)
    if any(_ONLY_3D.fullmatch(n) for n in names):
        return 3
    return 2 if any(_ONLY_2D.fullmatch(n) for n in names) else None


def missing_features_message(
    missing: Sequence[str], features: Sequence[str], columns: Sequence[object]
) -> str:
    """Why a table lacks the classifier's ``missing`` feature columns, in one short line.

    Names a few of the missing columns and the cause: intensities measured without the image
    or with other channel names, physical sizes (``*_um``) measured without a pixel size.

    Examples
    --------
    >>> missing_features_message(["intensity_mean_DAPI"], ["area", "intensity_mean_DAPI"],
    ...                          ["area", "intensity_mean_C0"])  # doctest: +NORMALIZE_WHITESPACE
    "the table lacks 1 of the classifier's 2 feature columns (intensity_mean_DAPI):
    it was trained on intensities of channel DAPI and the table has channel C0 (measure with
    an image whose channels have those names, or rename the columns)"
    """
    trained, measured = _dims(features), _dims(str(c) for c in columns)
    if trained and measured and trained != measured:  # features no table of the other has
        return (
            f"the classifier was trained on {trained}-D objects and the table measures "
            f"{measured}-D objects, whose features differ (it lacks "
            f"{summarize(missing, head=4)}): train a classifier on {measured}-D objects"
        )
    causes = []
    need = _channels(missing)
    have = _channels(str(c) for c in columns)
    if need and not have:
        causes.append(
            "the classifier was trained with intensities: measure with the image (image=, "
            f"--image), {_channel_list(need)}"
        )
    elif need:
        causes.append(
            f"it was trained on intensities of {_channel_list(need)} and the table has "
            f"{_channel_list(have)} (measure with an image whose channels have those names, or "
            "rename the columns)"
        )
    present = {str(c) for c in columns}
    shape = [n for n in missing if (base := _pixel_name(n)) in _SHAPE and base not in present]
    if shape:
        causes.append(
            "it was trained with shape features (perimeter, solidity, …): measure "
            "with them (shape_features=True, --shape-features)"
        )
    sizes = [n for n in physical_features(missing) if n not in shape]
    if sizes:
        physical = physical_features(columns)
        causes.append(
            "it was trained with sizes in micrometres (*_um columns) and the table has "
            + ("none: measure with a pixel size (pixel_size=, --pixel-size)" if not physical
               else "only some (measured with another pixel size per axis?)")
        )  # fmt: skip
    return (
        f"the table lacks {len(missing)} of the classifier's {len(features)} feature columns "
        f"({summarize(missing, head=4)})" + (": " + "; ".join(causes) if causes else "")
    )


def _pixel_name(name: str) -> str:
    """The pixel-unit column a physical one copies (``area_convex_um2`` → ``area_convex``)."""
    return {"volume_convex_um3": "area_convex"}.get(name, re.sub(r"_um\d?$", "", name))


def _channels(columns: Iterable[str]) -> list[str]:
    """Channel names of the intensity columns among ``columns``, in order of appearance."""
    found = (_INTENSITY.fullmatch(c) for c in columns)
    return list(dict.fromkeys(m.group(1) for m in found if m))


def _channel_list(names: Sequence[str]) -> str:
    return f"channel{'s' if len(names) > 1 else ''} {summarize(names, head=4)}"
