"""A random forest as plain arrays: built from scikit-learn, validated, evaluated without pickle.

The one forest format of scopeml: the pixel classifier and the object classifier both keep,
save and evaluate their trees through :class:`Forest`.

The forest is kept as concatenated node arrays (children, split feature, threshold, leaf class
fractions) — the form it is saved in — and evaluated through scikit-learn's compiled
``Tree.apply``, rebuilt from those arrays with ``Tree.__setstate__`` (a documented-by-use state
dict of numpy arrays, not a pickle). Freshly trained and loaded forests take the same path, so
they predict identically. Compiled walkers written with numba (tree by tree, pixel by pixel over
all trees, branch-free in groups of 8 pixels, packets of adjacent pixels) were measured against
it on the 32-tree benchmark forest and were no more than ~10% faster: the walk (about 7 nodes
per tree) is bound by branch mispredictions and load latency, not by the numpy bookkeeping.

:func:`fit_forest` trains on each feature's quantile bins, as histogram tree learners do: split
points are searched among at most :data:`BINS` values per feature instead of every distinct
one, which halves scikit-learn's fit (sorting few distinct values is cheap) at the same accuracy.
Each split then gets scikit-learn's threshold on the raw features: midway between the node's
training values either side (recomputed from each tree's in-bag samples, about a fifth of the
fit's time on one thread), not the top of the lower bin, which put it at the lower class's
highest training value and gave unpainted values just above it to the upper class. With one
value per bin the forest *is* scikit-learn's fitted on raw features; prediction compares raw
features and needs no binning.

Thresholds are stored as float32, rounded *down*: for a float32 feature ``x``,
``x <= t`` holds exactly when ``x <= floor32(t)``, so the float32 forest makes the same decisions
as scikit-learn's float64 one (leaf fractions are stored as float32, so probabilities can differ
from scikit-learn's in the last bits). Per pixel, leaf fractions are summed in float32 in tree
order, whatever the block or thread a pixel is evaluated in: tiled prediction equals whole-image
prediction bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from os import PathLike

import numpy as np

from scopeml.errors import InvalidContainerError
from scopeml.threads import thread_count

#: Array names and dtypes of a stored forest.
ARRAY_DTYPES: dict[str, np.dtype] = {
    "offsets": np.dtype("<i8"),
    "depth": np.dtype("<i4"),
    "left": np.dtype("<i4"),
    "right": np.dtype("<i4"),
    "feature": np.dtype("<i4"),
    "threshold": np.dtype("<f4"),
    "value": np.dtype("<f4"),
}

MAX_TREES = 10_000
MAX_NODES = 20_000_000
#: Pixels per call of ``Tree.apply``: keeps the feature rows of a chunk in cache across trees.
CHUNK = 16_384
#: Most training bins per feature (quantiles of its labelled samples).
BINS = 256


class Forest:
    """A validated forest ready to predict class probabilities; see the module docstring.

    Use :meth:`from_sklearn` or :meth:`from_arrays`; :meth:`arrays` gives what to save.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], n_features: int, n_classes: int) -> None:
        from sklearn.tree._tree import NODE_DTYPE, Tree

        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self._arrays = {name: np.asarray(arrays[name], ARRAY_DTYPES[name]) for name in ARRAY_DTYPES}
        offsets = self._arrays["offsets"]
        self._value = np.ascontiguousarray(self._arrays["value"])
        value = self._value.astype(np.float64)
        self._trees = []
        for t in range(len(offsets) - 1):
            lo, hi = int(offsets[t]), int(offsets[t + 1])
            nodes = np.zeros(hi - lo, dtype=NODE_DTYPE)
            nodes["left_child"] = self._arrays["left"][lo:hi]
            nodes["right_child"] = self._arrays["right"][lo:hi]
            leaf = nodes["left_child"] == -1
            nodes["feature"] = np.where(leaf, -2, self._arrays["feature"][lo:hi])
            nodes["threshold"] = np.where(leaf, -2.0, self._arrays["threshold"][lo:hi])
            values = np.ascontiguousarray(value[lo:hi, None, :])
            tree = Tree(self.n_features, np.array([self.n_classes], dtype=np.intp), 1)
            state = {
                "max_depth": int(self._arrays["depth"][t]),
                "node_count": hi - lo,
                "nodes": nodes,
                "values": values,
            }
            tree.__setstate__(state)
            self._trees.append((lo, tree))

    @property
    def n_trees(self) -> int:
        return len(self._trees)

    @property
    def n_nodes(self) -> int:
        return int(self._arrays["offsets"][-1])

    def arrays(self) -> dict[str, np.ndarray]:
        """The node arrays, as saved in a container (see :data:`ARRAY_DTYPES`)."""
        return dict(self._arrays)

    @classmethod
    def from_sklearn(
        cls,
        forest,
        n_features: int,
        *,
        thresholds: list[np.ndarray] | None = None,
    ) -> Forest:
        """Take the trees of a fitted ``RandomForestClassifier`` (single output).

        ``thresholds``: each tree's split thresholds on raw features, for a forest fitted on
        their bins (:func:`raw_thresholds`, as :func:`fit_forest` places them); by default
        the trees' own.
        """
        parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAY_DTYPES}
        offsets = [0]
        trees = [estimator.tree_ for estimator in forest.estimators_]
        if thresholds is None:
            thresholds = [tree.threshold for tree in trees]
        for tree, threshold in zip(trees, thresholds, strict=True):
            threshold = _floor32(threshold)
            leaf = tree.children_left == -1
            parts["left"].append(tree.children_left)
            parts["right"].append(tree.children_right)
            parts["feature"].append(np.where(leaf, 0, tree.feature))
            parts["threshold"].append(np.where(leaf, 0.0, threshold))
            parts["value"].append(tree.value[:, 0, :])
            parts["depth"].append(np.array([tree.max_depth]))
            offsets.append(offsets[-1] + tree.node_count)
        arrays = {n: np.concatenate(p).astype(ARRAY_DTYPES[n]) for n, p in parts.items() if p}
        arrays["offsets"] = np.asarray(offsets, ARRAY_DTYPES["offsets"])
        return cls(arrays, n_features, len(forest.classes_))

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        *,
        n_features: int,
        n_classes: int,
        path: str | PathLike[str] | None = None,
    ) -> Forest:
        """Validate untrusted node arrays and build the forest; any defect raises
        :class:`InvalidContainerError` naming ``path``."""
        validate_arrays(arrays, n_features=n_features, n_classes=n_classes, path=path)
        return cls(arrays, n_features, n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Mean class fractions of the trees: ``(P, F)`` features → ``(P, K)`` float32.

        ``x`` may have any strides: the transposed view of a feature-major ``F×P`` array is read
        in place (chunk by chunk, so a chunk's rows stay in cache across the trees).
        """
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected (pixels, {self.n_features}) features; got {x.shape}")
        out = np.empty((x.shape[0], self.n_classes), np.float32)
        for lo in range(0, x.shape[0], CHUNK):
            chunk = np.asarray(x[lo : lo + CHUNK], dtype=np.float32)
            acc = out[lo : lo + CHUNK]
            acc[:] = 0.0
            gathered = np.empty_like(acc)
            for offset, tree in self._trees:
                leaves = tree.apply(chunk)
                leaves += offset
                acc += np.take(self._value, leaves, axis=0, out=gathered)
            acc /= np.float32(self.n_trees)
        return out

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        """Index of the most probable class per pixel: ``(P, F)`` features → ``(P,)`` intp.

        Equals ``argmax(predict_proba(x), axis=1)`` exactly, with less work: a tree adds at
        most 1 to a class's sum, so once a pixel's leader is ahead of the runner-up by more than
        the trees left (plus a bound on float32 rounding), its remaining trees are skipped —
        with fully grown trees most pixels are settled after half of them. Pixels still open
        are summed in the same order as :meth:`predict_proba`.
        """
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected (pixels, {self.n_features}) features; got {x.shape}")
        n_trees = self.n_trees
        slack = 1e-3 + n_trees * n_trees * 2.0**-22
        first = n_trees // 2  # the first tree after which a lead can exceed the trees left
        out = np.empty(x.shape[0], np.intp)
        for lo in range(0, x.shape[0], CHUNK):
            chunk = np.asarray(x[lo : lo + CHUNK], dtype=np.float32)
            acc = np.zeros((len(chunk), self.n_classes), np.float32)
            open_rows, rows = None, chunk  # None: all rows of the chunk are open
            for t, (offset, tree) in enumerate(self._trees):
                leaves = tree.apply(rows)
                leaves += offset
                if open_rows is None:
                    acc += np.take(self._value, leaves, axis=0)
                else:
                    acc[open_rows] += np.take(self._value, leaves, axis=0)
                left = n_trees - 1 - t
                if t < first or left == 0 or (t - first) % 2:  # look every other tree
                    continue
                sums = acc if open_rows is None else acc[open_rows]
                still_open = _lead(sums) <= left + slack
                if not still_open.all():
                    open_rows = (
                        np.flatnonzero(still_open) if open_rows is None else open_rows[still_open]
                    )
                    if len(open_rows) == 0:
                        break
                    rows = chunk[open_rows]
            acc /= np.float32(n_trees)
            out[lo : lo + len(chunk)] = _argmax(acc)
        return out


def check_forest_options(
    n_estimators: int,
    max_depth: int | None,
    min_samples_leaf: int = 1,
    workers: int | None = None,
) -> None:
    """Refuse forest settings scikit-learn or joblib would refuse with their own words, deep in a
    fit: trees, depth and leaf size below 1, and 0 (or below -1) threads.

    Examples
    --------
    >>> check_forest_options(0, None)
    Traceback (most recent call last):
    ...
    scopeml.errors.InvalidRequestError: n_estimators must be 1 or more; got 0
    """
    from scopeml.errors import InvalidRequestError

    for name, value in (("n_estimators", n_estimators), ("max_depth", max_depth),
                        ("min_samples_leaf", min_samples_leaf)):  # fmt: skip
        if value is not None and (isinstance(value, bool) or not isinstance(value, Integral)):
            raise InvalidRequestError(f"{name} must be a whole number; got {value!r}")
        if value is not None and value < 1:
            raise InvalidRequestError(f"{name} must be 1 or more; got {value}")
    if workers is not None and (not isinstance(workers, Integral) or workers == 0 or workers < -1):
        raise InvalidRequestError(f"workers must be 1 or more, or -1 (every core); got {workers!r}")


def fit_forest(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_estimators: int,
    max_depth: int | None,
    min_samples_leaf: int,
    n_jobs: int,
    seed: int,
    report: Callable[[int], None] | None = None,
) -> tuple[Forest, np.ndarray]:
    """Fit a random forest with balanced class weights on quantile bins of ``x`` (``(N, F)``
    float32, column-major fastest); return it and its feature importances.

    The trees are fitted a round of the threads at a time (scikit-learn's warm start: each
    tree's seed is drawn in turn, so they are the trees of one fit; 3–7% slower than one),
    each round's thresholds placed after it, and ``report(trees done)`` is called before each
    round and at the end, so that a :class:`~scopeml.errors.Cancelled` it raises stops a long
    fit within about one tree's time."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.utils.class_weight import compute_class_weight

    report = report or (lambda trees: None)
    x = np.asarray(x, np.float32)  # thresholds are placed between these values
    _, binned = bin_features(x, workers=n_jobs)
    classes = np.unique(y)  # "balanced" as a dict: the preset warns under a warm start
    weights = compute_class_weight("balanced", classes=classes, y=y)
    forest = RandomForestClassifier(
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        class_weight=dict(zip(classes.tolist(), weights.tolist(), strict=True)),
        n_jobs=n_jobs,
        random_state=seed,
        warm_start=True,
    )
    batch = thread_count(n_jobs)  # one round of the threads
    thresholds: list[np.ndarray] = []
    for done in range(0, n_estimators, batch):
        report(done)
        forest.set_params(n_estimators=min(done + batch, n_estimators)).fit(binned, y)
        thresholds += raw_thresholds(forest, (x, binned), workers=n_jobs, start=done)
    trees = Forest.from_sklearn(forest, x.shape[1], thresholds=thresholds)
    report(n_estimators)
    return trees, forest.feature_importances_


def raw_thresholds(
    forest, binned_from: tuple[np.ndarray, np.ndarray], *, workers: int = 1, start: int = 0
) -> list[np.ndarray]:
    """The raw-feature thresholds (:func:`_raw_thresholds`) of the trees ``start:`` of a forest
    fitted on ``binned_from = (raw, binned)``, in ``workers`` threads (-1: all cores)."""
    trees = [estimator.tree_ for estimator in forest.estimators_[start:]]
    samples = _in_bag_rows(forest, start)
    threads = max(1, min(thread_count(workers), len(trees)))
    thresholds: list[np.ndarray] = []
    with ThreadPoolExecutor(threads) as pool:
        for lo in range(0, len(trees), threads):
            jobs = zip(trees[lo : lo + threads], samples, strict=False)
            thresholds.extend(pool.map(lambda job: _raw_thresholds(*job, *binned_from), jobs))
    return thresholds


def _in_bag_rows(forest, start: int) -> Iterator[np.ndarray]:
    """Each tree's in-bag rows from tree ``start`` on, drawn again from its seed by scikit-learn
    (N int32 a tree, so drawn as they are used); the trees before ``start`` are not drawn at
    all (40 ms each at 262k rows: drawing them every round made a 60-tree fit 4× slower)."""
    view = copy.copy(forest)  # scikit-learn's own drawing, of these trees alone
    view.estimators_ = forest.estimators_[start:]
    drawn = getattr(view, "_get_estimators_indices", None)
    return drawn() if drawn is not None else iter(view.estimators_samples_)


def _floor32(threshold: np.ndarray) -> np.ndarray:
    """float64 thresholds rounded down to float32: for float32 ``x``, ``x <= t`` exactly when
    ``x <= floor32(t)``."""
    rounded = np.asarray(threshold).astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def _raw_thresholds(tree, samples: np.ndarray, x: np.ndarray, binned: np.ndarray) -> np.ndarray:
    """Thresholds on raw features for a tree fitted on their bins: at each split, scikit-learn's
    own rule, ``a / 2 + b / 2`` (float64) of the largest raw value ``a`` of the node's training
    samples going left and the smallest ``b`` going right (0 at leaves).

    ``samples`` are the tree's in-bag rows of ``x`` (``estimators_samples_``), so a node's
    samples are exactly those scikit-learn split. Every left value is in a lower bin than every
    right one, so ``a < b``: the node's samples go where they went in training, and a value
    between them goes to the nearer side, as in a forest fitted on raw values (the same forest
    when every bin holds one value). Nodes are numbered depth first (left child next), so the
    leaves under a node are a range of node ids, and its samples, sorted by leaf, a slice.
    """
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    inner = np.flatnonzero(left != -1)
    if np.any(left[inner] != inner + 1):
        raise RuntimeError("tree nodes are not numbered depth first; cannot place thresholds")
    last = np.arange(tree.node_count)  # rightmost leaf under each node, by pointer jumping
    last[inner] = right[inner]
    while not np.array_equal(last[last], last):
        last = last[last]
    samples = np.flatnonzero(np.bincount(samples, minlength=len(x)))  # each row once
    leaves = np.concatenate(
        [
            tree.apply(binned[samples[lo : lo + 4 * CHUNK]])
            for lo in range(0, len(samples), 4 * CHUNK)
        ]
    )
    order = np.argsort(leaves, kind="stable")
    rows, leaves = samples[order], leaves[order]
    begin = np.searchsorted(leaves, inner)
    middle = np.searchsorted(leaves, right[inner])
    end = np.searchsorted(leaves, last[inner] + 1)
    threshold = np.zeros(tree.node_count)
    for f in np.unique(feature[inner]):
        at = feature[inner] == f
        values = np.append(x[rows, f], np.float32(0))  # a sentinel: `end` may be len(rows)
        a = np.maximum.reduceat(values, np.stack([begin[at], middle[at]], 1).ravel())[::2]
        b = np.minimum.reduceat(values, np.stack([middle[at], end[at]], 1).ravel())[::2]
        threshold[inner[at]] = a.astype(np.float64) / 2.0 + b.astype(np.float64) / 2.0
    return threshold


def bin_features(x: np.ndarray, *, workers: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    """Per feature, up to :data:`BINS` - 1 ascending float32 edges (quantiles of its values)
    and each sample's bin: the number of edges below its value, as float32 in a column-major
    ``(N, F)`` array. ``bin <= b`` exactly when ``value <= edges[b]``. Features are binned in
    ``workers`` threads (-1: all cores; numpy's sort and search release the GIL).

    Examples
    --------
    >>> edges, binned = bin_features(np.array([[0.5], [2.0], [2.0], [7.0]], np.float32))
    >>> edges[0], binned[:, 0]
    (array([0.5, 2. , 7. ], dtype=float32), array([0., 1., 1., 2.], dtype=float32))
    """
    x = np.asarray(x, np.float32)
    n = len(x)
    ranks = np.ceil(np.linspace(0.0, n, BINS + 1)[1:-1]).astype(np.intp) - 1  # inverted CDF
    binned = np.empty(x.shape, np.float32, order="F")

    def bin_one(j: int) -> np.ndarray:
        column = np.ascontiguousarray(x[:, j])
        edges = np.unique(np.sort(column)[np.clip(ranks, 0, n - 1)])
        binned[:, j] = np.searchsorted(edges, column, side="left")
        return edges

    threads = thread_count(workers)
    if threads == 1 or x.shape[1] == 1:
        return [bin_one(j) for j in range(x.shape[1])], binned
    with ThreadPoolExecutor(min(threads, x.shape[1])) as pool:
        return list(pool.map(bin_one, range(x.shape[1]))), binned


def _argmax(sums: np.ndarray) -> np.ndarray:
    """``argmax(sums, axis=1)`` (ties to the lower index); for two classes a comparison, as
    ``argmax`` along a short axis costs a call per row."""
    if sums.shape[1] == 2:
        return (sums[:, 1] > sums[:, 0]).astype(np.intp)
    return np.argmax(sums, axis=1)


def _lead(sums: np.ndarray) -> np.ndarray:
    """Per row, the largest entry minus the second largest (0 for a tie); vectorised, as
    ``np.partition`` along a short axis costs a call per row."""
    if sums.shape[1] == 2:
        return np.abs(sums[:, 0] - sums[:, 1])
    top = sums.max(axis=1)
    is_top = sums == top[:, None]
    runner_up = np.where(is_top, -np.inf, sums).max(axis=1)
    return np.where(is_top.sum(axis=1) > 1, 0.0, top - runner_up)


def validate_arrays(
    arrays: Mapping[str, np.ndarray],
    *,
    n_features: int,
    n_classes: int,
    path: str | PathLike[str] | None = None,
) -> None:
    """Check that node arrays describe finite binary trees the compiled traversal can walk.

    Every internal node's children lie after it in the same tree and every non-root node has
    exactly one parent, so a walk from the root ends at a leaf after at most ``n`` steps and
    never leaves the arrays; split features index existing features; numbers are finite.
    """

    def bad(problem: str) -> InvalidContainerError:
        return InvalidContainerError(f"forest: {problem}", path=path)

    missing = sorted(set(ARRAY_DTYPES) - set(arrays))
    if missing:
        raise bad(f"missing arrays {missing}")
    for name, dtype in ARRAY_DTYPES.items():
        if arrays[name].dtype != dtype:
            raise bad(f"{name} has dtype {arrays[name].dtype}; expected {dtype}")
    if n_features < 1 or n_classes < 2:
        raise bad(f"{n_features} features and {n_classes} classes; need ≥ 1 and ≥ 2")
    offsets = arrays["offsets"]
    if offsets.ndim != 1 or not 2 <= offsets.size <= MAX_TREES + 1:
        raise bad(f"offsets has shape {offsets.shape}; expected 2 to {MAX_TREES + 1} entries")
    if offsets[0] != 0 or np.any(np.diff(offsets) < 1) or offsets[-1] > MAX_NODES:
        raise bad("offsets must start at 0, increase, and stay within the node limit")
    n_nodes, n_trees = int(offsets[-1]), offsets.size - 1
    shapes = {
        "depth": (n_trees,),
        "left": (n_nodes,),
        "right": (n_nodes,),
        "feature": (n_nodes,),
        "threshold": (n_nodes,),
        "value": (n_nodes, n_classes),
    }
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise bad(f"{name} has shape {arrays[name].shape}; expected {shape}")
    sizes = np.diff(offsets)
    if np.any(arrays["depth"] < 0) or np.any(arrays["depth"] >= sizes):
        raise bad("a tree depth is negative or not below its node count")
    tree_of = np.repeat(np.arange(n_trees), sizes)
    local = np.arange(n_nodes) - offsets[tree_of]
    size = sizes[tree_of]
    left, right = arrays["left"].astype(np.int64), arrays["right"].astype(np.int64)
    leaf = left == -1
    if np.any(right[leaf] != -1):
        raise bad("a leaf has a right child but no left child")
    inner = ~leaf
    for name, child in (("left", left), ("right", right)):
        ok = (child[inner] > local[inner]) & (child[inner] < size[inner])
        if not np.all(ok):
            node = int(np.flatnonzero(inner)[np.argmin(ok)])
            raise bad(f"node {node}: {name} child {int(child[node])} out of range")
    base = offsets[tree_of[inner]]
    children = np.concatenate([left[inner] + base, right[inner] + base])
    parents = np.bincount(children, minlength=n_nodes)
    roots = offsets[:-1]
    if np.any(parents[roots] != 0) or np.any(np.delete(parents, roots) != 1):
        raise bad("nodes do not form trees: a node has no parent or more than one")
    feature = arrays["feature"]
    if np.any((feature[inner] < 0) | (feature[inner] >= n_features)):
        raise bad(f"a split feature index is outside [0, {n_features})")
    if not np.all(np.isfinite(arrays["threshold"])):
        raise bad("thresholds must be finite")
    value = arrays["value"]
    if not np.all(np.isfinite(value)) or np.any(value < 0) or np.any(value > 1):
        raise bad("leaf class fractions must lie in [0, 1]")
