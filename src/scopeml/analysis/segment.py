"""One plane of one class: segmenter → post-processing steps → instance labels inside the parent.

Everything here works on one ``(Z×)Y×X`` plane (a scene and time point) held in memory: the input
channels (as stored) and one ``int32`` label image per class. Model segmenters do not run here: the
facade (:func:`scopeml.segment`) writes their class labels, and for ``instances`` its instances
(``scopeml.objects.instances``, the same code and options as ``scopeml segment --outputs
instances``), tile by tile first; this module only reads the plane of those. A child class is
segmented only inside its parent's objects: its mask (for ``instances``, its objects) is cut to
them before and after the post-processing steps, each of its objects lies in one parent object
(a mask is labelled within each parent, :func:`label_in_parents`; an instance, or an object a
post step made, over several parents is split, one object per parent), and automatic thresholds
(Otsu, Li, triangle) are computed from the pixels inside them: all together (``scope: pooled``),
or per parent object (``scope: per_parent``, :mod:`scopeml.analysis.parent_threshold`, the same
levels as tile by tile).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scopeml.analysis.settings import (
    ClassSettings,
    Closing,
    Crf,
    FillHoles,
    GrowSegmenter,
    InstancesSegmenter,
    ModelSegmenter,
    Opening,
    RemoveBorder,
    RemoveLarge,
    RemoveSmall,
    ThresholdSegmenter,
    WatershedSplit,
)
from scopeml.objects.label import label_instances
from scopeml.objects.split import Split, split_each
from scopeml.post.morphology import binary_close, binary_open, fill_holes

__all__ = ["apply_post", "label_in_parents", "segment_class", "threshold_mask"]


def threshold_mask(
    channel: np.ndarray, segmenter: ThresholdSegmenter, region: np.ndarray | None = None
) -> np.ndarray:
    """Pixels above (``dark``: below) a fixed or automatic threshold, after Gaussian smoothing.

    ``region`` is the parent's objects: their labels (ids ≥ 1), or a mask when ``scope`` is
    ``pooled``. An automatic threshold is computed from the pixels in ``region`` when given
    (``per_parent``: one per parent object, from its own pixels); a region without pixels
    gives an empty mask. The level is the tiled path's (:func:`scopeml.analysis.tiled.
    threshold_tiled` with the plane as one tile), computed from the channel as stored when
    ``sigma`` is 0 (an integer channel: one histogram bin per grey value, as scikit-image
    bins integer images) and from the ``float32`` smoothed channel otherwise, so a class
    gets the same level whether its plane goes whole or tile by tile.

    Examples
    --------
    >>> plane = np.array([[0, 0, 10, 10], [0, 0, 10, 12]], np.float32)
    >>> threshold_mask(plane, ThresholdSegmenter(channel="a", method="otsu")).astype(int)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1]])
    >>> plane = np.array([[1, 1, 5, 5, 0, 20, 20, 60, 60]], np.uint16)
    >>> parents = np.array([[1, 1, 1, 1, 0, 2, 2, 2, 2]], np.int32)
    >>> seg = ThresholdSegmenter(channel="a", method="otsu", scope="per_parent")
    >>> threshold_mask(plane, seg, parents).astype(int).tolist()
    [[0, 0, 1, 1, 0, 0, 0, 1, 1]]
    """
    from scopeml.analysis.tiled import smooth_finite, threshold_tiled

    values = np.asarray(channel)  # as stored, as the tiled path reads it, unless smoothed
    if segmenter.sigma > 0:  # NaN pixels kept local, as the tiled path keeps them
        values = smooth_finite(values, segmenter.sigma)
    if segmenter.method != "fixed" and segmenter.scope == "per_parent":
        return _threshold_per_parent(values, segmenter, region)
    if region is not None:
        region = np.asarray(region) > 0
    mask, _ = threshold_tiled(
        values, None, segmenter.method, tile_size=max(values.shape),
        value=segmenter.value, dark=segmenter.dark, region=region, adjust=segmenter.adjusted,
    )  # fmt: skip
    return mask


def _threshold_per_parent(
    source: np.ndarray, segmenter: ThresholdSegmenter, parents: np.ndarray | None
) -> np.ndarray:
    """``per_parent``: the levels tile by tile gives, from the whole plane as one tile."""
    from scopeml.analysis.parent_threshold import parent_levels, threshold_per_parent

    if parents is None or np.asarray(parents).dtype == bool:
        raise ValueError("a per-parent threshold needs the parent class's labels")
    parents = np.asarray(parents)
    levels = parent_levels(source, parents, segmenter.method, tile_size=max(source.shape))
    levels = segmenter.adjusted(levels)
    return threshold_per_parent(source, parents, levels, dark=segmenter.dark)


def label_in_parents(mask: np.ndarray, parents: np.ndarray | None) -> np.ndarray:
    """Connected components of a mask within each parent object: neighbouring pixels join
    only where they lie in the same parent, so no object spans two parents that touch (as
    CellProfiler's children, each in one parent). ``int32``, numbered in raster order of each
    object's first pixel, as :func:`~scopeml.objects.label.label_instances` numbers them (it
    is that function when ``parents`` is ``None`` or a mask).

    Examples
    --------
    >>> mask = np.array([[1, 1, 1, 1, 0, 1]], bool)
    >>> label_in_parents(mask, np.array([[1, 1, 2, 2, 2, 2]])).tolist()
    [[1, 1, 2, 2, 0, 3]]
    """
    from skimage.measure import label

    mask = np.asarray(mask, bool)
    if parents is None or np.asarray(parents).dtype == bool:
        return label_instances(mask if parents is None else mask & np.asarray(parents))
    key = np.where(mask, np.asarray(parents), 0)
    return label(key, background=0, connectivity=1).astype(np.int32)  # raster order, 4/6-conn.


def apply_post(
    labels: np.ndarray,
    steps: Sequence[object],
    *,
    guide: np.ndarray | None = None,
    region: np.ndarray | None = None,
    parents: np.ndarray | None = None,
) -> np.ndarray:
    """Apply post-processing steps in order to instance labels; return ``int32`` labels.

    Mask steps (fill holes, opening, closing, CRF) change the foreground; an object keeps its
    id where it keeps its pixels, and new foreground is given to the touching object (new
    components become new objects). ``remove_small``/``remove_large`` drop whole objects by
    pixel count, ``remove_border`` those touching the image's edge; ``watershed_split`` splits
    touching objects at the distance-transform necks. Nothing leaves ``region`` (the parent's
    objects), and with ``parents`` (their labels) an object that a step made span two parents
    is split after it, one object per parent (:func:`~scopeml.analysis.plane.split_by_parent`).

    Examples
    --------
    >>> mask = np.zeros((6, 9), bool); mask[1:5, 1:4] = True; mask[2, 6] = True
    >>> labels = label_instances(mask)
    >>> apply_post(labels, [RemoveSmall(min_size=2), FillHoles()]).max()
    np.int32(1)
    """
    out = np.asarray(labels, np.int32)
    for step in steps:
        if isinstance(step, (RemoveSmall, RemoveLarge)):
            sizes = np.bincount(out.ravel())
            drop = sizes < step.min_size if isinstance(step, RemoveSmall) else sizes > step.max_size
            drop[0] = False
            out = np.where(drop[out], 0, out).astype(np.int32)
        elif isinstance(step, RemoveBorder):
            out = np.where(np.isin(out, border_ids(out)), 0, out).astype(np.int32)
        elif isinstance(step, WatershedSplit):
            out = split_each(out, Split(step.min_distance, step.h))  # as objects label --split
        else:
            out = _regrow(out, _mask_step(out > 0, step, guide), region)
        out = _split(out, parents)
    if region is not None:
        out = np.where(region, out, 0).astype(np.int32)
    return out


def border_ids(labels: Any) -> np.ndarray:
    """The ids of the objects touching the edge of ``labels`` (``[Z×]Y×X``, any array-like) in
    Y or X, read an edge strip at a time.

    >>> border_ids(np.array([[0, 1, 0], [2, 0, 3], [0, 0, 3]])).tolist()
    [1, 2, 3]
    """
    height, width = labels.shape[-2:]
    lead = (slice(None),) * (len(labels.shape) - 2)
    strips = [(slice(0, 1), slice(None)), (slice(height - 1, height), slice(None)),
              (slice(None), slice(0, 1)), (slice(None), slice(width - 1, width))]  # fmt: skip
    found = np.unique(np.concatenate([np.asarray(labels[lead + s]).ravel() for s in strips]))
    return found[found > 0]


def _split(labels: np.ndarray, parents: np.ndarray | None) -> np.ndarray:
    """Objects over several parent objects split, one per parent (no-op without labels)."""
    if parents is None or np.asarray(parents).dtype == bool:
        return labels
    from scopeml.analysis.plane import split_by_parent

    return np.asarray(split_by_parent(labels, parents, None, tile_size=max(labels.shape)))


def _grow(
    cls: ClassSettings,
    channels: dict[str, np.ndarray],
    seeds: np.ndarray,
    parents: np.ndarray | None,
    image: str,
    spacing: tuple[float, ...] | None = None,
    tally: dict[str, list[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``grow`` class's whole cells (``exclude_seeds`` applies after the post steps), inside
    its parent's objects, and the stain that guided them; a warning counts the seeds that grew
    no pixel (no row in the table of their rings)."""
    from scopeml.objects.grow import grow_objects

    seg = cls.segmenter
    assert isinstance(seg, GrowSegmenter)
    stain, mask = None, None if parents is None else np.asarray(parents) > 0
    if seg.within is not None:
        stain, within = channels[seg.within.channel], seg.within
        if within.sigma > 0:  # smoothed once: the threshold's level and the flooding's order
            from scopeml.analysis.tiled import smooth_finite

            stain = smooth_finite(np.asarray(stain), within.sigma)
            within = within.model_copy(update={"sigma": 0.0})
        # pooled, the level is the whole plane's: the stain's edge against the background,
        # as the parent's own grow drew it (within the parent's cells it rose, and the rings
        # of `parent: cell` lost most of their pixels); per_parent: one per parent object
        region = parents if within.scope == "per_parent" else None
        found = threshold_mask(stain, within, region)
        mask = found if mask is None else found & mask
    labels = grow_objects(
        seeds, seg.distance, mask=mask, intensity=stain,
        dark=seg.within is not None and seg.within.dark,
        parents=None if parents is None or np.asarray(parents).dtype == bool else parents,
        spacing=spacing,
    )  # fmt: skip
    counts = not_grown(seeds, labels)
    if tally is None:
        warn_not_grown([cls], {cls.name: counts}, image)
    else:  # summed over the image's planes, said once
        tally[cls.name] = [a + b for a, b in zip(tally.get(cls.name, [0] * 4), counts, strict=True)]
    return labels, stain


def not_grown(seeds: np.ndarray, grown: np.ndarray) -> list[int]:
    """``[seeds that grew no pixel beyond themselves, seeds, of those some that got no cell at
    all (outside every parent object), planes]`` of one plane, to be summed over an image's."""
    ids = np.unique(seeds[seeds > 0])
    size = int(seeds.max()) + 1
    ring = np.bincount(grown[(seeds == 0) & (grown > 0)], minlength=size)[ids]
    kept = np.bincount(grown[grown > 0], minlength=size)[ids]  # 0: outside every parent
    return [int((ring == 0).sum()), len(ids), int(((ring == 0) & (kept == 0)).any()), 1]


def warn_not_grown(
    classes: Sequence[ClassSettings], tally: dict[str, list[int]], image: str
) -> None:
    """Say for each class how many seeds grew no pixel (``tally``: :func:`not_grown` by class,
    summed over an image's planes: one line for a time series): a threshold that does not
    reach them (most of them: a membrane stain without ``dark``) fails silently otherwise."""
    for cls in classes:
        if tally.get(cls.name, [0])[0]:
            _warn_not_grown(cls, tally[cls.name], image)


def _warn_not_grown(cls: ClassSettings, counts: Sequence[int], image: str) -> None:
    import warnings

    from scopeml.errors import find_stack_level

    seg = cls.segmenter
    assert isinstance(seg, GrowSegmenter)
    bare, total, outside, planes = counts
    alone = "each of their cells is the seed alone" + (
        ", or none where it lies outside every parent object" if outside else "")  # fmt: skip
    said = f"no row in the {cls.name} table" if seg.exclude_seeds else alone
    why = "" if seg.within is None else "; the within threshold's pixels do not reach them"
    if seg.within is not None and not seg.within.dark and 2 * bare > total:
        why += " (a membrane stain, bright between cells, needs dark: true)"
    over = f" over its {planes} planes" if planes > 1 else ""
    warnings.warn(f"{image}{': ' if image else ''}class {cls.name!r}: {bare} of {total} "
                  f"{seg.seeds} objects{over} grew no pixel ({said}){why}", UserWarning,
                  stacklevel=find_stack_level())  # fmt: skip


def _mask_step(mask: np.ndarray, step: object, guide: np.ndarray | None) -> np.ndarray:
    if isinstance(step, FillHoles):
        return fill_holes(mask)
    if isinstance(step, Opening):
        return binary_open(mask, step.radius)
    if isinstance(step, Closing):
        return binary_close(mask, step.radius)
    if isinstance(step, Crf):
        return _crf(mask, step, guide)
    raise TypeError(f"unknown post-processing step {step!r}")


def _crf(mask: np.ndarray, step: Crf, guide: np.ndarray | None) -> np.ndarray:
    from scopeml.post.crf import dense_crf

    image = np.zeros(mask.shape, np.float32) if guide is None else np.asarray(guide, np.float32)
    low, high = np.percentile(image, (1, 99)) if image.size else (0.0, 1.0)
    spread = float(high - low) or 1.0
    foreground = np.where(mask, step.certainty, 1 - step.certainty).astype(np.float32)
    labels = dense_crf(
        np.stack([1 - foreground, foreground]),
        image,
        intensity_sigma=step.intensity_sigma * spread,
        spatial_sigma=step.spatial_sigma,
        bilateral_sigma=step.bilateral_sigma,
        iterations=step.iterations,
    )
    return labels == 2


def _regrow(labels: np.ndarray, mask: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """Labels restricted to ``mask``; mask pixels without a label take the touching object's."""
    from skimage.segmentation import watershed

    if region is not None:
        mask = mask & region
    kept = np.where(mask, labels, 0).astype(np.int32)
    if not (mask & (kept == 0)).any():
        return kept
    if kept.any():
        kept = watershed(np.zeros(kept.shape, np.uint8), kept, mask=mask).astype(np.int32)
    orphans = mask & (kept == 0)
    if orphans.any():
        extra = label_instances(orphans)
        kept = np.where(extra > 0, extra + kept.max(), kept).astype(np.int32)
    return kept


def segment_class(
    cls: ClassSettings,
    channels: dict[str, np.ndarray],
    *,
    model_labels: np.ndarray | None = None,
    class_values: tuple[int, int | None] | None = None,
    region: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
    image: str = "",
    spacing: tuple[float, ...] | None = None,
    tally: dict[str, list[int]] | None = None,
) -> np.ndarray:
    """Instance labels of one class on one plane: its segmenter, then its post steps.

    Parameters
    ----------
    cls
        The class's settings.
    channels
        The plane's input channels by name, ``(Z×)Y×X`` each.
    model_labels
        For ``model``: the engine's class labels of this plane (class ``k`` as ``k+1``); for
        ``instances``: ``segment``'s instances of this plane (ids from 1).
    class_values
        For ``model``: the label value of the class (and of the boundary class, unused).
    region
        The parent's objects: its labels, or a mask unless a threshold is ``per_parent``
        (``None`` for a root class).
    seeds
        For ``grow``: the seeds class's labels of this plane.
    image
        The image's name, for warnings.
    spacing
        For ``grow``: each axis's pixel size in X pixels (a Z stack's steps), where known.
    tally
        For ``grow``: the seeds that grew nothing are added here (:func:`not_grown`, by
        class) for one warning per image (:func:`warn_not_grown`), else warned of at once.

    Examples
    --------
    >>> plane = {"a": np.array([[0, 9, 9, 0, 9]], np.float32)}
    >>> cls = ClassSettings(name="x", segmenter=ThresholdSegmenter(channel="a", method="fixed",
    ...                     value=5))
    >>> segment_class(cls, plane).tolist()
    [[0, 1, 1, 0, 2]]
    """
    seg = cls.segmenter
    parents, region = region, None if region is None else np.asarray(region) > 0
    if isinstance(seg, ThresholdSegmenter):
        labels = label_in_parents(threshold_mask(channels[seg.channel], seg, parents), parents)
        guide = channels[seg.channel]
    elif isinstance(seg, GrowSegmenter):
        if seeds is None:
            raise ValueError(f"class {cls.name!r} needs the {seg.seeds!r} objects of this plane")
        labels, guide = _grow(cls, channels, np.asarray(seeds), parents, image, spacing, tally)
    else:
        if model_labels is None or (class_values is None and isinstance(seg, ModelSegmenter)):
            raise ValueError(f"class {cls.name!r} needs the model's labels of this plane")
        if isinstance(seg, InstancesSegmenter):  # segment's instances, cut to the parent's
            labels = np.asarray(model_labels).astype(np.int32, copy=False)
            if region is not None:
                labels = _split(np.where(region, labels, 0).astype(np.int32), parents)
        else:
            mask = np.asarray(model_labels) == class_values[0]  # type: ignore[index]
            labels = label_in_parents(mask if region is None else mask & region, parents)
        guide = channels[seg.channels[0]]
    labels = apply_post(labels, cls.post, guide=guide, region=region, parents=parents)
    if isinstance(seg, GrowSegmenter) and seg.exclude_seeds:  # after the steps: fill_holes
        labels[np.asarray(seeds) > 0] = 0  # would give the nuclei back to their rings
    return labels
