"""An image upload sent as a form (``curl -F``) is refused saying how to send it, as a model
upload is: read as the image, its envelope gave "not a TIFF file: header=b'----'"."""

from __future__ import annotations

import httpx
import numpy as np
import tifffile


def test_a_multipart_image_upload_is_refused_saying_how_to_send_it(server, tokens, tmp_path):
    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    auth = {"Authorization": f"Bearer {tokens['alice']}"}
    params = {"filename": "cells.tif"}
    before = httpx.get(f"{server.url}/images", headers=auth).json()
    with image.open("rb") as file:  # what curl -F sends
        form = httpx.post(
            f"{server.url}/images", params=params, files={"file": ("cells.tif", file)}, headers=auth
        )
    assert form.status_code == 422
    assert form.json()["detail"] == (
        "cells.tif: the body is a multipart form; "
        "send the raw file (curl --data-binary @FILE), not a form (curl -F)"
    )
    envelope = (  # the same body, sent as a raw file by mistake
        b"--xyz\r\nContent-Disposition: form-data; name=file; filename=cells.tif\r\n\r\n"
        + image.read_bytes()
        + b"\r\n--xyz--\r\n"
    )
    octet = {**auth, "Content-Type": "application/octet-stream"}
    raw = httpx.post(f"{server.url}/images", params=params, content=envelope, headers=octet)
    assert raw.status_code == 422
    assert raw.json()["detail"].startswith("cells.tif: the body starts with a MIME boundary")
    assert httpx.get(f"{server.url}/images", headers=auth).json() == before
    plain = httpx.post(
        f"{server.url}/images", params=params, content=image.read_bytes(), headers=octet
    )
    assert plain.status_code == 201, plain.text


def test_an_image_upload_takes_its_name_from_a_content_disposition_header(server, tokens, tmp_path):
    """As a model upload does: ``?filename=`` first, else the header's ``filename``; neither
    answers 422 saying how to name it."""
    pixels = tmp_path / "x.tif"
    tifffile.imwrite(pixels, np.zeros((32, 32), np.uint8))
    auth = {"Authorization": f"Bearer {tokens['alice']}"}
    named = {**auth, "Content-Disposition": 'attachment; filename="dir/well B2.tif"'}
    answer = httpx.post(f"{server.url}/images", content=pixels.read_bytes(), headers=named)
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == "well_B2.tif"  # without its folders, sanitised
    long = {**auth, "Content-Disposition": f'attachment; filename="{"w" * 300}.tif"'}
    answer = httpx.post(f"{server.url}/images", content=pixels.read_bytes(), headers=long)
    assert answer.status_code == 201 and answer.json()["name"].endswith("w.tif"), answer.text
    bare = httpx.post(f"{server.url}/images", content=pixels.read_bytes(), headers=auth)
    assert bare.status_code == 422 and "name the image: ?filename=" in bare.json()["detail"]
    with pixels.open("rb") as file:  # curl -F without a name: how to send it comes first
        form = httpx.post(f"{server.url}/images", files={"file": ("", file)}, headers=auth)
    assert form.status_code == 422 and "the body is a multipart form" in form.json()["detail"]
