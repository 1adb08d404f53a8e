"""An array whose pixels are no numbers (objects, strings) is refused naming its dtype, as a
complex one is, not as if it were no array at all."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.errors import InvalidImageError


@pytest.mark.parametrize("dtype", [object, str])
def test_an_array_of_objects_or_strings_names_its_dtype(dtype, tmp_path):
    pixels = np.zeros((64, 64), np.uint16).astype(dtype)
    said = rf"image pixels are {np.dtype(pixels.dtype)}; scopeml computes with integer or float"
    with pytest.raises(InvalidImageError, match=said):
        sm.predict_region(pixels, "nuclei")
    with pytest.raises(InvalidImageError, match=said):
        sm.segment(pixels, "nuclei", tmp_path / "s.ome.zarr")
    assert not any(tmp_path.iterdir())  # refused before any work
    with pytest.raises(InvalidImageError, match="must be an array, an Image or a file, not list"):
        sm.predict_region([["a.tif"]], "nuclei")  # a list is still no image array
