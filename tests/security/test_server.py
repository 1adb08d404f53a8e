"""The server under hostile input (issue #18): confinement of every route, bounded bodies, private
files, deletable uploads with a quota. One live server on 127.0.0.1 for the module."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile

from scopeml.client import Client, ServerResponseError
from scopeml.io import create_ome_zarr
from scopeml.server.database import Database
from tests.server.conftest import ServerProcess, make_container, run_async

SECRET = np.full((32, 32), 201, np.uint8)
QUOTA_KB = 24
JSON_KB = 4


def ome_tiff_naming(master: Path, companion: str) -> Path:
    """A two-plane OME-TIFF: plane 0 in ``master``, plane 1 in ``companion`` (as named)."""
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    tiffdata = "".join(
        f'<TiffData FirstZ="{z}" IFD="0" PlaneCount="1">'
        f'<UUID FileName="{name}">urn:uuid:{ids[z]}</UUID></TiffData>'
        for z, name in enumerate([master.name, companion])
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        f'UUID="urn:uuid:{ids[0]}"><Image ID="Image:0"><Pixels ID="Pixels:0" '
        'DimensionOrder="XYZCT" Type="uint8" SizeX="32" SizeY="32" SizeZ="2" SizeC="1" '
        f'SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>{tiffdata}</Pixels></Image>'
        "</OME>"
    )
    tifffile.imwrite(master, np.zeros((32, 32), np.uint8), description=xml, metadata=None)
    return master


def ome_zarr(path: Path, data: np.ndarray) -> Path:
    array = create_ome_zarr(path, shape=data.shape, dtype=data.dtype, axes="YX", chunks=(16, 16))
    array[:] = data
    return path


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("hostile")
    places = {name: base / name for name in ("root", "outside", "data")}
    for folder in places.values():
        folder.mkdir()
    tifffile.imwrite(places["outside"] / "secret.tif", SECRET)
    return places


@pytest.fixture(scope="module")
def tokens(places: dict[str, Path]) -> dict[str, str]:
    db = Database(places["data"] / "scopeml.db")
    tokens = {user: db.create_token(user) for user in ("alice", "bob", "carol")}
    db.close()
    return tokens


@pytest.fixture(scope="module")
def server(places: dict[str, Path], tokens: dict[str, str]) -> Iterator[ServerProcess]:
    process = ServerProcess(
        places["data"],
        "--allowed-root", str(places["root"]), "--upload-quota-mb", str(QUOTA_KB / 1024),
        "--max-json-kb", str(JSON_KB), "--max-tile-mb", "1",
    )  # fmt: skip
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def alice(server: ServerProcess, tokens: dict[str, str]) -> Iterator[Client]:
    with Client(server.url, tokens["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def model_id(alice: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    return alice.upload_model(make_container(tmp_path_factory.mktemp("m") / "unet.czann"))["id"]


def refused(call, status: int = 422) -> str:
    with pytest.raises(ServerResponseError) as err:
        call()
    assert err.value.status_code == status, err.value
    return str(err.value)


# --- confinement: jobs on server-side images --------------------------------------------------


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_job_on_a_multifile_ome_tiff_naming_a_file_outside_is_refused(alice, model_id, places, how):
    secret = places["outside"] / "secret.tif"
    name = str(secret) if how == "absolute" else os.path.join("..", "outside", "secret.tif")
    ome_tiff_naming(places["root"] / f"stack-{how}.ome.tif", name)
    message = refused(lambda: alice.submit_job(model_id, image_path=f"stack-{how}.ome.tif"))
    assert "secret.tif" in message and "outside" in message
    assert str(places["root"]) not in message  # where the server keeps files is not told
    assert alice.list_jobs() == []


def test_job_on_an_ome_zarr_whose_array_folder_links_outside_is_refused(alice, model_id, places):
    real = ome_zarr(places["outside"] / "real.ome.zarr", SECRET)
    image = places["root"] / "linked.ome.zarr"
    image.mkdir()
    shutil.copy(real / "zarr.json", image / "zarr.json")
    (image / "0").symlink_to(real / "0", target_is_directory=True)
    message = refused(lambda: alice.submit_job(model_id, image_path="linked.ome.zarr"))
    assert "outside" in message


def test_job_on_an_ome_zarr_with_a_chunk_linked_outside_fails_without_its_pixels(
    alice, model_id, places, tmp_path
):
    ome_zarr(places["outside"] / "chunks.ome.zarr", SECRET)
    image = ome_zarr(places["root"] / "chunk.ome.zarr", np.full((32, 32), 7, np.uint8))
    chunk = image / "0" / "c" / "0" / "0"
    chunk.unlink()
    chunk.symlink_to(places["outside"] / "chunks.ome.zarr" / "0" / "c" / "0" / "0")
    job = alice.submit_job(model_id, image_path="chunk.ome.zarr", tile_size=16)
    finished = alice.wait_job(job["id"], timeout=120, interval=0.1)
    assert finished["status"] == "failed", finished
    assert finished["error"].startswith("chunk.ome.zarr: refers to 0/c/0/0, which lies outside")
    assert str(places["outside"]) not in finished["error"]
    assert refused(lambda: alice.download_result(job["id"], tmp_path), 409)
    alice.delete_job(job["id"])


def test_a_job_whose_batches_would_not_fit_the_memory_limit_is_refused(alice, model_id, places):
    # a real image: windows are clipped to it (64 × 2048² of a 1 GB limit), so it must exist
    tifffile.imwrite(places["root"] / "big.tif", np.zeros((2048, 2048), np.uint8))
    message = refused(
        lambda: alice.submit_job(model_id, image_path="big.tif", tile_size=8192, batch_size=64)
    )
    assert "MB of server memory" in message and "its tiles are 2048 px" in message
    assert alice.list_jobs() == []
    fit = re.search(r"or tile_size (\d+) or less", message)  # in batches of 64 still
    assert fit is not None, message
    for size, accepted in ((int(fit[1]), True), (int(fit[1]) + 64, False)):  # the largest
        submit = lambda s=size: alice.submit_job(  # noqa: E731
            model_id, image_path="big.tif", tile_size=s, batch_size=64)  # fmt: skip
        if accepted:
            alice.cancel_job(submit()["id"])
        else:
            assert "its tiles are" in refused(submit)


# --- confinement: uploaded images ---------------------------------------------------------------


@pytest.mark.parametrize("companion", ["/etc/passwd", "../secret.tif", "../../../etc/hostname"])
def test_uploaded_ome_tiff_naming_other_files_is_refused_and_not_kept(
    alice, places, tmp_path, companion
):
    master = ome_tiff_naming(tmp_path / "upload.ome.tif", companion)
    message = refused(lambda: alice.upload_image(master))
    assert "upload.ome.tif" in message and "outside" in message
    assert alice.list_uploads() == []
    assert list((places["data"] / "uploads").iterdir()) == []


def test_an_upload_is_confined_to_its_own_folder_in_jobs_too(alice, model_id, places, tmp_path):
    """Even another upload of the same user is outside an upload's folder."""
    plain = tmp_path / "plane1.tif"
    tifffile.imwrite(plain, SECRET)
    first = alice.upload_image(plain)
    master = ome_tiff_naming(tmp_path / "stack.ome.tif", f"../{first}/plane1.tif")  # kept by name
    assert "outside" in refused(lambda: alice.upload_image(master))
    alice.delete_upload(first)


# --- bodies ------------------------------------------------------------------------------------


def test_a_json_body_over_its_limit_is_413_and_not_echoed(server, tokens):
    body = b'{"model_id": "' + b"x" * (JSON_KB * 1024 * 4) + b'"}'
    response = httpx.post(
        f"{server.url}/jobs",
        content=body,
        headers={"Authorization": f"Bearer {tokens['alice']}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert len(response.content) < 1000


def test_a_json_body_nested_too_deep_is_told_so(server, tokens):
    """Lists nested 20,000 deep (40 KB, under the default limit) answered FastAPI's bare
    "error parsing the body"."""
    depth = 1_900  # within the server's JSON limit here (4 KB)
    response = httpx.post(
        f"{server.url}/jobs",
        content=b"[" * depth + b"]" * depth,
        headers={"Authorization": f"Bearer {tokens['alice']}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "nested too deep" in response.json()["detail"]
    latin = httpx.post(
        f"{server.url}/jobs",
        content='{"model_id": "é"}'.encode("latin-1"),
        headers={"Authorization": f"Bearer {tokens['alice']}", "Content-Type": "application/json"},
    )
    assert latin.status_code == 400 and "not UTF-8" in latin.json()["detail"]  # not "too deep"


def test_a_422_does_not_echo_the_input(server, tokens, model_id):
    junk = "y" * 3000  # under the JSON limit, over every field's limit
    response = httpx.post(
        f"{server.url}/jobs",
        json={"model_id": model_id, "image_path": "a.tif", "options": {"normalize": junk}},
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert response.status_code == 422
    assert junk[:100] not in response.text and len(response.content) < 2000
    assert response.json()["detail"][0]["loc"] == ["body", "options", "normalize"]


@pytest.mark.parametrize(
    "shape",
    [
        "4294967296,4294967296,4294967296",
        "9223372036854775807,2",
        "18446744073709551616,1",  # past int64
        "4611686018427387920,4",  # wraps to exactly the body's 64 bytes in int64
    ],
)
def test_a_tile_shape_whose_product_overflows_is_a_4xx(server, tokens, model_id, shape):
    response = httpx.post(
        f"{server.url}/models/{model_id}/predict",
        content=b"\0" * 64,
        headers={
            "Authorization": f"Bearer {tokens['alice']}",
            "X-Tile-Dtype": "uint8",
            "X-Tile-Shape": shape,
        },
    )
    assert response.status_code == 422, response.text
    assert "X-Tile-Shape" in response.json()["detail"] or "bytes" in response.json()["detail"]


def test_an_npy_header_declaring_a_huge_shape_is_a_4xx(server, tokens, model_id):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2**40, 2**40), }"
    npy = b"\x93NUMPY\x01\x00" + len(header + "\n").to_bytes(2, "little") + header.encode() + b"\n"
    response = httpx.post(
        f"{server.url}/models/{model_id}/predict",
        content=npy + b"\0" * 16,
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert response.status_code == 422, response.text


# --- uploads: deletion and quota ---------------------------------------------------------------


def test_uploads_can_be_deleted_by_their_owner_only(server, tokens, alice, places, tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", SECRET)
    upload = alice.upload_image(tmp_path / "a.tif")
    assert (places["data"] / "uploads" / upload).is_dir()
    with Client(server.url, tokens["bob"]) as bob:
        assert refused(lambda: bob.delete_upload(upload), 404)
    alice.delete_upload(upload)
    assert not (places["data"] / "uploads" / upload).exists()
    assert refused(lambda: alice.delete_upload(upload), 404)


def test_the_upload_quota_holds_and_deleting_frees_it(server, tokens, places, tmp_path):
    image = tmp_path / "q.tif"
    tifffile.imwrite(image, np.zeros((96, 96), np.uint8))  # ~9 KB: two fit in 24 KB, three not
    with Client(server.url, tokens["carol"]) as carol:
        first, second = carol.upload_image(image), carol.upload_image(image)
        said = refused(lambda: carol.upload_image(image), 413)
        assert "what is left of your upload quota (" in said and " bytes in all) of " in said
        assert {u["id"] for u in carol.list_uploads()} == {first, second}
        carol.delete_upload(first)
        third = carol.upload_image(image)
        assert {u["id"] for u in carol.list_uploads()} == {second, third}
        for upload in (second, third):
            carol.delete_upload(upload)
    partials = [p for p in (places["data"] / "uploads").rglob("*") if "partial" in p.name]
    assert partials == []


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_uploads_sent_at_once_cannot_pass_the_quota_together(server, tokens, tmp_path, declared):
    """Six 9 KB uploads streaming at the same time against 24 KB: each holds its part of the
    quota while it streams (all it may have where it does not say its length), so at most
    two are kept, the others 413, and the quota is whole again afterwards."""
    tifffile.imwrite(tmp_path / "q.tif", np.zeros((96, 96), np.uint8))
    body = (tmp_path / "q.tif").read_bytes()

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:100]
        await asyncio.sleep(1.0)  # every upload has begun before any ends
        yield body[100:]

    async def upload_all() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {tokens['carol']}"}
        if declared:
            headers["Content-Length"] = str(len(body))
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            sends = [
                client.post("/images", params={"filename": f"c{i}.tif"}, content=slowly(),
                            headers=headers)
                for i in range(6)
            ]  # fmt: skip
            return await asyncio.gather(*sends)

    answers = [response.status_code for response in run_async(upload_all())]
    assert set(answers) == {201, 413} and 1 <= answers.count(201) <= 2, answers
    with Client(server.url, tokens["carol"]) as carol:
        kept = carol.list_uploads()
        assert len(kept) == answers.count(201) and sum(u["size"] for u in kept) <= QUOTA_KB * 1024
        for upload in kept:
            carol.delete_upload(upload["id"])
        carol.delete_upload(carol.upload_image(tmp_path / "q.tif"))  # nothing left held


# --- files on disk -----------------------------------------------------------------------------


def test_data_files_and_folders_are_private(alice, model_id, places, tmp_path):
    tifffile.imwrite(tmp_path / "p.tif", SECRET)
    upload = alice.upload_image(tmp_path / "p.tif")
    job = alice.submit_job(model_id, upload_id=upload, tile_size=32)
    assert alice.wait_job(job["id"], timeout=120, interval=0.1)["status"] == "done"
    alice.download_result(job["id"], tmp_path / "result")
    paths = [places["data"] / "scopeml.db", *places["data"].iterdir()]
    paths += [p for p in places["data"].rglob("*") if not p.is_symlink()]
    assert len(paths) > 10
    for path in paths:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.name.startswith("server-") and path.suffix == ".log":
            continue  # the test harness's own log file
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    alice.delete_job(job["id"])
    alice.delete_upload(upload)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/srv/images/a.tif", "an absolute path is not allowed"),
        ("\\\\srv\\images\\a.tif", "an absolute path is not allowed"),  # rooted, no drive
        ("\\srv\\images\\a.tif", "an absolute path is not allowed"),
        ("D:srv\\a.tif", "an absolute path is not allowed"),  # drive-relative
        ("C:\\images\\a.tif", "an absolute path is not allowed"),
        ("sub\\..\\a.tif", "'..' is not allowed"),
        ("sub/../a.tif", "'..' is not allowed"),
    ],
)
def test_a_request_path_is_named_from_the_root_on_any_system(path, says):
    """On a Windows server ``\\srv\\images\\a.tif`` joined the root's drive and was taken, so
    the root could be found (found in review)."""
    from scopeml.errors import InvalidRequestError
    from scopeml.server.paths import check_relative

    with pytest.raises(InvalidRequestError, match=re.escape(says)):
        check_relative(path)
    check_relative("plate/A1/a.tif")  # a path below the root passes
