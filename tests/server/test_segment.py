"""Client-side tiling and whole-image jobs give exactly the local engine's result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.api import segment
from scopeml.client import Client, ServerResponseError
from scopeml.synthetic import synthetic_nuclei

OPTIONS = {"tile_size": 64, "outputs": ["labels", "probabilities"]}


def read_outputs(store: Path) -> dict[str, np.ndarray]:
    return {name: zarr.open_array(store / name / "0", mode="r")[...] for name in OPTIONS["outputs"]}


def assert_same_outputs(a: Path, b: Path) -> None:
    left, right = read_outputs(a), read_outputs(b)
    for name in OPTIONS["outputs"]:
        assert left[name].dtype == right[name].dtype, name
        assert np.array_equal(left[name], right[name]), name


@pytest.fixture(scope="module")
def image_path(image_root: Path) -> Path:
    image, _ = synthetic_nuclei((150, 230), density=0.002, seed=3)
    path = image_root / "nuclei.tif"
    tifffile.imwrite(path, image[0])
    return path


@pytest.fixture(scope="module")
def local_result(image_path: Path, container: Path, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("local") / "local.ome.zarr"
    return segment(image_path, container, output, **OPTIONS)


@pytest.fixture(scope="module")
def model_id(alice: Client, container: Path) -> str:
    return alice.upload_model(container)["id"]


def test_client_side_tiling_equals_local_segment(
    alice, model_id, image_path, local_result, tmp_path
):
    remote = alice.segment(image_path, model_id, tmp_path / "remote.ome.zarr", **OPTIONS)
    labels = read_outputs(remote)["labels"]
    assert labels.shape == (150, 230) and labels.max() > 0
    assert_same_outputs(remote, local_result)


def test_job_on_server_path_equals_local_segment(
    alice, model_id, image_path, local_result, tmp_path
):
    job = alice.submit_job(model_id, image_path="nuclei.tif", **OPTIONS)
    assert job["status"] in ("queued", "running")
    finished = alice.wait_job(job["id"], timeout=120, interval=0.1)
    assert finished["status"] == "done", finished
    assert finished["done"] == finished["total"] == 12  # 3 × 4 tiles of 64
    result = alice.download_result(job["id"], tmp_path)
    assert result == tmp_path / f"{job['id']}.ome.zarr"
    assert_same_outputs(result, local_result)
    alice.delete_job(job["id"])
    with pytest.raises(ServerResponseError) as err:
        alice.job(job["id"])
    assert err.value.status_code == 404


def test_job_on_uploaded_image(alice, model_id, image_path, local_result, tmp_path):
    upload_id = alice.upload_image(image_path)
    job = alice.submit_job(model_id, upload_id=upload_id, **OPTIONS)
    assert alice.wait_job(job["id"], timeout=120, interval=0.1)["status"] == "done"
    assert_same_outputs(alice.download_result(job["id"], tmp_path), local_result)


@pytest.mark.parametrize(
    "path, message",
    [
        ("../outside.tif", "'..' is not allowed; name the file from the allowed root"),
        ("../{root}/missing.tif", "'..' is not allowed; name the file from the allowed root"),
        ("../{root}/nuclei.tif", "'..' is not allowed; name the file from the allowed root"),
        ("/etc/passwd", "an absolute path is not allowed; name the file from the allowed root"),
        ("{abs_root}/nuclei.tif", "an absolute path is not allowed"),  # inside: refused alike
        ("missing.tif", "does not exist"),
        ("plate", "is a folder, not an image: a job runs on one image; an analysis"),
        ("folder.tif", "is a folder, not an image"),  # the reader's error showed its path
    ],
)
def test_job_paths_stay_below_the_allowed_root(
    alice, model_id, image_root, image_path, path, message
):
    path = path.format(root=image_root.name, abs_root=image_root)  # back in: refused alike
    (image_root / "plate").mkdir(exist_ok=True)
    (image_root / "folder.tif").mkdir(exist_ok=True)
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job(model_id, image_path=path)
    assert err.value.status_code == 422
    assert message in str(err.value)
    assert str(image_root) not in str(err.value).replace(path, "")  # but the client's own


def test_symlink_out_of_the_root_is_refused(alice, model_id, image_root, tmp_path):
    outside = tmp_path / "secret.tif"
    tifffile.imwrite(outside, np.zeros((8, 8), np.uint16))
    (image_root / "link.tif").symlink_to(outside)
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job(model_id, image_path="link.tif")
    assert "outside the allowed root" in str(err.value)


def test_bad_job_options_are_422(alice, model_id, image_path):
    for options in ({"tile_size": 3}, {"outputs": ["everything"]}, {"workers": 64}):
        with pytest.raises(ServerResponseError) as err:
            alice.submit_job(model_id, image_path="nuclei.tif", **options)
        assert err.value.status_code == 422


def test_other_users_job_is_404(server, tokens, alice, model_id, image_path):
    job = alice.submit_job(model_id, image_path="nuclei.tif", tile_size=64)
    with Client(server.url, tokens["bob"]) as bob:
        with pytest.raises(ServerResponseError) as err:
            bob.job(job["id"])
        assert err.value.status_code == 404
        assert job["id"] not in [j["id"] for j in bob.list_jobs()]
    alice.wait_job(job["id"], timeout=120, interval=0.1)


def test_job_with_an_incompatible_model_is_refused_at_submit_with_the_reason(
    alice, image_path, tmp_path
):
    from .conftest import make_container

    two_channel = alice.upload_model(make_container(tmp_path / "rgb.czann", in_channels=2))
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job(two_channel["id"], image_path="nuclei.tif")
    assert err.value.status_code == 422
    assert "nuclei.tif: has 1 channel; model 'rgb.czann' takes 2: give an image with 2" in str(
        err.value
    )
    assert len(alice.list_jobs()) == before  # nothing queued to fail later


def test_a_file_of_scenes_of_different_sizes_needs_a_scene_at_submit(alice, model_id, image_root):
    """Refused at submit, saying the sizes and the option (a job could only fail on it); a
    scene given runs."""
    image, _ = synthetic_nuclei((64, 80), density=0.004, seed=9)
    with tifffile.TiffWriter(image_root / "scenes.ome.tif", ome=True) as tif:
        tif.write(image[0], metadata={"axes": "YX"})
        tif.write(image[0][:48, :40], metadata={"axes": "YX"})
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job(model_id, image_path="scenes.ome.tif", tile_size=64)
    assert err.value.status_code == 422 and len(alice.list_jobs()) == before
    assert "2 scenes of different sizes (0: 64×80, 1: 48×40); give the job option scene (0–1)" in (
        str(err.value)
    )
    job = alice.submit_job(model_id, image_path="scenes.ome.tif", tile_size=64, scene=1)
    done = alice.wait_job(job["id"], timeout=120, interval=0.1)
    assert done["status"] == "done", done
