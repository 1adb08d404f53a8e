"""The README's flow example runs as written, on a 2-D image and on a T×Z×Y×X image."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from scopeml.io import write_ome_tiff
from scopeml.synthetic import synthetic_nuclei

README = Path(__file__).resolve().parents[1] / "README.md"


def flow_example() -> str:
    """The ```python block right after the ``<!-- readme-flow -->`` marker."""
    found = re.search(r"<!-- readme-flow -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert found, "README.md has no flow example after <!-- readme-flow -->"
    return found.group(1)


def test_the_flow_example_is_short_with_one_import():
    lines = [line for line in flow_example().splitlines() if line.strip()]
    assert len(lines) <= 12
    assert [line for line in lines if "import" in line] == ["import scopeml as sm"]


def _scribbles(truth: np.ndarray) -> np.ndarray:
    """Sparse labels on a grid of points: 1 background, 2 nucleus, 0 unlabelled."""
    sparse = np.zeros(truth.shape, np.uint8)
    grid = (..., slice(None, None, 3), slice(None, None, 3))
    sparse[grid] = np.where(truth[grid] > 0, 2, 1)
    return sparse


def _run(folder: Path, monkeypatch) -> dict:
    monkeypatch.chdir(folder)
    namespace: dict = {}
    exec(compile(flow_example(), str(README), "exec"), namespace)
    return namespace


def _check(namespace: dict, truth: np.ndarray) -> None:
    """One row per object per time point; objects found where the nuclei are."""
    nuclei, table = namespace["nuclei"], namespace["table"]
    assert namespace["seg"].outputs == ("labels",)  # as its comment says: only the labels
    assert {"t", "label", "area", "class", "class_probability"} <= set(table.columns)
    labelled = nuclei.read()[0, :, 0]  # T × Z × Y × X
    assert labelled.shape == truth.shape
    for t in range(labelled.shape[0]):
        ids = np.unique(labelled[t][labelled[t] > 0])
        assert sorted(table.loc[table["t"] == t, "label"]) == ids.tolist() and ids.size > 0
        overlap = ((labelled[t] > 0) & (truth[t] > 0)).sum() / max((truth[t] > 0).sum(), 1)
        assert overlap > 0.8
    assert set(table["class"]) <= {"big", "small"}
    assert (table["class"] == table["kind"]).mean() > 0.9


def test_readme_flow_on_a_2d_image(tmp_path, monkeypatch):
    image, truth = synthetic_nuclei((96, 96), density=0.003, seed=4)
    write_ome_tiff(tmp_path / "cells.ome.tif", image, axes="CYX",
                   pixel_sizes={"Y": 0.4, "X": 0.4}, tile=(16, 16))  # fmt: skip
    write_ome_tiff(tmp_path / "scribbles.tif", _scribbles(truth), axes="YX", tile=(16, 16))
    namespace = _run(tmp_path, monkeypatch)
    assert namespace["seg"].labels.shape == (1, 1, 1, 1, 96, 96)
    assert namespace["nuclei"].pixel_sizes == pytest.approx({"Y": 0.4, "X": 0.4})
    assert "area_um2" in namespace["table"]
    _check(namespace, truth[None, None])


def test_readme_flow_on_a_time_series_of_z_stacks(tmp_path, monkeypatch):
    stacks = [synthetic_nuclei((8, 40, 40), density=0.0008, radius=(4, 6), seed=s) for s in (1, 2)]
    image = np.stack([pixels[0] for pixels, _ in stacks])  # T × Z × Y × X
    truth = np.stack([labels for _, labels in stacks])
    write_ome_tiff(tmp_path / "cells.ome.tif", image, axes="TZYX", tile=(16, 16))
    write_ome_tiff(tmp_path / "scribbles.tif", _scribbles(truth), axes="TZYX", tile=(16, 16))
    namespace = _run(tmp_path, monkeypatch)
    assert namespace["seg"].labels.sizes == {"S": 1, "T": 2, "C": 1, "Z": 8, "Y": 40, "X": 40}
    assert namespace["pixels"].spec.spatial_dims == 3
    _check(namespace, truth)
