"""What a submit or an upload answers: a file that does not open is named as the client names
it, never by a server path (PIL and zarr quote the path they opened: the allowed root, the
data folder); an analysis whose rules need a pixel size its first image lacks is refused at
submit with the library's message, in a client's words (its job failed after a 202); one path
given alone to ``client.submit_analysis`` is one path (its characters were sent); and the API's
schema declares the 422 bodies the server sends, a line or the list of fields."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile

from scopeml.client import Client, ServerResponseError

from .conftest import ServerProcess, own_server

NOT_AN_IMAGE = b"not an image, only text\n"

SETTINGS = """\
version: 1
channels: [C0]
classes:
  - name: blob
    segmenter: {kind: threshold, channel: C0, method: otsu}
    rules:
      large: {area_um2: {min: 5}}
      other: {}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("submit-answers-root")
    (root / "mixed").mkdir()
    (root / "mixed" / "bad.png").write_bytes(NOT_AN_IMAGE)
    (root / "x.ome.zarr").write_bytes(NOT_AN_IMAGE)  # a plain file, not a store
    (root / "plate").mkdir()
    blobs = np.zeros((48, 48), np.uint16)
    blobs[8:20, 8:20] = blobs[28:40, 26:44] = 900
    tifffile.imwrite(root / "plate" / "a.tif", blobs)  # a plain TIFF: no pixel size
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "submit-answers", "--allowed-root", str(root))


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


def server_paths(server: ServerProcess, root: Path) -> list[str]:
    """Where the server keeps its files, as a message could spell them."""
    return [str(p) for p in {root, root.resolve(), server.data_dir, server.data_dir.resolve()}]


@pytest.mark.parametrize(
    ("how", "name", "says"),
    [
        ("job", "mixed/bad.png", "cannot identify image file 'mixed/bad.png'"),
        ("job", "x.ome.zarr", "x.ome.zarr: not a readable zarr store"),
        ("upload", "bad.png", "cannot identify image file 'bad.png'"),
    ],
)
def test_an_image_that_does_not_open_is_named_as_the_client_names_it(
    alice, server, root, tmp_path, how, name, says
):
    with pytest.raises(ServerResponseError) as err:
        if how == "job":
            alice.submit_job("nuclei", image_path=name)
        else:
            (tmp_path / name).write_bytes(NOT_AN_IMAGE)
            alice.upload_image(tmp_path / name)
    message = str(err.value)
    assert err.value.status_code == 422 and says in message, message
    assert not [p for p in server_paths(server, root) if p in message], message
    assert "file://" not in message, message


def test_one_image_path_or_upload_id_given_alone_is_one(alice, root, tmp_path):
    settings = tmp_path / "plain.yaml"
    settings.write_text(SETTINGS.replace("large: {area_um2: {min: 5}}", "large: {area: {min: 5}}"))
    for given in ("plate", root.joinpath("plate").relative_to(root)):  # a str, a Path
        job = alice.submit_analysis(settings, image_paths=given)
        assert job["images"] == ["plate"], job
        alice.delete_job(job["id"])
    upload = alice.upload_image(root / "plate" / "a.tif")
    job = alice.submit_analysis(settings, upload_ids=upload["id"])
    assert job["upload_ids"] == [upload["id"]], job
    alice.delete_job(job["id"])


def test_a_rule_in_micrometres_on_an_image_without_pixel_size_answers_422(alice, tmp_path):
    """As ``scopeml analyze`` stops before any image (``check_image_channels``); the run's
    words said the key twice: "(pixel_size:, the settings' pixel_size:)"."""
    settings = tmp_path / "um.yaml"
    settings.write_text(SETTINGS)
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_analysis(settings, image_paths=["plate"])
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert "um.yaml: line 6: classes[0].rules: the blob rules use sizes in micrometres" in message
    assert message.endswith(
        "plate/a.tif records no pixel size: give it (the settings' pixel_size:)"
    ), message
    assert len(alice.list_jobs()) == before  # nothing queued
    settings.write_text(SETTINGS.replace("channels: [C0]", "channels: [C0]\npixel_size: 0.5"))
    job = alice.submit_analysis(settings, image_paths=["plate"])  # given one: taken
    assert alice.wait_job(job["id"], timeout=120)["status"] == "done"


def test_the_api_schema_declares_the_422_bodies_sent(server, alice):
    """FastAPI declared every 422 as its validation error (``detail``: a list of objects);
    most say one line (``{"detail": "<string>"}``)."""
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert "HTTPValidationError" not in str(schema)
    answers = [
        op["responses"]["422"] for ops in schema["paths"].values() for op in ops.values()
        if "422" in op["responses"]
    ]  # fmt: skip
    assert len(answers) > 10
    refs = {a["content"]["application/json"]["schema"]["$ref"] for a in answers}
    assert refs == {"#/components/schemas/ErrorBody"}
    detail = schema["components"]["schemas"]["ErrorBody"]["properties"]["detail"]["anyOf"]
    assert {"type": "string"} in detail
    listed = next(kind for kind in detail if kind.get("type") == "array")["items"]["$ref"]
    problem = schema["components"]["schemas"][listed.rsplit("/", 1)[-1]]
    assert set(problem["properties"]) == {"loc", "msg", "type"}
    headers = {"Authorization": f"Bearer {server.tokens['alice']}"}
    for body, kind in (({"model_id": "nuclei", "image_path": "mixed/bad.png"}, str),
                       ({"model_id": "nuclei", "image_path": "x", "options": {"tile_size": "big"}},
                        list)):  # fmt: skip
        answer = httpx.post(f"{server.url}/jobs", json=body, headers=headers, timeout=60)
        assert answer.status_code == 422 and isinstance(answer.json()["detail"], kind)
        if kind is list:
            assert set(answer.json()["detail"][0]) == set(problem["properties"])
