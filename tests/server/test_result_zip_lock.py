"""A results folder's run lock (left by a killed analysis job) is not a result: not zipped."""

from __future__ import annotations

import zipfile
from types import SimpleNamespace

from scopeml.analysis.results_lock import LOCK
from scopeml.server import jobs


def test_the_result_zip_leaves_out_a_killed_runs_lock(tmp_path):
    results = tmp_path / jobs.RESULTS_NAME
    (results / "cells").mkdir(parents=True)
    (results / "cells" / "record.json").write_text("{}")
    (results / LOCK).write_text('{"pid": 1}')
    manager = SimpleNamespace(output_dir=lambda job_id: tmp_path)
    with zipfile.ZipFile(jobs.JobRunner.result_zip(manager, "j")) as archive:
        assert archive.namelist() == ["results/cells/record.json"]
