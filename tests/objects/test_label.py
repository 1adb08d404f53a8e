"""Instance labelling: tiled and stitched equals whole-image labelling, its numbering too (ids
in the raster order of the objects' first pixels, however the image is tiled)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from scopeml.errors import InvalidRequestError
from scopeml.objects import iter_tiles, label_instances, label_instances_tiled
from scopeml.synthetic import synthetic_nuclei


def assert_same_objects(a: np.ndarray, b: np.ndarray) -> None:
    """Same foreground, and the id pairs (a, b) form a bijection between the two labellings."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel().astype(np.int64)
    np.testing.assert_array_equal(a > 0, b > 0)
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1], "an object was split (over-splitting)"
    assert len(np.unique(pairs[1])) == pairs.shape[1], "objects were merged (over-merging)"


@pytest.mark.parametrize("connectivity", [1, 2])
def test_stitched_equals_whole_2d(tmp_path, connectivity):
    # dense, touching nuclei (30 % in clusters) with tiles much smaller than the objects' spread
    _, truth = synthetic_nuclei((210, 190), density=0.004, cluster_fraction=0.5, seed=7)
    semantic = (truth > 0).astype(np.uint8)
    whole = label_instances(semantic, connectivity=connectivity)
    tiled = label_instances_tiled(
        semantic, tmp_path / "out.zarr", tile_size=(37, 41), connectivity=connectivity
    )
    assert_same_objects(whole, tiled[...])
    np.testing.assert_array_equal(tiled[...], whole)  # the same ids, not only the same objects
    assert tiled.dtype == np.uint32
    assert tiled.attrs["n_objects"] == whole.max()
    assert int(tiled[...].max()) == whole.max()  # numbered 1..N without gaps
    # objects actually cross tile borders, so stitching was exercised
    crossing = [r for r in iter_tiles(whole.shape, (37, 41))]
    ids_per_tile = [set(np.unique(whole[r])) - {0} for r in crossing]
    assert sum(len(s) for s in ids_per_tile) > whole.max() + 10


def test_stitched_equals_whole_3d_from_zarr(tmp_path):
    _, truth = synthetic_nuclei((24, 60, 60), density=0.0015, radius=(4, 7), seed=3)
    source = zarr.open_array(
        str(tmp_path / "in.zarr"), mode="w", shape=truth.shape, chunks=(10, 25, 25), dtype=np.uint8
    )
    source[...] = (truth > 0) * 2  # class 2
    whole = label_instances(source[...], class_id=2, connectivity=3)
    tiled = label_instances_tiled(source, tmp_path / "out.zarr", class_id=2, connectivity=3)
    assert tiled.chunks == (10, 25, 25)
    assert_same_objects(whole, tiled[...])
    np.testing.assert_array_equal(tiled[...], whole)
    small = label_instances(source[...], class_id=2, connectivity=3, min_size=40)
    other = label_instances_tiled(source, tmp_path / "o.zarr", class_id=2, connectivity=3,
                                  tile_size=(7, 16, 9), min_size=40)  # fmt: skip
    np.testing.assert_array_equal(other[...], small)  # dropping small ones keeps the order


def test_class_selection_keeps_touching_classes_apart(tmp_path):
    semantic = np.zeros((8, 8), np.uint8)
    semantic[1:7, 1:4] = 1
    semantic[1:7, 4:7] = 2  # touches class 1 along a whole edge
    out = label_instances_tiled(semantic, tmp_path / "c1.zarr", class_id=1, tile_size=(3, 3))
    np.testing.assert_array_equal(out[...] > 0, semantic == 1)
    assert int(out[...].max()) == 1


def test_image_smaller_than_tile_and_empty(tmp_path):
    empty = np.zeros((5, 7), bool)
    out = label_instances_tiled(empty, tmp_path / "e.zarr", tile_size=(64, 64))
    assert out.shape == (5, 7) and int(out[...].max()) == 0


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    mask = np.eye(6, dtype=bool)
    label_instances_tiled(mask, tmp_path / "o.zarr", tile_size=(2, 2))
    with pytest.raises(InvalidRequestError, match="exists"):
        label_instances_tiled(mask, tmp_path / "o.zarr", tile_size=(2, 2))
    out = label_instances_tiled(
        mask, tmp_path / "o.zarr", tile_size=(2, 2), connectivity=2, overwrite=True
    )
    assert int(out[...].max()) == 1  # diagonal pixels joined under full connectivity
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.zarr"]  # no temporary left


def test_bad_connectivity():
    with pytest.raises(InvalidRequestError, match="connectivity"):
        label_instances(np.ones((3, 3)), connectivity=3)


def test_each_time_point_records_the_id_its_objects_follow(tmp_path):
    """Ids run on from one time point to the next; the store says where each one starts."""
    from scopeml.io.image import Image
    from scopeml.objects.images import label_image

    stack = np.zeros((1, 3, 1, 1, 12, 12), np.uint8)
    stack[0, 0, 0, 0, 1:3, 1:3] = stack[0, 0, 0, 0, 6:8, 6:8] = 1  # two objects
    stack[0, 2, 0, 0, 4:6, 4:6] = 1  # none at t = 1, one at t = 2
    out = label_image(Image(stack), tmp_path / "o.ome.zarr", class_id=1, tile_size=8)
    attrs = zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r")["0"].attrs
    assert attrs["time_offsets"] == [0, 2, 2] and attrs["n_objects"] == 3
    assert out.read()[0, 2, 0, 0].max() == 3  # t = 2's object follows id 2


def test_labelling_labels_that_are_objects_already_warns_naming_two_joined_values(tmp_path):
    """A StarDist or cellpose label image: touching nuclei of different ids would become one
    object without a word (BBBC007's 78 labelled nuclei became 67)."""
    import warnings

    import scopeml as sm

    instances = np.zeros((40, 60), np.uint16)
    instances[5:20, 5:20], instances[5:20, 20:35] = 7, 9  # touching, different ids
    instances[25:35, 40:50] = 3
    said = r"different values \(7 and 9\) were joined into one object; labels that are objects"
    with pytest.warns(UserWarning, match=said):
        merged = sm.label_objects(instances, tmp_path / "a.ome.zarr", tile_size=16)
    assert merged.read().max() == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a mask, or one class of class labels: nothing to say
        sm.label_objects(instances > 0, tmp_path / "b.ome.zarr", tile_size=16)
        sm.label_objects(np.where(instances > 0, 2, 1), tmp_path / "c.ome.zarr", class_=2)
