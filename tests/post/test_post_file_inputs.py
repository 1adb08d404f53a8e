"""``post_process_file`` takes what the command line takes: steps as text, and an open Image."""

from __future__ import annotations

import numpy as np

from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.post import PostStep, post_process_file


def test_steps_as_text_and_an_open_image(tmp_path):
    labels = np.zeros((1, 1, 1, 1, 40, 40), np.uint8)
    labels[..., 5:30, 5:30] = 1
    labels[..., 12, 12] = 0  # a hole
    labels[..., 35, 35] = 2  # a speck
    image = Image(labels, pixel_sizes={"Y": 0.5, "X": 0.5})
    steps = [PostStep.parse("fill_holes"), PostStep.parse("remove_small:4")]
    by_steps = post_process_file(image, tmp_path / "a.ome.zarr", steps, tile_size=16)
    by_text = post_process_file(image, tmp_path / "b.ome.zarr", ["fill_holes", "remove_small:4"])
    assert image.read().sum() == labels.sum()  # the caller's Image is still open and unchanged
    a, b = open_image(by_steps).read(), open_image(by_text).read()
    np.testing.assert_array_equal(a, b)
    assert a[0, 0, 0, 0, 12, 12] == 1 and a[0, 0, 0, 0, 35, 35] == 0
    assert open_image(by_text).pixel_sizes == {"Y": 0.5, "X": 0.5}


def test_64_bit_label_tiffs_are_post_processed(tmp_path):
    """tifffile reads int64/uint64 TIFFs as numpy's 'long long' type, which zarr knows no
    data type for: `post -s remove_small:10` of any such label TIFF failed (exit 1)."""
    import tifffile

    from scopeml.cli import main

    labels = np.zeros((64, 64), np.int64)
    labels[10:20, 10:20], labels[30:33, 30:33] = 1, 2
    for dtype in (np.int64, np.uint64):
        source = tmp_path / f"{np.dtype(dtype).name}.tif"
        tifffile.imwrite(source, labels.astype(dtype))
        out = tmp_path / f"{np.dtype(dtype).name}.ome.zarr"
        assert main(["post", str(source), "-o", str(out), "-s", "remove_small:10", "-q"]) == 0
        result = open_image(out / "labels").read()[0, 0, 0, 0]
        assert result.dtype == dtype
        np.testing.assert_array_equal(result, np.where(labels == 2, 0, labels))
