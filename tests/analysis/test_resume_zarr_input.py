"""``--resume`` knows an OME-Zarr input whose pixels were rewritten in place: it compared the
folder's own size and time, which a chunk rewritten below it leaves as they were, so the old
results were kept for the new pixels (new-user trial: edit an image, resume)."""

from __future__ import annotations

import os

import numpy as np

from scopeml.analysis.image import input_identity
from scopeml.analysis.runner import run_analysis
from scopeml.analysis.settings import parse_settings
from scopeml.io.omezarr import create_ome_zarr, open_ome_zarr_array

BLOB = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0", "method": "otsu"}}
SETTINGS = {"version": 1, "channels": ["C0"], "classes": [BLOB]}


def blobs(n: int) -> np.ndarray:
    pixels = np.zeros((64, 64), np.uint16)
    for i in range(n):
        pixels[4 + 15 * i : 12 + 15 * i, 10:20] = 1000
    return pixels


def test_a_zarr_image_rewritten_in_place_is_analysed_again(tmp_path):
    store = tmp_path / "img.ome.zarr"
    create_ome_zarr(store, shape=(64, 64), dtype="uint16", axes="YX", chunks=(32, 32))[:] = blobs(1)
    settings = parse_settings(SETTINGS)
    assert run_analysis(settings, [store], tmp_path / "res").counts == {"img": {"blob": 1}}
    folder_time = os.stat(store).st_mtime_ns
    open_ome_zarr_array(store)[:] = blobs(4)  # chunks below the folder, in place
    os.utime(store, ns=(folder_time, folder_time))
    again = run_analysis(settings, [store], tmp_path / "res", resume=True)
    assert again.resumed == 0 and again.counts == {"img": {"blob": 4}}
    assert run_analysis(settings, [store], tmp_path / "res", resume=True).resumed == 1


def test_a_file_is_still_known_by_its_size_and_time(tmp_path):
    image = tmp_path / "a.tif"
    image.write_bytes(b"pixels")
    stat = image.stat()
    assert input_identity(image) == {"size": 6, "mtime_ns": stat.st_mtime_ns}
