"""Axes named once are kept everywhere: ``segment(path, axes=)`` and ``predict_region`` in
Python (checked as ``open_image`` and ``--axes`` check them), the run record (a resume that
reads the file with other axes is refused naming both), the table of ``measure``, dask workers
that reopen the file (``--axes`` with ``--scheduler``), and a server job (``axes`` in its
options, its image checked at submit as the job reads it)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.api import open_image, open_model, predict_region, segment
from scopeml.cli import main
from scopeml.errors import IncompleteOutputError, InvalidImageError, InvalidRequestError
from scopeml.io import create_ome_zarr
from scopeml.objects.instances import InstanceOptions
from scopeml.tiling.store import partial_path
from tests.tiling.engine_doubles import FailingAfter, write_model_file

FRAMES = (5, 40, 40)  # a plain page sequence: read as Z=5 unless told


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("axes-kept")
    movie = folder / "movie.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(movie, rng.integers(0, 900, FRAMES).astype(np.uint16))
    return movie, write_model_file(folder / "m.czann")


def labels_of(store: Path) -> np.ndarray:
    return zarr.open_array(str(Path(store) / "labels" / "0"), mode="r")[...]


def told(movie: Path, model: Path, out: Path) -> np.ndarray:
    """The labels of the movie opened with its axes first (the way before ``axes=``)."""
    with open_image(movie, axes="TYX") as image:
        segment(image, model, out, tile_size=16, workers=1)
    return labels_of(out)


def test_segment_takes_a_files_axes(files, tmp_path):
    movie, model = files
    seg = segment(movie, model, tmp_path / "o.ome.zarr", tile_size=16, axes="tyx")
    assert (seg.labels.sizes["T"], seg.labels.sizes["Z"]) == (5, 1)
    np.testing.assert_array_equal(
        labels_of(seg.path), told(movie, model, tmp_path / "told.ome.zarr")
    )
    record = zarr.open_group(str(seg.path), mode="r").attrs["scopeml"]
    assert record["axes"] == "TYX"  # the store says how the file was read
    plain = segment(movie, model, tmp_path / "plain.ome.zarr", tile_size=16)
    assert plain.labels.sizes["Z"] == 5
    assert "axes" not in zarr.open_group(str(plain.path), mode="r").attrs["scopeml"]


def test_predict_region_takes_a_files_axes(files, tmp_path):
    movie, model = files
    whole = told(movie, model, tmp_path / "told.ome.zarr")
    region = predict_region(movie, model, {"T": (1, 3), "Y": (5, 30)}, axes="TYX")
    np.testing.assert_array_equal(region, whole[1:3, 5:30])  # T Y X


@pytest.mark.parametrize(
    ("axes", "error", "problem"),
    [
        ("TQX", InvalidRequestError, "axes 'TQX': unknown letter Q; use T, C, Z, Y, X"),
        (
            "TZYX",
            InvalidImageError,
            "axes 'TZYX' name 4 axes; the file has 3 (5 pages, Y=40, X=40)",
        ),
        ("TTX", InvalidRequestError, "axes 'TTX': T given twice"),
    ],
)
def test_bad_axes_get_the_messages_of_the_command_line(
    files, tmp_path, capsys, axes, error, problem
):
    movie, model = files
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(error) as caught:
        segment(movie, model, out, axes=axes)
    assert problem in caught.value.problem
    assert main(["segment", str(movie), "-m", str(model), "-o", str(out), "--axes", axes]) == 2
    assert problem in capsys.readouterr().err
    assert not out.exists() and not partial_path(out).exists()


def test_axes_for_an_open_image_or_another_format_are_refused(files, tmp_path):
    movie, model = files
    with (
        open_image(movie) as image,
        pytest.raises(InvalidRequestError, match="is open already: pass the file's path"),
    ):
        segment(image, model, tmp_path / "o.ome.zarr", axes="TYX")
    store = tmp_path / "a.ome.zarr"
    create_ome_zarr(store, shape=(40, 40), dtype="uint16", axes="YX", chunks=(40, 40))
    with pytest.raises(InvalidImageError, match="applies to TIFF files"):
        segment(store, model, tmp_path / "z.ome.zarr", axes="YX")


@pytest.fixture
def stopped(files, tmp_path) -> Path:
    """A run on the movie with ``axes="TYX"`` stopped after 2 tiles."""
    movie, model = files
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(RuntimeError, match="power cut"):
        segment(movie, FailingAfter(open_model(model), 2), out, tile_size=16, batch_size=1,
                workers=1, axes="TYX")  # fmt: skip
    assert len(os.listdir(partial_path(out) / ".scopeml-done")) == 2
    return out


@pytest.mark.parametrize(
    ("axes", "now"),
    [(None, "not the file's own (Z=5 Y=40 X=40)"), ("ZYX", "not ZYX (Z=5 Y=40 X=40)")],
)
def test_a_resume_with_other_axes_is_refused_naming_both(files, stopped, axes, now):
    movie, model = files
    with pytest.raises(IncompleteOutputError) as caught:
        segment(movie, model, stopped, tile_size=16, resume=True, axes=axes)
    said = caught.value.problem
    assert f"the run read the image {movie.resolve()} with axes TYX (T=5 Y=40 X=40), {now}" in said
    assert "pass --axes TYX (axes='TYX')" in said
    assert "axes: " not in said  # not listed again as a changed setting


def test_a_resume_with_the_same_axes_ends_as_an_uninterrupted_run(files, stopped, tmp_path):
    movie, model = files
    args = ["segment", str(movie), "-m", str(model), "-o", str(stopped), "--tile-size", "16"]
    assert main([*args, "--axes", "TYX", "--resume", "-q"]) == 0
    np.testing.assert_array_equal(labels_of(stopped), told(movie, model, tmp_path / "t.ome.zarr"))


def test_a_record_from_before_axes_were_kept_still_resumes(files, stopped, tmp_path):
    movie, model = files
    run = partial_path(stopped) / ".scopeml-run.json"
    record = json.loads(run.read_text())
    del record["axes"]  # as a run given an Image opened with axes recorded it
    run.write_text(json.dumps(record))
    segment(movie, model, stopped, tile_size=16, resume=True, axes="TYX")
    np.testing.assert_array_equal(labels_of(stopped), told(movie, model, tmp_path / "t.ome.zarr"))


def test_the_table_measures_the_pixels_read_with_the_axes(files, tmp_path):
    import pandas as pd

    movie, model = files
    table = tmp_path / "objects.csv"
    seg = segment(movie, model, tmp_path / "o.ome.zarr", tile_size=16, axes="TYX",
                  measure=table, instances=InstanceOptions(class_="class1"))  # fmt: skip
    objects = pd.read_csv(table)
    with open_image(movie, axes="TYX") as image:
        pixels = image.read()[0, :, 0, 0]  # T Y X
    ids = seg.instances.read()[0, :, 0, 0]
    assert len(objects) > 0 and sorted(objects["t"].unique()) == sorted(
        {int(t) for t in np.nonzero(ids.reshape(5, -1).max(axis=1))[0]}
    )
    first = objects.iloc[0]
    inside = ids[int(first["t"])] == first["label"]
    assert first["intensity_mean_C0"] == pytest.approx(pixels[int(first["t"])][inside].mean())


@pytest.fixture(scope="module")
def cluster():
    """One in-process worker: a real scheduler, small and quick."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as local:
        yield local


def test_axes_go_with_a_scheduler(files, cluster, tmp_path, capsys):
    movie, model = files
    expected = told(movie, model, tmp_path / "told.ome.zarr")
    seg = segment(movie, model, tmp_path / "d.ome.zarr", tile_size=16, axes="TYX",
                  scheduler=cluster)  # fmt: skip
    np.testing.assert_array_equal(labels_of(seg.path), expected)
    out = tmp_path / "cli.ome.zarr"
    args = ["segment", str(movie), "-m", str(model), "-o", str(out), "--tile-size", "16", "-q"]
    assert main([*args, "--axes", "TYX", "--scheduler", cluster.scheduler_address]) == 0
    np.testing.assert_array_equal(labels_of(out), expected)


# ---------------------------------------------------------------- a server job


@pytest.fixture(scope="module")
def client(tmp_path_factory, files) -> Iterator:
    from scopeml.client import Client
    from tests.server.conftest import own_server

    movie, _ = files
    for server in own_server(tmp_path_factory, "axes", "--allowed-root", str(movie.parent)):
        with Client(server.url, server.tokens["alice"]) as client:
            yield client


def test_a_server_job_reads_the_file_with_its_axes(client, files, tmp_path):
    from scopeml.client import ServerResponseError

    movie, model = files
    model_id = client.upload_model(model)["id"]
    with pytest.raises(ServerResponseError) as caught:  # checked at submit, as the job reads
        client.submit_job(model_id, image_path=movie.name, axes="TZYX")
    assert caught.value.status_code == 422
    assert "axes 'TZYX' name 4 axes; the file has 3 (5 pages, Y=40, X=40)" in str(caught.value)
    with pytest.raises(ServerResponseError, match="unknown letter Q") as caught:
        client.submit_job(model_id, image_path=movie.name, axes="TQX")
    assert caught.value.status_code == 422
    submitted = client.submit_job(model_id, image_path=movie.name, axes="tyx", tile_size=16)
    job = client.wait_job(submitted["id"], timeout=300)
    assert job["status"] == "done", job["error"]
    assert job["options"]["axes"] == "TYX"
    result = client.download_result(job["id"], tmp_path / "served")
    np.testing.assert_array_equal(labels_of(result), told(movie, model, tmp_path / "t.ome.zarr"))
