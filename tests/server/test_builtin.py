"""Built-in models by name on the server and the client (issue #13 item 4): listed read-only,
usable for tiles and jobs like an uploaded model, with the local engine's exact result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.api import segment
from scopeml.client import ServerResponseError
from scopeml.model.registry import BUILTIN_MODELS
from scopeml.synthetic import synthetic_nuclei

OPTIONS = {"tile_size": 64, "outputs": ["labels"]}


@pytest.fixture(scope="module")
def image_path(image_root: Path) -> Path:
    image, _ = synthetic_nuclei((100, 120), density=0.003, seed=11)
    path = image_root / "builtin-nuclei.tif"
    tifffile.imwrite(path, image[0])
    return path


@pytest.fixture(scope="module")
def local_labels(image_path: Path, tmp_path_factory) -> np.ndarray:
    output = tmp_path_factory.mktemp("builtin-local") / "local.ome.zarr"
    segment(image_path, "nuclei", output, **OPTIONS)
    return zarr.open_array(output / "labels" / "0", mode="r")[...]


def test_models_lists_the_built_ins_read_only(alice):
    models = {record["id"]: record for record in alice.list_models()}
    assert set(BUILTIN_MODELS) <= set(models)
    nuclei = models["nuclei"]
    assert nuclei["builtin"] is True and nuclei["shared"] is True
    assert nuclei["description"] == BUILTIN_MODELS["nuclei"].description
    assert nuclei["spec"]["classes"] == list(alice.model_spec("nuclei").classes)
    for change in (lambda: alice.delete_model("nuclei"), lambda: alice.share_model("nuclei")):
        with pytest.raises(ServerResponseError) as err:
            change()
        assert err.value.status_code == 403 and "built-in" in str(err.value)


def test_client_segment_with_a_built_in_name_equals_local(
    alice, image_path, local_labels, tmp_path
):
    remote = alice.segment(image_path, "nuclei", tmp_path / "remote.ome.zarr", **OPTIONS)
    labels = zarr.open_array(remote / "labels" / "0", mode="r")[...]
    assert labels.max() > 0
    assert np.array_equal(labels, local_labels)


def test_a_job_may_name_a_built_in_model(alice, image_path, local_labels, tmp_path):
    job = alice.submit_job("nuclei", image_path=image_path.name, **OPTIONS)
    finished = alice.wait_job(job["id"], timeout=120, interval=0.1)
    assert finished["status"] == "done", finished
    result = alice.download_result(job["id"], tmp_path)
    assert np.array_equal(zarr.open_array(result / "labels" / "0", mode="r")[...], local_labels)


def test_an_unknown_name_is_404(alice):
    with pytest.raises(ServerResponseError) as err:
        alice.predict_tile("no-such-builtin", np.zeros((1, 32, 32), np.float32))
    assert err.value.status_code == 404
