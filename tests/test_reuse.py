"""``scopeml.reuse.why_not_this_run``: a store is reused only when it is this exact run."""

from __future__ import annotations

import numpy as np
import tifffile

import scopeml as sm
from scopeml.reuse import why_not_this_run
from scopeml.synthetic import synthetic_nuclei

OPTIONS = {"outputs": ("labels",), "tile_size": None, "scene": None, "channels": None}


def test_a_store_is_this_run_until_the_image_or_a_setting_differs(tmp_path):
    image, _ = synthetic_nuclei((96, 96), seed=4)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, np.asarray(image).reshape(96, 96).astype(np.uint16))
    store = sm.segment(str(path), "nuclei", tmp_path / "cells.ome.zarr", scale=1.0).path
    assert why_not_this_run(str(path), "nuclei", store, {**OPTIONS, "scale": 1.0}) is None
    other = why_not_this_run(str(path), "nuclei", store, {**OPTIONS, "scale": 2.0})
    assert other is not None and other.startswith("records other settings (scale")
    tifffile.imwrite(path, np.zeros((96, 96), np.uint16))  # the same file, other pixels
    assert why_not_this_run(str(path), "nuclei", store, {**OPTIONS, "scale": 1.0}) == (
        "records the image as it was before it changed"
    )


def test_the_same_file_read_with_other_axes_is_said_so(tmp_path):
    image, _ = synthetic_nuclei((48, 48), seed=5)
    path = tmp_path / "movie.tif"
    plane = np.asarray(image).reshape(48, 48).astype(np.uint16)
    tifffile.imwrite(path, np.stack([plane] * 3), photometric="minisblack")
    store = sm.segment(str(path), "nuclei", tmp_path / "t.ome.zarr", axes="TYX").path
    options = {**OPTIONS, "scale": None}
    assert why_not_this_run(str(path), "nuclei", store, {**options, "axes": "TYX"}) is None
    assert why_not_this_run(str(path), "nuclei", store, options) == (
        "records the file read as 3 time points, not 3 Z planes"
    )
    other = why_not_this_run(str(path), "nuclei", store, {**options, "axes": "TYX", "scale": 2.0})
    assert other == "records other settings (scale 1.0, not 2.0)", other


def test_two_models_of_one_name_are_told_apart_by_their_file() -> None:
    """'records model 'pixel classifier', not 'pixel classifier'' told the user nothing."""
    from scopeml.reuse import _difference

    def run(name, sha):
        model = {"name": name, "classes": ["a", "b"], **({"sha256": sha} if sha else {})}
        return {"model": model, "image": {"path": "i.tif"}, "options": {}}

    want = run("pixel classifier", "f00")
    assert _difference(run("other", "abc"), want) == "records model 'other', not 'pixel classifier'"
    assert _difference(run("pixel classifier", "bad"), want) == (
        "records another model of the name 'pixel classifier' (another file)"
    )
    assert _difference(run("pixel classifier", None), want) == (
        "records model 'pixel classifier' without its file's checksum"
    )
