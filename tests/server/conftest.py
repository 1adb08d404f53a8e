"""A real server for the tests: uvicorn in a subprocess on 127.0.0.1, bounded and self-stopping."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from scopeml.client import Client
from scopeml.model import convert_onnx
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from scopeml.server.database import Database

START_TIMEOUT_S = 60.0


def run_async(coroutine):
    """``asyncio.run`` in a thread of its own: a session-wide browser (Playwright's sync API)
    keeps an event loop running in the main thread, where ``asyncio.run`` refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m scopeml.server`` on a free loopback port."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"server-{self.port}.log"

    def start(self) -> ServerProcess:
        command = [
            sys.executable, "-m", "scopeml.server",
            "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "warning", *self.args,
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def make_container(path: Path, *, in_channels: int = 1, n_classes: int = 3, seed: int = 0) -> Path:
    """A small czann holding the tiny U-Net with its receptive-field halo."""
    graph = tiny_unet_onnx(in_channels=in_channels, n_classes=n_classes, depth=2, seed=seed)
    return convert_onnx(
        graph,
        path,
        classes=[f"c{i}" for i in range(n_classes)],
        min_overlap=unet_receptive_halo(2),
        model_type="MultiClassSemanticSegmentation",
    )


def own_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, *args: str
) -> Iterator[ServerProcess]:
    """A module's own server (``args``: its options) on a fresh data folder, with ``alice``'s
    and ``bob``'s tokens on ``.tokens``; for a module fixture: ``yield from own_server(...)``."""
    data_dir = tmp_path_factory.mktemp(f"{name}-data")
    db = Database(data_dir / "scopeml.db")
    process = ServerProcess(data_dir, *args)
    process.tokens = {user: db.create_token(user) for user in ("alice", "bob")}
    db.close()
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def server_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("server-data")
    db = Database(data_dir / "scopeml.db")
    tokens = {"alice": db.create_token("alice"), "bob": db.create_token("bob")}
    db.close()
    return data_dir, tokens


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def server(server_data: tuple[Path, dict[str, str]], image_root: Path) -> Iterator[ServerProcess]:
    data_dir, _ = server_data
    process = ServerProcess(
        data_dir,
        "--max-model-mb", "1", "--max-tile-mb", "1", "--allowed-root", str(image_root),
    )  # fmt: skip
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def tokens(server_data: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return server_data[1]


@pytest.fixture(scope="session")
def container(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_container(tmp_path_factory.mktemp("models") / "unet.czann")


@pytest.fixture(scope="module")
def alice(server: ServerProcess, tokens: dict[str, str]) -> Iterator[Client]:
    """A client of this module's ``server`` with alice's token."""
    with Client(server.url, tokens["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def bob(server: ServerProcess, tokens: dict[str, str]) -> Iterator[Client]:
    """A client of this module's ``server`` with bob's token (another user)."""
    with Client(server.url, tokens["bob"]) as client:
        yield client
