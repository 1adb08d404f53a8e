"""Object F1 of ``objects label --split`` on the real annotated sets of ``eval_nuclei.py``.

Each image's mask is the classical one (smoothed, Otsu threshold, holes filled, specks out),
labelled by ``sm.label_objects`` as it is, split (``split=True``: seeds 5 px apart) and split
with ``split_h=2``; the bench's Otsu + watershed baseline is scored beside them. Object F1 at
IoU 0.5, pooled over each set's images (border objects left out where the set's labels leave
them out), as ``eval_nuclei.py`` scores. Usage: ``python bench/eval_split.py``.
"""

from __future__ import annotations

import tempfile
import warnings

import numpy as np

import eval_nuclei as ev  # beside this script: on the path when it runs
import scopeml as sm

WAYS = {"label": {}, "--split": {"split": True}, "--split-h 2": {"split": True, "split_h": 2.0}}


def otsu_mask(image: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi
    from skimage.filters import gaussian, threshold_otsu
    from skimage.morphology import remove_small_objects

    smooth = gaussian(image.astype(np.float32), sigma=1.0)
    mask = ndi.binary_fill_holes(smooth > threshold_otsu(smooth))
    return remove_small_objects(mask, max_size=15).astype(np.uint8)


def main() -> None:
    warnings.simplefilter("ignore")
    found, cleared, skipped = ev.real_images()
    for line in skipped:
        print(f"skipped: {line}")
    with tempfile.TemporaryDirectory() as work:
        for n, (name, pairs) in enumerate(found.items()):
            counts: dict[str, list] = {way: [] for way in (*WAYS, "Otsu + watershed")}
            for k, (image, truth) in enumerate(p for p in pairs if p[0].ndim == 2):
                mask = otsu_mask(image)
                found_by = {
                    way: sm.label_objects(mask, f"{work}/{n}-{k}-{i}.ome.zarr",
                                          **options).read()[0, 0, 0, 0]
                    for i, (way, options) in enumerate(WAYS.items())
                }  # fmt: skip
                found_by["Otsu + watershed"] = ev.otsu_watershed(image)
                for way, labels in found_by.items():
                    pair = ev.border_cleared(labels, truth) if name in cleared else (labels, truth)
                    counts[way].append(ev.scores(*pair))
            if counts["label"]:
                f1 = {way: ev.summarise(c)["f1"] for way, c in counts.items()}
                print(f"{name}: " + ", ".join(f"{way} {v:.3f}" for way, v in f1.items()))


if __name__ == "__main__":
    main()
