"""The tables of one plane: measurements per class, parent ids, child counts, object classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from scopeml.analysis.check import Resources
from scopeml.analysis.settings import AnalysisSettings

__all__ = ["KEY_COLUMNS", "measure_plane", "time_seconds"]

#: Columns in front of every class table (and ``time_s`` after ``t``, see :func:`time_seconds`).
KEY_COLUMNS = ("image", "scene", "t", "class", "object_id", "parent_class", "parent_id")


def time_seconds(t: int, pixel_sizes: Mapping[str, float] | None) -> float:
    """Time point ``t``'s time in seconds, ``t`` × the time step (``pixel_sizes["T"]``), or NaN
    where the image does not say its step: one rule for the class tables' ``time_s`` and
    ``counts_per_time_point.csv``'s (as ``objects measure``'s tables have it).

    >>> time_seconds(3, {"T": 30.0, "Y": 0.5}), time_seconds(3, {"Y": 0.5})
    (90.0, nan)
    """
    step = (pixel_sizes or {}).get("T")
    return t * float(step) if step else float("nan")


def measure_plane(
    settings: AnalysisSettings,
    labels: Mapping[str, np.ndarray],
    pixels: np.ndarray,
    pixel_sizes: Mapping[str, float],
    resources: Resources,
    image_name: str,
    scene: int,
    t: int,
    *,
    whole: bool = False,
) -> dict[str, pd.DataFrame]:
    """One table per class for one plane: ``image, scene, t``, ``time_s`` where
    ``pixel_sizes`` has the time step ``T`` (:func:`time_seconds`), ``class, object_id,
    parent_class, parent_id``, then the measurements (pixel and physical units), for parents
    ``{child}_count`` (an integer) and the children's mean and summed size in each unit the
    table has (``{child}_area_mean`` in pixels, ``{child}_area_um2_mean`` in µm²), and
    ``object_class`` where the class has a classifier or rules.

    ``pixels`` are the plane's input channels, ``C×(Z×)Y×X`` in settings order. Measuring
    and parent assignment go tile by tile (``settings.tile_size``), so their temporary memory
    is a few tiles, not a few planes; the values equal a whole-plane measurement. ``whole``
    (a plane in memory, numpy arrays) measures each class at once instead: no pass to find
    the objects' boxes, one table per class, the same values (up to float rounding of the
    tile offsets: centroids of objects in a tile off the origin may differ in the last bit).

    Examples
    --------
    >>> from scopeml.analysis.settings import ClassSettings, ThresholdSegmenter
    >>> s = AnalysisSettings(channels=["a"], classes=[
    ...     ClassSettings(name="cell", segmenter=ThresholdSegmenter(channel="a", method="otsu")),
    ...     ClassSettings(name="dot", parent="cell",
    ...                   segmenter=ThresholdSegmenter(channel="a", method="otsu"))])
    >>> cells = np.array([[1, 1, 0, 2]]); dots = np.array([[0, 1, 0, 2]])
    >>> tables = measure_plane(s, {"cell": cells, "dot": dots}, np.ones((1, 1, 4)), {},
    ...                        Resources(), "x.tif", 0, 0)
    >>> tables["dot"][["object_id", "parent_id"]].to_numpy().tolist()
    [[1, 1], [2, 2]]
    >>> tables["cell"]["dot_count"].tolist()
    [1, 1]
    """
    from scopeml.analysis.rules import classify_by_rules
    from scopeml.objects.measure import measure_objects
    from scopeml.objects.measure_tiled import measure_objects_tiled

    index = {name: i for i, name in enumerate(settings.channels)}
    tables: dict[str, pd.DataFrame] = {}
    for cls in settings.classes:
        wanted = settings.channels if cls.measurements.intensity is None else (
            cls.measurements.intensity)  # fmt: skip
        picked = [index[c] for c in wanted]
        options: dict[str, Any] = {
            "pixel_sizes": dict(pixel_sizes) or None,
            "channel_names": list(wanted) if wanted else None,
            "shape_features": cls.measurements.shape,
        }
        if whole:
            every = picked == list(range(len(pixels)))
            intensities = (pixels if every else pixels[picked]) if wanted else None
            table = measure_objects(labels[cls.name], intensities, **options)
        else:
            intensities = _Channels(pixels, picked) if wanted else None
            table = measure_objects_tiled(labels[cls.name], intensities, workers=1,
                                          tile_size=settings.tile_size, **options)  # fmt: skip
        table = table.reset_index(drop=True)
        if cls.parent is not None:
            found = assign_parents_tiled(labels[cls.name], labels[cls.parent], settings.tile_size)
            ids = table["label"].to_numpy(np.int64)
            table["parent_label"] = found.reindex(ids).fillna(0).to_numpy(np.int64)
        else:
            table["parent_label"] = 0
        tables[cls.name] = table
    for cls in settings.classes:
        if cls.parent is not None:
            tables[cls.parent] = _children(tables[cls.parent], tables[cls.name], cls.name)
    for name, classifier in resources.classifiers.items():  # children summaries are features
        tables[name] = classifier.classify(tables[name], column="object_class")
    for cls in settings.classes:
        if cls.rules:
            tables[cls.name] = classify_by_rules(tables[cls.name], cls.rules, cls.name)
    out, seconds = {}, time_seconds(t, pixel_sizes)
    metadata = settings.metadata_row(image_name)  # from the image's name (empty: no match)
    timed = {} if np.isnan(seconds) else {"time_s": seconds}  # where the image says its step
    for cls in settings.classes:
        table = tables[cls.name]
        keys = pd.DataFrame({
            "image": image_name, **metadata, "scene": scene, "t": t, **timed, "class": cls.name,
            "object_id": table["label"].astype(np.int64),
            "parent_class": cls.parent or "",
            "parent_id": table["parent_label"].fillna(0).astype(np.int64),
        }, index=table.index)  # fmt: skip
        out[cls.name] = pd.concat(
            [keys, table.drop(columns=["label", "parent_label"])], axis=1
        ).reset_index(drop=True)
    return out


def _children(parents: pd.DataFrame, children: pd.DataFrame, name: str) -> pd.DataFrame:
    """``{name}_count`` (an integer) and the children's mean and summed size per parent, in
    the units of the parent's own size columns: ``{name}_area_mean`` in pixels next to
    ``area``, ``{name}_area_um2_mean`` in µm² next to ``area_um2`` (``volume_um3`` in 3-D)
    where the image has a pixel size.

    >>> parents = pd.DataFrame({"label": [1, 2], "area": [40, 50], "area_um2": [10.0, 12.5]})
    >>> kids = pd.DataFrame({"label": [4, 5], "parent_label": [1, 1], "area": [4, 8],
    ...                      "area_um2": [1.0, 2.0]})
    >>> table = _children(parents, kids, "dot")
    >>> table[["dot_count", "dot_area_mean", "dot_area_um2_mean"]].to_numpy().tolist()
    [[2.0, 6.0, 1.5], [0.0, nan, nan]]
    >>> table["dot_count"].dtype
    dtype('int64')
    """
    from scopeml.objects.hierarchy import summarize_children

    sizes = [c for c in ("area", "area_um2", "volume_um3") if c in children.columns]
    table = summarize_children(parents, children, name, features=sizes)
    table[f"{name}_count"] = table[f"{name}_count"].astype(np.int64)
    return table


class _Channels:
    """Some channels of a ``C×(Z×)Y×X`` array, copied a region at a time (not whole)."""

    def __init__(self, pixels: np.ndarray, indices: list[int]) -> None:
        self.pixels, self.indices = pixels, indices
        self.shape = (len(indices), *pixels.shape[1:])
        self.dtype = pixels.dtype

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        return self.pixels[(self.indices, *key[1:])]


def assign_parents_tiled(child: np.ndarray, parent: np.ndarray, tile_size: int) -> pd.Series:
    """The parent of each child object, read tile by tile: the parent under most of its pixels
    (ties to the smaller id); a Series ``parent id`` indexed by child id (children without a
    parent are absent). Equal to :func:`~scopeml.objects.hierarchy.assign_parents`. An
    analysis's children each lie in one parent (labelled within it,
    :func:`~scopeml.analysis.plane.label_within_parents`), so there it is the parent under
    every pixel, and a child's size never counts towards another parent's ``{child}_area_sum``.

    Examples
    --------
    >>> cells = np.array([[1, 1, 1, 2, 2, 2]])
    >>> nuclei = np.array([[0, 5, 5, 5, 0, 7]])
    >>> assign_parents_tiled(nuclei, cells, 2).to_dict()
    {5: 1, 7: 2}
    """
    from scopeml.objects.label import iter_tiles

    keys, counts = [], []
    for region in iter_tiles(child.shape, (tile_size,) * child.ndim):
        c, p = child[region], parent[region]
        both = (c > 0) & (p > 0)
        pairs = (c[both].astype(np.int64) << 32) | p[both].astype(np.int64)
        found, n = np.unique(pairs, return_counts=True)
        keys.append(found)
        counts.append(n)
    pairs, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(counts))
    child_ids, parent_ids = pairs >> 32, pairs & 0xFFFFFFFF
    order = np.lexsort((parent_ids, -total, child_ids))  # per child: most pixels, smaller id
    first = order[np.unique(child_ids[order], return_index=True)[1]]
    return pd.Series(parent_ids[first], index=child_ids[first], dtype=np.int64)
