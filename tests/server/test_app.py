"""The REST API against a real uvicorn server: auth, registry, tiles, limits, metrics, schema."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile

from scopeml.client import Client, ServerResponseError
from scopeml.model import load_model
from scopeml.server.database import Database
from scopeml.server.models import spec_from_dict


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model_id(alice: Client, container: Path) -> str:
    return alice.upload_model(container)["id"]


def test_health_needs_no_token(server):
    response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    probe = httpx.head(f"{server.url}/health")  # as uptime probes ask
    assert probe.status_code == 200 and probe.content == b""


@pytest.mark.parametrize("path", ["/models", "/metrics", "/jobs"])
@pytest.mark.parametrize("header", [None, "Bearer sml_wrong", "Basic YWxpY2U6cHc="])
def test_wrong_or_missing_token_is_401(server, path, header):
    headers = {} if header is None else {"Authorization": header}
    response = httpx.get(f"{server.url}{path}", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_upload_lists_and_inspects_with_the_loaded_spec(alice, model_id, container):
    record = alice.get_model(model_id)
    assert record["owner"] == "alice"
    assert record["name"] == "unet.czann"
    assert spec_from_dict(record["spec"]) == load_model(container).spec
    assert model_id in [m["id"] for m in alice.list_models()]
    assert alice.model_spec(model_id) == load_model(container).spec


def test_model_stored_under_id_not_user_name(server, alice, container):
    record = alice.upload_model(container)
    stored = list((server.data_dir / "models").glob(f"{record['id']}.*"))
    assert [p.name for p in stored] == [f"{record['id']}.czann"]
    assert not list((server.data_dir / "models").glob("unet*"))
    alice.delete_model(record["id"])


def test_a_wrong_model_id_is_told_what_was_meant(alice, bob, model_id):
    """A model's name given for its id, or a built-in name misspelt: the 404 says what was
    meant, naming only models the caller may see."""
    with pytest.raises(ServerResponseError) as err:
        alice.get_model("unet.czann")
    assert err.value.status_code == 404
    said = str(err.value)  # other tests on this server may have uploaded a unet.czann too
    assert re.search(rf"'unet.czann' is the name of models? ('\w+', )*{model_id!r}", said), said
    with pytest.raises(ServerResponseError) as err:
        alice.get_model("nucleii")
    assert "did you mean 'nuclei'?" in str(err.value), err.value
    with pytest.raises(ServerResponseError) as err:  # alice's private model: not hinted at
        bob.get_model("unet.czann")
    assert model_id not in str(err.value) and "did you mean" not in str(err.value)


def test_other_users_model_is_404_until_shared(alice, bob, model_id):
    tile = np.zeros((1, 16, 16), np.float32)
    for call in (lambda: bob.get_model(model_id), lambda: bob.predict_tile(model_id, tile)):
        with pytest.raises(ServerResponseError) as err:
            call()
        assert err.value.status_code == 404
    assert model_id not in [m["id"] for m in bob.list_models()]
    with pytest.raises(ServerResponseError) as err:
        bob.delete_model(model_id)
    assert err.value.status_code == 404

    alice.share_model(model_id, True)
    try:
        assert bob.get_model(model_id)["shared"] is True
        assert bob.predict_tile(model_id, tile).shape == (3, 16, 16)
        with pytest.raises(ServerResponseError) as err:
            bob.delete_model(model_id)
        assert err.value.status_code == 403
    finally:
        alice.share_model(model_id, False)
    with pytest.raises(ServerResponseError):
        bob.get_model(model_id)


def test_oversized_model_upload_is_413(server, tokens):
    body = np.random.default_rng(0).bytes(2 * 1024 * 1024)  # the server allows 1 MB
    response = httpx.post(
        f"{server.url}/models",
        params={"filename": "big.czann"},
        content=body,
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_a_models_name_is_kept_as_an_uploads_is(server, tokens, container, alice):
    """``filename=../../my%00.czann`` was stored and listed as given, NUL and folders too."""
    response = httpx.post(
        f"{server.url}/models",
        params={"filename": "../../my\x00 unet.czann"},
        content=container.read_bytes(),
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["name"] == "my__unet.czann"
    alice.delete_model(record["id"])
    for name in ("x.czann/", "x.czann/."):  # its folders were dropped after the suffix was read
        response = httpx.post(
            f"{server.url}/models", params={"filename": name}, content=container.read_bytes(),
            headers={"Authorization": f"Bearer {tokens['alice']}"},
        )  # fmt: skip
        assert response.status_code == 422 and "names a folder" in response.text, name


def test_invalid_container_is_422_and_leaves_nothing(server, alice, tmp_path):
    before = sorted((server.data_dir / "models").iterdir())
    garbage = tmp_path / "broken.czann"
    garbage.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ServerResponseError) as err:
        alice.upload_model(garbage)
    assert err.value.status_code == 422
    assert "broken.czann" in str(err.value)
    assert sorted((server.data_dir / "models").iterdir()) == before
    assert not [p for p in (server.data_dir / "uploads").iterdir() if p.name.startswith("model")]


def test_predict_tile_equals_local_model(alice, model_id, container):
    local = load_model(container)
    rng = np.random.default_rng(1)
    tile = (rng.random((1, 48, 32)) * 4000).astype(np.uint16)
    expected = local.predict(tile[np.newaxis].astype(np.float32))
    assert np.array_equal(alice.predict_tile(model_id, tile), expected[0])
    batch = rng.random((3, 1, 32, 64), np.float32) * 100
    assert np.array_equal(alice.predict_tile(model_id, batch), local.predict(batch))
    labels = alice.predict_tile(model_id, batch, labels=True)
    assert labels.dtype == np.uint8
    assert np.array_equal(labels, np.argmax(local.predict(batch), axis=1) + 1)


def test_3d_model_tiles(alice, tmp_path):
    from scopeml.model import convert_onnx
    from scopeml.model.testing import tiny_unet_onnx

    graph = tiny_unet_onnx(in_channels=2, n_classes=2, depth=1, spatial_dims=3, seed=4)
    path = convert_onnx(graph, tmp_path / "unet3d.czann", classes=["bg", "fg"], min_overlap=8)
    model_id = alice.upload_model(path)["id"]
    tile = np.random.default_rng(2).random((2, 8, 16, 12), np.float32)
    expected = load_model(path).predict(tile[np.newaxis])[0]
    assert np.array_equal(alice.predict_tile(model_id, tile), expected)
    with pytest.raises(ServerResponseError, match="the 3-D model takes"):
        alice.predict_tile(model_id, tile[:, 0])
    alice.delete_model(model_id)


def test_raw_bytes_with_headers(server, tokens, model_id, container):
    tile = np.arange(32 * 32, dtype=np.uint16).reshape(1, 32, 32)
    response = httpx.post(
        f"{server.url}/models/{model_id}/predict",
        content=tile.tobytes(),
        headers={
            "Authorization": f"Bearer {tokens['alice']}",
            "X-Tile-Dtype": "uint16",
            "X-Tile-Shape": "1,32,32",
        },
    )
    assert response.status_code == 200
    result = np.load(io.BytesIO(response.content), allow_pickle=False)
    expected = load_model(container).predict(tile[np.newaxis].astype(np.float32))[0]
    assert np.array_equal(result, expected)


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    """A version 1.0 ``.npy`` of the given header text (padded as numpy pads it)."""
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


LEAKED = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2+3, 16)}"  # a BinOp
MALFORMED = {
    "negative shape": (
        npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, -16, 16)}"),
        {},
        "declares shape (1, -16, 16): sizes < 0",
    ),
    "unparsable header": (npy_with_header(LEAKED, b"\x00" * 2048), {}, "header does not parse"),
    "garbage": (b"\x00garbage bytes", {}, "neither .npy"),
    "truncated npy": (npy(np.zeros((1, 16, 16), np.float32))[:100], {}, "not a readable"),
    "complex dtype": (npy(np.zeros((1, 16, 16), np.complex64)), {}, "dtype complex64"),
    "bool dtype": (npy(np.zeros((1, 16, 16), bool)), {}, "dtype bool"),
    "wrong channels": (npy(np.zeros((2, 16, 16), np.float32)), {}, "2 channels; model expects 1"),
    "off-step size": (npy(np.zeros((1, 16, 18), np.float32)), {}, "multiples of (4, 4)"),
    "wrong rank": (npy(np.zeros((16, 16), np.float32)), {}, "2 dimensions"),
    "empty axis": (npy(np.zeros((1, 0, 16), np.float32)), {}, "empty axis"),
    "raw size mismatch": (
        b"\x00" * 100,
        {"X-Tile-Dtype": "float32", "X-Tile-Shape": "1,16,16"},
        "need 1024",
    ),
    "raw bad dtype": (b"\x00" * 4, {"X-Tile-Dtype": "pear", "X-Tile-Shape": "1"}, "not a numpy"),
    "raw object dtype": (b"\x00" * 8, {"X-Tile-Dtype": "O", "X-Tile-Shape": "1"}, "dtype object"),
    "raw bad shape": (b"\x00" * 4, {"X-Tile-Dtype": "f4", "X-Tile-Shape": "1,a"}, "integers"),
    "raw without shape": (b"\x00" * 4, {"X-Tile-Dtype": "f4"}, "both X-Tile-Dtype"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_tile_is_422_with_a_clear_message(server, tokens, model_id, case):
    body, headers, message = MALFORMED[case]
    response = httpx.post(
        f"{server.url}/models/{model_id}/predict",
        content=body,
        headers={"Authorization": f"Bearer {tokens['alice']}", **headers},
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert message in detail
    assert "object at 0x" not in detail and len(detail) < 300  # no internals, nothing echoed


def test_pickled_object_array_is_refused(server, tokens, model_id):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    response = httpx.post(
        f"{server.url}/models/{model_id}/predict",
        content=buffer.getvalue(),
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert response.status_code == 422
    assert "pickle" in response.json()["detail"].lower()


def test_oversized_tile_is_413(server, tokens, model_id):
    tile = np.zeros((1, 512, 1024), np.float32)  # 2 MB; the server allows 1 MB
    response = httpx.post(
        f"{server.url}/models/{model_id}/predict",
        content=npy(tile),
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert response.status_code == 413


def test_delete_model_then_404(alice, container):
    model = alice.upload_model(container)
    alice.delete_model(model["id"])
    with pytest.raises(ServerResponseError) as err:
        alice.get_model(model["id"])
    assert err.value.status_code == 404


def test_metrics_count_requests_tiles_and_latency(server, alice, model_id):
    alice.predict_tile(model_id, np.zeros((2, 1, 16, 16), np.float32))
    db = Database(server.data_dir / "scopeml.db")  # metrics are for admins (all users' figures)
    admin = db.create_token("metrics-admin", admin=True)
    db.close()
    refused = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": alice._http.headers["Authorization"]}
    )
    assert refused.status_code == 403
    text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert int(lines["scopeml_tiles_predicted_total"]) >= 2
    key = 'scopeml_requests_total{method="POST",route="/models/{model_id}/predict",status="200"}'
    assert int(lines[key]) >= 1
    requests = int(lines["scopeml_request_duration_seconds_count"])  # every request is counted
    assert requests >= 1 and requests == int(
        lines['scopeml_request_duration_seconds_bucket{le="+Inf"}']
    )


def test_openapi_schema_and_docs(server, tokens, image_root):
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/models", "/models/{model_id}/predict", "/jobs", "/health"} <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))  # GET and HEAD /health shared one: the page opened both
    jobs = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    ref = jobs["schema"]["$ref"].rsplit("/", 1)[-1]
    (example, _upload) = schema["components"]["schemas"][ref]["examples"]
    with Client(server.url, tokens["alice"]) as alice:  # the page's example is a job that runs
        image = image_root / "plate1" / "a.tif"
        image.parent.mkdir(exist_ok=True)
        tifffile.imwrite(image, np.zeros((64, 64), np.uint16))
        job = alice.submit_job(example["model_id"], image_path=example["image_path"],
                               options=example["options"])  # fmt: skip
        assert job["status"] in ("queued", "running", "done")
        alice.cancel_job(job["id"])


def test_a_client_gone_mid_upload_is_no_server_error(server, tokens):
    """An upload stopped half-way (the connection closed): no traceback in the server's log,
    nothing kept, and the server goes on."""
    import socket
    import time

    before, kept = server.log.read_text(), set((server.data_dir / "uploads").rglob("*"))
    head = (
        f"POST /images?filename=half.tif HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {tokens['alice']}\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(head.encode() + b"II*\x00" + bytes(4000))
        time.sleep(0.5)  # the body streams to disk, then the client is gone
    time.sleep(1.0)
    said = server.log.read_text()[len(before) :]
    assert "Traceback" not in said and "ClientDisconnect" not in said, said
    assert set((server.data_dir / "uploads").rglob("*")) == kept
    assert httpx.get(f"{server.url}/health").status_code == 200
