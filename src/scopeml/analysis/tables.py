"""The tables of one plane: measurements per class, parent ids, child counts, object classes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from scopeml.analysis.check import Resources
from scopeml.analysis.settings import AnalysisSettings

__all__ = ["KEY_COLUMNS", "measure_plane"]

#: Columns in front of every class table.
KEY_COLUMNS = ("image", "scene", "t", "class", "object_id", "parent_class", "parent_id")


def measure_plane(
    settings: AnalysisSettings,
    labels: Mapping[str, np.ndarray],
    pixels: np.ndarray,
    pixel_sizes: Mapping[str, float],
    resources: Resources,
    image_name: str,
    scene: int,
    t: int,
) -> dict[str, pd.DataFrame]:
    """One table per class for one plane: ``image, scene, t, class, object_id, parent_class,
    parent_id``, then the measurements (pixel and physical units), ``{child}_count`` and
    child aggregates for parents, and ``object_class`` where the class has a classifier.

    ``pixels`` are the plane's input channels, ``C×(Z×)Y×X`` in settings order.

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
    [1.0, 1.0]
    """
    from scopeml.objects.hierarchy import assign_parents, summarize_children
    from scopeml.objects.measure import measure_objects

    index = {name: i for i, name in enumerate(settings.channels)}
    tables: dict[str, pd.DataFrame] = {}
    for cls in settings.classes:
        wanted = settings.channels if cls.measurements.intensity is None else (
            cls.measurements.intensity)  # fmt: skip
        intensities = pixels[[index[c] for c in wanted]] if wanted else None
        table = measure_objects(
            labels[cls.name], intensities, pixel_sizes=dict(pixel_sizes) or None,
            channel_names=list(wanted) if wanted else None,
            shape_features=cls.measurements.shape,
        )  # fmt: skip
        if cls.parent is not None:
            parents = assign_parents(labels[cls.name], labels[cls.parent])
            table = table.merge(parents, on="label", how="left")
        else:
            table["parent_label"] = 0
        if cls.name in resources.classifiers:
            table = resources.classifiers[cls.name].classify(table, column="object_class")
        tables[cls.name] = table
    for cls in settings.classes:
        if cls.parent is not None:
            tables[cls.parent] = summarize_children(tables[cls.parent], tables[cls.name], cls.name)
    out = {}
    for cls in settings.classes:
        table = tables[cls.name]
        keys = pd.DataFrame({
            "image": image_name, "scene": scene, "t": t, "class": cls.name,
            "object_id": table["label"].astype(np.int64),
            "parent_class": cls.parent or "",
            "parent_id": table["parent_label"].fillna(0).astype(np.int64),
        }, index=table.index)  # fmt: skip
        out[cls.name] = pd.concat(
            [keys, table.drop(columns=["label", "parent_label"])], axis=1
        ).reset_index(drop=True)
    return out
