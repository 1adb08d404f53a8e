"""Jobs and image checks run in child processes (issue #19): a reader that crashes the process
(as pylibCZIrw can on a corrupt CZI) or allocates without bound fails that job or upload with a
reason; the server keeps serving every user."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.client import Client, ServerResponseError
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, make_container

WAIT_S = 120.0

#: A TIFF reader registered in every process through ``sitecustomize``: a file whose bytes hold
#: a marker crashes at open (``CRASH_OPEN``), crashes at its first region read (``CRASH_READ``)
#: or allocates 16 GB at it (``ALLOC_READ``); any other file is read by scopeml's reader.
READER = """
import os
import numpy as np
from scopeml.io.tiff import read_tiff

def read(path, **options):
    data = open(path, "rb").read()
    if b"CRASH_OPEN" in data:
        os.abort()
    image = read_tiff(path, **options)
    if b"CRASH_READ" in data:
        image.read = lambda **region: os.abort()
    elif b"ALLOC_READ" in data:
        image.read = lambda **region: np.ones(16 << 30, np.uint8)
    return image
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("isolation-images")
    image, _ = synthetic_nuclei((96, 80), density=0.003, seed=2)
    for name in ("fine", "CRASH_READ", "ALLOC_READ", "CRASH_OPEN"):
        tifffile.imwrite(root / f"{name.lower()}.tif", image[0], description=name)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    plugins = tmp_path_factory.mktemp("plugins")
    (plugins / "marker_reader.py").write_text(READER)
    (plugins / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            from scopeml.io.registry import READERS
            READERS[".tif"] = "marker_reader:read"
            """
        )
    )
    data_dir = tmp_path_factory.mktemp("isolation-data")
    from scopeml.server.database import Database

    db = Database(data_dir / "scopeml.db")
    tokens = {user: db.create_token(user) for user in ("alice", "bob")}
    db.close()
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(plugins), *sys.path])
    try:
        server = ServerProcess(data_dir, "--allowed-root", str(root), "--job-memory-mb", "3072")
        server.tokens = tokens
        server.start()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clients(server: ServerProcess) -> Iterator[dict[str, Client]]:
    with (
        Client(server.url, server.tokens["alice"]) as a,
        Client(server.url, server.tokens["bob"]) as b,
    ):
        yield {"alice": a, "bob": b}


@pytest.fixture(scope="module")
def unet(clients, tmp_path_factory) -> str:
    path = make_container(tmp_path_factory.mktemp("isolation-models") / "unet.czann")
    return clients["alice"].upload_model(path, shared=True)["id"]


def test_a_reader_that_crashes_fails_the_job_not_the_server(server, clients, unet):
    alice, bob = clients["alice"], clients["bob"]
    job = alice.submit_job(unet, image_path="crash_read.tif", tile_size=32)
    finished = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)
    assert finished["status"] == "failed", finished
    assert "killed by SIGABRT" in finished["error"]
    assert finished["attempts"] == 1
    assert server.process.poll() is None
    # the server and its job worker still serve another user
    other = bob.submit_job(unet, image_path="fine.tif", tile_size=32)
    assert bob.wait_job(other["id"], timeout=WAIT_S, interval=0.1)["status"] == "done"
    assert bob.health()["status"] == "ok"


def test_a_job_that_allocates_without_bound_fails_within_the_memory_limit(server, clients, unet):
    alice = clients["alice"]
    job = alice.submit_job(unet, image_path="alloc_read.tif", tile_size=32)
    finished = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.1)
    assert finished["status"] == "failed", finished
    assert "out of memory" in finished["error"]
    assert server.process.poll() is None


def test_an_image_whose_reader_crashes_is_refused_at_submit_and_upload(server, clients, unet, root):
    alice = clients["alice"]
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job(unet, image_path="crash_open.tif")
    assert err.value.status_code == 422
    assert "crash_open.tif: the reader crashed opening it (SIGABRT)" in str(err.value)
    with pytest.raises(ServerResponseError) as err:
        alice.upload_image(root / "crash_open.tif")
    assert err.value.status_code == 422
    assert "crash_open.tif: the reader crashed" in str(err.value)
    assert alice.list_uploads() == []  # nothing kept
    assert server.process.poll() is None
    assert np.asarray(alice.predict_tile(unet, np.zeros((1, 32, 32), np.float32))).shape == (
        3,
        32,
        32,
    )
