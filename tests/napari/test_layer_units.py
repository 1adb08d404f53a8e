"""An in-memory layer's scale is a pixel size only where its units are lengths: napari's
default ``pixel`` units give results without µm (no made-up 1 µm pixels, no ``_um2`` columns),
nanometres are converted."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize(
    ("units", "size"), [(None, None), (("nm", "nm"), 0.5e-3), (("um", "um"), 0.5)]
)
def test_pixel_sizes_come_from_a_layer_with_length_units_only(viewer, units, size):
    import scopeml as sm
    from scopeml.napari._source import layer_image

    pixels = np.zeros((32, 32), np.float32)
    pixels[4:12, 4:12] = 5.0
    extra = {} if units is None else {"units": units}
    layer = viewer.add_image(pixels, scale=(0.5, 0.5), **extra)
    image = layer_image(layer)
    assert image.pixel_sizes == ({} if size is None else {"Y": size, "X": size})
    objects = np.zeros((32, 32), np.int32)
    objects[4:12, 4:12] = 1
    table = sm.measure_objects(objects, image)
    if size is None:
        assert "area_um2" not in table.columns
    else:
        assert table["area_um2"].iloc[0] == pytest.approx(64 * size**2)
