"""``objects filter`` / ``sm.filter_objects``: labels that are objects already (StarDist,
cellpose, segment's instances) filtered by size and edge, each kept apart however it touches
the others (``objects label`` joined them: 148 BBBC007 nuclei became 126), ids renumbered by
first pixels, equal to a numpy filter however tiled."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage.segmentation import clear_border

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidLabelsError, InvalidRequestError
from scopeml.objects import images
from scopeml.synthetic import synthetic_nuclei
from tests.objects.test_split import each_object_split, in_raster_order


def touching_instances(seed: int = 4) -> np.ndarray:
    """Instance labels whose objects touch one another (a watershed of clumps)."""
    _, truth = synthetic_nuclei((180, 200), density=0.004, radius=(5, 12), cluster_fraction=0.6,
                                seed=seed)  # fmt: skip
    return each_object_split(truth > 0).astype(np.uint16)


def test_filtered_as_numpy_filters_them_however_tiled(tmp_path):
    objects = touching_instances()
    sizes = np.bincount(objects.ravel())
    kept = clear_border(objects)
    kept[np.isin(kept, np.flatnonzero((sizes < 40) | (sizes > 400)))] = 0
    expected = in_raster_order(kept)
    joined = sm.label_objects(objects > 0, tmp_path / "l.ome.zarr").read().max()
    assert joined < objects.max() and 0 < expected.max() < objects.max()  # they do touch
    for tiles in ((23, 31), 512):
        got = sm.filter_objects(objects, tmp_path / f"{tiles}.ome.zarr", min_size=40,
                                max_size=400, remove_border=True, tile_size=tiles)  # fmt: skip
        np.testing.assert_array_equal(got.read()[0, 0, 0, 0], expected)


def test_the_command_line_a_store_and_class_labels(tmp_path, capsys):
    objects = touching_instances()
    tifffile.imwrite(tmp_path / "cells.tif", objects)
    out = tmp_path / "f.ome.zarr"
    assert main(["objects", "filter", str(tmp_path / "cells.tif"), "-o", str(out),
                 "--min-size", "40", "-q"]) == 0  # fmt: skip
    sizes = np.bincount(objects.ravel())
    assert f"{int((sizes[1:] >= 40).sum())} objects" in capsys.readouterr().out
    from scopeml.synthetic import realistic_nuclei

    image = realistic_nuclei((96, 96), seed=1)[0][0]
    seg = sm.segment(image, "nuclei", tmp_path / "s.ome.zarr", scale=1)  # labels only
    with pytest.raises(InvalidRequestError, match="class labels, not objects"):
        sm.filter_objects(seg, tmp_path / "g.ome.zarr")
    with_instances = sm.segment(image, "nuclei", tmp_path / "i.ome.zarr", scale=1,
                                outputs=["labels", "instances"])  # fmt: skip
    kept = sm.filter_objects(with_instances, tmp_path / "k.ome.zarr").read()[0, 0, 0, 0]
    assert kept.max() == with_instances.instances.read().max()  # a store's instances, as they are


def test_ids_past_the_bound_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_FILTER_ID", 100)
    objects = np.zeros((8, 8), np.uint32)
    objects[2:4, 2:4] = 5000
    with pytest.raises(InvalidLabelsError, match="object ids up to 5000; filtering takes ids"):
        sm.filter_objects(objects, tmp_path / "o.ome.zarr")
    assert not (tmp_path / "o.ome.zarr").exists()
