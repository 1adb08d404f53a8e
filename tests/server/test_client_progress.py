"""``Client.wait_job(progress=...)`` follows a server job as ``segment(progress=...)`` follows a
local run (step, done, total), and a callback that raises ``Cancelled`` cancels the job."""

from __future__ import annotations

from pathlib import Path

import pytest
import tifffile

from scopeml.errors import Cancelled
from scopeml.progress import ProgressEvent
from scopeml.synthetic import synthetic_nuclei

WAIT_S = 120.0


@pytest.fixture(scope="module")
def model_id(alice, container: Path) -> str:
    return alice.upload_model(container)["id"]


@pytest.fixture(scope="module")
def image_path(image_root: Path) -> str:
    image, _ = synthetic_nuclei((448, 416), density=0.002, seed=5)
    tifffile.imwrite(image_root / "progress.tif", image[0])
    return "progress.tif"


def test_wait_job_reports_the_jobs_step_and_tiles(alice, model_id, image_path):
    events: list[ProgressEvent] = []
    job = alice.submit_job(model_id, image_path=image_path, tile_size=64)
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.05, progress=events.append)
    assert done["status"] == "done"
    assert events, "no progress reported"
    assert len(set(events)) == len(events)  # only when it moved
    last = events[-1]
    assert (last.stage, last.done, last.total, last.unit) == (
        "segment",
        done["total"],
        done["total"],
        "tile",
    )
    assert all(event.stage == "segment" for event in events)
    assert [event.done for event in events] == sorted(event.done for event in events)


def test_a_progress_callback_that_cancels_cancels_the_job(alice, model_id, image_path):
    def stop_after_three(event: ProgressEvent) -> None:
        if event.stage == "segment" and event.done >= 3:
            raise Cancelled("stopped by the user")

    job = alice.submit_job(model_id, image_path=image_path, tile_size=32, batch_size=1)
    with pytest.raises(Cancelled, match="stopped by the user"):
        alice.wait_job(job["id"], timeout=WAIT_S, interval=0.05, progress=stop_after_three)
    stopped = alice.job(job["id"])
    assert stopped["status"] == "cancelled", stopped
    assert stopped["done"] < stopped["total"]
    alice.resume_job(job["id"])
    assert alice.wait_job(job["id"], timeout=WAIT_S, interval=0.05)["status"] == "done"
