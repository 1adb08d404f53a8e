"""A job keeps what it has: the model it started with (deleted by its owner meanwhile), and the
work a restart stopped (a job the server gave up after restarts is resumed by its user); every
failed job is one line in the server's log, saying whose it was and why."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.client import Client
from scopeml.errors import Cancelled, ScopeMLError
from scopeml.server import jobs as jobs_module
from scopeml.server.config import ServerConfig
from scopeml.server.database import Database
from scopeml.server.jobs import JobRunner
from scopeml.server.metrics import Metrics
from scopeml.server.models import ModelRegistry
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess

WAIT_S = 120.0
OPTIONS = {"tile_size": 32, "batch_size": 1, "outputs": ["labels"]}


def wait_for(db: Database, job_id: str, statuses: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + WAIT_S
    while db.get_job(job_id)["status"] not in statuses and time.monotonic() < deadline:
        time.sleep(0.05)
    return db.get_job(job_id)


@pytest.fixture
def shared_model(tmp_path: Path, container: Path):
    """A runner on a fresh data folder, alice's shared upload of the tiny U-Net, an image."""
    root = tmp_path / "images"
    root.mkdir()
    image, _ = synthetic_nuclei((64, 64), density=0.004, seed=2)
    tifffile.imwrite(root / "a.tif", image[0])
    config = ServerConfig(tmp_path / "data", allowed_root=root)
    db = Database(config.db)
    registry = ModelRegistry(config, db, Metrics())
    upload = tmp_path / "upload.czann"
    shutil.copyfile(container, upload)
    record = registry.add(upload, owner="alice", name="unet.czann", suffix=".czann", shared=True)
    yield config, db, registry, record["id"], root / "a.tif"
    db.close()


def _run_job(config, db, registry, job_id, model_id, image) -> dict:
    """Bob's segment job on ``model_id``, run to its end by a runner of its own."""
    db.add_job({"id": job_id, "owner": "bob", "model_id": model_id, "image": str(image),
                "options": OPTIONS})  # fmt: skip
    runner = JobRunner(config, db, registry)
    try:
        runner.submit(job_id)
        return wait_for(db, job_id, ("done", "failed"))
    finally:
        runner.close()


def test_a_started_job_finishes_with_its_model_though_its_owner_deletes_it(
    shared_model, monkeypatch
):
    config, db, registry, model_id, image = shared_model
    real_run = jobs_module.run_in_child

    def deleted_as_it_starts(task, *args, **kwargs):  # step "starting": no model loaded yet
        asyncio.run(registry.remove(model_id))
        assert not list(config.models_dir.glob(f"{model_id}.*"))
        return real_run(task, *args, **kwargs)

    monkeypatch.setattr(jobs_module, "run_in_child", deleted_as_it_starts)
    job = _run_job(config, db, registry, "j1", model_id, image)
    assert job["status"] == "done", job
    assert (config.jobs_dir / "j1" / "result.ome.zarr" / "labels").is_dir()
    assert not (config.jobs_dir / "j1" / "model").exists()  # let go once done
    # a job queued after the deletion still fails saying so, as the README promises
    job = _run_job(config, db, registry, "j2", model_id, image)
    assert job["status"] == "failed"
    assert job["error"].endswith(f"the job's model {model_id!r} was deleted or is no longer shared")


def test_a_job_a_restart_stopped_resumes_with_its_model_deleted_meanwhile(
    shared_model, monkeypatch
):
    config, db, registry, model_id, image = shared_model

    def server_stops(*args, **kwargs):  # the server stops while the job runs
        raise Cancelled("job stopped")

    monkeypatch.setattr(jobs_module, "run_in_child", server_stops)
    db.add_job({"id": "j1", "owner": "bob", "model_id": model_id, "image": str(image),
                "options": OPTIONS})  # fmt: skip
    runner = JobRunner(config, db, registry)
    try:
        runner.submit("j1")
        deadline = time.monotonic() + WAIT_S
        while runner.running("j1") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.close()
    assert db.get_job("j1")["status"] == "running"  # resumed by the next start
    asyncio.run(registry.remove(model_id))
    monkeypatch.undo()
    runner = JobRunner(config, db, registry)
    try:
        assert runner.resume_unfinished() == ["j1"]
        job = wait_for(db, "j1", ("done", "failed"))
    finally:
        runner.close()
    assert job["status"] == "done", job


def test_a_job_given_up_after_restarts_is_resumed_by_its_user(tmp_path: Path):
    """The trial's job: killed with the server 3 times, its partial output on disk; now the
    start that gives it up says so (not "resuming … attempt 4"), and its user resumes it."""
    root = tmp_path / "images"
    root.mkdir()
    image, _ = synthetic_nuclei((96, 96), density=0.004, seed=3)
    tifffile.imwrite(root / "a.tif", image[0].astype(np.uint16))
    data_dir = tmp_path / "data"
    db = Database(data_dir / "scopeml.db")
    token = db.create_token("alice")
    db.add_job({"id": "j1", "owner": "alice", "model_id": "nuclei",
                "image": str(root / "a.tif"), "options": {"scale": 1.0}})  # fmt: skip
    db.add_job({"id": "j2", "owner": "bob", "model_id": "gone",
                "image": str(root / "a.tif"), "options": {}})  # fmt: skip
    for _ in range(2):  # two server processes were killed while running it
        db.start_job_attempt("j1")
    db.close()
    server = ServerProcess(data_dir, "--allowed-root", str(root), "--max-job-attempts", "2",
                           "--max-job-pixels", "20000")  # fmt: skip
    try:
        server.start()
        with Client(server.url, token) as client:
            given_up = client.job("j1")
            assert given_up["status"] == "failed" and given_up["attempts"] == 2, given_up
            assert "stopped 2 times while running" in given_up["error"]
            assert "POST /jobs/{id}/resume continues it" in given_up["error"]
            tifffile.imwrite(root / "a.tif", np.zeros((200, 200), np.uint16))  # replaced
            said = r"422: a.tif: declares 200 × 200 pixels .*\(--max-job-pixels\)"
            with pytest.raises(ScopeMLError, match=said):  # checked again, as at submit
                client.resume_job("j1")
            tifffile.imwrite(root / "a.tif", image[0].astype(np.uint16))
            client.resume_job("j1")
            finished = client.wait_job("j1", timeout=WAIT_S, interval=0.1)
            assert finished["status"] == "done" and finished["attempts"] == 3, finished
            deadline = time.monotonic() + WAIT_S
            while "job j2 of bob failed" not in server.log.read_text():
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.1)
    finally:
        server.stop()
    log = server.log.read_text()
    assert "resuming job j1" not in log  # it was not resumed by the start, and not said to be
    assert "job j1 of alice failed: stopped 2 times while running" in log
    assert (
        "job j2 of bob failed: a.tif: the job's model 'gone' was deleted or is no longer shared"
        in log
    )
    assert log.count("job j1 of alice failed") == 1 and log.count("job j2 of bob failed") == 1


def test_a_failed_job_is_logged_once_with_owner_and_reason(tmp_path, caplog):
    config = ServerConfig(tmp_path / "data")
    db = Database(config.db)
    db.add_job({"id": "j1", "owner": "carol", "model_id": "nuclei",
                "image": str(tmp_path / "gone.tif"), "options": {}})  # fmt: skip
    runner = JobRunner(config, db, ModelRegistry(config, db, Metrics()))
    caplog.set_level(logging.INFO, logger="scopeml.server.jobs")
    try:
        runner.submit("j1")
        job = wait_for(db, "j1", ("done", "failed"))
    finally:
        runner.close()
        db.close()
    assert job["status"] == "failed"
    lines = [r for r in caplog.records if "j1" in r.getMessage() and "failed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert lines[0].getMessage() == f"job j1 of carol failed: {job['error']}"
