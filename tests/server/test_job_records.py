"""Jobs as a facility runs them (nu2 findings 4-8): a job over the pixel limit is refused at
submit from the size its image declares; the normalisation's statistics pass shows as progress;
cancelling keeps a resumable record; downloads never replace another job's result; records,
uploads and analysis results name images as the client knows them, never by server paths."""

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
from scopeml.io import create_ome_zarr, open_ome_zarr_array
from scopeml.model import convert_onnx
from scopeml.server.database import Database
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, make_container, own_server
from .slow_model import slow_onnx
from .test_analysis import SETTINGS

WAIT_S = 180.0
POLL_S = 0.05


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("records-images")
    image, _ = synthetic_nuclei((384, 384), density=0.003, seed=7)
    two = np.stack([image[0], image[0][::-1]]).astype(np.uint16)
    tifffile.imwrite(root / "two.ome.tif", two, metadata={"axes": "CYX"})
    small, _ = synthetic_nuclei((96, 112), density=0.003, seed=8)
    (root / "plate1").mkdir()
    tifffile.imwrite(root / "plate1" / "a.tif", small[0])
    tifffile.imwrite(root / "b.tif", image[0][:128, :160])
    # 16 KB on disk, 4·10¹⁰ pixels declared: no chunk is written
    create_ome_zarr(
        root / "huge.ome.zarr", shape=(200_000, 200_000), dtype="uint8", axes="YX",
        chunks=(4096, 4096),
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "records", "--allowed-root", str(root))


@pytest.fixture(scope="module")
def tokens(server: ServerProcess) -> dict[str, str]:
    return server.tokens


@pytest.fixture(scope="module")
def slow(alice: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-channel identity model slow enough (about 0.1 s a 64² tile) to cancel mid-run."""
    path = tmp_path_factory.mktemp("records-slow") / "slow.czann"
    convert_onnx(
        slow_onnx(trips=30_000), path, classes=["a", "b"], min_overlap=0,
        model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip
    return alice.upload_model(path)["id"]


def _running(client: Client, job_id: str, tiles: int = 3) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        state = client.job(job_id)
        if state["status"] != "queued" and state["step"] == "segment" and state["done"] >= tiles:
            return state
        time.sleep(POLL_S)
    raise AssertionError(f"job {job_id} did not run: {state}")


def _labels(store: Path) -> np.ndarray:
    return np.asarray(open_ome_zarr_array(store / "labels", mode="r")[...])


def test_a_tiny_zarr_declaring_a_huge_image_is_refused_at_submit(alice, root):
    assert sum(f.stat().st_size for f in (root / "huge.ome.zarr").rglob("*")) < 16_384
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job("nuclei", image_path="huge.ome.zarr")
    assert err.value.status_code == 422
    message = str(err.value)
    assert "huge.ome.zarr: declares 200000 × 200000 pixels" in message
    assert "--max-job-pixels" in message and str(root) not in message
    assert len(alice.list_jobs()) == before  # nothing queued


def test_a_smaller_limit_refuses_a_job_and_an_analysis_at_submit(tmp_path, root):
    """An analysis counts all its images' pixels (× its largest scale²) against the limit at
    submit, as a segment job counts its image's: a 422 naming the largest, nothing queued."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = Database(data_dir / "scopeml.db")
    token = db.create_token("carol")
    db.close()
    server = ServerProcess(
        data_dir, "--allowed-root", str(root), "--max-job-pixels", str(128 * 160)
    ).start()
    try:
        with Client(server.url, token) as client:
            job = client.submit_job("nuclei", image_path="b.tif")  # exactly at the limit
            assert client.wait_job(job["id"])["status"] == "done"
            with pytest.raises(ServerResponseError) as err:
                client.submit_job("nuclei", image_path="b.tif", scale=2.0)
            assert err.value.status_code == 422 and "at scale 2" in str(err.value)
            settings = tmp_path / "blobs.yaml"
            settings.write_text(SETTINGS)
            before = len(client.list_jobs())
            with pytest.raises(ServerResponseError) as err:  # each under it, both over it
                client.submit_analysis(settings, image_paths=["plate1/a.tif", "b.tif"])
            assert err.value.status_code == 422
            message = str(err.value)
            assert "the analysis's 2 images declare 31,232 pixels in all" in message, message
            assert "the largest, b.tif: 128 × 160" in message and "--max-job-pixels" in message
            assert str(root) not in message and str(data_dir) not in message
            scaled = tmp_path / "scaled.yaml"
            scaled.write_text(
                "version: 1\nchannels: [C0]\nclasses:\n  - name: nucleus\n    segmenter:\n"
                "      kind: model\n      model: nuclei\n      class: nucleus\n"
                "      channels: [C0]\n      scale: 2\n"
            )
            with pytest.raises(ServerResponseError) as err:  # 96 × 112 × 2²
                client.submit_analysis(scaled, image_paths=["plate1/a.tif"])
            assert err.value.status_code == 422 and "pixels in all, at scale 2" in str(err.value)
            assert len(client.list_jobs()) == before  # nothing queued
            accepted = client.submit_analysis(settings, image_paths=["b.tif"])  # at the limit
            assert client.wait_job(accepted["id"], timeout=WAIT_S)["status"] == "done"
    finally:
        server.stop()


def test_the_statistics_pass_is_the_jobs_progress(tmp_path):
    """The child reports the normalisation's statistics pass as a step with its own progress,
    then the tiles; the job record shows each."""
    from scopeml.server._job_child import run_in_child
    from scopeml.server.jobs import _JobProgress

    model = make_container(tmp_path / "unet.czann")
    image, _ = synthetic_nuclei((256, 256), density=0.003, seed=3)
    tifffile.imwrite(tmp_path / "a.tif", image[0])
    db = Database(tmp_path / "s.db")
    db.add_job({"id": "j", "owner": "a", "model_id": "m", "image": "x", "options": {}})
    seen: list[tuple] = []
    progress = _JobProgress(db, "j", 0)

    def on_progress(done: int, total: int) -> None:
        progress(done, total)
        job = db.get_job("j")
        seen.append((job["step"], job["done"], job["total"]))

    def on_step(name: str) -> None:
        progress.step(name)
        seen.append((name,))

    task = {
        "kind": "segment", "model": str(model), "time_budget": 0, "image": str(tmp_path / "a.tif"),
        "options": {"normalize": "percentile:1,99.8", "tile_size": 64},
        "output": str(tmp_path / "job" / "result.ome.zarr"), "table": None,
        "stage": str(tmp_path / "job" / "stage"), "roots": [str(tmp_path)],
    }  # fmt: skip
    run_in_child(task, on_progress, (), None, on_step)
    steps = [entry[0] for entry in seen if len(entry) == 1]
    assert steps == ["statistics", "segment"], seen
    statistics = [entry for entry in seen if entry[0] == "statistics" and len(entry) == 3]
    assert statistics and statistics[-1][1] == statistics[-1][2] > 0  # every block read
    tiles = [entry for entry in seen if entry[0] == "segment" and len(entry) == 3]
    assert tiles[-1][1:] == (16, 16)  # 4 × 4 tiles of 64
    db.close()


def test_cancelling_keeps_a_record_that_resumes_to_the_uninterrupted_result(
    server, alice, slow, tmp_path
):
    job = alice.submit_job(slow, image_path="two.ome.tif", tile_size=64, batch_size=1)
    assert job["image"] == "two.ome.tif" and job["upload_id"] is None
    state = _running(alice, job["id"])
    assert state["done"] < state["total"], state
    cancelled = alice.cancel_job(job["id"])
    assert cancelled["status"] == "cancelled", cancelled
    assert "resume" in cancelled["error"] and "partial output is kept" in cancelled["error"]
    assert cancelled["attempts"] == 1  # the run it had, cancelled (nu4 finding 7)
    listed = {j["id"]: j for j in alice.list_jobs()}
    assert listed[job["id"]]["status"] == "cancelled"
    stage = server.data_dir / "jobs" / job["id"] / "stage"
    assert any(stage.iterdir())  # the partial output is kept
    with pytest.raises(ServerResponseError) as err:
        alice.cancel_job(job["id"])
    assert err.value.status_code == 409
    assert "only a queued or running job can be cancelled" in str(err.value)
    with pytest.raises(ServerResponseError) as err:
        alice.download_result(job["id"], tmp_path)
    assert err.value.status_code == 409

    resumed = alice.resume_job(job["id"])
    assert resumed["status"] in ("queued", "running")
    seen = [resumed]  # until it finishes, it never reads as finished (nu4 finding 7)
    while seen[-1]["status"] in ("queued", "running"):
        time.sleep(POLL_S)
        seen.append(alice.job(job["id"]))
    unfinished = [(s["step"], s["done"], s["total"]) for s in seen[:-1]]
    assert all(s["step"] is None for s in seen if s["status"] == "queued"), seen  # not its last
    # before the resumed run's tiles restart, nothing reads as finished (the old run's count);
    # once they have, the last tiles may read 36 of 36 while the output is moved into place
    restart = next(i for i, s in enumerate(unfinished) if s[2] and s[1] < s[2])
    assert not [s for s in unfinished[:restart] if s[2] and s[1] >= s[2]], unfinished
    assert ("segment", 36) in {(step, total) for step, _, total in unfinished}, unfinished
    finished = alice.job(job["id"])
    assert finished["status"] == "done" and finished["error"] is None, finished
    assert finished["done"] == finished["total"] == 36  # 6 × 6 tiles of 64
    assert finished["attempts"] == 2  # the cancelled run and the resumed one

    whole = alice.submit_job(slow, image_path="two.ome.tif", tile_size=64, batch_size=1)
    assert alice.wait_job(whole["id"], timeout=WAIT_S, interval=0.1)["status"] == "done"
    resumed_labels = _labels(alice.download_result(job["id"], tmp_path))
    whole_labels = _labels(alice.download_result(whole["id"], tmp_path))
    assert np.array_equal(resumed_labels, whole_labels)
    assert set(np.unique(resumed_labels)) == {1, 2}  # both classes present: a real result


def test_delete_cancels_a_running_job_then_removes_it(server, alice, slow):
    job = alice.submit_job(slow, image_path="two.ome.tif", tile_size=64, batch_size=1)
    _running(alice, job["id"], tiles=1)
    queued = alice.submit_job(slow, image_path="two.ome.tif", tile_size=64)  # waits its turn
    alice.delete_job(queued["id"])
    never_ran = alice.job(queued["id"])
    assert never_ran["status"] == "cancelled" and never_ran["attempts"] == 0
    assert "no partial output" in never_ran["error"], never_ran["error"]
    alice.delete_job(job["id"])
    stopped = alice.job(job["id"])
    assert stopped["status"] == "cancelled" and "partial output is kept" in stopped["error"]
    alice.delete_job(job["id"])
    with pytest.raises(ServerResponseError) as err:
        alice.job(job["id"])
    assert err.value.status_code == 404
    assert not (server.data_dir / "jobs" / job["id"]).exists()
    alice.delete_job(queued["id"])


def test_downloads_of_two_jobs_share_a_folder(alice, root, tmp_path):
    first = alice.submit_job("nuclei", image_path="plate1/a.tif", outputs=["instances"],
                             measure=True)  # fmt: skip
    second = alice.submit_job("nuclei", image_path="b.tif", outputs=["instances"],
                              measure=True)  # fmt: skip
    for job in (first, second):
        assert alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)["status"] == "done"
    a = alice.download_result(first["id"], tmp_path)
    b = alice.download_result(second["id"], tmp_path)
    assert a == tmp_path / f"{first['id']}.ome.zarr" and b == tmp_path / f"{second['id']}.ome.zarr"
    assert _labels(a).shape[-2:] == (96, 112) and _labels(b).shape[-2:] == (128, 160)
    tables = {p.name for p in tmp_path.glob("*.csv")}
    assert tables == {f"{first['id']}.csv", f"{second['id']}.csv"}
    table = tmp_path / f"{first['id']}.csv"
    table.write_text("mine\n")  # a table download_result wrote, then the user edited
    with pytest.raises(Exception, match="exists"):
        alice.download_table(first["id"], tmp_path)
    assert table.read_text() == "mine\n"
    assert alice.download_table(first["id"], tmp_path, overwrite=True) == table
    assert table.read_text() != "mine\n" and len(pd.read_csv(table)) > 0
    with pytest.raises(Exception, match="exists"):
        alice.download_result(first["id"], tmp_path)
    assert alice.download_result(first["id"], tmp_path, overwrite=True) == a
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_uploads_and_analyses_show_client_names_only(server, alice, root, tmp_path):
    source = tmp_path / "my cells#1.tif"
    source.write_bytes((root / "plate1" / "a.tif").read_bytes())
    upload = alice.upload_image(source)
    listed = {u["id"]: u for u in alice.list_uploads()}
    assert listed[upload]["name"] == "my_cells_1.tif"
    assert alice.list_uploads() == [upload] and repr(alice.list_uploads()[0]) == repr(upload)
    assert upload["id"] == upload and upload["name"] == "my_cells_1.tif"  # as upload_model's
    assert upload["size"] == source.stat().st_size == listed[upload]["size"]
    job = alice.submit_job("nuclei", upload_id=upload)
    assert job["image"] == "my_cells_1.tif" and job["upload_id"] == upload
    alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)

    settings = tmp_path / "blobs.yaml"
    settings.write_text(SETTINGS)
    analysis = alice.submit_analysis(settings, image_paths=["plate1/a.tif"], upload_ids=[upload])
    assert analysis["image"] == "plate1/a.tif"
    assert analysis["images"] == ["plate1/a.tif", "my_cells_1.tif"]  # all (nu4 finding 6)
    assert analysis["upload_ids"] == [upload]
    assert job["images"] == ["my_cells_1.tif"] and job["upload_ids"] == [upload]
    finished = alice.wait_job(analysis["id"], timeout=WAIT_S, interval=0.2)
    assert finished["status"] == "done" and finished["step"] == "analyze", finished
    assert finished["done"] == finished["total"] == 2
    results = alice.download_result(analysis["id"], tmp_path / "dl")
    assert results.name == f"{analysis['id']}-results"
    assert sorted(p.name for p in (results / "images").iterdir()) == ["a", "my_cells_1"]
    counts = pd.read_csv(results / "summary" / "counts.csv")
    assert counts["file"].tolist() == ["plate1/a.tif", "my_cells_1.tif"]
    record = json.loads((results / "images" / "my_cells_1" / "record.json").read_text())
    assert record["image"] == "my_cells_1.tif"
    secrets = (str(server.data_dir), str(root))
    for path in results.rglob("*"):
        if path.suffix in (".csv", ".json", ".html", ".yaml"):
            text = path.read_text()
            assert not any(s in text for s in secrets), path
    everything = json.dumps(alice.list_jobs())
    assert not any(s in everything for s in secrets)


def test_a_job_on_a_model_unshared_since_does_not_resume_or_start(alice, bob, tmp_path_factory):
    """Bob's job on Alice's shared model was resumed (202) and ran on after she unshared it,
    and a job queued before ran to done: the model is checked where a job resumes and starts."""
    path = tmp_path_factory.mktemp("records-shared") / "shared.czann"
    convert_onnx(
        slow_onnx(trips=30_000), path, classes=["a", "b"], min_overlap=0,
        model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip
    model = alice.upload_model(path, shared=True)["id"]
    run = {"image_path": "two.ome.tif", "tile_size": 64, "batch_size": 1}
    job = bob.submit_job(model, **run)
    _running(bob, job["id"])
    assert bob.cancel_job(job["id"])["status"] == "cancelled"
    alice.share_model(model, shared=False)
    with pytest.raises(ServerResponseError) as err:
        bob.resume_job(job["id"])
    assert err.value.status_code == 409
    assert f"the job's model {model!r} was deleted or is no longer shared" in str(err.value)
    alice.share_model(model, shared=True)
    blocker = bob.submit_job(model, **run)  # one user's jobs hold one of the two job workers
    _running(bob, blocker["id"], tiles=1)
    queued = bob.submit_job(model, **run)  # queued while shared, unshared before it starts
    assert bob.job(queued["id"])["status"] == "queued"
    alice.share_model(model, shared=False)
    bob.cancel_job(blocker["id"])  # running, it runs on: only a start is checked
    deadline = time.monotonic() + 60
    while (state := bob.job(queued["id"]))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(POLL_S)
    assert state["status"] == "failed" and "no longer shared" in state["error"], state
