"""A server segment job's store records the image and the model by the names the user knows
them by, never by where the server keeps them: its run record (the store's ``zarr.json`` and a
partial store's ``.scopeml-run.json``), its instances and table hold neither the data folder
nor the allowed root, and a resume is still checked against the image's content. A local run
records the image's path, as before."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from scopeml.api import segment
from scopeml.cli import main
from scopeml.client import Client
from scopeml.errors import Cancelled, IncompleteOutputError
from scopeml.model import convert_onnx
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, own_server
from .slow_model import slow_onnx

WAIT_S = 300.0
POLL_S = 0.05
JOB = {"tile_size": 64, "batch_size": 1, "outputs": ["labels", "instances"], "measure": True}


def two_channels(seed: int) -> np.ndarray:
    """``C×Y×X``: nuclei dark on the first channel and bright on the second, so the slow
    identity model's second class (``nucleus``) holds them."""
    image, _ = synthetic_nuclei((256, 320), density=0.003, seed=seed)
    bright = image[0].astype(np.uint16)
    return np.stack([bright.max() - bright, bright])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("public-names-root")
    (root / "plate").mkdir()
    tifffile.imwrite(root / "plate" / "cells.ome.tif", two_channels(3), metadata={"axes": "CYX"})
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "public-names", "--allowed-root", str(root))


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def slow(alice: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-class identity model (about 0.1 s a 64² tile) whose container names no model: the
    server keeps it under a random id, which the model would otherwise be named by."""
    path = tmp_path_factory.mktemp("public-names-model") / "slow.czann"
    convert_onnx(
        slow_onnx(trips=30_000), path, classes=["background", "nucleus"], min_overlap=0,
        model_type="MultiClassSemanticSegmentation",
    )  # fmt: skip
    return alice.upload_model(path)["id"]


def secrets(server: ServerProcess, root: Path) -> list[bytes]:
    """Where the server keeps its files, as any record could spell them."""
    folders = {server.data_dir, server.data_dir.resolve(), root, root.resolve()}
    return [str(folder).encode() for folder in folders]


def leaks(folder: Path, hidden: list[bytes]) -> list[Path]:
    """The files below ``folder`` whose bytes hold any of ``hidden``."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) > 10  # the store, its arrays and the table: something to search
    return [p for p in files if any(secret in p.read_bytes() for secret in hidden)]


def record(store: Path) -> dict:
    return zarr.open_group(str(store), mode="r").attrs["scopeml"]


def test_a_stopped_and_resumed_job_records_public_names_only(server, alice, slow, root, tmp_path):
    job = alice.submit_job(slow, image_path="plate/cells.ome.tif", **JOB)
    deadline = time.monotonic() + WAIT_S
    while (state := alice.job(job["id"]))["step"] != "segment" or state["done"] < 3:
        assert state["status"] in ("queued", "running") and time.monotonic() < deadline, state
        time.sleep(POLL_S)
    stopped = alice.cancel_job(job["id"])
    assert stopped["status"] == "cancelled" and stopped["done"] < stopped["total"], stopped
    partial = next((server.data_dir / "jobs" / job["id"] / "stage").glob("*.partial"))
    run = json.loads((partial / ".scopeml-run.json").read_text())
    assert run["image"]["name"] == "plate/cells.ome.tif" and "path" not in run["image"]
    hidden = secrets(server, root)
    assert not any(secret in (partial / ".scopeml-run.json").read_bytes() for secret in hidden)

    alice.resume_job(job["id"])  # checked against the record: the same name and content
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)
    assert done["status"] == "done" and done["error"] is None, done
    result = alice.download_result(job["id"], tmp_path / "dl")
    assert leaks(result.parent, hidden) == []
    recorded = record(result)
    assert recorded["image"]["name"] == "plate/cells.ome.tif" and "path" not in recorded["image"]
    assert recorded["image"]["content"]["sha256"] == run["image"]["content"]["sha256"]
    assert recorded["model"]["name"] == "slow"  # the upload's name, not the server's id
    instances = zarr.open_array(str(result / "instances" / "0"), mode="r")[...]
    table = pd.read_csv(result.parent / f"{job['id']}.csv")
    assert instances.max() >= 5 and len(table) == len(np.unique(instances[instances > 0]))


def test_a_job_on_an_upload_names_the_upload(server, alice, slow, root, tmp_path):
    image = tmp_path / "mine.ome.tif"
    tifffile.imwrite(image, two_channels(4), metadata={"axes": "CYX"})
    upload = alice.upload_image(image)
    job = alice.submit_job(slow, upload_id=upload["id"], **JOB)
    done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)
    assert done["status"] == "done" and done["error"] is None, done
    result = alice.download_result(job["id"], tmp_path / "dl")
    assert leaks(result.parent, secrets(server, root)) == []
    assert record(result)["image"]["name"] == "mine.ome.tif"


def test_a_local_run_records_the_path_and_a_public_name_is_checked_on_resume(tmp_path, capsys):
    folder = tmp_path / "private-folder"
    folder.mkdir()
    image, _ = synthetic_nuclei((128, 160), density=0.004, seed=5)
    path = folder / "nuclei.tif"
    tifffile.imwrite(path, image[0])
    out = tmp_path / "cli.ome.zarr"
    assert main(["segment", str(path), "-m", "nuclei", "-o", str(out), "-q"]) == 0
    assert record(out)["image"]["path"] == str(path.resolve())  # locally, as before

    named = tmp_path / "named"
    options = {"tile_size": 64, "outputs": ["labels", "instances"], "ome_tiff": True}
    seen = []

    def stop_after_two(event) -> None:
        seen.append(event)
        if event.stage == "segment" and event.done >= 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        segment(path, "nuclei", named / "o.ome.zarr", **options, progress=stop_after_two,
                public_name="nuclei.tif")  # fmt: skip
    store = segment(path, "nuclei", named / "o.ome.zarr", **options, resume=True,
                    measure=named / "o.csv", public_name="nuclei.tif").path  # fmt: skip
    assert record(store)["image"]["name"] == "nuclei.tif"
    copies = sorted(p.name for p in named.glob("*.ome.tiff"))
    assert copies == ["o.instances.ome.tiff", "o.labels.ome.tiff"]
    assert leaks(named, [str(folder).encode(), str(folder.resolve()).encode()]) == []

    with pytest.raises(Cancelled):  # a stopped run, then the image changes under its name
        segment(path, "nuclei", named / "p.ome.zarr", **options, progress=stop_after_two,
                public_name="nuclei.tif")  # fmt: skip
    tifffile.imwrite(path, image[0][::-1])
    with pytest.raises(IncompleteOutputError, match=r"the image nuclei\.tif is not the file"):
        segment(path, "nuclei", named / "p.ome.zarr", **options, resume=True,
                public_name="nuclei.tif")  # fmt: skip
