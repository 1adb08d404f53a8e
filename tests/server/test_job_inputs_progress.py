"""A segment job's inputs, checked where they can be and said in the job's words, and its
progress after the engine:

- channel names in a job's ``channels`` are chosen at submit as the run chooses them (a name
  the image lacks answers 422, naming it and the image's channels);
- a channel mismatch found when the job runs (its image replaced since submit, say) names
  the job's ``channels`` field, not the command line's ``--channels``;
- ``scale: auto`` is estimated once per job, and the factor it chose counts in a batch's memory
  as at submit a number does;
- steps ``instances`` and ``measure`` report ``done``/``total`` of their tiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.client import Client, ServerResponseError
from scopeml.errors import IncompatibleModelError
from scopeml.io.ometiff import write_ome_tiff
from scopeml.model import open_model
from scopeml.model.registry import resolve_model
from scopeml.server._job_child import RUNNERS, run_in_child
from scopeml.server.database import Database
from scopeml.server.jobs import _JobProgress
from scopeml.server.limits import job_memory, megabytes
from scopeml.server.models import RUNTIME_KEY
from scopeml.synthetic import synthetic_nuclei
from scopeml.tiling import size
from scopeml.tiling.size import recorded_auto_scale

from .conftest import ServerProcess, make_container, own_server
from .test_job_scale_auto import chosen, shrunk_scene

MB = 2**20
TILE_MEMORY_MB = 60  # a batch of nuclei on 128² fits (~14 MB), at auto's 3× (~123 MB) not
WAIT_S = 240.0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``named.ome.tif``: DAPI and Actin; ``small.tif``: nuclei that auto magnifies 3×."""
    folder = tmp_path_factory.mktemp("inputs-root")
    nuclei, _ = synthetic_nuclei((64, 80), density=0.004, seed=3)
    stack = np.stack([nuclei[0].astype(np.uint16), np.full((64, 80), 7, np.uint16)])
    write_ome_tiff(folder / "named.ome.tif", stack, axes="CYX", channel_names=["DAPI", "Actin"])
    tifffile.imwrite(folder / "small.tif", shrunk_scene(128, seed=3))
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(
        tmp_path_factory, "inputs", "--allowed-root", str(root),
        "--max-tile-memory-mb", str(TILE_MEMORY_MB),
    )  # fmt: skip


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def model_id(alice: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = make_container(tmp_path_factory.mktemp("inputs-model") / "one.czann")
    return alice.upload_model(path)["id"]


def test_a_channel_name_the_image_lacks_answers_422_at_submit(alice, model_id):
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job(model_id, image_path="named.ome.tif", channels=["GFP"], tile_size=64)
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert "channels: named.ome.tif: no channel 'GFP'; the image has DAPI, Actin" in message
    with pytest.raises(ServerResponseError) as err:  # the run's own refusal, said at submit
        alice.submit_job(model_id, image_path="named.ome.tif", channels=["actin"], tile_size=64)
    assert err.value.status_code == 422  # the name in other case is named
    assert "no channel 'actin' (did you mean 'Actin'?); the image has DAPI, Actin" in str(err.value)
    assert len(alice.list_jobs()) == before  # nothing queued
    job = alice.submit_job(model_id, image_path="named.ome.tif", channels=["DAPI"], tile_size=64)
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert done["status"] == "done", done["error"]


def test_auto_past_the_memory_limit_fails_the_job_naming_the_factor(alice, root):
    factor = chosen(root / "small.tif")
    model = open_model(resolve_model("nuclei"))
    runtime = alice.get_model("nuclei")["spec"][RUNTIME_KEY]  # as submit counts it
    shape = (1, 1, 1, 1, 128, 128)
    at_one, at_factor = (
        job_memory({"scale": s}, model.spec, runtime, shape) for s in (None, factor)
    )
    assert at_one <= TILE_MEMORY_MB * MB < at_factor  # accepted at submit, over once chosen
    job = alice.submit_job("nuclei", image_path="small.tif", scale="auto")
    job = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
    assert job["status"] == "failed", job
    error = job["error"]
    assert error.startswith(f"small.tif: scale auto chose {factor:g} (objects ~"), error
    assert f"the limit is {megabytes(TILE_MEMORY_MB * MB)} MB: give a smaller scale" in error
    assert job["done"] in (0, None)  # refused before the engine ran a tile
    assert str(root) not in error


def segment_task(tmp: Path, model: Path, image: Path, **options: Any) -> dict[str, Any]:
    """What the server hands a segment job's process (:meth:`JobRunner._task`)."""
    return {
        "kind": "segment",
        "model": str(model),
        "name": image.name,
        "model_name": None,
        "time_budget": None,
        "image": str(image),
        "options": options,
        "output": str(tmp / "result.ome.zarr"),
        "table": str(tmp / f"objects.{options['measure']}") if "measure" in options else None,
        "stage": str(tmp / "stage"),
        "roots": [str(image.parent), str(model.parent)],
        "max_job_pixels": 2**34,
        "max_tile_memory": 2**30,
        "runtime_per_pixel": 0.0,
    }


def test_auto_is_estimated_once_per_job(root, tmp_path, monkeypatch):
    calls = []
    estimate = size._estimate  # what auto_scale measures by

    def counted(*args, **kwargs):
        calls.append(args)
        return estimate(*args, **kwargs)

    monkeypatch.setattr(size, "_estimate", counted)
    task = segment_task(tmp_path, resolve_model("nuclei"), root / "small.tif", scale="auto")
    RUNNERS["segment"](task, lambda event: None)  # the job's run, in this process
    assert len(calls) == 1
    done = recorded_auto_scale(tmp_path / "result.ome.zarr")
    assert done is not None and done.scale == chosen(root / "small.tif") > 1  # recorded


def test_a_run_time_channel_mismatch_names_the_jobs_channels_field(tmp_path):
    """The job's image has 3 channels when it runs (replaced since submit, which saw 1): the
    engine's refusal names the job's ``channels`` field, not the command line's."""
    image = tmp_path / "replaced.ome.tif"
    nuclei, _ = synthetic_nuclei((64, 80), density=0.004, seed=3)
    stack = np.stack([nuclei[0].astype(np.uint16)] * 3)
    write_ome_tiff(image, stack, axes="CYX", channel_names=["GFP", "Hoechst", "BF"])
    task = segment_task(tmp_path, make_container(tmp_path / "one.czann"), image, tile_size=64)
    with pytest.raises(IncompatibleModelError) as err:
        run_in_child(task, lambda done, total: None, (), None)
    message = err.value.problem
    assert message.startswith("image has 3 channels; model "), message
    assert message.endswith("choose it with the job's channels option from GFP, Hoechst, BF")
    assert "--channels" not in message and "in Python" not in message
    assert not (tmp_path / "result.ome.zarr").exists()


def test_instances_and_measure_report_their_tiles(tmp_path):
    image = tmp_path / "nuclei.tif"
    nuclei, _ = synthetic_nuclei((128, 160), density=0.003, seed=5)
    tifffile.imwrite(image, nuclei[0].astype(np.uint16))
    model = make_container(tmp_path / "m.czann")
    options = {"outputs": ["instances"], "measure": "csv", "tile_size": 48,
               "instances": {"class": "c1"}}  # fmt: skip
    task = segment_task(tmp_path / "job", model, image, **options)
    db = Database(tmp_path / "scopeml.db")
    db.add_job({"id": "j", "owner": "alice", "model_id": "m", "image": str(image),
                "options": options})  # fmt: skip
    progress = _JobProgress(db, "j", 0)
    seen: list[tuple[str, int, int]] = []

    def on_progress(done: int, total: int) -> None:
        progress(done, total)
        record = db.get_job("j")
        seen.append((record["step"], record["done"], record["total"]))

    progress.step("segment")
    run_in_child(task, on_progress, (), None, progress.step)
    engine = [(done, total) for step, done, total in seen if step == "segment"]
    assert engine[-1][0] == engine[-1][1] == 12  # 3 × 4 tiles of 48 (128 × 160)
    # label, relabel and grow over the 12 tiles; find objects and measure over 1 (up to 1024²)
    passes = {"instances": 3 * 12, "measure": 2}
    for step in ("instances", "measure"):
        counts = [(done, total) for name, done, total in seen if name == step]
        assert counts, f"no progress in step {step}: {seen}"
        dones = [done for done, _ in counts]
        assert dones == sorted(dones)  # never goes back
        assert counts[-1][0] == counts[-1][1] == passes[step]
    assert db.get_job("j")["step"] == "measure"
    assert (tmp_path / "job" / "objects.csv").is_file()
    labels = zarr.open_array(str(tmp_path / "job" / "result.ome.zarr" / "instances" / "0"))
    assert labels.attrs["n_objects"] > 0
    db.close()
