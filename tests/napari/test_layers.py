"""Reader layer data: names, scale, stored channel colours, pyramid levels (no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install 'scopeml[napari]')")


def test_ome_zarr_channels_named_coloured_scaled_multiscale(tmp_path):
    import zarr

    from scopeml.io import create_ome_zarr, write_pyramid
    from scopeml.napari._reader import read_image

    path = tmp_path / "cells.ome.zarr"
    array = create_ome_zarr(
        path, shape=(2, 1024, 768), dtype="uint16", axes="CYX", chunks=(1, 256, 256),
        channel_names=["DAPI", "GFP"], pixel_sizes={"Y": 0.25, "X": 0.5},
    )  # fmt: skip
    array[:] = np.arange(2 * 1024 * 768, dtype=np.uint32).reshape(2, 1024, 768) % 4000
    write_pyramid(path, levels=3)
    group = zarr.open_group(str(path), mode="r+")
    attrs = group.attrs.asdict()
    attrs["ome"]["omero"]["channels"][0]["color"] = "0000FF"
    attrs["ome"]["omero"]["channels"][1]["color"] = "00FF00"
    group.attrs.update(attrs)

    ((data, kwargs, kind),) = read_image(str(path))
    assert kind == "image" and kwargs["name"] == ["DAPI", "GFP"] and kwargs["channel_axis"] == 0
    assert kwargs["scale"] == [0.25, 0.5] and kwargs["multiscale"]
    assert [level.shape for level in data] == [(2, 1024, 768), (2, 512, 384), (2, 256, 192)]
    np.testing.assert_array_equal(np.asarray(data[0][1, 5:7, 9:11]), array[1, 5:7, 9:11])
    colors = [np.round(cmap.colors[-1][:3], 3).tolist() for cmap in kwargs["colormap"]]
    assert colors == [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert kwargs["metadata"]["scopeml"] == {"path": str(path), "scene": None, "axes": "YX"}


def test_an_rgb_file_shows_in_red_green_and_blue(tmp_path):
    """napari's own three colours (cyan, magenta, yellow) showed an H&E slide white and green."""
    import tifffile

    from scopeml.napari._reader import read_image

    tifffile.imwrite(tmp_path / "he.tif", np.zeros((32, 48, 3), np.uint8), photometric="rgb")
    ((_, kwargs, _),) = read_image(str(tmp_path / "he.tif"))
    assert kwargs["name"] == ["R", "G", "B"] and kwargs["colormap"] == ["red", "green", "blue"]


def test_a_file_that_is_not_an_image_is_one_line(tmp_path):
    from scopeml.errors import ScopeMLError
    from scopeml.napari._reader import get_image_reader, read_image

    bad = tmp_path / "broken.ome.tif"
    bad.write_bytes(b"II*\x00garbage")
    assert get_image_reader(str(bad)) is read_image
    with pytest.raises(ScopeMLError, match=r"broken\.ome\.tif") as caught:
        read_image(str(bad))
    assert "\n" not in str(caught.value)


def test_reader_claims_what_the_manifest_offers_and_opens():
    """napari.yaml's patterns name images and models that the one suffix lists open."""
    import yaml

    import scopeml.napari
    from scopeml.napari._reader import get_image_reader, get_model_reader, read_image, read_model

    manifest = Path(scopeml.napari.__file__).with_name("napari.yaml")
    readers = yaml.safe_load(manifest.read_text())["contributions"]["readers"]
    patterns = [p for reader in readers for p in reader["filename_patterns"]]
    for pattern in patterns:
        name = "/data/x" + pattern.lstrip("*").upper()
        image, model = get_image_reader(name), get_model_reader(name)
        assert (image, model) in ((read_image, None), (None, read_model)), pattern
    assert get_image_reader("/data/notes.txt") is None and get_model_reader("/data/a.tif") is None


def test_scenes_and_time_points_are_steps_not_micrometres(tmp_path):
    """A scene or time axis gets napari's ``pixel`` unit (was µm, so a ruler across scenes
    read micrometres); Z, Y and X keep theirs."""
    import tifffile

    from scopeml.napari._reader import read_image

    path = tmp_path / "plate.ome.tif"
    meta = {"axes": "TYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    with tifffile.TiffWriter(path, ome=True) as tif:
        for _ in range(2):  # two scenes of one size: S stacked
            tif.write(np.zeros((3, 16, 20), np.uint16), metadata=meta)
    ((_, kwargs, kind),) = read_image(str(path))
    assert kind == "image" and kwargs["metadata"]["scopeml"]["axes"] == "STYX"
    assert kwargs["units"] == ("pixel", "pixel", "micrometer", "micrometer")


def test_label_layers_name_their_axes_as_the_image_layers(tmp_path):
    """A time series' labels layer (a store, objects, an analysis's classes) has the image
    layer's ``t, y, x`` axis labels, not napari's ``-3, -2, -1``: the sliders say what they
    move, the same in both."""
    import tifffile

    import scopeml as sm
    from scopeml.napari._layers import labels_layer_data
    from scopeml.napari._reader import read_image

    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, np.zeros((3, 16, 20), np.uint16), ome=True, metadata={"axes": "TYX"})
    ((_, image_kwargs, _),) = read_image(str(path))
    _, kwargs, kind = labels_layer_data([sm.open_image(path)], name="labels")
    assert kind == "labels" and kwargs["axis_labels"] == image_kwargs["axis_labels"] == (
        "t", "y", "x")  # fmt: skip


def test_a_large_plane_without_levels_is_shown_from_strided_levels(tmp_path):
    import tifffile

    from scopeml.napari._reader import read_image

    pixels = np.random.default_rng(0).integers(0, 255, (5000, 4200), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", pixels, tile=(512, 512))
    ((data, kwargs, kind),) = read_image(str(tmp_path / "big.tif"))
    assert kind == "image" and kwargs["multiscale"]  # napari holds a level, not 5000×4200
    assert [level.shape for level in data] == [(5000, 4200), (2500, 2100)]
    np.testing.assert_array_equal(np.asarray(data[1][100:300, 7:900]), pixels[200:600:2, 14:1800:2])


def test_segment_ome_tiff_copies_open_as_labels_with_their_classes(tmp_path):
    import scopeml as sm
    from scopeml.model.spec import ModelSpec
    from scopeml.napari._reader import read_image

    class Bright:
        spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "cell"), halo=(0, 0))

        def predict(self, batch):
            cell = (batch > 100).astype(np.float32)
            return np.concatenate([1 - cell, cell], axis=1)

    pixels = np.zeros((64, 80), np.uint8)
    pixels[10:30, 10:40] = pixels[40:60, 50:70] = 200
    sm.segment(pixels, Bright(), tmp_path / "s.ome.zarr", outputs=["labels", "instances"],
               instances="cell", ome_tiff=True)  # fmt: skip
    ((_, kwargs, kind),) = read_image(str(tmp_path / "s.labels.ome.tiff"))
    assert kind == "labels" and kwargs["name"] == "s.labels"
    assert list(kwargs["features"]["class"]) == ["bg", "cell"]  # named under the cursor
    ((objects, kwargs, kind),) = read_image(str(tmp_path / "s.instances.ome.tiff"))
    assert kind == "labels" and "features" not in kwargs and np.asarray(objects).max() == 2
    plain = tmp_path / "plain.ome.tif"
    import tifffile

    tifffile.imwrite(plain, np.asarray(objects), ome=True)  # integers, but not marked labels
    assert read_image(str(plain))[0][2] == "image"


def test_labels_up_to_4096_px_open_as_one_editable_level(tmp_path):
    import scopeml as sm
    from scopeml.napari._reader import read_image

    classes = np.zeros((1100, 1300), np.uint8)
    classes[100:300, 200:500] = 1
    store = sm.label_objects(classes, tmp_path / "objects.ome.zarr").path
    assert len(sm.io.registry.open_levels(store)) == 2  # the store has its levels …
    ((data, kwargs, kind),) = read_image(str(store))
    assert kind == "labels" and not kwargs["multiscale"] and data.shape == (1100, 1300)


def test_a_label_stores_class_names_go_by_their_label_values(tmp_path):
    import zarr

    import scopeml as sm
    from scopeml.io.omezarr import create_ome_zarr, mark_label_image
    from scopeml.napari._reader import label_classes

    path = tmp_path / "other.ome.zarr"  # another tool's labels: values 2 and 5 named
    create_ome_zarr(path, shape=(8, 8), dtype="uint8", axes="YX", chunks=(8, 8))[:] = 5
    group = zarr.open_group(str(path), mode="r+")
    mark_label_image(group, ())
    attrs = group.attrs.asdict()
    attrs["ome"]["image-label"]["properties"] = [{"label-value": 5, "class": "x"},
                                                 {"label-value": 2, "class": "y"}]  # fmt: skip
    group.attrs.update(attrs)
    with sm.open_image(path) as image:
        assert label_classes(str(path), image) == ["", "y", "", "", "x"]
