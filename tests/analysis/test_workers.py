"""How many worker processes a local batch gets by default: one per core, within the memory."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from scopeml.analysis import AnalysisSettings, ClassSettings, InstancesSegmenter
from scopeml.analysis.runner import (
    BYTES_PER_WORKER,
    MODEL_WORKER_MB,
    WORKER_BASE_MB,
    default_workers,
)
from scopeml.analysis.settings import ThresholdSegmenter
from tests.analysis.conftest import three_level_settings


@pytest.mark.parametrize(
    ("cores", "fits", "budget", "expected"),
    [(8, 64, 256, 8), (8, 3, 256, 3), (8, 0, 256, 1), (2, 64, 256, 2), (8, 3, 1024, 1)],
)
def test_default_workers_are_the_cores_that_the_memory_holds(
    monkeypatch: pytest.MonkeyPatch, cores: int, fits: int, budget: int, expected: int
) -> None:
    import psutil

    settings = three_level_settings().model_copy(update={"memory_mb": budget})
    # memory for ``fits`` workers at a budget of 256 MB each, and a little more
    available = fits * (256 + WORKER_BASE_MB) * 2**20 + 1
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=available))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_workers(settings) == expected


def test_a_small_batch_gets_one_worker_per_enough_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    settings = three_level_settings()
    files = []
    for i in range(5):
        files.append(tmp_path / f"img{i}.tif")
        files[-1].write_bytes(b"\0" * (BYTES_PER_WORKER // 2))
    if default_workers(settings) < 2:
        pytest.skip("this machine's memory or cores allow one worker only")
    assert default_workers(settings, files[:1]) == 1  # half a worker's worth of input
    assert default_workers(settings, files[:4]) == 2
    folder = tmp_path / "img.ome.zarr"  # a folder counts as one worker's worth
    folder.mkdir()
    assert default_workers(settings, [*files[:4], folder]) == min(3, default_workers(settings))


def test_a_model_class_counts_its_tiles_in_each_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker running a model holds its tiles and runtime besides its plane (the built-in
    nuclei model: 1.29 GB peak where a threshold took 0.38 GB), so fewer workers fit."""
    import psutil

    def one_class(segmenter: InstancesSegmenter | ThresholdSegmenter) -> AnalysisSettings:
        return AnalysisSettings(
            channels=["DAPI"], classes=[ClassSettings(name="nucleus", segmenter=segmenter)]
        )

    instances = {"model": "nuclei", "class": "nucleus", "channels": ["DAPI"]}
    model = one_class(InstancesSegmenter.model_validate(instances))
    threshold = one_class(ThresholdSegmenter(channel="DAPI"))
    available = 4 * (model.memory_mb + WORKER_BASE_MB + MODEL_WORKER_MB) * 2**20 + 1
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=available))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_workers(model) == 4
    assert default_workers(threshold) == available // ((512 + WORKER_BASE_MB) * 2**20) > 4
