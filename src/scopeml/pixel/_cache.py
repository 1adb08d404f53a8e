"""Filter features kept between training and predicting on the same image.

Training computes the features of every block that holds labels (with dense point labels that
is every block); predicting the same image afterwards computes them again. A
:class:`FeatureCache` passed to both keeps the first pass's block features, up to a memory
budget, and hands them to the second when the pixels a block reads are *equal* to those the
features were computed from: the cache stores a copy of those pixels and compares them
exactly, so an image changed in place, or another image of the same shape, is never given
stale features. The comparison costs a read and a memory compare per block, a small fraction
of computing the features.

What it costs is memory: the features of a 4096² image (basic25) take 1.65 GiB, and first
touching that much fresh memory is not free. Measured on a shared 2-core VM (4096² nuclei, 2
threads), prediction was ~1 s faster, but training paid 1–4 s of page-fault system time when the
memory was new to the process and ~0.5 s when it had been used before: a net gain of ~0.6 s
(9%) in the second case and a loss in the first. It pays most where a cache lives long, as in
interactive retraining on one image (every training after the first reuses the features too).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

import numpy as np

#: Default budget: the basic25 features of a 4096² one-channel image (1.6 GiB) fit.
MAX_BYTES = 2 * 2**30


class FeatureCache:
    """Block features of one feature set, reused when a block's pixels are unchanged.

    Parameters
    ----------
    max_bytes
        Most bytes held (features of the block cores, plus a copy of the pixels they came
        from with the halo: about 4 bytes × (features + 1.3 × channels) per pixel). Blocks beyond
        it are not kept (the first ones stay; nothing is evicted), so memory stays bounded
        and the blocks not kept are simply computed again.

    Attributes
    ----------
    nbytes
        Bytes held now.
    hits, misses
        Lookups answered from the cache, and not.

    Examples
    --------
    >>> from scopeml.synthetic import synthetic_nuclei
    >>> from scopeml.pixel import train_classifier
    >>> image, truth = synthetic_nuclei((64, 64), density=0.004, seed=0)
    >>> cache = FeatureCache()
    >>> clf = train_classifier(image, (truth > 0) + 1, features="gaussian_smoothing:1",
    ...                        n_estimators=5, cache=cache)
    >>> labels = clf.predict_labels(image, cache=cache)   # features of training reused
    >>> cache.hits > 0
    True
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, pixels: np.ndarray) -> np.ndarray | None:
        """Features stored under ``key`` if they were computed from exactly ``pixels``."""
        with self._lock:
            entry = self._entries.get(key)
        found = (
            entry is not None
            and entry[0].dtype == pixels.dtype
            and np.array_equal(entry[0], pixels)
        )
        with self._lock:
            if found:
                self.hits += 1
            else:
                self.misses += 1
        return entry[1] if found else None

    def has_room(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more fit in the budget now."""
        return self.nbytes + nbytes <= self.max_bytes

    def put(self, key: Hashable, pixels: np.ndarray, features: np.ndarray) -> None:
        """Keep ``features`` computed from ``pixels`` (copied) if the budget allows."""
        size = pixels.nbytes + features.nbytes
        pixels = pixels.copy()  # the caller's array may change later
        with self._lock:
            if key in self._entries or self.nbytes + size > self.max_bytes:
                return
            self.nbytes += size
            self._entries[key] = (pixels, features)

    def clear(self) -> None:
        """Drop everything held."""
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


def block_key(
    features: Hashable, read: tuple[slice, ...], core: tuple[slice, ...]
) -> Hashable | None:
    """The key of a block's features: the feature set, the region read and the core kept
    (``None`` if the feature set cannot be hashed, then nothing is cached)."""
    try:
        hash(features)
    except TypeError:
        return None
    return (features, *((s.start, s.stop) for s in (*read, *core)))
