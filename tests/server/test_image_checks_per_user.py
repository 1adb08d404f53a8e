"""One user's submits whose files are slow to check (a FIFO named ``.tif``, a TIFF of 400,000
one-pixel pages) held the threads every user's checks run on: another user's submit waited
for minutes. A user may have two requests in their checks at once; one more answers 429 at
once, and another user's submit goes through meanwhile."""

from __future__ import annotations

import os
import threading
import time

import pytest
import tifffile

from scopeml.client import Client, ServerResponseError
from scopeml.synthetic import synthetic_nuclei

from .conftest import own_server

WAIT_S = 120.0


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A FIFO named ``slow.tif`` (opening it for reading waits for a writer: a check that
    hangs) and an image."""
    root = tmp_path_factory.mktemp("checks-root")
    os.mkfifo(root / "slow.tif")
    image, _ = synthetic_nuclei((64, 64), density=0.004, seed=1)
    tifffile.imwrite(root / "ok.tif", image[0])
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root):
    yield from own_server(tmp_path_factory, "image-checks", "--allowed-root", str(root))


def submit_into(answers: list, client: Client) -> None:
    try:
        answers.append(client.submit_job("nuclei", image_path="slow.tif"))
    except ServerResponseError as err:
        answers.append(err)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_users_slow_checks_leave_room_for_other_users(server, root):
    alice = Client(server.url, server.tokens["alice"])
    bob = Client(server.url, server.tokens["bob"])
    with alice, bob:
        done = bob.submit_job("nuclei", image_path="ok.tif")  # the model loaded once
        assert bob.wait_job(done["id"], timeout=WAIT_S)["status"] == "done"
        answers: list = []
        held = [threading.Thread(target=submit_into, args=(answers, alice)) for _ in range(2)]
        for thread in held:
            thread.start()
        time.sleep(3.0)  # both in their checks, each waiting on the pipe
        with pytest.raises(ServerResponseError) as refused:
            alice.submit_job("nuclei", image_path="slow.tif")
        assert refused.value.status_code == 429
        assert "2 of your requests are having their files checked" in str(refused.value)
        started = time.monotonic()
        job = bob.submit_job("nuclei", image_path="ok.tif")
        assert job["status"] in ("queued", "running", "done")
        assert time.monotonic() - started < 30  # not behind alice's checks
        os.close(os.open(root / "slow.tif", os.O_WRONLY | os.O_NONBLOCK))  # EOF: they end
        for thread in held:
            thread.join(WAIT_S)
        assert len(answers) == 2, answers
        assert all(isinstance(a, ServerResponseError) and a.status_code == 422 for a in answers)
