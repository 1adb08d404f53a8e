"""The overview of an RGB image (a stained section: channels R, G, B) is drawn in colour; it
was grey, drawn from one channel (new-user trial, skin.tif)."""

from __future__ import annotations

import numpy as np
import tifffile
from PIL import Image as PILImage

from scopeml.analysis import parse_settings, run_analysis

SETTINGS = """\
version: 1
channels: [red, green, blue]
aliases: {red: R, green: G, blue: B}
classes:
  - name: spot
    segmenter: {kind: threshold, channel: blue, method: fixed, value: 150}
outputs: {labels: false, parquet: false, summary: false}
"""


def test_an_rgb_image_has_a_colour_overview(tmp_path):
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, :32] = (200, 60, 60)  # pink left, blue right
    pixels[:, 32:] = (60, 60, 200)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, pixels, photometric="rgb")
    result = run_analysis(parse_settings(SETTINGS), [path], tmp_path / "res")
    assert result.counts == {"rgb": {"spot": 1}}
    png = np.asarray(PILImage.open(result.output / "images" / "rgb" / "overview.png"))
    left, right = png[10, 10, :3].astype(int), png[10, 50, :3].astype(int)
    assert left[0] > left[2] + 50 and right[2] > right[0] + 50, (left, right)
