"""A job runs what the command line runs: a large halo on a small image (its memory counted on
windows clipped to the image, as the engine clips its tiles) and a regression model's
``image`` output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from onnx import TensorProto, helper, numpy_helper

from scopeml.api import segment
from scopeml.client import Client, ServerResponseError
from scopeml.model import ModelMetadata, write_container
from scopeml.server.database import Database
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess

BIG_HALO = {"tile_size": 8192, "halo": 1024}  # a window of 10240² unclipped: 2.9 GB


def box_filter_czann(path: Path) -> Path:
    """A Regression czann: the 3×3 mean of its one channel (NHWC in and out)."""
    kernel = numpy_helper.from_array(np.full((1, 1, 3, 3), 1 / 9, np.float32), "kernel")
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "kernel"], ["conv"], pads=[1] * 4),
        helper.make_node("Transpose", ["conv"], ["output"], perm=[0, 2, 3, 1]),
    ]
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "box",
        [value("input", TensorProto.FLOAT, [None, None, None, 1])],
        [value("output", TensorProto.FLOAT, [None, None, None, 1])],
        [kernel],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ModelMetadata(
        model_type="Regression", input_shape=(64, 64, 1), output_shape=(64, 64, 1),
        classes=("smoothed",), min_overlap=(1, 1), model_name="box",
    )  # fmt: skip
    return write_container(path, model, meta)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, container):
    tmp = tmp_path_factory.mktemp("job-options")
    root = tmp / "images"
    root.mkdir()
    image, _ = synthetic_nuclei((150, 230), density=0.002, seed=3)
    tifffile.imwrite(root / "small.tif", image[0])
    tifffile.imwrite(root / "large.tif", np.zeros((600, 600), np.uint16))
    db = Database(tmp / "data" / "scopeml.db")
    token = db.create_token("ada")
    db.close()
    server = ServerProcess(
        tmp / "data", "--allowed-root", str(root), "--max-tile-memory-mb", "64"
    ).start()
    try:
        with Client(server.url, token) as client:
            yield client, root, tmp
    finally:
        server.stop()


def _finished(client: Client, job: dict, folder: Path) -> Path:
    job = client.wait_job(job["id"], timeout=300)
    assert job["status"] == "done", job["error"]
    return client.download_result(job["id"], folder)


def test_a_big_halo_on_a_small_image_runs_as_on_the_command_line(setup, container):
    client, root, tmp = setup
    model_id = client.upload_model(container)["id"]
    job = client.submit_job(model_id, image_path="small.tif", **BIG_HALO)
    result = _finished(client, job, tmp / "big-halo")
    local = segment(root / "small.tif", container, tmp / "local.ome.zarr", **BIG_HALO)
    np.testing.assert_array_equal(
        zarr.open_array(str(result / "labels" / "0"), mode="r")[...],
        zarr.open_array(str(local / "labels" / "0"), mode="r")[...],
    )
    # a batch that really holds more than the limit is still refused before any work
    with pytest.raises(ServerResponseError, match="a batch of this job needs about") as err:
        client.submit_job(model_id, image_path="large.tif", tile_size=512, halo=1024, batch_size=64)
    assert err.value.status_code == 422


def test_a_regression_models_image_output_is_a_job_output(setup):
    client, root, tmp = setup
    model = box_filter_czann(tmp / "box.czann")
    model_id = client.upload_model(model)["id"]
    job = client.submit_job(model_id, image_path="small.tif", outputs=["image"], tile_size=64)
    result = _finished(client, job, tmp / "regression")
    local = segment(root / "small.tif", model, tmp / "box.ome.zarr", outputs=("image",))
    served = zarr.open_array(str(result / "image" / "0"), mode="r")[...]
    assert served.dtype == np.float32 and served.shape == (1, 150, 230)  # C×Y×X
    np.testing.assert_array_equal(
        served, zarr.open_array(str(local / "image" / "0"), mode="r")[...]
    )


def test_outputs_the_model_cannot_write_are_refused_at_submit(setup, container):
    client, _, tmp = setup
    model_id = client.upload_model(container)["id"]
    with pytest.raises(ServerResponseError, match="only Regression models write an image") as err:
        client.submit_job(model_id, image_path="small.tif", outputs=["image"])
    assert err.value.status_code == 422  # was accepted, and the job failed later
    box = client.upload_model(box_filter_czann(tmp / "box-refused.czann"))["id"]
    with pytest.raises(
        ServerResponseError, match="Regression model writes an image, not probabilities"
    ):
        client.submit_job(box, image_path="small.tif", outputs=["probabilities"])
    with pytest.raises(ServerResponseError, match=r"min_confidence .* does not apply"):
        client.submit_job(box, image_path="small.tif", min_confidence=0.5)
    with pytest.raises(ServerResponseError, match="need 0 <= LOW < HIGH <= 100") as err:
        client.submit_job(model_id, image_path="small.tif", normalize="percentile:99,1")
    assert err.value.status_code == 422  # was accepted, and the job failed naming the image
    assert all(job["model_id"] not in (model_id, box) for job in client.list_jobs())


def test_a_job_at_a_scale_runs_as_on_the_command_line(setup, container):
    client, root, tmp = setup
    model_id = client.upload_model(container)["id"]
    options = {"scale": 1.5, "tile_size": 64}  # as the request's JSON holds them
    job = client.submit_job(model_id, image_path="small.tif", options=options)
    assert job["options"]["scale"] == 1.5
    result = _finished(client, job, tmp / "scaled")
    local = segment(root / "small.tif", container, tmp / "scaled.ome.zarr", scale=1.5)
    np.testing.assert_array_equal(
        zarr.open_array(str(result / "labels" / "0"), mode="r")[...],
        zarr.open_array(str(local / "labels" / "0"), mode="r")[...],
    )
    with pytest.raises(ServerResponseError) as err:  # a factor the engine refuses
        client.submit_job(model_id, image_path="small.tif", scale=100)
    assert err.value.status_code == 422
