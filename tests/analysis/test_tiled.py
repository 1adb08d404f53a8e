"""Tiled equals whole: a 3-level tree whose nuclei come from the built-in model, run with tiles
much smaller than the image and with one tile, gives the same labels and tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scopeml.analysis import AnalysisSettings, load_settings, run_analysis
from scopeml.io import open_image
from tests.analysis.conftest import cell_image, write_image

SETTINGS = """\
version: 1
channels: [DAPI, GFP]
tile_size: {tile}
classes:
  - name: cell
    segmenter: {{kind: threshold, channel: GFP, method: otsu, sigma: 1.0}}
    post: [{{step: fill_holes}}, {{step: remove_small, min_size: 100}}]
  - name: nucleus
    parent: cell
    segmenter:
      kind: instances
      model: nuclei
      class: nucleus
      boundary_class: boundary
      channels: [DAPI]
    post: [{{step: remove_small, min_size: 20}}]
  - name: spot
    parent: nucleus
    segmenter: {{kind: threshold, channel: GFP, method: fixed, value: 2000}}
    measurements: {{shape: false}}
"""


def settings(tmp_path: Path, tile: int) -> AnalysisSettings:
    path = tmp_path / f"tile{tile}.yaml"
    path.write_text(SETTINGS.format(tile=tile))
    return load_settings(path)


@pytest.mark.slow
def test_tiled_equals_whole_for_a_three_level_tree(tmp_path: Path) -> None:
    image = write_image(tmp_path / "big.ome.tif", cell_image((300, 300), seed=3, n_cells=0))
    tiled = run_analysis(settings(tmp_path, 64), [image], tmp_path / "tiled")
    whole = run_analysis(settings(tmp_path, 1024), [image], tmp_path / "whole")
    counts = tiled.records[0]["counts"]
    assert counts == whole.records[0]["counts"]
    assert counts["cell"] == counts["nucleus"] == 16 and counts["spot"] >= 16
    for name in ("cell", "nucleus", "spot"):
        a = open_image(tmp_path / "tiled" / "images" / "big" / f"{name}.ome.zarr").read()
        b = open_image(tmp_path / "whole" / "images" / "big" / f"{name}.ome.zarr").read()
        np.testing.assert_array_equal(a, b, err_msg=name)
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "tiled" / "tables" / f"{name}.csv"),
            pd.read_csv(tmp_path / "whole" / "tables" / f"{name}.csv"),
        )
    nuclei = pd.read_csv(tmp_path / "tiled" / "tables" / "nucleus.csv")
    # each nucleus found by the model lies in its own cell: one nucleus per cell
    assert sorted(nuclei["parent_id"]) == list(range(1, 17))


def test_a_model_class_mask_inside_parents(tmp_path: Path) -> None:
    """``kind: model``: the model's nucleus class, connected components, inside the cells."""
    from scopeml.api import segment

    image = write_image(tmp_path / "small.ome.tif", cell_image((160, 160), seed=5, n_cells=4))
    text = SETTINGS.format(tile=1024).replace("kind: instances", "kind: model")
    text = text.replace("      boundary_class: boundary\n", "")
    path = tmp_path / "model.yaml"
    path.write_text(text)
    result = run_analysis(load_settings(path), [image], tmp_path / "out")
    assert result.counts["small"]["nucleus"] == 4
    classes = segment(open_image(image).select_channels(["DAPI"]), "nuclei",
                      tmp_path / "seg.ome.zarr").labels.read()[0, 0, 0, 0]  # fmt: skip
    cells = open_image(tmp_path / "out" / "images" / "small" / "cell.ome.zarr").read()[0, 0, 0, 0]
    nuclei = open_image(tmp_path / "out" / "images" / "small" / "nucleus.ome.zarr").read()
    np.testing.assert_array_equal(nuclei[0, 0, 0, 0] > 0, (classes == 2) & (cells > 0))
