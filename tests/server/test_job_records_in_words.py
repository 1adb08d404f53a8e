"""A job's record and its client say what happened in the user's words (h62 findings 2-5):
``wait_job(progress=True)`` in a log writes a line per step as it ends and the final status; a
job starts in step ``starting``, not ``segment`` at 0 of 0; a resumed analysis counts the images
finished before, and the results folder's lock its stopped process left stays in the server's
log; ``DELETE`` says whether it cancelled (202, the record) or removed (204) a job; the landing
page, a JSON body sent as text and ``Client.segment``'s result say what they are."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile

from scopeml.client import Client
from scopeml.model import convert_onnx
from scopeml.progress import ProgressEvent
from scopeml.segmentation import Segmentation
from scopeml.synthetic import synthetic_nuclei

from .slow_model import slow_onnx

WAIT_S = 120.0
POLL_S = 0.05


def _record(status: str, step: str | None, done: int = 0, total: int = 0, **more) -> dict:
    return {"id": "J", "status": status, "step": step, "done": done, "total": total,
            "warnings": [], "error": None, **more}  # fmt: skip


#: What polls of a job that ran statistics, segment, instances and measure may find: each step
#: seen short of its end, as h62 saw them (``statistics 2/4`` the one line a log got)
POLLS = [
    _record("queued", None),
    _record("running", "starting"),
    _record("running", "statistics", 2, 4),
    _record("running", "segment", 5, 12),
    _record("running", "instances", 1, 3),
    _record("running", "measure", 2, 5),
    _record("done", "measure", 5, 5),
]


def _polled(records: list[dict]) -> Client:
    """A client whose job record is each of ``records`` in turn (no server)."""
    client = Client("http://127.0.0.1:9", "token")
    answers = iter(records)
    client.job = lambda job_id: next(answers)  # type: ignore[method-assign]
    return client


def test_wait_job_in_a_log_writes_a_line_per_step_at_its_end_and_the_status(capsys):
    with _polled(POLLS) as client:
        assert client.wait_job("J", interval=0, progress=True)["status"] == "done"
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "statistics", "segment", "instances", "measure", "job J",
    ]  # fmt: skip
    for line, count in zip(lines, ("4/4", "12/12", "3/3", "5/5"), strict=False):
        assert "100%" in line and f" {count} " in line, line
    assert lines[-1] == "job J: done"


def test_a_callable_gets_each_step_ended_but_not_starting_nor_a_step_taken_up_again():
    events: list[ProgressEvent] = []
    with _polled(POLLS) as client:
        client.wait_job("J", interval=0, progress=events.append)
    assert [(e.stage, e.done, e.total) for e in events] == [
        ("statistics", 2, 4), ("statistics", 4, 4), ("segment", 5, 12), ("segment", 12, 12),
        ("instances", 1, 3), ("instances", 3, 3), ("measure", 2, 5), ("measure", 5, 5),
    ]  # fmt: skip
    resumed = [  # a resume shows its tiles so far, then its statistics pass, then the tiles
        _record("running", "segment", 5, 64),
        _record("running", "statistics", 3, 16),
        _record("failed", "segment", 7, 64, error="big.tif: ran out of memory"),
    ]
    events.clear()
    with _polled(resumed) as client:
        client.wait_job("J", interval=0, progress=events.append)
    assert [(e.stage, e.done, e.total) for e in events] == [
        ("segment", 5, 64), ("statistics", 3, 16), ("statistics", 16, 16), ("segment", 7, 64),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def model_id(alice, container: Path) -> str:
    return alice.upload_model(container)["id"]


@pytest.fixture(scope="module")
def slow_id(alice, image_root: Path) -> str:
    """A 2-channel identity model of about 0.1 s a 64² tile, below the root (for analyses)."""
    path = image_root / "words-slow.czann"
    convert_onnx(slow_onnx(trips=30_000), path, classes=["a", "b"], min_overlap=0,
                 model_type="MultiClassSemanticSegmentation")  # fmt: skip
    return alice.upload_model(path)["id"]


@pytest.fixture(scope="module")
def images(image_root: Path) -> list[str]:
    """Three 2-channel 256² images (16 tiles of 64 each)."""
    image, _ = synthetic_nuclei((256, 256), density=0.004, seed=11)
    two = np.stack([image[0], image[0][::-1]]).astype(np.uint16)
    (image_root / "words").mkdir(exist_ok=True)
    tifffile.imwrite(image_root / "words" / "one.tif", image[0])
    names = [f"words/p{i}.ome.tif" for i in (1, 2, 3)]
    for name in names:
        tifffile.imwrite(image_root / name, two, metadata={"axes": "CYX"})
    return names


def test_a_jobs_progress_in_a_log_and_its_first_step(alice, model_id, images, monkeypatch, capsys):
    seen: list[dict] = []
    polled = alice.job

    def recording(job_id: str) -> dict:
        seen.append(polled(job_id))
        return seen[-1]

    monkeypatch.setattr(alice, "job", recording)
    job = alice.submit_job(
        model_id, image_path="words/one.tif", tile_size=64, normalize="percentile:1,99.8",
        outputs=["labels", "instances"], instances={"class": 2}, measure=True,
    )  # fmt: skip
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=POLL_S, progress=True)
    assert done["status"] == "done", done
    steps = [s["step"] for s in seen if s["status"] == "running" and s["step"]]  # None: not yet
    assert steps and steps[0] in ("starting", "statistics"), steps  # not segment at 0 of 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == f"job {job['id']}: done", lines
    stages = [line.split(":")[0] for line in lines[:-1]]
    assert "segment" in stages and stages[-1] == "measure", lines
    order = ["statistics", "segment", "instances", "measure"]
    assert stages == sorted(stages, key=order.index), lines  # each once, in order
    assert all("100%" in line for line in lines[:-1]), lines


def test_delete_says_whether_it_cancelled_or_removed_the_job(
    alice, server, tokens, slow_id, images
):
    job = alice.submit_job(slow_id, image_path="words/p1.ome.tif", tile_size=64, batch_size=1)
    url, auth = f"{server.url}/jobs/{job['id']}", {"Authorization": f"Bearer {tokens['alice']}"}
    cancelled = httpx.delete(url, headers=auth, timeout=60)
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["id"] == job["id"] and cancelled.json()["status"] == "cancelled"
    assert alice.delete_job(job["id"]) is None  # removed: 204, no body
    assert httpx.get(url, headers=auth).status_code == 404
    running = alice.submit_job(slow_id, image_path="words/p1.ome.tif", tile_size=64)
    assert alice.delete_job(running["id"])["status"] == "cancelled"  # the client says so too
    assert alice.delete_job(running["id"]) is None
    responses = httpx.get(f"{server.url}/openapi.json").json()["paths"]["/jobs/{job_id}"]
    assert {"202", "204"} <= set(responses["delete"]["responses"])


def test_a_resumed_analysis_counts_its_earlier_images_and_keeps_the_lock_in_the_log(
    alice, server, image_root, images, slow_id, tmp_path
):
    settings = tmp_path / "slow.yaml"
    settings.write_text(
        "version: 1\nchannels: [C0, C1]\ntile_size: 64\nclasses:\n  - name: a\n"
        "    segmenter:\n      kind: model\n      model: words-slow.czann\n"  # from the root
        "      class: a\n      channels: [C0, C1]\n"
    )
    job = alice.submit_analysis(settings, image_paths=images)
    deadline = time.monotonic() + WAIT_S
    while (state := alice.job(job["id"]))["done"] < 1 and time.monotonic() < deadline:
        time.sleep(POLL_S)
    stopped = alice.cancel_job(job["id"])  # its process is stopped as a server's SIGTERM stops it
    assert stopped["status"] == "cancelled" and 1 <= stopped["done"] < 3, stopped
    alice.resume_job(job["id"])
    seen = []
    while (state := alice.job(job["id"]))["status"] in ("queued", "running"):
        seen.append((state["done"], state["total"]))
        time.sleep(POLL_S)
    assert state["status"] == "done" and (state["done"], state["total"]) == (3, 3), state
    assert all(total in (0, 3) for _, total in seen), seen  # never "of 2"
    assert all(done >= stopped["done"] for done, _ in seen), seen
    assert not [w for w in state["warnings"] if "lock" in w or "process" in w], state["warnings"]
    assert "the results folder's lock was left" in server.log.read_text()  # the log has it


def test_the_landing_page_a_json_body_sent_as_text_and_segments_result(
    alice, server, tokens, model_id, image_root, tmp_path
):
    page = httpx.get(f"{server.url}/").text
    assert "Prometheus metrics</a> (needs an admin token)" in page
    sent = httpx.post(
        f"{server.url}/jobs",
        content=b'{"model_id": "nuclei", "image_path": "words/one.tif"}',
        headers={"Authorization": f"Bearer {tokens['alice']}", "Content-Type": "text/plain"},
    )
    assert sent.status_code == 422
    assert sent.json()["detail"][0]["msg"] == (
        "send the request as JSON (Content-Type: application/json)"
    )
    tifffile.imwrite(tmp_path / "local.tif", np.zeros((48, 40), np.uint8))
    result = alice.segment(tmp_path / "local.tif", model_id, tmp_path / "out.ome.zarr")
    assert isinstance(result, Segmentation) and result == tmp_path / "out.ome.zarr"
    assert Client.segment.__annotations__["return"] == "Segmentation"
