"""A job's record as an admin reads it (nu4 findings 6-7 and nits): an analysis names all its
images; a resume never reads as finished before its work restarts; ``attempts`` counts a
cancelled run; a job cancelled while queued says it has no partial output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scopeml.server.config import ServerConfig, private_dir
from scopeml.server.database import Database
from scopeml.server.jobs import ANALYSIS, IMAGES_NAME, _JobProgress, _tile_total
from scopeml.server.schemas import job_info


@pytest.fixture
def db(tmp_path: Path):
    db = Database(tmp_path / "s.db")
    yield db
    db.close()


def _add(db: Database, job_id: str, image: str = "/x.tif", model_id: str = "m") -> None:
    db.add_job({"id": job_id, "owner": "a", "model_id": model_id, "image": image, "options": {}})


def test_a_job_cancelled_while_queued_says_it_has_no_partial_output(db):
    _add(db, "queued")
    assert db.cancel_job("queued")
    job = db.get_job("queued")
    assert job["status"] == "cancelled" and job["attempts"] == 0
    assert "no partial output" in job["error"] and "kept" not in job["error"]


def test_a_cancelled_run_counts_as_an_attempt_but_not_towards_the_crash_limit(db):
    _add(db, "ran")
    assert db.start_job_attempt("ran") == 1
    db.stopped_cleanly("ran")  # the run was cancelled
    assert db.cancel_job("ran")
    job = db.get_job("ran")
    assert job["attempts"] == 1 and "partial output is kept" in job["error"]
    assert db.requeue_job("ran")
    assert db.cancel_job("ran")  # queued again after a run: its partial output is still there
    assert "partial output is kept" in db.get_job("ran")["error"]
    assert db.requeue_job("ran")
    assert db.start_job_attempt("ran") == 1  # the cancelled run was no crash
    assert db.get_job("ran")["attempts"] == 2
    assert db.start_job_attempt("ran") == 2  # the previous run ended without a clean stop


class _Recorder:
    """A database stand-in that keeps the job updates in order."""

    def __init__(self) -> None:
        self.updates: list[dict] = []

    def update_job(self, job_id: str, **fields) -> None:
        self.updates.append(fields)


def test_progress_right_after_a_resume_does_not_read_finished():
    db = _Recorder()
    progress = _JobProgress(db, "j", 5, _tile_total({"step": "segment", "total": 64}, 5))
    progress.step("segment")  # the resumed attempt, before the engine counts
    assert db.updates[-1] == {"step": "segment", "done": 5, "total": 64}
    progress.step("statistics")
    progress(3, 16)
    assert db.updates[-1] == {"done": 3, "total": 16}
    progress.step("segment")
    assert db.updates[-1] == {"step": "segment", "done": 5, "total": 64}
    progress(0, 59)  # the engine counts the tiles left
    progress(2, 59)
    assert db.updates[-1] == {"done": 7, "total": 64}


@pytest.mark.parametrize(
    ("job", "already", "expected"),
    [
        ({"step": "segment", "total": 64}, 5, 64),
        ({"step": "instances", "total": 64}, 64, 64),
        ({"step": "statistics", "total": 16}, 5, 0),  # blocks, not tiles: not counted yet
        ({"step": "segment", "total": 3}, 5, 0),  # fewer than written: not a tile count
        ({"step": None, "total": 0}, 0, 0),
    ],
)
def test_the_tile_total_a_resume_shows_before_its_engine_counts(job, already, expected):
    assert _tile_total(job, already) == expected
    db = _Recorder()
    _JobProgress(db, "j", already, expected).step("segment")
    done, total = db.updates[-1]["done"], db.updates[-1]["total"]
    assert done == already and (total == 0 or total > done or already == expected)


def test_an_analysis_record_names_all_its_images_and_uploads(tmp_path, db):
    root = tmp_path / "root"
    config = ServerConfig(tmp_path / "data", allowed_root=root)
    uploads = [config.uploads_dir / "u1" / "one.tif", config.uploads_dir / "u2" / "two.tif"]
    images = [str(root / "plate" / "a.ome.tif"), *(str(path) for path in uploads)]
    _add(db, "an", images[0], ANALYSIS)
    (private_dir(config.jobs_dir / "an") / IMAGES_NAME).write_text(json.dumps(images))
    info = job_info(db.get_job("an"), config)
    assert info.image == "plate/a.ome.tif" and info.upload_id is None  # the first, as before
    assert info.images == ["plate/a.ome.tif", "one.tif", "two.tif"]
    assert info.upload_ids == ["u1", "u2"]
    assert str(tmp_path) not in json.dumps(info.model_dump())

    _add(db, "seg", str(uploads[1]))
    single = job_info(db.get_job("seg"), config)
    assert single.images == ["two.tif"] and single.upload_ids == ["u2"]


def test_a_resumed_job_waiting_in_the_queue_shows_no_step_but_keeps_its_count(tmp_path, db):
    """Queued again, it read as ``step: segment``, as if running; its tile count stays (the
    resumed run starts from it, :func:`_tile_total`)."""
    root = tmp_path / "root"
    config = ServerConfig(tmp_path / "data", allowed_root=root)
    _add(db, "j", str(root / "a.tif"))
    db.update_job("j", status="running", step="segment", done=5, total=64)
    assert job_info(db.get_job("j"), config).step == "segment"
    db.update_job("j", status="cancelled")
    assert job_info(db.get_job("j"), config).step == "segment"  # where it stopped
    assert db.requeue_job("j")
    queued = job_info(db.get_job("j"), config)
    assert queued.status == "queued" and queued.step is None
    assert (queued.done, queued.total) == (5, 64) and db.get_job("j")["step"] == "segment"
