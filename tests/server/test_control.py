"""Time and fairness on the server (issue #18): a model call past its time budget fails cleanly,
one user's slow model does not starve another user's tile, a running job can be cancelled, a job
that keeps crashing the server is given up after a few attempts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.client import Client, ServerResponseError
from scopeml.model import convert_onnx
from scopeml.model.testing import endless_loop_onnx
from scopeml.server.config import ServerConfig
from scopeml.server.database import Database
from scopeml.server.jobs import JobRunner
from scopeml.server.metrics import Metrics
from scopeml.server.models import ModelRegistry
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, own_server
from .slow_model import slow_onnx

TIME_BUDGET_S = 3
POLL_S = 0.05
WAIT_S = 120.0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("control-images")
    image, _ = synthetic_nuclei((448, 416), density=0.002, seed=5)
    tifffile.imwrite(root / "big.tif", image[0])
    tifffile.imwrite(root / "small.tif", image[0][:64, :64])
    two = np.stack([image[0][:512, :416]] * 2)
    tifffile.imwrite(root / "two.ome.tif", two, metadata={"axes": "CYX"})
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(
        tmp_path_factory, "control", "--allowed-root", str(root),
        "--model-time-budget", str(TIME_BUDGET_S), "--predict-workers", "2",
    )  # fmt: skip


@pytest.fixture(scope="module")
def tokens(server: ServerProcess) -> dict[str, str]:
    """This module's own server's tokens (the shared ``alice``/``bob`` clients use them)."""
    return server.tokens


@pytest.fixture(scope="module")
def endless(alice: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-channel model that passes the upload's 32×32 probe in a fraction of a second but runs
    for many seconds on a 512×512 tile (past the time budget)."""
    path = tmp_path_factory.mktemp("slow") / "slow.czann"
    convert_onnx(
        slow_onnx(trips=200_000), path, classes=["a", "b"], min_overlap=0,
        model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip
    return alice.upload_model(path)["id"]


@pytest.fixture(scope="module")
def unet(bob: Client, container: Path) -> str:
    return bob.upload_model(container, shared=True)["id"]


def test_an_endless_model_is_refused_at_upload_by_its_probe_tile(alice, tmp_path):
    path = tmp_path / "loop.czann"
    convert_onnx(
        endless_loop_onnx(channels=2), path, classes=["a", "b"], min_overlap=0,
        model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip
    with pytest.raises(ServerResponseError) as err:
        alice.upload_model(path)
    assert err.value.status_code == 422
    assert f"time budget of {TIME_BUDGET_S} s" in str(err.value)
    assert "--model-time-budget" in str(err.value)
    assert all(model["name"] != "loop.czann" for model in alice.list_models())


def test_a_tile_past_the_time_budget_is_422_saying_so(alice, endless):
    with pytest.raises(ServerResponseError) as err:
        alice.predict_tile(endless, np.zeros((2, 512, 512), np.float32))
    assert err.value.status_code == 422
    assert f"time budget of {TIME_BUDGET_S} s" in str(err.value)
    assert ".czann" not in str(err.value)  # not where the server keeps the model
    # the hint names the server's flag, not the command line's --time-budget
    assert "--model-time-budget" in str(err.value) and "set --time-budget" not in str(err.value)


def test_one_users_endless_model_does_not_starve_another_users_tile(server, alice, endless, unet):
    """Alice keeps both predict workers' worth of too-slow calls coming (four tile shapes, so
    they cannot share one batch); Bob's tile is answered before any of her calls ends. Without
    the per-user cap her calls hold both workers and his tile waits for one of them to end."""
    finished: list[str] = []
    lock = threading.Lock()

    def alice_tile(size: int) -> None:
        with (
            Client(server.url, server.tokens["alice"]) as own,
            pytest.raises(ServerResponseError),
        ):
            own.predict_tile(endless, np.zeros((2, size, size), np.float32))
        with lock:
            finished.append(f"alice{size}")

    threads = [threading.Thread(target=alice_tile, args=(s,)) for s in (512, 528, 544, 560)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # let her calls reach the server first (order, not speed, is asserted)
    with Client(server.url, server.tokens["bob"]) as bob:
        tile = bob.predict_tile(unet, np.zeros((1, 32, 32), np.float32))
    with lock:
        finished.append("bob")
    for thread in threads:
        thread.join(timeout=WAIT_S)
    assert tile.shape == (3, 32, 32)
    assert finished[0] == "bob", finished


def test_deleting_a_running_job_cancels_it(server, alice, unet, root):
    job = alice.submit_job(unet, image_path="big.tif", tile_size=32, batch_size=1)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        state = alice.job(job["id"])
        if state["status"] == "running" and state["done"] >= 3:
            break
        time.sleep(POLL_S)
    assert state["status"] == "running" and state["done"] < state["total"], state
    alice.delete_job(job["id"])  # no 409: the job stops at its next batch, and stays listed
    assert alice.job(job["id"])["status"] == "cancelled"
    alice.delete_job(job["id"])  # a finished (cancelled) job: removed
    with pytest.raises(ServerResponseError) as err:
        alice.job(job["id"])
    assert err.value.status_code == 404
    assert not (server.data_dir / "jobs" / job["id"]).exists()
    # the only job worker is free again
    small = alice.submit_job(unet, image_path="small.tif", tile_size=32)
    assert alice.wait_job(small["id"], timeout=WAIT_S, interval=0.1)["status"] == "done"


def test_a_job_past_the_time_budget_fails_with_the_reason(alice, endless):
    job = alice.submit_job(endless, image_path="two.ome.tif", tile_size=512)
    finished = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)
    assert finished["status"] == "failed"
    assert finished["error"].startswith("model slow.czann: the model ran past its time budget")
    assert "--model-time-budget" in finished["error"]


def test_a_job_that_crashed_the_server_too_often_is_failed_not_resumed(tmp_path, container):
    config = ServerConfig(tmp_path / "data", max_job_attempts=2)
    db = Database(config.db)
    db.add_job(
        {"id": "j1", "owner": "a", "model_id": "m", "image": str(tmp_path / "x.tif"), "options": {}}
    )
    for _ in range(2):  # two earlier server processes died while running it
        assert db.start_job_attempt("j1") in (1, 2)
    runner = JobRunner(config, db, ModelRegistry(config, db, Metrics()))
    assert runner.resume_unfinished() == []  # failed at the start, not queued for a 3rd run
    job = db.get_job("j1")
    runner.close()
    db.close()
    assert job["status"] == "failed" and job["attempts"] == 2
    assert "stopped 2 times while running" in job["error"] and "not resumed" in job["error"]
