"""The :class:`PixelClassifier` (a :class:`~scopeml.model.spec.Model`) and its training.

Class convention, stated once: in a label image 0 is unlabelled and ``k = 1..K`` is class ``k``;
the classifier's output channel ``k - 1`` is the probability of class ``k`` (``classes[k - 1]``
names it). So ``argmax`` over channels plus one gives back label values as trained.

NaN and infinite pixels follow the tiling engine's rule (:mod:`scopeml.io.nonfinite`, one
implementation for both) everywhere, in training and prediction alike: such a pixel is 0 in
every channel for the filters, so its neighbours' features stay finite, and it has no class
itself (label 0, probability 0 for every class). The rule is per pixel, so blocks and tiles
give the same result as one piece. In training, scribbled NaN or infinite pixels are left out
with one warning.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from scopeml.errors import (
    IncompatibleModelError,
    InvalidImageError,
    InvalidLabelsError,
    InvalidRequestError,
    find_stack_level,
)
from scopeml.features import DeepFeatures, FeatureSet, compute_features, parse_features
from scopeml.inputs import names_of
from scopeml.io.dtypes import label_dtype
from scopeml.io.nonfinite import replace_nonfinite
from scopeml.model.forest import BINS, Forest, check_forest_options, fit_forest
from scopeml.model.metadata import class_name_problem, default_classes
from scopeml.model.spec import ModelSpec
from scopeml.palette import colour_of
from scopeml.pixel._blocks import iter_blocks, read_edges
from scopeml.pixel._cache import FeatureCache, block_key
from scopeml.pixel._range import training_range
from scopeml.pixel._sources import (
    ImageSource,
    LabelScan,
    LabelSource,
    _is_image,
    check_classes,
    scan_labels,
    time_point_sources,
)
from scopeml.progress import Progress, ProgressCallback, ProgressEvent, as_progress
from scopeml.threads import map_ordered, thread_count

#: Spatial block edge (pixels) for computing features piecewise, by spatial dims: small enough
#: for the intermediate images to stay in cache, large enough for the halo and the per-call
#: overhead to stay small (measured on basic25, 2 threads: 384 fastest of 128 to 512).
BLOCK = {2: 384, 3: 96}


@dataclass(frozen=True)
class PixelClass:
    """A class the classifier predicts: its name and display colour (``"#rrggbb"``)."""

    name: str
    color: str


class PixelClassifier:
    """A random forest on multi-scale filter features; runs in the tiling engine as a Model.

    Build one with :func:`train_classifier` or :func:`load_classifier`.

    Attributes
    ----------
    spec
        What the engine needs: ``halo`` (the feature set's), ``in_channels``, ``classes``,
        ``spatial_dims``.
    features
        The :class:`~scopeml.features.FeatureSet` computed on every channel.
    classes
        One :class:`PixelClass` per output channel; channel ``k`` is label value ``k + 1``.
    n_jobs
        Threads for prediction (``-1``: all cores). Results do not depend on it.
    info
        Training parameters, stored with the model.
    """

    def __init__(
        self,
        forest: Forest,
        features: FeatureSet,
        *,
        in_channels: int,
        spatial_dims: int,
        classes: Sequence[PixelClass],
        name: str = "pixel classifier",
        n_jobs: int = -1,
        info: dict[str, Any] | None = None,
    ) -> None:
        n_features = features.n_features(in_channels, spatial_dims)
        if forest.n_features != n_features or forest.n_classes != len(classes):
            raise ValueError(
                f"forest has {forest.n_features} features and {forest.n_classes} classes; "
                f"feature set gives {n_features}, {len(classes)} classes named"
            )
        self.forest = forest
        self.features = features
        self.classes = tuple(classes)
        self.n_jobs = n_jobs
        self.info = dict(info or {})
        #: The file it was read from or last saved to: a run records its sha256, so a store a
        #: run of the opened model wrote is the one ``segment`` of the file would write.
        self.path: Path | None = None
        self.spec = ModelSpec(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            classes=tuple(c.name for c in self.classes),
            halo=(features.halo,) * spatial_dims,
            tile_step=(features.step,) * spatial_dims,
            name=name,
            extra={"format": "scopeml-pixel-classifier"},
        )

    def with_classes(self, classes: Sequence[PixelClass]) -> PixelClassifier:
        """The same forest with its classes named (and coloured) as ``classes``: a retrained
        classifier takes the names of the one it replaces."""
        return PixelClassifier(
            self.forest, self.features, in_channels=self.spec.in_channels,
            spatial_dims=self.spec.spatial_dims, classes=classes, name=self.spec.name,
            n_jobs=self.n_jobs, info=self.info,
        )  # fmt: skip

    @property
    def feature_names(self) -> list[str]:
        return self.features.names(self.spec.in_channels, self.spec.spatial_dims)

    #: :meth:`predict` and :meth:`predict_index` take ``planes``: the engine asks for a tile's
    #: core planes only (looked up on the class, so a wrapper such as a scaled model does not
    #: seem to offer it).
    predicts_planes = True

    def predict(self, batch: np.ndarray, *, planes: tuple[int, int] | None = None) -> np.ndarray:
        """Class probabilities: ``N×C×[Z×]Y×X`` → ``N×K×[Z×]Y×X`` float32.

        Large inputs are processed in blocks with the halo, in ``n_jobs`` threads; the result
        is the same bit for bit as in one piece. ``planes=(lo, hi)`` (3-D): only planes
        ``lo:hi`` (Z ``hi - lo``), equal to those of the whole answer, at a fraction of its cost.
        """
        batch = np.asarray(batch)
        self._check_shape(batch.shape)
        spatial = _spatial(batch.shape[2:], planes)
        out = np.empty((batch.shape[0], len(self.classes), *spatial), np.float32)
        sources = [ImageSource(image, self.spec.spatial_dims) for image in batch]
        self._blockwise(sources, lambda x: self.forest.predict_proba(x).T, out, planes=planes)
        return out  # NaN or infinite pixels: 0 for every class

    def predict_labels(self, image: Any, *, cache: FeatureCache | None = None) -> np.ndarray:
        """Label image of one ``C×[Z×]Y×X`` array or one-scene :class:`Image`: values ``1..K``
        as in training, 0 where a pixel is NaN or infinite in any channel.

        Equal to ``argmax`` over :meth:`predict` plus one, but faster: a pixel's remaining trees
        are skipped once they cannot change its winner. A lazy image is read block by block.
        ``cache``: the :class:`FeatureCache` given to :func:`train_classifier` on this image,
        whose block features are reused where the block's pixels are unchanged (same result).

        Examples
        --------
        >>> from scopeml.synthetic import synthetic_nuclei
        >>> image, truth = synthetic_nuclei((48, 48), density=0.004, seed=0)
        >>> clf = train_classifier(image, (truth > 0) + 1, features="gaussian_smoothing:1",
        ...                        n_estimators=5, seed=0)
        >>> clf.predict_labels(image).shape
        (48, 48)
        """
        source = ImageSource(image, self.spec.spatial_dims)
        self._check_shape((1, *source.shape))
        return self._indices([source], source.spatial_shape, cache, first=1)[0]

    def predict_index(
        self, batch: np.ndarray, *, planes: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Most probable class index per pixel: ``N×C×[Z×]Y×X`` → ``N×[Z×]Y×X``, exactly
        ``argmax`` over :meth:`predict` (ties to the lower index; 0 where a pixel is NaN or
        infinite, whose probabilities are all 0), with early stopping as in
        :meth:`predict_labels`. The engine uses it when it writes only labels or a mask.
        ``planes``: as in :meth:`predict`."""
        batch = np.asarray(batch)
        self._check_shape(batch.shape)
        sources = [ImageSource(image, self.spec.spatial_dims) for image in batch]
        return self._indices(sources, _spatial(batch.shape[2:], planes), planes=planes)

    def _indices(
        self,
        sources: Sequence[ImageSource],
        spatial: tuple[int, ...],
        cache: FeatureCache | None = None,
        first: int = 0,
        planes: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Class indices plus ``first`` (0: indices, 1: label values); 0 at NaN pixels."""
        out = np.empty((len(sources), 1, *spatial), label_dtype(len(self.classes)))

        def evaluate(x: np.ndarray) -> np.ndarray:
            index = self.forest.predict_labels(x)
            return (index + first if first else index)[None]

        self._blockwise(sources, evaluate, out, cache, planes)
        return out[:, 0]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """``N×C×[Z×]Y×X`` with the classifier's channels and dims, or a clear error."""
        dims, channels = self.spec.spatial_dims, self.spec.in_channels
        if len(shape) != 2 + dims or shape[1] != channels:
            raise IncompatibleModelError(
                f"input has shape {tuple(shape)}; the classifier expects N×{channels}×"
                + "×".join("ZYX"[3 - dims :])
            )

    def _blockwise(
        self,
        sources: Sequence[ImageSource],
        evaluate: Callable[[np.ndarray], np.ndarray],
        out: np.ndarray,
        cache: FeatureCache | None = None,
        planes: tuple[int, int] | None = None,
    ) -> None:
        """Fill ``out`` (``N×K'×…``, one per source) block by block: features of the block grown
        by the halo, then ``evaluate((P, F) features) -> (K', P)`` on its core, in threads.
        NaN or infinite pixels are 0 for the filters and 0 in ``out`` (see the module's note).
        ``planes``: only those planes (Z), ``out`` holding them alone."""
        tasks, block = [], self.features.block or BLOCK[self.spec.spatial_dims]
        for n, source in enumerate(sources):
            for read, core in iter_blocks(source.spatial_shape, block, self.features.halo):
                core = core if planes is None else _core_planes(read, core, planes)
                if core is not None:
                    tasks.append((n, read, core))
        origin = [0] * self.spec.spatial_dims if planes is None else [planes[0], 0, 0]

        def run(task: tuple[int, tuple[slice, ...], tuple[slice, ...]]) -> None:
            n, read, core = task
            pixels, invalid = finite_pixels(sources[n].read(read))
            feats = _block_features(sources[n], read, core, self.features, cache, pixels)
            shape = feats.shape[1:]
            # F×P feature-major; its transpose is a (P, F) view the forest reads without a copy
            feats = np.ascontiguousarray(feats).reshape(len(feats), -1)
            target = tuple(
                slice(r.start + c.start - o, r.start + c.stop - o)
                for r, c, o in zip(read, core, origin, strict=True)
            )
            result = evaluate(feats.T).reshape(-1, *shape)
            if invalid is not None:
                result[:, invalid[core]] = 0
            out[(n, slice(None), *target)] = result

        _map(run, tasks, self.n_jobs)

    def save(self, path: str | PathLike[str], *, overwrite: bool = False) -> Path:
        """Write a ``.czseg`` container (zip: ``model.json`` + node arrays), atomically; an
        existing file at ``path`` is refused unless ``overwrite``."""
        from scopeml.pixel._container import save_classifier

        self.path = save_classifier(self, path, overwrite=overwrite)
        return self.path

    def content_sha256(self) -> str:
        """A digest of what decides its labels (features, classes, trees): the record of a
        run of a classifier not read from a file, so a resume with another one trained in the
        same session is refused as one from another file is."""
        import hashlib
        import json

        digest = hashlib.sha256()
        spec = self.spec
        head = [self.features.to_dict(), list(spec.classes), spec.in_channels, spec.spatial_dims]
        digest.update(json.dumps(head, sort_keys=True, default=str).encode())
        for name, array in sorted(self.forest.arrays().items()):
            array = np.ascontiguousarray(array)
            digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return (
            f"PixelClassifier({len(self.classes)} classes, {self.spec.in_channels} channels, "
            f"{self.spec.spatial_dims}-D, {self.forest.n_features} features "
            f"({self.features.name}), {self.forest.n_trees} trees, halo {self.features.halo})"
        )


def train_classifier(
    image: Any,
    labels: Any,
    *,
    features: str | FeatureSet = "basic25",
    classes: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    n_estimators: int = 100,
    max_depth: int | None = None,
    min_samples_leaf: int = 1,
    spatial_dims: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    name: str = "pixel classifier",
    n_jobs: int | None = None,
    cache: FeatureCache | None = None,
    progress: Progress = None,
) -> PixelClassifier:
    """Train a random forest from sparse labels on one image or several.

    Parameters
    ----------
    image
        ``C×[Z×]Y×X`` array (channel axis always present) or an :class:`~scopeml.io.Image`;
        or a list of them, paired with a list of label images. An ``Image`` with several time
        points (or scenes) trains on every time point that has labels: features are computed
        per time point (filters never mix them), and time points without labels are skipped
        (their labels are read, never their pixels).
    labels
        Integer label image(s) of the spatial shape: 0 unlabelled, ``1..K`` classes. For an
        ``Image`` with several time points: an ``Image`` with the same time points (and
        scenes), or an array ``T×[Z×]Y×X`` (``S×T×[Z×]Y×X``); 0 on the time points not
        labelled. NaN or infinite scribbled pixels are left out with one warning (their
        neighbours see them as 0, as in prediction).
    features
        Preset name, spec string (``"gaussian_smoothing:1,3.5;…"``) or FeatureSet.
    classes
        Names of label values ``1..K``; default ``"class 1"``…, ``K`` the largest label.
    colors
        ``"#rrggbb"`` per class; default a fixed palette.
    n_estimators, max_depth, min_samples_leaf
        Forest settings. Class weights are balanced, so rare classes count as much. Splits
        are searched among 256 quantile bins per feature, as histogram tree learners do.
    spatial_dims
        2 or 3; default from the image (``Image`` with one Z plane: 2).
    workers
        Threads for features and trees (default all cores); results do not depend on it.
        ``n_jobs`` is its older name, kept for callers that still pass it.
    cache
        A :class:`FeatureCache` to keep the features computed here, so that
        :meth:`PixelClassifier.predict_labels` on the same image (given the same cache) need
        not compute them again; it holds up to its ``max_bytes``.
    progress
        See :mod:`scopeml.progress`: stage ``features`` counts the labelled blocks whose
        features are computed, then stage ``train`` the trees fitted (a round of the threads
        at a time); a :class:`~scopeml.errors.Cancelled` raised by the callback stops the
        call between two blocks or two rounds.

    Returns
    -------
    PixelClassifier
        Output channel ``k`` is the probability of label value ``k + 1``; its ``info`` keeps
        the training settings and, trained on an :class:`~scopeml.io.Image`, its channels'
        names (``"channels"``: what ``segment`` picks from another image).
    """
    n_jobs = workers if workers is not None else (n_jobs if n_jobs is not None else -1)
    check_forest_options(n_estimators, max_depth, min_samples_leaf, n_jobs)
    classes, colors = names_of(classes), names_of(colors)  # "bg,cell" as the command line's
    pairs = _pairs(image, labels)
    fs = parse_features(features)
    if spatial_dims is None:
        spatial_dims = _infer_dims(pairs[0][0])
    sources, groups = _sources(pairs, spatial_dims)
    _check_deep_2d(fs, sources[0][0])
    in_channels = sources[0][0].shape[0]
    block = fs.block or BLOCK[spatial_dims]
    scans = [
        scan_labels(lab, im.spatial_shape, classes, block, fs.halo, empty_ok=len(group) > 1)
        for group in groups
        for im, lab in (sources[i] for i in group)
    ]
    sources, groups, scans = _labelled_only(sources, groups, scans)
    if hasattr(fs, "fit"):  # deep features: input range from the training images, network hash
        fs = fs.fit(
            im.read(r) for im, _ in sources for r, _ in iter_blocks(im.spatial_shape, 1024, 0)
        )
    n_classes = len(classes) if classes is not None else max(scan.top for scan in scans)
    used = sorted(set().union(*(scan.values for scan in scans)))
    check_classes(used, n_classes, _one_path(lab.path for _, lab in sources))
    report = as_progress(progress)
    named = getattr(pairs[0][0], "channel_names", None)  # an Image's: segment reads them again
    x, y, counts = _training_set(sources, groups, scans, fs, n_jobs, n_classes, cache, report)
    forest, importances = fit_forest(
        x,
        y,
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        n_jobs=n_jobs,
        seed=seed,
        report=lambda trees: report(ProgressEvent("train", trees, n_estimators, unit="tree")),
    )
    return PixelClassifier(
        forest,
        fs,
        in_channels=in_channels,
        spatial_dims=spatial_dims,
        classes=make_classes(n_classes, classes, colors),
        name=name,
        n_jobs=n_jobs,
        info={
            "n_estimators": n_estimators,
            "max_depth": max_depth,
            "min_samples_leaf": min_samples_leaf,
            "class_weight": "balanced",
            "training_bins": BINS,
            "seed": seed,
            "n_samples": len(y),
            "samples_per_class": [int(c) for c in counts],
            "feature_importances": [float(v) for v in importances],
            "intensity_range": training_range(sources, scans),  # checked when segmenting
            **({"channels": [str(n) for n in named]} if named else {}),
            # of how many the channels were chosen: C0 of another file is the same only there
            **({"image_channels": pairs[0][0].source_channels} if named else {}),
        },
    )


def _sources(
    pairs: list[tuple[Any, Any]], spatial_dims: int
) -> tuple[list[tuple[ImageSource, LabelSource]], list[list[int]]]:
    """Image and label sources, one per time point of an image with several, and, per pair
    given, the indices of its sources; every image must have image 0's channels."""
    sources: list[tuple[ImageSource, LabelSource]] = []
    groups: list[list[int]] = []
    for im, lab in pairs:
        if _is_image(im) and im.shape[0] * im.shape[1] > 1:
            found = time_point_sources(im, lab, spatial_dims)
        else:
            found = [(ImageSource(im, spatial_dims), LabelSource(lab, spatial_dims))]
        groups.append(list(range(len(sources), len(sources) + len(found))))
        sources += found
    in_channels = sources[0][0].shape[0]
    for index, group in enumerate(groups):
        im = sources[group[0]][0]
        if im.shape[0] != in_channels:
            raise InvalidImageError(
                f"image {index} has {im.shape[0]} channels; image 0 has {in_channels}",
                path=im.path,
            )
    return sources, groups


def _check_deep_2d(fs: Any, image: ImageSource) -> None:
    """Deep features are 2-D: a Z stack is refused before any work, said in the image's terms
    with the way out (its planes as time points give a 2-D classifier, which ``segment`` runs
    on a Z stack plane by plane)."""
    if not isinstance(fs, DeepFeatures) or image.spatial_dims == 2:
        return
    z, y, x = image.shape[1:]
    raise InvalidRequestError(
        f"deep features are 2-D; the image is a Z stack of {z} planes of {y}×{x}: train on its "
        'planes as time points (--axes TYX, or axes="TYX" in Python; labels T×Y×X) for a 2-D '
        "classifier that segment runs plane by plane, or use filter features alone "
        "(basic25) for a 3-D one",
        path=image.path,
    )


def _labelled_only(
    sources: list[tuple[ImageSource, LabelSource]], groups: list[list[int]], scans: list[LabelScan]
) -> tuple[list[tuple[ImageSource, LabelSource]], list[list[int]], list[LabelScan]]:
    """Drop the time points without labels (scanned with ``empty_ok``); a series with none
    labelled at all is refused, as a single unlabelled image is by its scan."""
    kept_sources, kept_groups, kept_scans = [], [], []
    for group in groups:
        labelled = [i for i in group if scans[i].blocks]
        if not labelled:
            labels = sources[group[0]][1]
            raise InvalidLabelsError(
                f"no pixel is labelled in any of the {len(group)} time points (all labels are 0)",
                path=labels.path,
            )
        kept_groups.append(list(range(len(kept_sources), len(kept_sources) + len(labelled))))
        kept_sources += [sources[i] for i in labelled]
        kept_scans += [scans[i] for i in labelled]
    return kept_sources, kept_groups, kept_scans


def _one_path(paths: Iterable[Any]) -> Any:
    """The path all sources share (one file, or one series), else ``None``."""
    found = set(paths)
    return found.pop() if len(found) == 1 else None


def _training_set(
    sources: list[tuple[ImageSource, LabelSource]],
    groups: list[list[int]],
    scans: list[LabelScan],
    fs: Any,
    n_jobs: int,
    n_classes: int,
    cache: FeatureCache | None = None,
    report: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features ``x`` (N, F), labels ``y`` and pixels per class (every class occurs: the label
    scans were checked by :func:`~scopeml.pixel._sources.check_classes`). Images (all time
    points of one together) in order, each in raster order; stage ``features`` reported per
    block."""
    report, done, total = as_progress(report), 0, sum(len(scan.blocks) for scan in scans)

    def tick() -> None:
        nonlocal done
        report(ProgressEvent("features", done, total, unit="block"))
        done += 1

    tick()
    samples = [
        _sample_features(im, lab, scan, fs, n_jobs, cache, tick)
        for (im, lab), scan in zip(sources, scans, strict=True)
    ]
    for group in groups:  # one warning per image given, whatever its time points
        counts = [sum(samples[i][2][k] for i in group) for k in range(3)]
        _check_finite(*counts, sources[group[0]][0])
    # feature-major F×N, so x.T is the column-major (N, F) float32 array the tree builder
    # reads fastest (it scans one feature of many samples at a time; ~7% faster at 84k samples)
    x = np.concatenate([s[0] for s in samples], axis=1).T
    y = np.concatenate([s[1] for s in samples]).astype(label_dtype(n_classes))
    counts = np.bincount(y, minlength=n_classes + 1)[1:]
    if not counts.all():  # every class had labels: those left out were NaN or infinite
        empty = [str(k + 1) for k in np.flatnonzero(counts == 0)]
        raise InvalidImageError(
            f"class {', '.join(empty)}: every labelled pixel is NaN or infinite; label it "
            "where the image has values",
            path=_one_path(im.path for im, _ in sources),
        )
    _warn_constant(x)
    return x, y, counts


def _warn_constant(x: np.ndarray) -> None:
    """Warn where every feature has one value over the labelled pixels (a blank image): the
    forest then cannot tell the classes apart and gives every pixel one class."""
    if len(x) and not np.ptp(x, axis=0).any():
        warnings.warn(
            "every feature has one value over the labelled pixels (is the image blank?): the "
            "classifier cannot tell the classes apart and gives every pixel one class",
            UserWarning,
            stacklevel=find_stack_level(),
        )


def make_classes(
    n_classes: int, names: Sequence[str] | None, colors: Sequence[str] | None
) -> list[PixelClass]:
    """Name and colour ``n_classes`` classes, filling in defaults."""
    names = list(names) if names is not None else list(default_classes(n_classes))
    colors = list(colors) if colors is not None else []
    if len(colors) > n_classes:
        raise InvalidRequestError(f"{len(colors)} colours given for {n_classes} classes")
    colors += [colour_of(k) for k in range(len(colors), n_classes)]
    problem = next(filter(None, map(class_name_problem, map(str, names))), None)
    if problem is not None:  # refused when saved, and read back: say it before training
        raise InvalidRequestError(f"class name {problem}")
    repeated = sorted({str(n) for n in names if names.count(n) > 1})
    if repeated:  # --class NAME could not tell them apart
        raise InvalidRequestError(f"class names repeat ({', '.join(repeated)}): name each once")
    return [PixelClass(str(n), _check_color(c)) for n, c in zip(names, colors, strict=True)]


def _infer_dims(image: Any) -> int:
    if hasattr(image, "read") and len(getattr(image, "shape", ())) == 6:
        return 3 if image.shape[3] > 1 else 2
    ndim = np.ndim(image)
    if ndim not in (3, 4):
        raise InvalidImageError(
            f"image has {ndim} axes; expected C×Y×X or C×Z×Y×X (channel axis always present)"
        )
    return ndim - 1


def _pairs(image: Any, labels: Any) -> list[tuple[Any, Any]]:
    if isinstance(image, (list, tuple)):
        if not isinstance(labels, (list, tuple)) or len(labels) != len(image):
            raise InvalidLabelsError(
                f"{len(image)} images need as many label images; got "
                f"{len(labels) if isinstance(labels, (list, tuple)) else 'one'}"
            )
        if not image:
            raise InvalidLabelsError("no training images given")
        return list(zip(image, labels, strict=True))
    return [(image, labels)]


def _sample_features(
    image: ImageSource,
    labels: LabelSource,
    scan: LabelScan,
    fs: FeatureSet,
    n_jobs: int,
    cache: FeatureCache | None = None,
    each: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Features (``F×N``) and labels (``N``) of the labelled pixels, computed only in the blocks
    that hold some, in raster order (so the forest does not depend on the block size), and
    ``(labelled, left out, left out for being NaN or infinite)`` pixel counts; ``each()`` is
    called after each block.

    A NaN or infinite pixel is 0 in every channel for the filters (the engine's rule, as in
    prediction); labelled ones are left out, and so is any labelled pixel whose features are
    still not finite (finite pixels too large for float32 filters).
    """

    def run(task: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        read, core, target = task
        block_labels = labels.read(target)
        mask = block_labels > 0
        pixels, invalid = finite_pixels(image.read(read))
        feats = _block_features(image, read, core, fs, cache, pixels)[:, mask]
        keep = np.isfinite(feats).all(axis=0)
        bad_pixels = 0
        if invalid is not None:
            bad = invalid[core][mask]
            bad_pixels = int(np.count_nonzero(bad))
            keep &= ~bad
        where = [w[keep] for w in np.nonzero(mask)]
        index = np.ravel_multi_index(
            [w + t.start for w, t in zip(where, target, strict=True)], labels.shape
        )
        return feats[:, keep], block_labels[mask][keep], index, bad_pixels, len(keep)

    parts = _map(run, scan.blocks, n_jobs, each)
    order = np.argsort(np.concatenate([p[2] for p in parts]))
    x = np.concatenate([p[0] for p in parts], axis=1)[:, order]
    y = np.concatenate([p[1] for p in parts])[order]
    labelled = sum(p[4] for p in parts)
    return x, y, (labelled, labelled - len(y), sum(p[3] for p in parts))


def finite_pixels(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The engine's rule for NaN and infinite pixels (:func:`scopeml.io.nonfinite.
    replace_nonfinite`, which :func:`scopeml.tiling.kernel.mask_invalid` applies too), keeping
    the dtype: a pixel non-finite in any channel becomes 0 in every channel. Returns the pixels
    and the ``[Z×]Y×X`` mask of those replaced (``None`` when none were).

    Examples
    --------
    >>> block, invalid = finite_pixels(np.array([[1.0, np.nan], [2.0, 3.0]]))
    >>> block.tolist(), invalid.tolist()
    ([[1.0, 0.0], [2.0, 0.0]], [False, True])
    """
    return replace_nonfinite(pixels)


def _check_finite(labelled: int, dropped: int, bad_pixels: int, image: ImageSource) -> None:
    """Refuse an image whose labelled pixels are all left out; warn once when some are."""
    if not dropped:
        return
    path = image.path
    if bad_pixels == labelled:
        raise InvalidImageError(
            f"all {labelled} labelled pixels are NaN or infinite; label pixels with values",
            path=path,
        )
    why = [f"{bad_pixels} are NaN or infinite"] if bad_pixels else []
    if dropped > bad_pixels:
        why.append(f"{dropped - bad_pixels} have features too large for float32")
    why = ", ".join(why)
    if dropped == labelled:
        raise InvalidImageError(f"no labelled pixel can be used: of {labelled}, {why}", path=path)
    where = f"{path}: " if path else ""
    warnings.warn(
        f"{where}{dropped} of {labelled} labelled pixels left out of training ({why})",
        UserWarning,
        stacklevel=find_stack_level(),
    )


def _block_features(
    source: ImageSource,
    read: tuple[slice, ...],
    core: tuple[slice, ...],
    fs: FeatureSet,
    cache: FeatureCache | None,
    pixels: np.ndarray | None = None,
) -> np.ndarray:
    """Features (``F×…``) of the ``core`` of block ``read``: a view, or with a cache a contiguous
    array (copied while hot from the filters, so prediction needs no copy), taken from the
    cache when the block's pixels are unchanged. ``pixels``: the block, if already read.
    Deep features mirror the image at the sides of ``read`` that are the source's edges, so
    training, prediction and the engine's tiles treat the image's edges alike."""
    pixels = source.read(read) if pixels is None else pixels
    edges = read_edges(read, source.spatial_shape)
    key = block_key((fs, source.at, edges), read, core) if cache is not None else None
    if key is None:  # the key is per plane (source.at) and per edges (the source's shape)
        return _core_features(pixels, fs, core, edges)
    feats = cache.get(key, pixels)
    if feats is None:
        feats = _core_features(pixels, fs, core, edges)
        if cache.has_room(pixels.nbytes + feats.nbytes):
            feats = np.ascontiguousarray(feats)
            cache.put(key, pixels, feats)
    return feats


def _core_features(
    pixels: np.ndarray,
    fs: FeatureSet,
    core: tuple[slice, ...],
    edges: tuple[tuple[bool, bool], ...] | None = None,
) -> np.ndarray:
    """Features of a block's core; in 3-D of its core planes only (the halo planes are not
    computed, the same values at a fraction of the cost). ``edges``: the block's sides that
    are the image's (:func:`~scopeml.pixel._blocks.read_edges`), where deep features mirror
    it; ``None``: every side is."""
    if isinstance(fs, DeepFeatures):  # 2-D only (refused for a Z stack before any work)
        with np.errstate(invalid="ignore", over="ignore"):  # as compute_features
            return fs.compute(pixels, edges=edges)[(slice(None), *core)]
    if len(core) != 3:
        return compute_features(pixels, fs)[(slice(None), *core)]
    feats = compute_features(pixels, fs, planes=(core[0].start, core[0].stop))
    return feats[(slice(None), slice(None), *core[1:])]


def _core_planes(
    read: tuple[slice, ...], core: tuple[slice, ...], planes: tuple[int, int]
) -> tuple[slice, ...] | None:
    """A block's core (in the block) cut to the image planes ``planes``; ``None`` if none."""
    lo = max(read[0].start + core[0].start, planes[0]) - read[0].start
    hi = min(read[0].start + core[0].stop, planes[1]) - read[0].start
    return None if lo >= hi else (slice(lo, hi), *core[1:])


def _spatial(shape: tuple[int, ...], planes: tuple[int, int] | None) -> tuple[int, ...]:
    """The spatial shape of an answer for ``planes`` of an input of ``shape``."""
    if planes is None:
        return tuple(shape)
    if len(shape) != 3 or not 0 <= planes[0] < planes[1] <= shape[0]:
        raise InvalidRequestError(
            f"planes {planes[0]}:{planes[1]} need a 3-D input with those planes; "
            f"got spatial shape {tuple(shape)}"
        )
    return (planes[1] - planes[0], *shape[1:])


def _map(
    func: Callable, tasks: Iterable, n_jobs: int, each: Callable[[], None] | None = None
) -> list:
    """``func`` of each task, in ``n_jobs`` threads, in order (:func:`~scopeml.threads.
    map_ordered`); ``each()`` after each result, in the calling thread: an error it raises
    drops the tasks not yet started."""
    tasks, each, results = list(tasks), each or (lambda: None), []
    workers = min(thread_count(n_jobs), max(len(tasks), 1))
    with contextlib.closing(map_ordered(func, tasks, workers)) as mapped:
        for result in mapped:
            results.append(result)
            each()
    return results


def _check_color(color: str) -> str:
    text = str(color).strip().lower()
    if len(text) != 7 or text[0] != "#" or any(ch not in "0123456789abcdef" for ch in text[1:]):
        raise InvalidRequestError(f"colour {color!r} is not of the form #rrggbb")
    return text
