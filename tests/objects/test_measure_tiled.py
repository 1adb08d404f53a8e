"""Out-of-core measurement equals in-memory measurement, objects crossing tiles included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr

from scopeml.errors import Cancelled, InvalidImageError
from scopeml.io import Image
from scopeml.objects import measure_objects, measure_objects_tiled
from scopeml.synthetic import synthetic_nuclei


def _assert_tables_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a["label"].tolist() == b["label"].tolist()
    for name in a.columns:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-9, atol=1e-7, err_msg=name)


def test_tiled_equals_in_memory_2d(tmp_path):
    image, labels = synthetic_nuclei((190, 170), density=0.003, channels=2, seed=4)
    labels[150:185, 5:160] = labels.max() + 1  # larger than tile + margin: measured on a crop
    labels[60, 3] = labels[60, 150] = labels.max() + 1  # one id in two far-apart pieces
    store = zarr.open_array(
        str(tmp_path / "l.zarr"), mode="w", shape=labels.shape, chunks=(48, 48), dtype=np.uint32
    )
    store[...] = labels
    sizes = {"Y": 0.25, "X": 0.25}
    expected = measure_objects(labels, image, pixel_sizes=sizes, channel_names=["dna", "ring"])
    lazy = Image(image[None, None, :, None], pixel_sizes=sizes, channel_names=["dna", "ring"])
    got = measure_objects_tiled(store, lazy, margin=12)
    _assert_tables_equal(expected, got)
    # objects really crossed tile borders
    crossing = ((got["bbox-0"] // 48) != ((got["bbox-2"] - 1) // 48)).sum()
    assert crossing > 5


def test_tiled_equals_in_memory_3d():
    image, labels = synthetic_nuclei((12, 50, 50), density=0.002, radius=(3, 6), seed=9)
    expected = measure_objects(labels, image, shape_features=False)
    got = measure_objects_tiled(
        labels, image, tile_size=(5, 20, 20), margin=4, shape_features=False
    )
    _assert_tables_equal(expected, got)


def test_empty_labels_give_empty_table():
    table = measure_objects_tiled(np.zeros((30, 30), np.uint16), tile_size=(10, 10))
    assert len(table) == 0 and "area" in table


def test_image_size_must_match():
    with pytest.raises(InvalidImageError, match="labels have shape"):
        measure_objects_tiled(np.ones((8, 8), np.int32), np.zeros((2, 8, 9)))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_streamed_output_holds_the_same_rows(tmp_path, suffix):
    image, labels = synthetic_nuclei((120, 110), density=0.003, seed=8)
    expected = measure_objects(labels, image, shape_features=False)
    path = measure_objects_tiled(
        labels,
        image,
        tile_size=(40, 40),
        margin=10,
        shape_features=False,
        output=tmp_path / f"t{suffix}",
    )
    assert path == tmp_path / f"t{suffix}"
    written = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    _assert_tables_equal(expected, written.sort_values("label", ignore_index=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"t{suffix}"]


def test_workers_write_the_same_rows_in_the_same_order_and_stop_when_cancelled(tmp_path):
    image, labels = synthetic_nuclei((160, 150), density=0.003, channels=2, seed=5)
    events = []

    def measure(workers, progress=None):
        return measure_objects_tiled(
            labels, image, tile_size=(40, 40), margin=10, output=tmp_path / f"w{workers}.csv",
            workers=workers, progress=progress,
        )  # fmt: skip

    tables = [measure(1), measure(3, events.append)]
    # tiles measured side by side: the same bytes, rows in tile order, each tile counted once
    assert tables[0].read_bytes() == tables[1].read_bytes()
    assert len(pd.read_csv(tables[1])) == len(np.unique(labels)) - 1
    measured = [event.done for event in events if event.stage == "measure"]
    assert measured == list(range(17))  # 4 × 4 tiles, and the start

    def stop_after_two(event):
        if event.stage == "measure" and event.done == 2:
            raise Cancelled("stopped by the user")

    with pytest.raises(Cancelled):
        measure_objects_tiled(labels, image, tile_size=(40, 40), output=tmp_path / "stop.csv",
                              workers=3, progress=stop_after_two)  # fmt: skip
    assert not (tmp_path / "stop.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w1.csv", "w3.csv"]
