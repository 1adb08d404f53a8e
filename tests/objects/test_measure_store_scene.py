"""Measuring a store segmented from one scene of a several-scene file (``segment --scene 1``):
``objects measure STORE`` (with or without ``--image`` naming that file) and
``sm.measure_objects(seg, path)`` read the scene its run read, and give ``segment --measure``'s
table; they compared the labels' one scene with the file's two, or refused a file whose scenes
differ in size (user test: exit 2, "image has sizes {'S': 2, ...}")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.synthetic import synthetic_nuclei

RUN = {"outputs": ("instances",), "scale": 1, "tile_size": 128, "workers": 1}
SIZES = {"same sizes": ((128, 128), (128, 128)), "other sizes": ((128, 128), (96, 160))}


def nuclei(shape: tuple[int, int], seed: int) -> np.ndarray:
    pixels, _ = synthetic_nuclei(shape, density=0.002, seed=seed)
    return pixels.reshape(shape)


@pytest.fixture(scope="module", params=list(SIZES))
def segmented(request, tmp_path_factory) -> tuple[Path, sm.Segmentation, pd.DataFrame]:
    """A 2-scene OME-TIFF (unlike nuclei in each), its scene 1 segmented and measured."""
    folder = tmp_path_factory.mktemp("scenes")
    path = folder / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for seed, shape in enumerate(SIZES[request.param]):
            tif.write(nuclei(shape, seed), metadata={"axes": "YX"})
    table = folder / "segment.csv"
    seg = sm.segment(path, "nuclei", folder / "o.ome.zarr", scene=1, measure=table, **RUN)
    return path, seg, pd.read_csv(table)


def test_the_store_is_measured_on_the_scene_its_run_read(segmented, tmp_path, capsys):
    path, seg, expected = segmented
    assert len(expected) > 3
    out = tmp_path / "m.csv"
    assert main(["objects", "measure", str(seg), "-o", str(out), "-q"]) == 0
    said = capsys.readouterr().out
    assert f"intensities of scene 1 of {path.name}, the image its run read) → {out}" in said
    pd.testing.assert_frame_equal(pd.read_csv(out), expected)


def test_image_naming_that_file_reads_that_scene(segmented, tmp_path):
    path, seg, expected = segmented
    out = tmp_path / "m.csv"
    assert main(["objects", "measure", str(seg), "--image", str(path), "-o", str(out), "-q"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), expected)


def test_python_reads_the_scene_its_run_read(segmented):
    path, seg, expected = segmented
    pd.testing.assert_frame_equal(sm.measure_objects(seg, path), expected)
    pd.testing.assert_frame_equal(sm.measure_objects(seg.path, str(path)), expected)


def test_an_image_opened_at_another_scene_is_measured_as_given(segmented):
    path, seg, expected = segmented
    scene = sm.open_image(path, scene=1)
    try:
        pd.testing.assert_frame_equal(sm.measure_objects(seg, scene), expected)
    finally:
        scene.close()
