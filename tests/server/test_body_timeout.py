"""A request whose body stalls is answered 408 and its connection closed (``--body-timeout``):
a stalled upload held its connection, its partial file and its quota for ever (a trial's 9,000
stalled uploads held 4,844 file descriptors)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from scopeml.client import Client

from .conftest import ServerProcess, own_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "body-timeout", "--body-timeout", "1")


def _stalled(server: ServerProcess, request: bytes) -> tuple[bytes, float]:
    """The answer to ``request`` (headers and the start of a body, then nothing) and how long
    until the server closed the connection."""
    url = urlparse(server.url)
    start = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=20) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(4096):  # until the server closes the connection
            answer += chunk
    return answer, time.monotonic() - start


@pytest.mark.parametrize(
    ("head", "start"),
    [  # an upload (streamed by the route), a job's JSON (parsed by FastAPI)
        (b"POST /images?filename=stalled.tif", b"II*\x00"),
        (b"POST /jobs", b'{"model_id": "nuc'),
    ],
)
def test_a_stalled_body_is_answered_408_and_closed(server, head, start):
    token = f"Authorization: Bearer {server.tokens['alice']}\r\n".encode()
    answer, took = _stalled(
        server,
        head + b" HTTP/1.1\r\nHost: x\r\n" + token + b"Content-Type: application/json"
        b"\r\nContent-Length: 1000\r\n\r\n" + start,  # then nothing
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"no part of the request body came in 1 s" in answer
    assert took < 4  # closed with the answer, not at the keep-alive timeout


def test_a_stalled_upload_leaves_nothing(server, tmp_path):
    token = f"Authorization: Bearer {server.tokens['alice']}\r\n".encode()
    answer, _ = _stalled(
        server, b"POST /images?filename=stalled.tif HTTP/1.1\r\nHost: x\r\n" + token
        + b"Content-Length: 100000\r\n\r\nII*\x00"
    )  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    with Client(server.url, server.tokens["alice"]) as alice:
        assert alice.list_uploads() == []  # no partial upload kept, no quota held
        image = tmp_path / "a.tif"
        image.write_bytes(b"II*\x00" + b"\x00" * 100)
        with pytest.raises(Exception) as refused:  # a whole body is read (and then checked)
            alice.upload_image(image)
        assert "no part of the request body" not in str(refused.value)
