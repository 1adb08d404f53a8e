"""``GET /jobs?status=…&limit=N``: a lab server's list of jobs chosen by status and cut to the
newest; a query parameter it does not know is refused (it was ignored, listing every job)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile

from scopeml.client import Client, ServerResponseError

from .conftest import ServerProcess, own_server

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter: {kind: threshold, channel: C0, method: otsu}
"""
WAIT_S = 120


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("job-list-root")
    blobs = np.zeros((48, 48), np.uint16)
    blobs[8:20, 8:20] = 900
    tifffile.imwrite(root / "a.tif", blobs)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "job-list", "--allowed-root", str(root))


def test_jobs_are_listed_by_status_and_cut_to_the_newest(server, root, tmp_path):
    settings = tmp_path / "blobs.yaml"
    settings.write_text(SETTINGS)
    with Client(server.url, server.tokens["alice"]) as alice:
        ids = [alice.submit_analysis(settings, image_paths=["a.tif"])["id"] for _ in range(3)]
        for job in ids:
            assert alice.wait_job(job, timeout=WAIT_S, interval=0.2)["status"] == "done"
        alice.delete_job(ids[0])  # gone: two done
        assert [j["id"] for j in alice.list_jobs(status="done")] == ids[1:]
        assert alice.list_jobs(status="failed") == []
        assert [j["id"] for j in alice.list_jobs(limit=1)] == ids[2:]
        with pytest.raises(ServerResponseError) as caught:
            alice.list_jobs(status="finished")
        assert caught.value.status_code == 422
    answer = httpx.get(f"{server.url}/jobs", params={"state": "done"},
                       headers={"Authorization": f"Bearer {server.tokens['alice']}"})  # fmt: skip
    assert answer.status_code == 422
    assert answer.json() == {"detail": "unknown query parameter 'state'; GET /jobs takes status "
                             "and limit"}  # fmt: skip
