"""The plain-TIFF warning's Python advice is code that works (nu5 #3): following it literally
reads the pages as time points, and segmenting that image keeps them as T."""

from __future__ import annotations

import re
import warnings

import numpy as np
import tifffile

import scopeml as sm
from scopeml.io.tiff import _WARNED
from tests.tiling.engine_doubles import write_model_file


def test_following_the_warning_reads_time_points(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 900, (5, 32, 32), np.uint16))
    _WARNED.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sm.open_image(path) as image:
            assert image.sizes["Z"] == 5 and image.sizes["T"] == 1
    said = " ".join(str(w.message) for w in caught if "pages of unknown kind" in str(w.message))
    advice = re.search(r"Python: (sm\.open_image\(path, axes='(\w+)'\))", said)
    assert advice and advice.group(2) == "TYX" and "--axes TYX" in said
    image = eval(advice.group(1), {"sm": sm, "path": path})  # the advice, as written
    with image:
        assert image.sizes["T"] == 5 and image.sizes["Z"] == 1
        model = write_model_file(tmp_path / "m.czann")
        seg = sm.segment(image, model, tmp_path / "o.ome.zarr", tile_size=16)
    assert seg.labels.sizes["T"] == 5 and seg.labels.sizes["Z"] == 1
