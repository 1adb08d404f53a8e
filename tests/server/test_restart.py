"""A server killed (-9) mid-job resumes it on restart; the output equals an uninterrupted run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.api import segment
from scopeml.client import Client
from scopeml.server.database import Database
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess

OPTIONS = {"tile_size": 32, "batch_size": 1, "outputs": ["labels", "probabilities"]}
POLL_S = 0.02
KILL_TIMEOUT_S = 120.0


@pytest.mark.slow
def test_killed_server_resumes_job_with_identical_output(tmp_path: Path, container: Path):
    root = tmp_path / "images"
    root.mkdir()
    image, _ = synthetic_nuclei((448, 416), density=0.002, seed=5)
    tifffile.imwrite(root / "big.tif", image[0])
    data_dir = tmp_path / "data"
    db = Database(data_dir / "scopeml.db")
    token = db.create_token("carol")
    db.close()

    server = ServerProcess(data_dir, "--allowed-root", str(root)).start()
    try:
        with Client(server.url, token) as client:
            model_id = client.upload_model(container)["id"]
            job = client.submit_job(model_id, image_path="big.tif", **OPTIONS)
            deadline = time.monotonic() + KILL_TIMEOUT_S
            while time.monotonic() < deadline:
                state = client.job(job["id"])
                if state["status"] == "running" and state["done"] >= 10:
                    break
                time.sleep(POLL_S)
        server.kill9()
    finally:
        server.stop()
    assert state["status"] == "running" and 10 <= state["done"] < state["total"] == 182, state
    partial = data_dir / "jobs" / job["id"] / "stage" / "result.ome.zarr.partial"  # moved when done
    assert partial.is_dir() and not (data_dir / "jobs" / job["id"] / "result.ome.zarr").exists()

    restarted = ServerProcess(data_dir, "--allowed-root", str(root)).start()
    try:
        with Client(restarted.url, token) as client:
            finished = client.wait_job(job["id"], timeout=KILL_TIMEOUT_S, interval=0.1)
            assert finished["status"] == "done", finished
            result = client.download_result(job["id"], tmp_path / "download")
    finally:
        restarted.stop()

    expected = segment(root / "big.tif", container, tmp_path / "local.ome.zarr", **OPTIONS)
    for name in OPTIONS["outputs"]:
        got = zarr.open_array(result / name / "0", mode="r")[...]
        want = zarr.open_array(expected / name / "0", mode="r")[...]
        assert np.array_equal(got, want), name
