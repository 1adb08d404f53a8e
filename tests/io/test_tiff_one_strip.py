"""An uncompressed TIFF stored in one piece (one strip: most plain and ImageJ TIFFs) is
memory-mapped, so reading a region costs the region, not the file: through ``aszarr`` each
read decoded the whole strip (a 600² region of a 16k² file took 284 ms, 4 ms from a tiled one,
and a segment run 1.3 GB against 0.6)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tifffile

import scopeml as sm


def _peak(call) -> tuple[int, np.ndarray]:
    tracemalloc.start()
    try:
        result = call()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_a_region_of_a_one_strip_tiff_reads_the_region_only(tmp_path, byteorder):
    pixels = np.random.default_rng(0).integers(0, 60000, (3, 2048, 2048), np.uint16)
    path = tmp_path / "strip.tif"
    tifffile.imwrite(path, pixels, byteorder=byteorder, metadata={"axes": "ZYX"})
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].dataoffset is not None  # one piece, as written
    image = sm.open_image(path)
    peak, region = _peak(lambda: image.read(Z=slice(1, 2), Y=slice(700, 900), X=slice(50, 250)))
    np.testing.assert_array_equal(region[0, 0, 0, 0], pixels[1, 700:900, 50:250])
    assert region.dtype == np.uint16  # native, whatever the file's byte order
    region[...] = 0  # a copy, writable, as any read (found in review: a read-only view)
    if byteorder == "<":  # this machine's: mapped
        assert peak < 2 * region.nbytes + 2**20, peak  # the 8 MB plane was never decoded
    image.close()
