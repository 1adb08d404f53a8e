"""A table streamed to a file is sorted by ``label`` (user trial, item 7: a Z stack's rows came
in tile order, labels 5, 8, …) where a plane's rows fit in memory to be sorted; beyond, every
row is there, in tile order, each tile read once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scopeml.io.image import Image
from scopeml.objects import measure_objects, measure_objects_tiled, measure_tiled
from scopeml.objects.images import measure_image


def _stack() -> np.ndarray:
    """Blocks numbered against the tile order (high ids first in the first tile), one object
    larger than a tile and its margin (measured on its own crop, after the tiles)."""
    labels = np.zeros((6, 40, 40), np.uint16)
    ids = iter(np.random.default_rng(1).permutation(np.arange(2, 40)))
    for y in range(0, 40, 8):
        for x in range(0, 40, 8):
            if (y, x) != (16, 16):
                labels[1:4, y + 1 : y + 5, x + 1 : x + 5] = next(ids)
    labels[:, 14:30, 14:30] = 1
    return labels


@pytest.mark.parametrize("held", [None, 5])
def test_rows_streamed_to_a_file_are_sorted_by_label(tmp_path, monkeypatch, held):
    if held is not None:  # more objects than are held to be sorted
        monkeypatch.setattr(measure_tiled, "SORTED_ROWS", held)
    labels = _stack()
    reads = []
    sliced = type("Counted", (), {"shape": labels.shape, "dtype": labels.dtype, "ndim": 3,
                                  "__getitem__": lambda _, key: reads.append(key) or labels[key],
                                  "__array__": lambda _, *a, **k: labels})  # fmt: skip
    out = measure_objects_tiled(sliced(), tile_size=16, margin=2, output=tmp_path / "t.csv",
                                workers=2)  # fmt: skip
    written = pd.read_csv(out)
    whole = measure_objects(labels)
    if held is None:
        assert written["label"].tolist() == sorted(whole["label"])
    written = written.sort_values("label", ignore_index=True)
    pd.testing.assert_frame_equal(written, whole, check_dtype=False, rtol=1e-9)
    assert len(reads) <= 2 * 9 + 1, len(reads)  # two passes over 3 × 3 tiles, the large one


def test_a_time_series_table_is_sorted_by_t_then_label(tmp_path):
    labels = np.stack([_stack(), _stack()[:, ::-1]])[None, :, None]  # S T C Z Y X
    out = measure_image(Image(labels), tile_size=16, output=tmp_path / "t.parquet")
    table = pd.read_parquet(out)
    assert table[["t", "label"]].equals(table[["t", "label"]].sort_values(["t", "label"]))
    assert len(table) == 2 * (len(np.unique(labels)) - 1)
