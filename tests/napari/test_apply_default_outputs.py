"""Apply's default output (no output typed) is named by the reading of the file the layer
shows: two scenes of one file, or the file read as a Z stack and as a time series, do not
share one store (the second run would replace the first's result)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari", reason="napari is not installed (pip install 'scopeml[napari]')")


def test_each_scene_and_axes_reading_has_its_own_default_store(viewer, tmp_path):
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.napari.open_widget import OpenImageWidget

    plate = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(plate, ome=True) as tif:
        tif.write(np.zeros((32, 32), np.uint16), metadata={"axes": "YX", "Name": "A1"})
        tif.write(np.zeros((24, 40), np.uint16), metadata={"axes": "YX", "Name": "B2"})
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.zeros((6, 16, 16), np.uint16))
    single = tmp_path / "single.ome.tif"
    tifffile.imwrite(single, np.zeros((16, 16), np.uint16), metadata={"axes": "YX"})
    opener = OpenImageWidget(viewer)
    widget = ApplyWidget(viewer)
    chosen = {}
    for path, scene, axes in ((plate, 0, None), (plate, 1, None), (movie, 0, None),
                              (movie, 0, "TYX"), (single, 0, None)):  # fmt: skip
        opener.path.setText(str(path))
        opener.scene.setValue(scene)
        opener.axes.setCurrentText(axes or opener.axes.itemText(0))
        (layer,) = opener.open()
        widget.image_choice.setCurrentText(layer.name)
        chosen[layer.name] = widget.output_path().name
    assert chosen == {
        "plate (scene 0: A1)": "plate_scene0.seg.ome.zarr",
        "plate (scene 1: B2)": "plate_scene1.seg.ome.zarr",
        "movie": "movie.seg.ome.zarr",
        "movie (TYX)": "movie_TYX.seg.ome.zarr",
        "single": "single.seg.ome.zarr",
    }
    assert widget.output.placeholderText() == f"default: {tmp_path / 'single.seg.ome.zarr'}"
