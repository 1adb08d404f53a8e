"""Hierarchical object classes: parents (cells) with children inside them (nuclei, spots).

Each class has its own segmenter, any callable ``image → mask or instance labels`` (a threshold,
a trained model, a function of your own). Children are segmented inside their parent's objects
only, refer to their parent by id (the parent under most of the child's pixels, or under its
centroid), and the parent table gets per-parent aggregates (child count, mean child area, …).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from scopeml.errors import InvalidLabelsError, InvalidRequestError
from scopeml.objects.classifier import majority_class
from scopeml.objects.label import label_instances, label_value
from scopeml.objects.measure import measure_objects


class Segmenter(Protocol):
    """Anything that turns ``C×(Z×)Y×X`` intensities into a ``(Z×)Y×X`` mask or instance labels."""

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ObjectClass:
    """One class of objects in a hierarchy.

    Parameters
    ----------
    name
        Table and column name (``"cell"``, ``"nucleus"``).
    segmenter
        Produces this class's mask (connected components become objects) or instance labels.
    children
        Classes segmented inside this class's objects.
    """

    name: str
    segmenter: Segmenter
    children: tuple[ObjectClass, ...] = field(default=())


def threshold_segmenter(threshold: float, *, channel: int = 0, min_size: int = 0) -> Segmenter:
    """A segmenter that keeps pixels of ``channel`` above ``threshold`` (and objects ≥ min_size).

    Examples
    --------
    >>> seg = threshold_segmenter(0.5)
    >>> seg(np.array([[[0.2, 0.7, 0.9]]])).tolist()
    [[False, True, True]]
    """

    def segment(image: np.ndarray) -> np.ndarray:
        from scopeml.post.morphology import remove_small_objects

        mask = np.asarray(image)[channel] > threshold
        return remove_small_objects(mask, min_size) if min_size > 1 else mask

    return segment


def model_segmenter(
    model: Any, class_: str | int, *, min_confidence: float | None = None
) -> Segmenter:
    """A segmenter from any :class:`~scopeml.model.spec.Model`: pixels whose argmax is the class.

    ``class_`` is chosen as everywhere: by name, or by label value (class ``k`` is ``k + 1``).

    The whole (small) image is passed as one batch; for large images run the tiling engine and
    pass the resulting label image through a segmenter such as ``lambda _: labels == k``.
    """

    value = label_value(model.spec.classes, class_)

    def segment(image: np.ndarray) -> np.ndarray:
        from scopeml.post.threshold import threshold_confidence

        batch = np.asarray(image, np.float32)[np.newaxis]
        probabilities = np.asarray(model.predict(batch))[0]
        return threshold_confidence(probabilities, min_confidence) == value

    return segment


def assign_parents(
    child_labels: np.ndarray, parent_labels: np.ndarray, *, method: str = "overlap"
) -> pd.DataFrame:
    """The parent of each child object: ``label`` and ``parent_label`` (0 = no parent).

    ``method="overlap"``: the parent under most of the child's pixels; ``"centroid"``: the
    parent under the child's centroid (rounded to the nearest pixel).

    Examples
    --------
    >>> cells = np.array([[1, 1, 1, 2, 2, 2]])
    >>> nuclei = np.array([[0, 5, 5, 5, 0, 7]])
    >>> assign_parents(nuclei, cells).to_numpy().tolist()
    [[5, 1], [7, 2]]
    """
    child_labels, parent_labels = np.asarray(child_labels), np.asarray(parent_labels)
    if child_labels.shape != parent_labels.shape:
        raise InvalidLabelsError(
            f"child labels have shape {child_labels.shape}; parents {parent_labels.shape}"
        )
    if method == "overlap":
        found = majority_class(child_labels, parent_labels)
        return found.rename(columns={"class_id": "parent_label"})
    if method == "centroid":
        table = measure_objects(child_labels, shape_features=False)
        centre = tuple(
            np.clip(np.rint(table[f"centroid-{d}"]).astype(np.intp), 0, n - 1)
            for d, n in enumerate(child_labels.shape)
        )
        parents = parent_labels[centre].astype(np.int64)
        return pd.DataFrame({"label": table["label"].to_numpy(), "parent_label": parents})
    raise InvalidRequestError(f"unknown method {method!r}; known: 'overlap', 'centroid'")


def summarize_children(
    parents: pd.DataFrame,
    children: pd.DataFrame,
    name: str,
    *,
    features: Sequence[str] = ("area",),
) -> pd.DataFrame:
    """Add per-parent aggregates of the children to the parent table.

    Adds ``{name}_count`` and, for each feature, ``{name}_{feature}_mean`` and
    ``{name}_{feature}_sum`` (0 / NaN for parents without children).

    Examples
    --------
    >>> parents = pd.DataFrame({"label": [1, 2]})
    >>> kids = pd.DataFrame({"label": [4, 5, 6], "parent_label": [1, 1, 0], "area": [3.0, 5, 9]})
    >>> table = summarize_children(parents, kids, "spot")
    >>> table[["spot_count", "spot_area_mean"]].to_numpy().tolist()
    [[2.0, 4.0], [0.0, nan]]
    """
    if "parent_label" not in children.columns:
        raise InvalidRequestError("children table has no 'parent_label' column")
    missing = [f for f in features if f not in children.columns]
    if missing:
        raise InvalidRequestError(f"children table lacks {missing}")
    grouped = children[children["parent_label"] > 0].groupby("parent_label")
    stats = pd.DataFrame({f"{name}_count": grouped.size()})
    for feature in features:
        stats[f"{name}_{feature}_mean"] = grouped[feature].mean()
        stats[f"{name}_{feature}_sum"] = grouped[feature].sum()
    out = parents.merge(stats, how="left", left_on="label", right_index=True)
    out[f"{name}_count"] = out[f"{name}_count"].fillna(0).astype(float)
    for feature in features:
        out[f"{name}_{feature}_sum"] = out[f"{name}_{feature}_sum"].fillna(0.0)
    return out


def segment_hierarchy(
    image: np.ndarray, classes: ObjectClass | Sequence[ObjectClass]
) -> dict[str, np.ndarray]:
    """Instance labels of every class in the hierarchy, children inside their parents only.

    Returns
    -------
    dict
        ``{class name: (Z×)Y×X int32 instance labels}``.
    """
    image = np.asarray(image)
    roots = (classes,) if isinstance(classes, ObjectClass) else tuple(classes)
    out: dict[str, np.ndarray] = {}

    def visit(node: ObjectClass, region: np.ndarray | None) -> None:
        if node.name in out:
            raise InvalidRequestError(f"class name {node.name!r} used twice in the hierarchy")
        result = np.asarray(node.segmenter(image))
        if result.shape != image.shape[1:]:
            raise InvalidLabelsError(
                f"segmenter of {node.name!r} returned shape {result.shape}; "
                f"expected {image.shape[1:]}"
            )
        if result.dtype == bool:
            labels = label_instances(result if region is None else result & region)
        else:
            labels = np.where(region, result, 0) if region is not None else result
            labels = labels.astype(np.int32)
        out[node.name] = labels
        for child in node.children:
            visit(child, labels > 0)

    for root in roots:
        visit(root, None)
    return out


def measure_hierarchy(
    image: np.ndarray,
    classes: ObjectClass | Sequence[ObjectClass],
    *,
    pixel_sizes: Mapping[str, float] | Sequence[float] | None = None,
    channel_names: Sequence[str] | None = None,
    method: str = "overlap",
    aggregate: Sequence[str] = ("area",),
) -> dict[str, pd.DataFrame]:
    """Segment and measure a hierarchy; one table per class.

    Child tables get ``parent_label`` (the parent object's id, 0 = none); parent tables get
    ``{child}_count`` and ``{child}_{feature}_mean|sum`` for each feature in ``aggregate``.

    Examples
    --------
    >>> image = np.zeros((1, 12, 12))
    >>> image[0, 1:11, 1:11] = 0.4           # one cell
    >>> image[0, 2:4, 2:4] = image[0, 6:9, 6:9] = 0.9   # two spots in it
    >>> cell = ObjectClass("cell", threshold_segmenter(0.2),
    ...                    children=(ObjectClass("spot", threshold_segmenter(0.6)),))
    >>> tables = measure_hierarchy(image, cell)
    >>> tables["cell"][["label", "spot_count", "spot_area_mean"]].to_numpy().tolist()
    [[1.0, 2.0, 6.5]]
    """
    image = np.asarray(image)
    roots = (classes,) if isinstance(classes, ObjectClass) else tuple(classes)
    labels = segment_hierarchy(image, roots)
    tables = {
        name: measure_objects(
            lab, image, pixel_sizes=pixel_sizes, channel_names=channel_names, shape_features=True
        )
        for name, lab in labels.items()
    }

    def link(node: ObjectClass) -> None:
        for child in node.children:
            parents = assign_parents(labels[child.name], labels[node.name], method=method)
            tables[child.name] = tables[child.name].merge(parents, on="label", how="left")
            tables[node.name] = summarize_children(
                tables[node.name], tables[child.name], child.name, features=aggregate
            )
            link(child)

    for root in roots:
        link(root)
    return tables
