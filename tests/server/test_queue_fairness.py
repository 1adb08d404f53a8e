"""Jobs are shared fairly between users (t4 F4), the server's errors are bounded JSON (F10),
model uploads refuse a multipart form and name the file (F8), ``/metrics`` shows the job queue
to admins only (F11), a restart says which job it resumes (F12), and a job's table and result
download into one folder (F7)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import tifffile
from fastapi.testclient import TestClient

from scopeml.client import Client
from scopeml.errors import InvalidRequestError
from scopeml.server.app import create_app
from scopeml.server.config import ServerConfig
from scopeml.server.database import Database
from scopeml.server.jobs import JobRunner
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, own_server

WAIT_S = 300.0
POLL_S = 0.05


# --- the job queue, in process ------------------------------------------------------------------


class Gated:
    """A :class:`JobRunner` whose attempts record their start and wait for their gate (instead
    of a child process): the order and overlap of runs, as its workers choose them."""

    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.config = ServerConfig(tmp_path / "data", **config)
        self.db = Database(self.config.db)
        self.runner = JobRunner(self.config, self.db, registry=None)
        self.started: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.runner._attempt = self._attempt  # type: ignore[method-assign]

    def _attempt(self, job: dict[str, Any]) -> None:
        with self.lock:
            self.started.append(job["id"])
            gate = self.gates[job["id"]]
        assert gate.wait(WAIT_S)
        self.db.update_job(job["id"], status="done")

    def submit(self, owner: str, job_id: str, *, hold: bool = False) -> None:
        self.gates[job_id] = threading.Event()
        if not hold:
            self.gates[job_id].set()
        self.db.add_job(
            {"id": job_id, "owner": owner, "model_id": "m", "image": "x.tif", "options": {}}
        )
        self.runner.submit(job_id)

    def wait_started(self, n: int) -> list[str]:
        deadline = time.monotonic() + WAIT_S
        while len(self.started) < n and time.monotonic() < deadline:
            time.sleep(POLL_S)
        time.sleep(0.2)  # nothing else starts meanwhile
        with self.lock:
            return list(self.started)

    def close(self) -> None:
        for gate in self.gates.values():
            gate.set()
        self.runner.close()
        self.db.close()


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[Any]:
    made: list[Gated] = []

    def make(**config: Any) -> Gated:
        made.append(Gated(tmp_path / str(len(made)), **config))
        return made[-1]

    yield make
    for runner in made:
        runner.close()


def test_one_users_queue_does_not_hold_back_anothers_job(gated) -> None:
    """Alice queues six jobs, then Bob one: his runs second, not after all of hers (first in,
    first out ran it last)."""
    queue = gated(job_workers=1)
    queue.submit("alice", "a0", hold=True)  # the only worker is busy with it
    for i in range(1, 6):
        queue.submit("alice", f"a{i}")
    queue.submit("bob", "b0")
    assert queue.wait_started(1) == ["a0"]
    queue.gates["a0"].set()
    order = queue.wait_started(7)
    assert order == ["a0", "b0", "a1", "a2", "a3", "a4", "a5"]
    assert order.index("b0") < order.index("a4")  # before alice's second-to-last


def test_users_take_turns_and_one_user_runs_at_most_the_cap(gated) -> None:
    """Two workers and the default cap (all but one): alice's three jobs run one at a time
    while the other worker stays free for bob, whose job starts at once; then turns alternate."""
    queue = gated(job_workers=2)
    assert queue.config.user_job_workers == 1
    for i in range(3):
        queue.submit("alice", f"a{i}", hold=True)
    assert queue.wait_started(1) == ["a0"]  # a1 waits although a worker is free
    queue.submit("bob", "b0", hold=True)
    queue.submit("bob", "b1", hold=True)
    assert queue.wait_started(2) == ["a0", "b0"]
    assert queue.runner.counts() == {"queued": 3, "running": 2}
    queue.gates["a0"].set()  # bob is at his cap: alice's next
    assert queue.wait_started(3) == ["a0", "b0", "a1"]
    queue.gates["b0"].set()
    assert queue.wait_started(4) == ["a0", "b0", "a1", "b1"]
    queue.gates["a1"].set()
    assert queue.wait_started(5) == ["a0", "b0", "a1", "b1", "a2"]


def test_a_user_cap_over_the_workers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="user_job_workers must be 1 to job_workers"):
        ServerConfig(tmp_path, job_workers=2, user_job_workers=3)
    assert ServerConfig(tmp_path, job_workers=4).user_job_workers == 3


def test_a_cancelled_queued_job_leaves_the_queue_and_resumes(gated) -> None:
    queue = gated(job_workers=1)
    queue.submit("alice", "a0", hold=True)
    queue.submit("alice", "a1")
    queue.submit("bob", "b0")
    assert queue.wait_started(1) == ["a0"]
    future = queue.runner.cancel("a1")
    assert future is not None and future.done()  # never started: out of the queue at once
    assert not queue.runner.running("a1")
    assert queue.db.cancel_job("a1")
    assert queue.runner.counts() == {"queued": 1, "running": 1}
    assert queue.runner.resume("a1")  # queued again, behind bob's
    queue.gates["a0"].set()
    assert queue.wait_started(3) == ["a0", "b0", "a1"]


def test_close_leaves_queued_jobs_queued_for_the_next_start(gated) -> None:
    """The server stops while alice's job runs and bob's waits: hers ends, his never starts
    and stays queued (the next start resumes it)."""
    queue = gated(job_workers=1)
    queue.submit("alice", "a0", hold=True)
    queue.wait_started(1)
    queue.submit("bob", "b0")
    closing = threading.Thread(target=queue.runner.close)
    closing.start()
    deadline = time.monotonic() + WAIT_S
    while not queue.runner._stop.is_set() and time.monotonic() < deadline:
        time.sleep(POLL_S)
    queue.gates["a0"].set()
    closing.join(WAIT_S)
    assert not closing.is_alive()
    assert queue.db.get_job("b0")["status"] == "queued"
    assert queue.started == ["a0"] and queue.runner.counts() == {"queued": 0, "running": 0}


# --- errors and uploads, in process -------------------------------------------------------------


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict]]:
    data = tmp_path_factory.mktemp("fair-app")
    db = Database(data / "scopeml.db")
    tokens = {"alice": db.create_token("alice"), "admin": db.create_token("root", admin=True)}
    db.close()
    with TestClient(create_app(ServerConfig(data, max_json_bytes=4096))) as client:
        yield client, {user: {"Authorization": f"Bearer {t}"} for user, t in tokens.items()}


def test_a_404_echoes_a_long_id_bounded(app_client) -> None:
    client, headers = app_client
    for path in ("/jobs/", "/models/"):
        response = client.get(path + "x" * 60_000, headers=headers["alice"])
        assert response.status_code == 404
        detail = response.json()["detail"]
        assert len(response.content) < 300 and "…" in detail and detail.startswith("no ")


def test_a_too_large_json_body_answers_json(app_client) -> None:
    client, headers = app_client
    body = b'{"model_id": "nuclei", "image_path": "' + b"a" * 200_000 + b'"}'
    declared = client.post(
        "/jobs", content=body, headers={**headers["alice"], "Content-Type": "application/json"}
    )

    def chunks() -> Iterator[bytes]:
        yield from (body[i : i + 8192] for i in range(0, len(body), 8192))

    streamed = client.post(
        "/jobs", content=chunks(), headers={**headers["alice"], "Content-Type": "application/json"}
    )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"detail": "request body is larger than the limit of 4096 bytes"}


def test_a_multipart_model_upload_is_refused_saying_how_to_send_it(app_client, container) -> None:
    client, headers = app_client
    with container.open("rb") as file:  # what curl -F sends
        form = client.post(
            "/models", files={"file": ("unet.czann", file)}, headers=headers["alice"]
        )
    assert form.status_code == 422
    assert "multipart" in form.json()["detail"] and "--data-binary @FILE" in form.json()["detail"]
    envelope = (  # the same body, sent as a raw file by mistake
        b"--xyz\r\nContent-Disposition: form-data; name=file; filename=unet.czann\r\n\r\n"
        + container.read_bytes()
        + b"\r\n--xyz--\r\n"
    )
    raw = client.post(
        "/models",
        params={"filename": "unet.czann"},
        content=envelope,
        headers={**headers["alice"], "Content-Type": "application/octet-stream"},
    )
    assert raw.status_code == 422
    assert raw.json()["detail"].startswith("unet.czann: the body starts with a MIME boundary")
    assert client.get("/models", headers=headers["alice"]).json()[-1]["name"] != "unet.czann"


def test_a_bad_model_upload_is_named_by_its_file_not_model_czann(app_client) -> None:
    client, headers = app_client
    octet = {**headers["alice"], "Content-Type": "application/octet-stream"}
    named = client.post(
        "/models",
        content=b"not a zip",
        headers={**octet, "Content-Disposition": 'attachment; filename="dir/mine.czann"'},
    )
    assert named.status_code == 422 and named.json()["detail"].startswith("mine.czann: ")
    unnamed = client.post("/models", content=b"not a zip", headers=octet)
    assert unnamed.status_code == 422
    assert unnamed.json()["detail"].startswith("the uploaded model: ")
    assert "model.czann" not in unnamed.json()["detail"]


def test_metrics_are_for_admins_and_show_the_job_queue(app_client) -> None:
    client, headers = app_client
    refused = client.get("/metrics", headers=headers["alice"])
    assert refused.status_code == 403 and "admin token" in refused.json()["detail"]
    text = client.get("/metrics", headers=headers["admin"]).text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines["scopeml_jobs_queued"] == "0" and lines["scopeml_jobs_running"] == "0"
    assert "# TYPE scopeml_jobs_queued gauge" in text


# --- a real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fair-images")
    image, _ = synthetic_nuclei((448, 416), density=0.002, seed=5)
    tifffile.imwrite(root / "big.tif", image[0])
    tifffile.imwrite(root / "small.tif", image[0][:64, :64])
    nuclei, _ = synthetic_nuclei((140, 170), density=0.004, seed=21)
    tifffile.imwrite(root / "nuclei.tif", nuclei[0])
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    # one worker, as the queue test below needs (the default 2 would run Bob's job at once)
    yield from own_server(
        tmp_path_factory, "fair", "--allowed-root", str(root), "--job-workers", "1"
    )


@pytest.fixture(scope="module")
def unet(server: ServerProcess, container: Path) -> str:
    with Client(server.url, server.tokens["alice"]) as alice:
        return alice.upload_model(container, shared=True)["id"]


def finish_order(server: ServerProcess, ids: list[str]) -> list[str]:
    """The jobs in the order they finished (one job worker: the order they ran)."""
    db = Database(server.data_dir / "scopeml.db")
    try:
        jobs = [db.get_job(job_id) for job_id in ids]
    finally:
        db.close()
    assert all(job["status"] == "done" for job in jobs), [job["status"] for job in jobs]
    return [job["id"] for job in sorted(jobs, key=lambda job: job["updated"])]


def test_on_a_server_bobs_job_runs_before_alices_queue(server, unet) -> None:
    """Alice's long job holds the only worker while she queues three more and Bob one; when
    hers is cancelled, Bob's runs next."""
    with (
        Client(server.url, server.tokens["alice"]) as alice,
        Client(server.url, server.tokens["bob"]) as bob,
    ):
        long = alice.submit_job(unet, image_path="big.tif", tile_size=32, batch_size=1)
        mine = [alice.submit_job(unet, image_path="small.tif", tile_size=32)["id"]]
        mine += [alice.submit_job(unet, image_path="small.tif", tile_size=32)["id"]]
        mine += [alice.submit_job(unet, image_path="small.tif", tile_size=32)["id"]]
        his = bob.submit_job(unet, image_path="small.tif", tile_size=32)["id"]
        status, waited = alice.job(long["id"])["status"], time.monotonic()
        while status == "queued" and time.monotonic() - waited < WAIT_S:  # a busy machine
            time.sleep(0.1)
            status = alice.job(long["id"])["status"]
        assert status == "running", f"the long job is {status}, not running"
        alice.cancel_job(long["id"])
        for job_id in mine:
            alice.wait_job(job_id, timeout=WAIT_S, interval=0.1)
        bob.wait_job(his, timeout=WAIT_S, interval=0.1)
    order = finish_order(server, [*mine, his])
    assert order[0] == his, order  # first in, first out ran it last


def test_the_table_and_the_result_download_into_one_folder(server, tmp_path) -> None:
    with Client(server.url, server.tokens["alice"]) as alice:
        job = alice.submit_job("nuclei", image_path="nuclei.tif", tile_size=64, measure=True)
        assert alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)["status"] == "done"
        table = alice.download_table(job["id"], tmp_path / "dl")
        result = alice.download_result(job["id"], tmp_path / "dl")  # keeps the same table
        assert result == tmp_path / "dl" / f"{job['id']}.ome.zarr" and (result / "labels").is_dir()
        assert len(pd.read_csv(table)) > 0
        # the other way round: the result's table, then the table alone
        again = alice.download_result(job["id"], tmp_path / "other")
        assert alice.download_table(job["id"], tmp_path / "other") == tmp_path / "other" / (
            f"{job['id']}.csv"
        )
        assert again.is_dir()
        # a different file of that name is never replaced silently
        changed = tmp_path / "changed"
        changed.mkdir()
        (changed / f"{job['id']}.csv").write_text("mine\n")
        with pytest.raises(InvalidRequestError, match="exists"):
            alice.download_result(job["id"], changed)
        with pytest.raises(InvalidRequestError, match="exists"):
            alice.download_table(job["id"], changed)
        assert (changed / f"{job['id']}.csv").read_text() == "mine\n"
        assert not (changed / f"{job['id']}.ome.zarr").exists()


def test_a_restart_says_which_running_job_it_resumes(
    tmp_path_factory: pytest.TempPathFactory, root: Path, container: Path
) -> None:
    gen = own_server(tmp_path_factory, "fair-restart", "--allowed-root", str(root))
    process = next(gen)
    try:
        with Client(process.url, process.tokens["alice"]) as alice:
            model = alice.upload_model(container)["id"]
            job = alice.submit_job(model, image_path="big.tif", tile_size=32, batch_size=1)
            deadline = time.monotonic() + WAIT_S
            while alice.job(job["id"])["done"] < 3 and time.monotonic() < deadline:
                time.sleep(POLL_S)
            assert alice.job(job["id"])["status"] == "running"
        process.kill9()
        before = process.log.read_text()
        process.start()
        with Client(process.url, process.tokens["alice"]) as alice:
            resumed = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)
        assert resumed["status"] == "done" and resumed["attempts"] == 2
        said = process.log.read_text()[len(before) :]
        assert f"resuming job {job['id']} of alice: it was running when the server stopped" in said
        assert (  # its run and how often a restart stopped it, of how often it may
            "it continues from its partial output (run 2; stopped 1 of at most 3 times, "
            "--max-job-attempts)" in said
        )
    finally:
        gen.close()


def test_a_model_upload_by_curl_form_is_refused(server, container) -> None:
    """What ``curl -F file=@unet.czann`` sends, over HTTP."""
    with container.open("rb") as file:
        response = httpx.post(
            f"{server.url}/models",
            files={"file": ("unet.czann", file)},
            headers={"Authorization": f"Bearer {server.tokens['bob']}"},
        )
    assert response.status_code == 422 and "--data-binary" in response.json()["detail"]
    with Client(server.url, server.tokens["bob"]) as bob:
        assert all(not model["name"].startswith("unet") for model in bob.list_models()
                   if model["owner"] == "bob")  # fmt: skip
