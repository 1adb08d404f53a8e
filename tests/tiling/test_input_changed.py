"""An image file rewritten in place while a run reads it (an open file reads the new bytes):
the run publishes nothing, saying so, where it had written a mix of two images' tiles."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scopeml.api import segment
from scopeml.errors import InvalidImageError
from tests.tiling.engine_doubles import random_image, write_model_file


def test_a_file_rewritten_during_the_run_is_not_published(tmp_path):
    image = tmp_path / "a.tif"
    pixels = random_image((1, 1, 1, 1, 96, 96))[0, 0, 0, 0]
    tifffile.imwrite(image, pixels)
    model = write_model_file(tmp_path / "m.czann", depth=1)
    rewritten = []

    def rewrite(event):  # after the first tiles: the same file, other pixels
        if event.stage == "segment" and event.done and not rewritten:
            tifffile.imwrite(image, np.flipud(pixels))
            rewritten.append(True)

    out = tmp_path / "o.ome.zarr"
    with pytest.raises(InvalidImageError, match="the file changed while the run read it"):
        segment(image, model, out, tile_size=32, workers=1, progress=rewrite)
    assert rewritten and not out.exists()
    again = segment(image, model, out, tile_size=32, workers=1, overwrite=True)
    assert again.labels.read().shape[-2:] == (96, 96)  # the new file, run whole


def test_a_field_whose_second_channel_file_is_rewritten_is_not_published(tmp_path):
    """A field saved one file per channel is fingerprinted file by file: rewriting the GFP
    file, not the one that names the image, is seen too."""
    from scopeml.io import open_image
    from scopeml.io.registry import ChannelFiles

    pixels = random_image((1, 1, 2, 1, 96, 96))[0, 0, :, 0]
    files = (tmp_path / "a_D.tif", tmp_path / "a_F.tif")
    for file, plane in zip(files, pixels, strict=True):
        tifffile.imwrite(file, plane)
    model = write_model_file(tmp_path / "m.czann", in_channels=2, depth=1)

    def rewrite(event):
        if event.stage == "segment" and event.done == 1:
            tifffile.imwrite(files[1], np.flipud(pixels[1]))

    out = tmp_path / "o.ome.zarr"
    field = open_image(ChannelFiles(files, ("DNA", "GFP")))
    with field, pytest.raises(InvalidImageError, match="changed while the run read it"):
        segment(field, model, out, tile_size=32, workers=1, progress=rewrite)
    assert not out.exists()
