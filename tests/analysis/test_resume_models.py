"""A resume continues a results folder only with the model files its finished images came
from: a model replaced between a run and its ``--resume`` is refused, naming the file (stop 18
item 2; it mixed the old model's results with the new one's in one folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scopeml.analysis import run_analysis
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from tests.analysis.conftest import nuclei_tiffs
from tests.analysis.test_worker_models import SETTINGS
from tests.files import replace_file
from tests.tiling.engine_doubles import write_model_file


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Settings naming ``m.czann`` (a copy of ``first.czann``) and two images."""
    write_model_file(tmp_path / "first.czann", n_classes=3, seed=0)
    write_model_file(tmp_path / "second.czann", n_classes=2, seed=4)
    shutil.copy(tmp_path / "first.czann", tmp_path / "m.czann")
    images = nuclei_tiffs(tmp_path)
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    return settings, images


def test_a_model_replaced_before_the_resume_is_refused_naming_it(batch, tmp_path):
    settings, images = batch
    out = tmp_path / "out"
    run_analysis(settings, images[:1], out)
    record = json.loads((out / "images" / "cells5" / "record.json").read_text())
    assert record["model_files"]["models"]["blob"]["size"] == (tmp_path / "m.czann").stat().st_size
    replace_file(tmp_path / "second.czann", tmp_path / "m.czann")
    with pytest.raises(InvalidRequestError, match=r"m\.czann.*changed since the run began"):
        run_analysis(settings, images, out, resume=True)
    assert not (out / "images" / "cells6").exists()  # refused before any image ran
    # the run's file back (a copy: same content, another modification time): resumes
    replace_file(tmp_path / "first.czann", tmp_path / "m.czann")
    result = run_analysis(settings, images, out, resume=True)
    assert result.resumed == 1 and [r["status"] for r in result.records] == ["done", "done"]


def test_the_cli_refuses_in_one_line_with_exit_2(batch, tmp_path, capsys):
    settings, images = batch
    args = ["analyze", str(settings), str(images[0]), "-o", str(tmp_path / "out"), "-q"]
    assert main(args) == 0
    replace_file(tmp_path / "second.czann", tmp_path / "m.czann")
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "m.czann" in err and "changed since the run began" in err
    assert "new results folder" in err


def test_results_from_before_models_were_recorded_are_analysed_again(batch, tmp_path):
    settings, images = batch
    out = tmp_path / "out"
    run_analysis(settings, images[:1], out)
    path = out / "images" / "cells5" / "record.json"
    record = json.loads(path.read_text())
    del record["model_files"]  # as an earlier scopeml wrote it: nothing to tell the model by
    path.write_text(json.dumps(record))
    result = run_analysis(settings, images, out, resume=True)
    assert result.resumed == 0 and "model_files" in json.loads(path.read_text())


def test_images_a_dask_worker_analysed_record_its_files_too(batch, tmp_path):
    distributed = pytest.importorskip("distributed")
    settings, images = batch
    out = tmp_path / "out"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        run_analysis(settings, images[:1], out, scheduler=cluster.scheduler_address)
    replace_file(tmp_path / "second.czann", tmp_path / "m.czann")
    with pytest.raises(InvalidRequestError, match=r"m\.czann.*changed since the run began"):
        run_analysis(settings, images, out, resume=True)


def test_a_worker_that_finds_another_model_file_than_the_run_began_with_fails_the_image(
    batch, tmp_path
):
    # a worker process or dask worker opens the files itself: replaced during the run, the
    # images it analyses after that fail, naming the file, instead of mixing two models
    from scopeml.analysis.runner import _job
    from scopeml.analysis.settings import load_settings
    from scopeml.tiling.execute import source_fingerprint

    settings, images = batch
    data = load_settings(settings).model_dump(mode="json", by_alias=True)
    began = {"models": {"blob": source_fingerprint(tmp_path / "m.czann")}, "classifiers": {}}
    replace_file(tmp_path / "second.czann", tmp_path / "m.czann")
    args = (data, str(images[0]), str(tmp_path / "out" / "images" / "a"), "d1", str(settings),
            None, None, None)  # fmt: skip
    record = _job(*args, began)
    assert record["status"] == "failed" and not (tmp_path / "out" / "images" / "a").exists()
    assert "model file m.czann (class 'blob') changed since the run began" in record["reason"]
    now = {"models": {"blob": source_fingerprint(tmp_path / "m.czann")}, "classifiers": {}}
    assert _job(*args, now)["status"] == "done"
