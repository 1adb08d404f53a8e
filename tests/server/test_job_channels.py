"""A segment job's channels are checked at submit against the image read with the job's axes,
and chosen with the job's ``channels`` option: a five-channel plain TIFF read as ``CYX`` for a
one-channel model answers 422 in the job's words, not the CLI's (t6 report N6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.client import Client, ServerResponseError
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess, make_container, own_server

WAIT_S = 240.0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("job-channels-root")
    nuclei, _ = synthetic_nuclei((64, 80), density=0.004, seed=3)
    others = [np.full((64, 80), 10 * k, np.uint16) for k in range(4)]
    stack = np.stack([*others, nuclei[0].astype(np.uint16)])  # the nuclei are channel 4
    tifffile.imwrite(folder / "five.tif", stack)  # plain TIFF: pages read as Z unless axes
    tifffile.imwrite(folder / "one.tif", nuclei[0].astype(np.uint16))
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[ServerProcess]:
    yield from own_server(tmp_path_factory, "job-channels", "--allowed-root", str(root))


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def model_id(alice: Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = make_container(tmp_path_factory.mktemp("job-channels-model") / "one.czann")
    return alice.upload_model(path)["id"]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"axes": "CYX"}, "five.tif: has 5 channels (read with axes CYX); model 'one.czann' "
         "takes 1: choose it with the job's channels option"),
        ({"axes": "CYX", "channels": [7]}, "channels: five.tif: has 5 channels (read with axes "
         "CYX), so no index 7"),
        ({"axes": "CYX", "channels": [0, 4]}, "channels gives 2 channels; model 'one.czann' "
         "takes 1"),
        ({"axes": "CYX", "channels": [True]}, "channels"),
    ],
)  # fmt: skip
def test_channels_that_cannot_fit_the_model_answer_422_at_submit(alice, model_id, options, says):
    before = len(alice.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        alice.submit_job(model_id, image_path="five.tif", tile_size=64, **options)
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert says in message, message
    assert "--channels" not in message and "in Python" not in message
    assert len(alice.list_jobs()) == before  # nothing queued


def test_a_job_chooses_its_channel_and_gives_what_that_channel_alone_gives(
    alice, model_id, tmp_path
):
    """``channels: [4]`` of the five read as CYX is the nuclei channel: the labels equal those
    of the one-channel file holding the same pixels."""
    chosen = alice.submit_job(
        model_id, image_path="five.tif", axes="CYX", channels=[4], tile_size=64
    )
    alone = alice.submit_job(model_id, image_path="one.tif", tile_size=64)
    labels = []
    for job in (chosen, alone):
        done = alice.wait_job(job["id"], timeout=WAIT_S, interval=0.2)
        assert done["status"] == "done" and done["error"] is None, done
        result = alice.download_result(job["id"], tmp_path / job["id"])
        labels.append(_labels(result))
        alice.delete_job(job["id"])
    assert labels[0].shape == labels[1].shape == (64, 80)
    assert len(np.unique(labels[1])) > 1  # the model gives more than one class here
    np.testing.assert_array_equal(labels[0], labels[1])


def _labels(store: Path) -> np.ndarray:
    return np.asarray(zarr.open_array(store / "labels" / "0", mode="r")[...]).reshape(-1, 64, 80)[0]
