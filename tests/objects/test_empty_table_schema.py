"""An image without objects gets a table with the same columns and dtypes as one with objects.

Per-image tables of a batch must concatenate to one schema, so the empty table keeps its
``intensity_*_<channel>`` and ``*_um`` columns (newuser report, finding 4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.cli import main
from scopeml.io.image import Image
from scopeml.objects import measure_image, measure_objects_tiled
from scopeml.synthetic import synthetic_nuclei


def _image(channels: np.ndarray) -> Image:
    """A 6-D Image of ``C×Y×X`` intensities named DAPI, GFP with a pixel size of 0.5 µm."""
    from scopeml.objects.images import array_image

    view = array_image(channels, "CYX")
    return Image(view.data, channel_names=["DAPI", "GFP"], pixel_sizes={"Y": 0.5, "X": 0.5})


def _assert_same_schema(empty: pd.DataFrame, full: pd.DataFrame) -> None:
    assert len(empty) == 0 and len(full) > 0
    assert list(empty.columns) == list(full.columns)
    assert dict(empty.dtypes) == dict(full.dtypes)


@pytest.mark.parametrize("ndim", [2, 3])
def test_tiled_empty_table_keeps_intensity_columns(ndim):
    shape = (12,) * ndim
    channels = np.random.default_rng(0).integers(0, 4000, (2, *shape)).astype(np.uint16)
    labels = np.zeros(shape, np.uint32)
    full_labels = labels.copy()
    full_labels[(slice(2, 7),) * ndim] = 3
    sizes = (0.5,) * ndim
    empty = measure_objects_tiled(labels, channels, pixel_sizes=sizes, tile_size=5, margin=2)
    full = measure_objects_tiled(full_labels, channels, pixel_sizes=sizes, tile_size=5, margin=2)
    _assert_same_schema(empty, full)
    physical = "volume_um3" if ndim == 3 else "area_um2"
    assert {"intensity_mean_C1", "intensity_max_C0", physical} <= set(empty.columns)


def test_measure_image_empty_table_has_channel_names_and_dtypes():
    image, labels = synthetic_nuclei((64, 64), density=0.004, channels=2, seed=3)
    assert labels.max() > 0
    intensities = _image(image)
    from scopeml.objects.images import array_image

    full = measure_image(array_image(labels), intensities)
    empty = measure_image(array_image(np.zeros_like(labels)), intensities)
    _assert_same_schema(empty, full)
    assert "intensity_sum_DAPI" in empty.columns and "area_um2" in empty.columns
    # the tables of a batch concatenate without new columns or object dtypes
    both = pd.concat([empty, full], ignore_index=True)
    assert dict(both.dtypes) == dict(full.dtypes)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_measure_empty_image_writes_the_same_columns(tmp_path, suffix):
    image, labels = synthetic_nuclei((96, 96), density=0.004, channels=2, seed=7)
    tifffile.imwrite(
        tmp_path / "image.ome.tif",
        image,
        metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}, "PhysicalSizeX": 0.5,
                  "PhysicalSizeY": 0.5},
    )  # fmt: skip
    np.save(tmp_path / "objects.npy", labels)
    np.save(tmp_path / "none.npy", np.zeros_like(labels))
    tables = {}
    for name in ("objects", "none"):
        out = tmp_path / f"{name}{suffix}"
        args = ["objects", "measure", str(tmp_path / f"{name}.npy"), "-o", str(out), "-q"]
        assert main([*args, "--image", str(tmp_path / "image.ome.tif"), "--tile-size", "48"]) == 0
        tables[name] = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    empty, full = tables["none"], tables["objects"]
    assert len(empty) == 0 and len(full) == labels.max()
    assert list(empty.columns) == list(full.columns)
    assert {"intensity_mean_DAPI", "intensity_std_GFP", "area_um2"} <= set(empty.columns)
    if suffix == ".parquet":  # a CSV header has no dtypes; parquet keeps them
        assert dict(empty.dtypes) == dict(full.dtypes)
