"""A client that cannot reach its server gets one scopeml error naming the URL."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from scopeml.client import Client, ServerUnreachableError
from scopeml.errors import ScopeMLError


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_an_unreachable_server_is_a_scopeml_error_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    with Client(url, "token") as client:
        with pytest.raises(ServerUnreachableError, match=f"^{url}/models/nuclei: no answer") as err:
            client.segment(np.zeros((8, 8), np.uint16), "nuclei", tmp_path / "a.ome.zarr")
        assert isinstance(err.value, ScopeMLError) and isinstance(err.value, ConnectionError)
        with pytest.raises(ServerUnreachableError, match="/jobs/j/result: no answer"):
            client.download_result("j", tmp_path)


def test_an_id_is_one_path_segment_never_another_route(alice, container):
    """``delete_job("../models/ID")`` sent ``DELETE /models/ID`` and deleted the model."""
    from scopeml.client import ServerResponseError

    model_id = alice.upload_model(container)["id"]
    for call in (alice.delete_job, alice.job, alice.cancel_job):
        with pytest.raises(ServerResponseError) as err:
            call(f"../models/{model_id}")
        assert err.value.status_code == 404
    with pytest.raises(ServerResponseError) as err:
        alice.job("..")  # not the root's answer
    assert err.value.status_code == 404
    assert alice.get_model(model_id)["id"] == model_id  # still there
    alice.delete_model(model_id)
    from scopeml.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="an id is empty"):
        alice.delete_job("")  # DELETE /jobs/ answered nothing, as if deleted


def test_a_job_id_names_no_file_outside_the_target(tmp_path):
    """The id named local files: ``../x`` staged, and cleared, a folder outside ``target``."""
    from scopeml.errors import InvalidRequestError

    outside = tmp_path / "x.partial"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    with Client("http://127.0.0.1:9", "token") as client:
        for call in (client.download_result, client.download_table):
            with pytest.raises(InvalidRequestError, match="is not a job id"):
                call("../x", tmp_path / "target")
    assert (outside / "keep.txt").read_text() == "mine"


def test_an_id_too_long_for_a_url_is_a_scopeml_error(tmp_path):
    """httpx's own ``InvalidURL: URL too long`` came out of ``cancel_job``."""
    from scopeml.errors import InvalidRequestError

    client = Client(f"http://127.0.0.1:{closed_port()}", "token")
    with client, pytest.raises(InvalidRequestError, match="cannot make a request of it"):
        client.cancel_job("x" * 70_000)


def test_a_download_that_fails_leaves_no_folder_it_made(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    kept = tmp_path / "kept"
    kept.mkdir()
    with Client(url, "token") as client:
        for call in (client.download_result, client.download_table):
            with pytest.raises(ServerUnreachableError):
                call("j", tmp_path / "new" / "dl")
            assert not (tmp_path / "new" / "dl").exists()
            with pytest.raises(ServerUnreachableError):
                call("j", kept)
            assert kept.is_dir()  # the caller's own folder stays


def test_a_url_without_its_protocol_is_said_so_not_an_unanswering_server():
    """``Client("127.0.0.1:8941", …)`` said "no answer from the server (UnsupportedProtocol)"."""
    with pytest.raises(ScopeMLError, match=r"names no protocol: give http://127.0.0.1:8941 \("):
        Client("127.0.0.1:8941", "token")
    Client("HTTPS://example.org", "token").close()  # any case, as httpx takes it
