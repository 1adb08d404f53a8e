"""The built-in main job, end to end on a small sample."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import zarr
from PIL import Image as PILImage
from scipy import ndimage as ndi

from scopeml.cli import main
from scopeml.demo import write_sample_image


def _sample(tmp_path, name, block):
    image, truth = write_sample_image(tmp_path / name / "s.ome.zarr", size=512, block=block)
    return zarr.open_array(image / "0", mode="r")[:], zarr.open_array(truth, mode="r")[:]


def test_sample_is_one_scene_whatever_the_blocks(tmp_path):
    pixels, truth = _sample(tmp_path, "a", block=128)
    other_pixels, other_truth = _sample(tmp_path, "b", block=200)
    # Blocks only bound memory: another block size draws the same pixels and the same nuclei.
    np.testing.assert_array_equal(pixels, other_pixels)
    np.testing.assert_array_equal(truth, other_truth)
    # True ids 1..N, each one whole nucleus that nothing hides (one piece, of a nucleus's size).
    ids, areas = np.unique(truth[truth > 0], return_counts=True)
    assert ids.tolist() == list(range(1, len(ids) + 1)) and len(ids) > 200
    assert areas.min() >= 15
    pieces = [ndi.label(truth[box] == i)[1] for i, box in enumerate(ndi.find_objects(truth), 1)]
    assert set(pieces) == {1}
    # Nuclei cross block (and placement-cell) borders, and no empty line marks the borders.
    inside = truth > 0
    for edge in (128, 256, 384):
        assert len(set(np.unique(truth[:, edge - 1])) & set(np.unique(truth[:, edge])) - {0}) >= 3
        assert len(set(np.unique(truth[edge - 1])) & set(np.unique(truth[edge])) - {0}) >= 3
    near = (
        np.mean(
            [
                inside[:, e - 2 : e + 2].mean() + inside[e - 2 : e + 2].mean()
                for e in (128, 256, 384)
            ]
        )
        / 2
    )
    assert near > 0.7 * inside.mean()
    # The image shows them: nuclei are brighter than background in the nuclear channel.
    assert pixels[0][inside].mean() > 2 * pixels[0][~inside].mean()


def test_demo_writes_every_output_and_finds_the_nuclei(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--size", "512", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    table = pd.read_csv(out / "nuclei.csv")
    # The sample's nuclei touch but never overlap (as in a real stain), so every true outline
    # is visible; on seed 0 the shipped model finds 256 of 256 at object F1 1.0.
    assert 0.9 * summary["n_true_nuclei"] < len(table) == summary["n_nuclei"]
    assert summary["n_nuclei"] < 1.1 * summary["n_true_nuclei"]
    assert {"label", "area_um2", "intensity_mean_DAPI", "centroid_um-0"} <= set(table.columns)
    assert summary["f1"] > 0.9
    for png in ("overview.png", "detail.png"):
        picture = np.asarray(PILImage.open(out / png))
        assert picture.ndim == 3 and (picture == (255, 40, 40)).all(axis=-1).any()
    printed = capsys.readouterr().out
    assert "object F1" in printed
    assert f"napari --plugin scopeml {out / 'sample.ome.zarr'}" in printed  # what to do next
    # The help lists exactly what the demo wrote.
    assert main(["demo", "--help"]) == 0
    listed = re.findall(r"^\s+(\S+\.(?:zarr|csv|png|json))\s", capsys.readouterr().out, re.M)
    assert sorted(listed) == sorted(p.name for p in out.iterdir())


def test_the_demo_says_how_to_get_napari_from_anywhere(monkeypatch):
    """Its last line said `pip install -e '.[napari]'`, which works only inside the checkout."""
    import importlib.util
    import shlex
    from pathlib import Path

    from scopeml.cli import demo

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # napari absent
    words = shlex.split(demo._napari_install())
    assert words[:3] == ["pip", "install", "-e"], words
    root = Path(words[3].removesuffix(",").removesuffix("[napari]"))
    assert root.is_absolute() and (root / "pyproject.toml").is_file()


def test_the_sample_and_its_truth_open_as_images_shown_over_their_own_values(tmp_path):
    """The truth was a bare zarr array info and open_image refused; the sample's window was
    uint16's 0–65535, which showed it dim."""
    import scopeml as sm

    image, truth = write_sample_image(tmp_path / "s.ome.zarr", size=512, block=256)
    with sm.open_image(truth) as labels:
        assert labels.shape == (1, 1, 1, 1, 512, 512) and labels.read().max() > 0
    pixels = zarr.open_array(image / "0", mode="r")[:]
    windows = zarr.open_group(str(image)).attrs["ome"]["omero"]["channels"]
    assert [w["window"]["end"] for w in windows] == [float(c.max()) for c in pixels]
