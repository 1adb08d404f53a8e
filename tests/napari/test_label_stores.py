"""Label images open as Labels layers named by their class, told by their NGFF
``image-label`` metadata (not by the store's name): ``analyze``'s per-class stores (one scene
and several) and ``objects label``'s store; an integer image without the marker stays an image."""

from __future__ import annotations

import numpy as np
import tifffile
import zarr

import scopeml as sm
from scopeml.demo import write_sample_image
from scopeml.napari._reader import read_image

SETTINGS = """\
version: 1
channels: [DAPI]
tile_size: 128
classes:
  - name: nucleus
    segmenter: {kind: threshold, channel: DAPI, method: otsu, sigma: 1.0}
"""


def _ome(path):
    attrs = zarr.open_group(str(path), mode="r").attrs.asdict()
    return attrs.get("ome", attrs)


def test_analysis_class_store_opens_as_labels_named_by_the_class(tmp_path):
    image, _ = write_sample_image(tmp_path / "cells.ome.zarr", size=256, block=256, seed=3)
    settings = tmp_path / "nuclei.yaml"
    settings.write_text(SETTINGS)
    result = sm.analyze(settings, [image], tmp_path / "res")
    store = tmp_path / "res" / "images" / "cells" / "nucleus.ome.zarr"
    assert "image-label" in _ome(store)
    ((data, kwargs, kind),) = read_image(str(store))
    assert (kind, kwargs["name"]) == ("labels", "nucleus")
    level0 = np.asarray(data[0] if isinstance(data, list) else data)
    assert len(np.unique(level0)) - 1 == result.counts["cells"]["nucleus"] > 5


def test_several_scenes_each_scene_is_marked_and_opens_as_labels(tmp_path):
    path = tmp_path / "two.ome.tif"
    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(path, ome=True) as tif:
        for _ in range(2):
            plane = rng.integers(0, 100, (64, 64)).astype(np.uint16)
            plane[10:30, 10:30] = 4000
            plane[40:55, 35:60] = 4000
            tif.write(plane, metadata={"axes": "YX", "Channel": {"Name": "DAPI"}})
    settings = tmp_path / "nuclei.yaml"
    settings.write_text(SETTINGS)
    sm.analyze(settings, [path], tmp_path / "res")
    store = tmp_path / "res" / "images" / "two" / "nucleus.ome.zarr"
    assert all("image-label" in _ome(store / str(s)) for s in range(2))
    for scene in (0, 1):
        ((data, kwargs, kind),) = read_image(str(store), scene=scene)
        assert (kind, kwargs["name"]) == ("labels", "nucleus")
        level0 = np.asarray(data[0] if isinstance(data, list) else data)
        assert len(np.unique(level0)) - 1 == 2  # the two bright squares


def test_objects_label_store_is_marked_and_an_unmarked_integer_image_stays_an_image(tmp_path):
    classes = np.zeros((60, 60), np.uint8)
    classes[5:20, 5:20] = 1
    classes[30:50, 30:55] = 1
    labels = tmp_path / "classes.tif"
    tifffile.imwrite(labels, classes)
    sm.label_objects(labels, tmp_path / "objects.ome.zarr", class_=1)
    assert "image-label" in _ome(tmp_path / "objects.ome.zarr")
    ((_, kwargs, kind),) = read_image(str(tmp_path / "objects.ome.zarr"))
    assert (kind, kwargs["name"]) == ("labels", "objects")

    plain = sm.io.create_ome_zarr(tmp_path / "labels.ome.zarr", shape=(8, 8), dtype="int32",
                                  axes="YX", chunks=(8, 8), name="labels")  # fmt: skip
    plain[:] = 3
    ((_, _, kind),) = read_image(str(tmp_path / "labels.ome.zarr"))
    assert kind == "image"  # the name alone no longer makes it labels
