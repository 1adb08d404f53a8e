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
