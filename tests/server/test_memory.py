"""Server memory per request (issue #18): a tile costs a small multiple of its own bytes, a tile
past the per-tile memory limit is refused before any work, a refused upload is never buffered.

Measured with tracemalloc (numpy's buffers are traced; the model runtime's own working memory
is not) on the application in this process.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from scopeml.server.app import create_app
from scopeml.server.config import MB, ServerConfig
from scopeml.server.database import Database
from scopeml.server.models import spec_from_dict
from scopeml.server.tiles import tile_memory

from .conftest import make_container, run_async

SLACK = 1.25  # headers, small objects, allocator rounding


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict]]:
    tmp = tmp_path_factory.mktemp("memory")
    config = ServerConfig(tmp / "data", max_tile_memory=1024 * MB, max_image_bytes=1 * MB)
    db = Database(config.db)
    headers = {"Authorization": f"Bearer {db.create_token('ada')}"}
    db.close()
    container = make_container(tmp / "unet.czann")
    with TestClient(create_app(config)) as client:
        record = client.post(
            "/models", content=container.read_bytes(), headers=headers,
            params={"filename": "unet.czann"},
        ).json()  # fmt: skip
        yield client, {"headers": headers, "model": record, "config": config}


def traced_peak(call) -> tuple[int, object]:
    """Peak bytes allocated (above the start) while ``call`` runs, and its result."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        result = call()
        return tracemalloc.get_traced_memory()[1] - start, result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_a_tiles_server_memory_is_a_small_multiple_of_its_bytes(app_client, dtype):
    client, state = app_client
    tile = (np.random.default_rng(0).random((1, 1024, 1024)) * 1000).astype(dtype)
    body = tile.tobytes()
    headers = {
        **state["headers"],
        "X-Tile-Dtype": np.dtype(dtype).str,
        "X-Tile-Shape": ",".join(map(str, tile.shape)),
    }
    url = f"/models/{state['model']['id']}/predict"
    client.post(url, content=body, headers=headers)  # the model loaded, the runtime warm
    peak, response = traced_peak(lambda: client.post(url, content=body, headers=headers))
    assert response.status_code == 200
    out = len(response.content)  # 3 classes × float32: 12 MB, held by the test client too
    assert out > 3 * tile.size * 4
    estimate = tile_memory(tile, spec_from_dict(state["model"]["spec"]), len(body))  # no runtime
    assert peak <= SLACK * (estimate + out), (peak / MB, estimate / MB, out / MB)
    assert peak <= 3 * (len(body) + out)  # the tile in and out, a few times: not 350 B/pixel


def test_the_models_working_memory_is_estimated_at_upload(app_client):
    """The test U-Net's intermediate tensors sum to a few hundred bytes per pixel: counted in
    every tile's memory, so a tile whose outputs fit but whose runtime would not is refused."""
    _, state = app_client
    per_pixel = state["model"]["spec"]["runtime_bytes_per_pixel"]
    assert 100 < per_pixel < 2000
    spec = spec_from_dict(state["model"]["spec"])
    tile = np.zeros((1, 1, 1024, 1024), np.float32)
    assert tile_memory(tile, spec, tile.nbytes, per_pixel) - tile_memory(
        tile, spec, tile.nbytes
    ) == pytest.approx(per_pixel * 1024 * 1024, abs=1)


def test_a_tile_over_the_memory_limit_is_413_before_any_work(app_client):
    client, state = app_client
    config = state["config"]
    tile = np.zeros((1, 1, 2048, 2048), np.float32)  # 16 MB body; runtime ~1.5 GB
    assert len(tile.tobytes()) <= config.max_tile_bytes
    url = f"/models/{state['model']['id']}/predict"
    headers = {**state["headers"], "X-Tile-Dtype": "<f4", "X-Tile-Shape": "1,1,2048,2048"}
    peak, response = traced_peak(lambda: client.post(url, content=tile.tobytes(), headers=headers))
    assert response.status_code == 413
    assert "server memory" in response.json()["detail"]
    assert peak < 2.5 * tile.nbytes  # the body (and the client's copy of it), nothing more


def test_a_refused_upload_is_streamed_not_buffered(app_client):
    """16 MB sent chunked to a 1 MB limit: refused after about 1 MB, one chunk held at a time.
    (httpx's ASGI transport streams the body; the test client would read it all first.)"""
    client, state = app_client
    chunk = b"\0" * 65536

    async def body() -> AsyncIterator[bytes]:
        for _ in range(256):  # no Content-Length to refuse it by
            yield chunk

    async def upload() -> httpx.Response:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.post(
                "/images", content=body(), headers=state["headers"], params={"filename": "a.tif"}
            )

    peak, response = traced_peak(lambda: run_async(upload()))
    assert response.status_code == 413
    assert "1048576 bytes" in response.json()["detail"]
    assert peak < 2 * MB  # one chunk at a time, not the 16 MB
    uploads = state["config"].uploads_dir
    assert [p for p in uploads.rglob("*") if p.is_file()] == []


def test_tiles_sent_side_by_side_hold_at_most_the_budget(tmp_path):
    """Each tile passed the per-tile limit, but tiles arriving together were all held, and
    batched: eight concurrent 1504² tiles took a server to 6.6 GB. With one predict worker
    and room for one such tile, six sent at once run one at a time, each alone."""
    config = ServerConfig(tmp_path / "data", max_tile_memory=120 * MB, predict_workers=1)
    db = Database(config.db)
    headers = {"Authorization": f"Bearer {db.create_token('ada')}"}
    db.close()
    container = make_container(tmp_path / "unet.czann")
    tile = np.random.default_rng(0).random((1, 1, 512, 512)).astype(np.float32)
    raw = {**headers, "X-Tile-Dtype": "<f4", "X-Tile-Shape": "1,1,512,512"}
    with TestClient(create_app(config)) as client:
        record = client.post("/models", content=container.read_bytes(), headers=headers,
                             params={"filename": "unet.czann"}).json()  # fmt: skip
        spec = spec_from_dict(record["spec"])
        needed = tile_memory(tile, spec, tile.nbytes, record["spec"]["runtime_bytes_per_pixel"])
        assert config.max_tile_memory / 2 < needed <= config.max_tile_memory  # one at a time
        registry, batches = client.app.state.registry, []
        registry.metrics.add_tiles = batches.append

        async def send_all() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                url = f"/models/{record['id']}/predict"
                return await asyncio.gather(
                    *(http.post(url, content=tile.tobytes(), headers=raw) for _ in range(6))
                )

        answers = run_async(send_all())
    assert [a.status_code for a in answers] == [200] * 6
    assert batches == [1] * 6, batches  # never stacked: never held together
    assert registry.tile_budget.used == 0


def test_one_users_many_tiles_do_not_keep_anothers_waiting(tmp_path):
    """The budget served all users in one queue: another user's tile waited behind every tile
    of the first (found in review); a user now holds at most their share of it."""
    from scopeml.server.metrics import Metrics
    from scopeml.server.models import ModelRegistry

    config = ServerConfig(tmp_path / "data", max_tile_memory=100 * MB, predict_workers=2)
    registry = ModelRegistry(config, Database(config.db), Metrics())
    order: list[str] = []

    async def hold(user: str, name: str) -> None:
        async with registry.tile_memory(user, 100 * MB):
            order.append(name)
            await asyncio.sleep(0.02)

    async def main() -> None:
        await asyncio.gather(*(hold("ada", f"ada{i}") for i in range(4)), hold("bob", "bob"))

    run_async(main())
    assert order[:2] == ["ada0", "bob"], order  # bob's tile beside ada's first, not after all
    assert registry.tile_budget.used == 0


def test_a_burst_of_tiles_gives_its_memory_back_once_idle(tmp_path, monkeypatch):
    """The models' arenas and glibc kept a burst's memory: 1.35 GB after eight 1504² tiles of
    ``nuclei``, for as long as the server ran. Now given back once no tile is held."""
    import time

    from scopeml.server import models

    monkeypatch.setattr(models, "IDLE_TRIM_S", 0.05)
    config = ServerConfig(tmp_path / "data")
    db = Database(config.db)
    headers = {"Authorization": f"Bearer {db.create_token('ada')}"}
    db.close()
    tile = np.random.default_rng(0).random((1, 256, 256)).astype(np.float32)
    raw = {**headers, "X-Tile-Dtype": "<f4", "X-Tile-Shape": "1,256,256"}
    with TestClient(create_app(config)) as client:
        first = client.post("/models/nuclei/predict", content=tile.tobytes(), headers=raw)
        model, released = client.app.state.registry.get("nuclei"), []
        release = model.release_memory
        monkeypatch.setattr(model, "release_memory", lambda: released.append(release()))
        again = client.post("/models/nuclei/predict", content=tile.tobytes(), headers=raw)
        deadline = time.monotonic() + 10
        while not released and time.monotonic() < deadline:
            time.sleep(0.02)
        later = client.post("/models/nuclei/predict", content=tile.tobytes(), headers=raw)
    assert released  # once the tiles were over (and at most once a burst)
    assert first.content == again.content == later.content  # nothing it answers changed
