"""A long-lived dask cluster runs the files as they are now, not as a worker first saw them."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from scopeml.api import segment
from tests.tiling.engine_doubles import write_image_file, write_model_file

distributed = pytest.importorskip("distributed")

OUTPUTS = ("labels", "probabilities")


def _read(output):
    return {name: zarr.open_array(str(output / name / "0"), mode="r")[...] for name in OUTPUTS}


@pytest.fixture
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        yield cluster


def test_a_model_replaced_between_two_runs_is_the_new_model(tmp_path, cluster):
    rng = np.random.default_rng(5)
    image = write_image_file(
        tmp_path / "img.ome.tif", rng.integers(0, 900, (1, 64, 80)).astype(np.uint16)
    )
    model = tmp_path / "m.czann"
    write_model_file(model, seed=1)
    run = dict(outputs=OUTPUTS, tile_size=32, scheduler=cluster.scheduler_address)
    first = _read(segment(image, model, tmp_path / "first.ome.zarr", **run))
    write_model_file(model, seed=2)  # the same path, another model
    second = _read(segment(image, model, tmp_path / "second.ome.zarr", **run))
    local = _read(segment(image, model, tmp_path / "local.ome.zarr", outputs=OUTPUTS, tile_size=32))
    assert not np.array_equal(first["probabilities"], local["probabilities"])
    for name in OUTPUTS:
        np.testing.assert_array_equal(second[name], local[name])


def test_an_image_replaced_between_two_runs_is_the_new_image(tmp_path, cluster):
    rng = np.random.default_rng(6)
    image = tmp_path / "img.ome.tif"
    write_image_file(image, rng.integers(0, 900, (1, 64, 80)).astype(np.uint16))
    model = write_model_file(tmp_path / "m.czann", seed=1)
    run = dict(outputs=OUTPUTS, tile_size=32, scheduler=cluster.scheduler_address)
    first = _read(segment(image, model, tmp_path / "first.ome.zarr", **run))
    write_image_file(image, rng.integers(0, 900, (1, 64, 80)).astype(np.uint16))
    second = _read(segment(image, model, tmp_path / "second.ome.zarr", **run))
    local = _read(segment(image, model, tmp_path / "local.ome.zarr", outputs=OUTPUTS, tile_size=32))
    assert not np.array_equal(first["probabilities"], local["probabilities"])
    for name in OUTPUTS:
        np.testing.assert_array_equal(second[name], local[name])


def _load_text(path):
    from pathlib import Path

    return Path(path).read_text()


def test_a_worker_reloads_a_replaced_file_and_refuses_one_replaced_during_the_run(tmp_path):
    from scopeml.errors import InvalidRequestError
    from scopeml.tiling.execute import LoadRef, resolve, with_identity

    path = tmp_path / "m.txt"
    path.write_text("first")
    first = with_identity(LoadRef(_load_text, (str(path),)))
    assert resolve(first) == "first"
    path.write_text("second, longer")  # replaced between two runs
    second = with_identity(LoadRef(_load_text, (str(path),)))
    assert second.identity != first.identity
    assert resolve(second) == "second, longer"
    assert resolve(second) == "second, longer"  # cached: the same version
    path.write_text("third")  # replaced while the second run goes on
    second_again = LoadRef(_load_text, (str(path),), second.identity)
    assert resolve(second_again) == "second, longer"  # this worker loaded it before the change
    with pytest.raises(InvalidRequestError, match="changed since the run began"):
        resolve(first)  # a version the file no longer has: refused, never loaded
