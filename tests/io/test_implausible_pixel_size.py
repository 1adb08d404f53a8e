"""A pixel size no microscope has (metres written where µm were meant: 0.325 m) is kept, as
the file says, with a warning naming the file; a plausible one says nothing (plate trial)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from scopeml.io import open_image


@pytest.mark.parametrize(("size", "warned"), [(325000.0, True), (0.325, False), (2e-4, False)])
def test_an_implausible_pixel_size_is_warned_and_kept(tmp_path, size, warned):
    path = tmp_path / "plate.ome.tif"
    metadata = {"axes": "YX", "PhysicalSizeX": size, "PhysicalSizeY": size}
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16), ome=True, metadata=metadata)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(path) as image:
            assert image.pixel_sizes["X"] == pytest.approx(size)
    said = [str(w.message) for w in caught if "outside" in str(w.message)]
    assert bool(said) == warned
    if warned:
        assert said[0].startswith(f"{path}: Y pixel size 325000 µm is outside 0.0001–10,000 µm")
