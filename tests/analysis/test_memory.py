"""In memory equals out of core: a plane under ``memory_mb`` runs its stages on numpy arrays,
a larger one tile by tile through zarr; both give the same labels (bit for bit) and tables
(float measurements to the last bits: the in-memory path measures the whole plane at once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scopeml.analysis import plane as plane_module
from scopeml.analysis import run_analysis
from scopeml.analysis.plane import plane_memory
from scopeml.analysis.settings import Closing, FillHoles, Opening, RemoveLarge, RemoveSmall
from scopeml.errors import Cancelled
from scopeml.io import open_image
from scopeml.progress import ProgressEvent
from tests.analysis.conftest import cell_image, three_level_settings, write_image


def test_plane_memory_grows_with_pixels_channels_and_classes() -> None:
    one = plane_memory((100, 100), 2, 2, 3)
    assert plane_memory((200, 100), 2, 2, 3) == 2 * one
    assert plane_memory((100, 100), 3, 2, 3) > one
    assert plane_memory((100, 100), 2, 2, 4) > one


@pytest.mark.parametrize("tile", [64, 1024])
def test_in_memory_equals_out_of_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tile: int
) -> None:
    image = write_image(tmp_path / "img.ome.tif", cell_image((300, 260), seed=4, n_cells=0))
    settings = three_level_settings(tile_size=tile)
    cell, nucleus, spot = settings.classes
    cell = cell.model_copy(update={"post": [FillHoles(), Opening(radius=1), RemoveSmall(
        min_size=100)]})  # fmt: skip
    spot = spot.model_copy(update={"post": [Closing(radius=1), RemoveLarge(max_size=40)]})
    settings = settings.model_copy(update={"classes": [cell, nucleus, spot]})
    scratches: list[Path | None] = []
    real = plane_module.segment_class_tiled

    def spy(cls, channels, scratch, **kwargs):  # type: ignore[no-untyped-def]
        scratches.append(scratch)
        return real(cls, channels, scratch, **kwargs)

    monkeypatch.setattr(plane_module, "segment_class_tiled", spy)
    results = {}
    for mode, budget in (("tiled", 0), ("memory", 256)):
        scratches.clear()
        results[mode] = run_analysis(settings.model_copy(update={"memory_mb": budget}), [image],
                                     tmp_path / mode)  # fmt: skip
        # the budget chose the path: zarr scratch stores only out of core
        assert all((s is None) == (mode == "memory") for s in scratches) and len(scratches) == 3
    counts = results["tiled"].records[0]["counts"]
    assert counts == results["memory"].records[0]["counts"]
    assert counts["cell"] >= 9 and counts["nucleus"] == counts["cell"] and counts["spot"] > 0
    for name in ("cell", "nucleus", "spot"):
        stored = [
            open_image(tmp_path / mode / "images" / "img" / f"{name}.ome.zarr").read()
            for mode in ("tiled", "memory")
        ]
        np.testing.assert_array_equal(*stored, err_msg=name)
        tiled, memory = (pd.read_csv(tmp_path / m / "tables" / f"{name}.csv") for m in results)
        # integer columns (ids, parents, areas, boxes) exactly; float columns to the rounding of
        # a tile's offset (the in-memory path measures the whole plane at once)
        pd.testing.assert_frame_equal(tiled, memory, check_exact=False, rtol=1e-9, atol=1e-8)
        for column in ("object_id", "parent_id", "area", "bbox-0", "bbox-3"):
            np.testing.assert_array_equal(tiled[column], memory[column], err_msg=column)


@pytest.mark.parametrize("budget", [0, 512])
def test_a_plane_reports_its_classes_and_cancels_between_them(tmp_path: Path, budget: int) -> None:
    image = write_image(tmp_path / "img.ome.tif", cell_image((160, 160), seed=2, n_cells=4))
    settings = three_level_settings(tile_size=64).model_copy(update={"memory_mb": budget})
    events: list[ProgressEvent] = []
    run_analysis(settings, [image], tmp_path / "all", progress=events.append)
    assert [e.done for e in events if e.stage == "classes"] == [0, 1, 2, 3]

    def stop_after_the_cells(event: ProgressEvent) -> None:
        if event.stage == "classes" and event.done == 1:
            raise Cancelled("stopped by the user")

    with pytest.raises(Cancelled):
        run_analysis(settings, [image], tmp_path / "stopped", progress=stop_after_the_cells)
    assert list((tmp_path / "stopped" / "images").iterdir()) == []
