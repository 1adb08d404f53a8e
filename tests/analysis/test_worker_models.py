"""A worker that outlives one analysis (a dask worker) keeps the models it opened, but only as
long as their files are the same: a model file replaced between two runs with the same
settings is opened again (stop 18 item 1; it was keyed by the settings text alone)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tifffile

from scopeml.analysis import run_analysis
from scopeml.synthetic import synthetic_nuclei
from tests.files import replace_file
from tests.tiling.engine_doubles import write_model_file

distributed = pytest.importorskip("distributed")

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter:
      kind: model
      model: m.czann
      class: class1
      channels: [C0]
"""


def table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "tables" / "blob.csv").drop(columns=["image"])


def test_a_long_lived_worker_opens_a_replaced_model_file_again(tmp_path):
    write_model_file(tmp_path / "first.czann", n_classes=3, seed=0)
    write_model_file(tmp_path / "second.czann", n_classes=2, seed=4)
    image, _ = synthetic_nuclei((64, 80), density=0.004, seed=5)
    tifffile.imwrite(tmp_path / "cells.tif", image[0])
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        for run, source in enumerate(("first", "second")):
            replace_file(tmp_path / f"{source}.czann", tmp_path / "m.czann")
            run_analysis(settings, [tmp_path / "cells.tif"], tmp_path / f"local-{run}", workers=1)
            run_analysis(settings, [tmp_path / "cells.tif"], tmp_path / f"dask-{run}",
                         scheduler=cluster.scheduler_address)  # fmt: skip
            pd.testing.assert_frame_equal(table(tmp_path / f"dask-{run}"),
                                          table(tmp_path / f"local-{run}"))  # fmt: skip
    assert not table(tmp_path / "local-0").equals(table(tmp_path / "local-1"))
