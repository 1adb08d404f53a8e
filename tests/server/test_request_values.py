"""Values in requests are taken as sent: booleans strictly, a number that is no integer said so,
file names in any script kept (as letters and digits, nothing a file system treats specially)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile


def auth(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['alice']}"}


@pytest.fixture(scope="module")
def model_id(alice, container: Path) -> str:
    return alice.upload_model(container)["id"]


@pytest.mark.parametrize("value", ["yes", "true", 1, "on"])
def test_sharing_takes_a_json_boolean_only(server, tokens, alice, model_id, value):
    response = httpx.patch(
        f"{server.url}/models/{model_id}", json={"shared": value}, headers=auth(tokens)
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"] == "Input should be a valid boolean"
    assert alice.get_model(model_id)["shared"] is False
    assert alice.share_model(model_id, True)["shared"] is True  # a boolean is taken
    alice.share_model(model_id, False)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1e308, "Input should be an integer; this number is out of range (16 to 8192)"),
        (-1e308, "Input should be an integer; this number is out of range (16 to 8192)"),
        (64.5, "Input should be an integer; this number has a fractional part (16 to 8192)"),
    ],
)
def test_a_number_that_is_no_integer_is_said_so(server, tokens, model_id, value, words):
    body = {"model_id": model_id, "image_path": "a.tif", "options": {"tile_size": value}}
    response = httpx.post(f"{server.url}/jobs", json=body, headers=auth(tokens))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "options", "tile_size"] and error["msg"] == words


@pytest.mark.parametrize("field", ["measure", "shape_features", "blend"])
def test_job_flags_take_json_booleans_only(server, tokens, model_id, field):
    body = {"model_id": model_id, "image_path": "a.tif", "options": {field: "yes"}}
    response = httpx.post(f"{server.url}/jobs", json=body, headers=auth(tokens))
    assert response.status_code == 422, response.text
    assert any(e["loc"][-1] == field or field in e["loc"] for e in response.json()["detail"])


def test_an_uploads_name_keeps_its_letters_in_any_script(alice, tmp_path):
    names = {}
    for given in ("模型 über.tif", "模型 öber.tif", "u\u0308ber.tif"):  # the last: a Mac's NFD
        path = tmp_path / given
        tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
        upload = alice.upload_image(path)
        names[given] = upload["name"]
        alice.delete_upload(upload["id"])
    assert names == {
        "模型 über.tif": "模型_über.tif",
        "模型 öber.tif": "模型_öber.tif",  # no longer both "____ber.tif"
        "u\u0308ber.tif": "über.tif",
    }
