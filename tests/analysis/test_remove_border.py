"""``remove_border`` drops the objects the image's edge cuts, as scikit-image's
``clear_border`` does on the whole plane, whether the plane runs in memory or tile by tile
(its edge read a strip at a time), and keeps the other objects' ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.segmentation import clear_border

from scopeml.analysis import run_analysis
from scopeml.analysis.segment import apply_post
from scopeml.analysis.settings import AnalysisSettings, RemoveBorder, RemoveSmall, parse_settings
from scopeml.io import open_image
from scopeml.objects.label import label_instances
from tests.analysis.conftest import write_image

SETTINGS = """\
version: 1
channels: [DAPI]
tile_size: 64
classes:
  - name: blob
    segmenter: {kind: threshold, channel: DAPI, method: fixed, value: 100}
    post: [{step: remove_small, min_size: 3}, {step: remove_border}]
"""


def blobs(shape: tuple[int, int] = (150, 170)) -> np.ndarray:
    """Squares inside and on every edge (corners too), on tile seams of 64."""
    plane = np.zeros(shape, np.uint16)
    for y, x in [(0, 20), (60, 0), (140, 90), (30, 160), (0, 0), (62, 62), (100, 40), (20, 100)]:
        plane[y : y + 10, x : x + 10] = 200
    return plane


def test_the_whole_plane_step_is_clear_border() -> None:
    labels = label_instances(blobs() > 100)
    wanted = clear_border(labels)
    np.testing.assert_array_equal(apply_post(labels, [RemoveBorder()]), wanted)
    assert 0 < len(np.unique(wanted)) - 1 < labels.max()  # some kept, some removed


@pytest.mark.parametrize("memory_mb", [0, 256])  # tile by tile, in memory
def test_an_analysis_drops_the_objects_the_edge_cuts(tmp_path: Path, memory_mb: int) -> None:
    image = write_image(tmp_path / "blobs.ome.tif", blobs()[None])
    settings: AnalysisSettings = parse_settings(SETTINGS).model_copy(
        update={"memory_mb": memory_mb}
    )
    assert settings.classes[0].post == [RemoveSmall(min_size=3), RemoveBorder()]
    result = run_analysis(settings, [image], tmp_path / "out")
    stored = open_image(tmp_path / "out" / "images" / "blobs" / "blob.ome.zarr").read()[0, 0, 0, 0]
    wanted = clear_border(label_instances(blobs() > 100))
    np.testing.assert_array_equal(stored > 0, wanted > 0)
    assert result.counts["blobs"]["blob"] == len(np.unique(wanted)) - 1 == 3
