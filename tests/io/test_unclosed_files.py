"""A TIFF image dropped without ``close()`` (a napari layer removed, a view given away) closes
its file once nothing reads it, without Python's "unclosed file" warning (napari shows every
warning to the user), and never while a view still reads it."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import tifffile

import scopeml as sm


def test_a_dropped_image_closes_its_file_quietly_after_its_last_view(tmp_path):
    pixels = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    tifffile.imwrite(tmp_path / "a.tif", pixels, photometric="minisblack", metadata={"axes": "CYX"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = sm.open_image(tmp_path / "a.tif")
        view = image.select_channels([2])
        del image
        gc.collect()
        np.testing.assert_array_equal(view.read()[0, 0, 0, 0], pixels[2])  # still open
        del view
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught
