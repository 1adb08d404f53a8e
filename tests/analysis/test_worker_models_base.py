"""A worker that outlives one analysis (a dask worker) keeps the models it opened by what the
settings' paths resolve against too: the same settings text in two folders names two model
files (each ``m.czann`` beside its settings). Keyed by the settings text alone, the second run
was handed the first folder's model, and the file check of stop 18 then failed its images as
"changed since the run began"."""

from __future__ import annotations

import pandas as pd
import pytest
import tifffile

from scopeml.analysis import run_analysis
from scopeml.synthetic import synthetic_nuclei
from tests.tiling.engine_doubles import write_model_file

from .test_worker_models import SETTINGS, table

distributed = pytest.importorskip("distributed")


def test_the_same_settings_in_two_folders_use_each_folders_model(tmp_path):
    image, _ = synthetic_nuclei((64, 80), density=0.004, seed=5)
    tifffile.imwrite(tmp_path / "cells.tif", image[0])
    for folder, classes, seed in (("first", 3, 0), ("second", 2, 4)):
        (tmp_path / folder).mkdir()
        write_model_file(tmp_path / folder / "m.czann", n_classes=classes, seed=seed)
        (tmp_path / folder / "s.yaml").write_text(SETTINGS)  # the same text, byte for byte
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        for folder in ("first", "second"):
            settings = tmp_path / folder / "s.yaml"
            local = run_analysis(settings, [tmp_path / "cells.tif"], tmp_path / f"local-{folder}",
                                 workers=1)  # fmt: skip
            dask = run_analysis(settings, [tmp_path / "cells.tif"], tmp_path / f"dask-{folder}",
                                scheduler=cluster.scheduler_address)  # fmt: skip
            assert [r["status"] for r in dask.records] == ["done"], dask.failures
            assert local.counts == dask.counts
            pd.testing.assert_frame_equal(table(tmp_path / f"dask-{folder}"),
                                          table(tmp_path / f"local-{folder}"))  # fmt: skip
    assert not table(tmp_path / "local-first").equals(table(tmp_path / "local-second"))
