"""A server analysis records public names as it writes (never a server path, not even in the
partial results of a stopped run) and resumes its finished images; a job's run stops at
``--max-job-seconds`` as a cancel stops it, ``timed_out`` and resumable; errors of an
analysis's run name the user's files (the settings by their file name, an image by its public
name), and a resume of a job whose image is gone says which."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.client import Client, ServerResponseError
from scopeml.io import open_ome_zarr_array
from scopeml.model import convert_onnx
from scopeml.server.database import Database
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, own_server
from .slow_model import slow_onnx
from .test_analysis import SETTINGS

WAIT_S = 180.0
POLL_S = 0.05
TEXT = (".csv", ".json", ".html")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("limits-images")
    image, _ = synthetic_nuclei((384, 384), density=0.003, seed=7)
    two = np.stack([image[0], image[0][::-1]]).astype(np.uint16)
    (root / "plate").mkdir()
    for name in ("p1", "p2", "p3"):
        tifffile.imwrite(root / "plate" / f"{name}.ome.tif", two, metadata={"axes": "CYX"})
    small, _ = synthetic_nuclei((96, 112), density=0.003, seed=8)
    tifffile.imwrite(root / "small.tif", small[0])
    # 2-channel identity models below the root: about 0.03 s (0.8 s) a 64² tile on an idle
    # machine; the slower one's 36 tiles take about 30 s, several times the time limit below
    # even on a fast machine (at 0.27 s a tile an idle machine finished within the 8 s limit)
    for name, trips in (("slow.czann", 30_000), ("slower.czann", 720_000)):
        convert_onnx(
            slow_onnx(trips=trips), root / name, classes=["a", "b"], min_overlap=0,
            model_type="MultiClassSemanticSegmentation",
        )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "limits", "--allowed-root", str(root))


@pytest.fixture(scope="module")
def tokens(server: ServerProcess) -> dict[str, str]:
    return server.tokens


def _slow_settings(folder: Path, root: Path) -> Path:
    """Settings whose one class runs the slow model (seconds an image) on both channels: the
    model file in ``root``, named from it as a server's settings name it."""
    assert (root / "slow.czann").is_file()
    path = folder / "slow-analysis.yaml"
    path.write_text(
        "version: 1\nchannels: [C0, C1]\ntile_size: 64\nclasses:\n  - name: a\n"
        "    segmenter:\n      kind: model\n      model: slow.czann\n"
        "      class: a\n      channels: [C0, C1]\n"
    )
    return path


def _texts(folder: Path) -> dict[Path, str]:
    """The text files of a results folder, but a stopped run's scratch (``.NAME.*.partial``)."""
    return {
        p: p.read_text()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in TEXT and ".partial" not in str(p.relative_to(folder))
    }


def test_a_stopped_analysis_holds_no_server_path_and_resumes_its_finished_images(
    server, alice, root, tmp_path
):
    settings = _slow_settings(tmp_path, root)
    images = ["plate/p1.ome.tif", "plate/p2.ome.tif", "plate/p3.ome.tif"]
    job = alice.submit_analysis(settings, image_paths=images)
    deadline = time.monotonic() + WAIT_S
    while (state := alice.job(job["id"]))["done"] < 1 and time.monotonic() < deadline:
        assert state["status"] in ("queued", "running"), state
        time.sleep(POLL_S)
    cancelled = alice.cancel_job(job["id"])
    assert cancelled["status"] == "cancelled" and 1 <= cancelled["done"] < 3, cancelled
    # what a stopped run left on disk was written with public names: nothing to hide later
    results = server.data_dir / "jobs" / job["id"] / "results"
    first = results / "images" / "p1" / "record.json"
    record = json.loads(first.read_text())
    assert record["image"] == "plate/p1.ome.tif" and record["status"] == "done"
    written = first.stat().st_mtime_ns
    secrets = (str(server.data_dir), str(root))
    for path, text in _texts(results).items():
        assert not any(s in text for s in secrets), (path, text[:300])

    alice.resume_job(job["id"])
    finished = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert finished["status"] == "done" and finished["error"] is None, finished
    assert first.stat().st_mtime_ns == written  # found on resume, not run again
    assert not list((results / "images").glob(".*"))  # the stopped run's scratch is gone
    downloaded = alice.download_result(job["id"], tmp_path / "dl")
    counts = pd.read_csv(downloaded / "summary" / "counts.csv")
    assert counts["file"].tolist() == images
    assert (counts["a"] > 0).all()  # a real result for each image
    files = [p for p in downloaded.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:  # the settings quote the model's path below the root, as the user wrote it
        hidden = secrets if path.name != "settings.yaml" else secrets[:1]
        assert not any(s.encode() in path.read_bytes() for s in hidden), path
    alice.delete_job(job["id"])


def test_an_analysis_error_names_the_settings_file_and_the_image_as_the_user_knows_them(
    server, alice, root, tmp_path
):
    """Said at submit (422), as the first image's channels are checked there for any
    settings, not only those naming a model: the job never starts."""
    settings = tmp_path / "blobs.yaml"
    # two channels: a one-channel file that names none cannot be read as them in order
    settings.write_text(SETTINGS.replace("channels: [C0]", "channels: [GFP, RFP]").replace(
        "channel: C0", "channel: GFP").replace("intensity: [C0]", "intensity: [GFP]"))  # fmt: skip
    upload = alice.upload_image(root / "small.tif")
    with pytest.raises(ServerResponseError) as caught:
        alice.submit_analysis(settings, upload_ids=[upload])
    assert caught.value.status_code == 422
    error = str(caught.value).split("server answered 422: ", 1)[1]
    assert error.startswith("blobs.yaml: line 2:"), error
    assert "the settings have 2 channels (GFP, RFP); small.tif has 1 and names none (C0)" in error
    assert str(server.data_dir) not in error and upload not in error


def test_a_resume_says_which_image_was_deleted(server, alice, root, tmp_path):
    settings = _slow_settings(tmp_path, root)
    upload = alice.upload_image(root / "plate" / "p2.ome.tif")
    job = alice.submit_analysis(settings, image_paths=["plate/p1.ome.tif"], upload_ids=[upload])
    assert alice.cancel_job(job["id"])["status"] == "cancelled"  # seconds before it can end
    alice.delete_upload(upload)  # a cancelled job no longer holds it
    with pytest.raises(ServerResponseError) as err:
        alice.resume_job(job["id"])
    assert err.value.status_code == 409
    assert "the job's image p2.ome.tif was deleted" in str(err.value), str(err.value)
    alice.delete_job(job["id"])


def test_an_analysis_image_gone_at_run_time_fails_with_its_name(root, tmp_path):
    """A file error in the job's process (an image deleted since submit) is the job's reason,
    naming the file, not an internal error."""
    from scopeml.errors import ScopeMLError
    from scopeml.server._job_child import run_in_child

    settings = tmp_path / "blobs.yaml"
    settings.write_text(SETTINGS)
    gone = tmp_path / "gone.tif"
    task = {
        "kind": "analyze", "settings": str(settings), "images": [str(gone)],
        "output": str(tmp_path / "results"), "roots": [str(tmp_path)],
        "progress_stage": "analyze", "names": {str(gone): "gone.tif"},
    }  # fmt: skip
    with pytest.raises(ScopeMLError) as err:
        run_in_child(task, lambda done, total: None, (), None)
    assert err.value.path == str(gone) and "no such file" in err.value.problem


def _labels(store: Path) -> np.ndarray:
    return np.asarray(open_ome_zarr_array(store / "labels", mode="r")[...])


def test_a_job_past_max_job_seconds_times_out_resumably(tmp_path, root):
    """A run stopped at the limit is ``timed_out`` with the reason and keeps its tiles; a resume
    continues from them to the uninterrupted result (the identity model's labels: the brighter
    channel)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = Database(data_dir / "scopeml.db")
    token = db.create_token("carol")
    db.close()
    args = ("--allowed-root", str(root))
    # the limit counts from the job's start, its process's imports included: on a slow machine
    # 8 s can pass before a first tile, so a run that kept none is tried again with a longer one
    for limit in (8, 16, 24):
        limited = ServerProcess(data_dir, *args, "--max-job-seconds", str(limit)).start()
        try:
            with Client(limited.url, token) as client:
                model = client.upload_model(root / "slower.czann")["id"]
                job = client.submit_job(
                    model, image_path="plate/p1.ome.tif", tile_size=64, batch_size=1
                )
                stopped = client.wait_job(job["id"], timeout=WAIT_S, interval=0.1)
        finally:
            limited.stop()
        assert stopped["status"] == "timed_out", stopped
        assert "--max-job-seconds" in stopped["error"] and f"{limit} s" in stopped["error"]
        assert "resume" in stopped["error"]
        if stopped["done"] > 0:
            break
    assert 0 < stopped["done"] < 36 and stopped["attempts"] == 1, stopped
    assert any((data_dir / "jobs" / job["id"] / "stage").iterdir())  # its tiles are kept

    unlimited = ServerProcess(data_dir, *args).start()  # a timed-out job waits for a resume
    try:
        with Client(unlimited.url, token) as client:
            assert client.job(job["id"])["status"] == "timed_out"
            resumed = client.resume_job(job["id"])
            assert resumed["status"] in ("queued", "running"), resumed
            seen = [resumed]
            while seen[-1]["status"] in ("queued", "running"):
                time.sleep(POLL_S)
                seen.append(client.job(job["id"]))
            counted = [s["done"] for s in seen if s["step"] == "segment" and s["total"]]
            assert min(counted) >= stopped["done"], counted  # continued from its tiles
            assert seen[-1]["status"] == "done" and seen[-1]["attempts"] == 2, seen[-1]
            result = _labels(client.download_result(job["id"], tmp_path / "dl"))
    finally:
        unlimited.stop()
    pixels = tifffile.imread(root / "plate" / "p1.ome.tif")
    expected = np.where(pixels[1] > pixels[0], 2, 1)
    assert np.array_equal(result.reshape(expected.shape), expected)
    assert set(np.unique(result)) == {1, 2}


def test_a_bug_in_the_jobs_process_names_its_exception_type(tmp_path, monkeypatch):
    """An exception that is no input error in the job's process (here: a task without its
    settings, a KeyError there) fails the job as ``internal error (TYPE)`` with the child's
    type, not that of the parent's wrapper."""
    from scopeml.server.config import ServerConfig
    from scopeml.server.jobs import ANALYSIS, JobRunner

    config = ServerConfig(tmp_path / "data")
    db = Database(tmp_path / "s.db")
    runner = JobRunner(config, db, registry=None)
    task = {"kind": "analyze", "images": [], "output": str(tmp_path / "out"), "roots": [],
            "progress_stage": "analyze", "names": {}}  # fmt: skip
    monkeypatch.setattr(runner, "_task", lambda job: (task, 0))
    try:
        db.add_job({"id": "j", "owner": "a", "model_id": ANALYSIS, "image": "/a.tif",
                    "options": {}})  # fmt: skip
        db.start_job_attempt("j")
        runner._attempt(db.get_job("j"))
        job = db.get_job("j")
        assert job["status"] == "failed" and job["error"] == "internal error (KeyError)", job
    finally:
        runner.close()
        db.close()


def test_one_user_may_queue_max_user_jobs_and_a_resume_counts(tmp_path, root):
    """Past ``--max-user-jobs`` queued or running a submit (segment or analysis) and a resume
    answer 429 saying what to do; another user is not held back; a cancelled job frees room."""
    process = ServerProcess(tmp_path, "--allowed-root", str(root), "--max-user-jobs", "2",
                            "--job-workers", "1")  # fmt: skip
    db = Database(tmp_path / "scopeml.db")
    tokens = {user: db.create_token(user) for user in ("alice", "bob")}
    db.close()
    process.start()
    try:
        with (
            Client(process.url, tokens["alice"]) as alice,
            Client(process.url, tokens["bob"]) as bob,
        ):
            model = alice.upload_model(root / "slower.czann")["id"]
            alice.share_model(model)
            submit = lambda client: client.submit_job(  # noqa: E731
                model, image_path="plate/p1.ome.tif", tile_size=64, batch_size=1
            )
            first, second = submit(alice), submit(alice)
            for refused in (
                lambda: submit(alice),
                lambda: alice.submit_analysis(
                    _slow_settings(tmp_path, root), image_paths=["small.tif"]
                ),
            ):
                with pytest.raises(ServerResponseError) as err:
                    refused()
                assert err.value.status_code == 429, err.value
                assert "2 jobs queued or running" in str(err.value) and "cancel" in str(err.value)
            bobs = submit(bob)  # not alice's cap
            alice.cancel_job(first["id"])
            third = submit(alice)  # the cancelled one freed its place
            with pytest.raises(ServerResponseError) as err:
                alice.resume_job(first["id"])
            assert err.value.status_code == 429, err.value
            for client, job in ((alice, second), (alice, third), (bob, bobs)):
                client.cancel_job(job["id"])
    finally:
        process.stop()
