"""The same plan on a dask.distributed cluster gives the same output as the local pool."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from scopeml.api import segment
from tests.tiling.engine_doubles import write_image_file, write_model_file

distributed = pytest.importorskip("distributed")

OUTPUTS = ("labels", "probabilities")


def _on_cluster(image, model, output, outputs):
    """Segment on a one-worker, two-thread in-process dask cluster."""
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        return segment(
            image,
            model,
            output,
            outputs=outputs,
            tile_size=32,
            scheduler=cluster.scheduler_address,
        )


def test_local_cluster_equals_local_run(tmp_path):
    rng = np.random.default_rng(1)
    image = write_image_file(
        tmp_path / "img.ome.tif", rng.integers(0, 900, (2, 70, 90)).astype(np.uint16)
    )
    model = write_model_file(tmp_path / "m.czann", in_channels=2, n_classes=3)
    local = segment(image, model, tmp_path / "local.ome.zarr", outputs=OUTPUTS, tile_size=32)
    remote = _on_cluster(image, model, tmp_path / "dask.ome.zarr", OUTPUTS)
    for name in OUTPUTS:
        got = zarr.open_array(str(remote / name / "0"), mode="r")[...]
        want = zarr.open_array(str(local / name / "0"), mode="r")[...]
        np.testing.assert_array_equal(got, want)


def test_unreachable_scheduler_is_a_request_error(tmp_path):
    import dask

    from scopeml.errors import InvalidRequestError

    image = write_image_file(tmp_path / "img.ome.tif", np.zeros((1, 16, 16), np.uint16))
    model = write_model_file(tmp_path / "m.czann", in_channels=1, n_classes=2)
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(InvalidRequestError, match="cannot reach the dask scheduler"),
    ):
        segment(image, model, tmp_path / "o.ome.zarr", scheduler="tcp://127.0.0.1:1")


def test_pixel_classifier_labels_on_a_cluster_equal_local_probabilities(tmp_path):
    # labels-only runs go through predict_index, on the workers too
    from scopeml.pixel import train_classifier
    from scopeml.synthetic import synthetic_nuclei

    pixels, instances = synthetic_nuclei((70, 90), density=0.003, seed=2)
    picked = np.random.default_rng(2).random(instances.shape) < 0.1
    labels = np.where(picked, 1 + (instances > 0), 0)
    clf = train_classifier(pixels, labels, features="gaussian_smoothing:1,3.5", n_estimators=6)
    model = clf.save(tmp_path / "m.czseg")
    image = write_image_file(tmp_path / "img.ome.tif", pixels)
    local = segment(image, model, tmp_path / "local.ome.zarr", outputs=OUTPUTS, tile_size=32)
    remote = _on_cluster(image, model, tmp_path / "dask.ome.zarr", ("labels",))
    got = zarr.open_array(str(remote / "labels" / "0"), mode="r")[...]
    want = zarr.open_array(str(local / "labels" / "0"), mode="r")[...]
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) == 2


def test_a_cancelled_cluster_run_resumes_to_the_local_result(tmp_path):
    from scopeml.errors import Cancelled
    from scopeml.tiling.store import partial_path

    rng = np.random.default_rng(3)
    image = write_image_file(
        tmp_path / "img.ome.tif", rng.integers(0, 900, (1, 96, 96)).astype(np.uint16)
    )
    model = write_model_file(tmp_path / "m.czann", in_channels=1, n_classes=2)
    out = tmp_path / "dask.ome.zarr"

    def cancel_after_two(event):
        if event.done >= 2:
            raise Cancelled("stop")

    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        run = dict(outputs=OUTPUTS, tile_size=32, scheduler=cluster.scheduler_address)
        with pytest.raises(Cancelled):
            segment(image, model, out, progress=cancel_after_two, **run)
        assert not out.exists()
        written = len(list((partial_path(out) / ".scopeml-done").iterdir()))
        events = []
        segment(image, model, out, resume=True, progress=events.append, **run)
    # only what was left (a tile running on a worker when cancelled may still finish)
    assert written >= 2 and events[0].total <= 9 - written
    local = segment(image, model, tmp_path / "local.ome.zarr", outputs=OUTPUTS, tile_size=32)
    for name in OUTPUTS:
        got = zarr.open_array(str(out / name / "0"), mode="r")[...]
        want = zarr.open_array(str(local / name / "0"), mode="r")[...]
        np.testing.assert_array_equal(got, want)


def test_a_relative_output_is_written_by_workers_in_another_folder(tmp_path, monkeypatch):
    """Workers started elsewhere (here: moved to ``/``) got the store's relative path, wrote
    nothing where the run looked, and the run failed with 'not an OME-Zarr image group'."""
    import os

    rng = np.random.default_rng(2)
    image = write_image_file(
        tmp_path / "img.ome.tif", rng.integers(0, 900, (1, 40, 50)).astype(np.uint16)
    )
    model = write_model_file(tmp_path / "m.czann", in_channels=1, n_classes=2)
    local = segment(image, model, tmp_path / "local.ome.zarr", tile_size=32)
    monkeypatch.chdir(tmp_path)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(os.chdir, "/")
        remote = segment("img.ome.tif", "m.czann", "rel.ome.zarr", tile_size=32,
                         scheduler=cluster.scheduler_address)  # fmt: skip
    got = zarr.open_array(str(tmp_path / "rel.ome.zarr" / "labels" / "0"), mode="r")[...]
    want = zarr.open_array(str(local / "labels" / "0"), mode="r")[...]
    np.testing.assert_array_equal(got, want)
    assert remote.path.name == "rel.ome.zarr"


def test_a_cluster_without_workers_is_said_and_the_run_goes_on_when_one_joins(
    tmp_path, monkeypatch
):
    """Every worker killed, a run waited without a word until it was stopped by hand."""
    import threading
    import warnings

    from scopeml.tiling import execute

    monkeypatch.setattr(execute, "NO_WORKERS_S", 0.5)
    monkeypatch.setattr(execute, "WORKERS_POLL_S", 0.1)
    image = write_image_file(tmp_path / "img.ome.tif", np.ones((1, 40, 40), np.uint16))
    model = write_model_file(tmp_path / "m.czann", in_channels=1, n_classes=2)
    done: list = []
    with (
        distributed.LocalCluster(
            n_workers=0, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        run = threading.Thread(target=lambda: done.append(segment(
            image, model, tmp_path / "o.ome.zarr", tile_size=32,
            scheduler=cluster.scheduler_address)))  # fmt: skip
        run.start()
        for _ in range(200):
            if any("has had no workers" in str(w.message) for w in caught):
                break
            run.join(0.05)
        said = [str(w.message) for w in caught if "has had no workers" in str(w.message)]
        assert said == [f"{cluster.scheduler_address} has had no workers for 0.5 s: the run "
                        "waits for some (start dask workers, or stop it with Ctrl-C and "
                        "resume later)"]  # fmt: skip
        assert run.is_alive() and not done  # waiting, not failed
        cluster.scale(1)
        run.join(120)
    assert done and (done[0] / "labels").is_dir()
