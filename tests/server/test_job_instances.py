"""Server jobs make instances and an objects table (issue #13, items 3–4): through the facade,
so a job's instances and table are those of :func:`scopeml.api.segment` on the same image;
impossible requests are refused at submit; the instance stage's memory is counted."""

from __future__ import annotations

import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from onnx import TensorProto, helper, numpy_helper

from scopeml.api import segment
from scopeml.client import Client, ServerResponseError
from scopeml.errors import Cancelled
from scopeml.model import ModelMetadata, write_container
from scopeml.model.registry import resolve_model
from scopeml.objects.instances import InstanceOptions
from scopeml.server._job_child import run_in_child
from scopeml.server.database import Database
from scopeml.server.limits import after_engine_memory, job_memory, megabytes
from scopeml.server.models import RUNTIME_KEY, spec_from_dict
from scopeml.synthetic import synthetic_nuclei

from .conftest import ServerProcess
from .test_job_options import box_filter_czann

# scale 1: several tiles to stop between (auto halves it, and a halo past the image is 1 tile)
OPTIONS = {"tile_size": 64, "scale": 1, "outputs": ["labels", "instances"]}
WAIT_S = 300


def read(store: Path, name: str) -> np.ndarray:
    return zarr.open_array(store / name / "0", mode="r")[...]


def finished(client: Client, job: dict) -> dict:
    job = client.wait_job(job["id"], timeout=WAIT_S, interval=0.1)
    assert job["status"] == "done", job
    return job


@pytest.fixture(scope="module")
def image_path(image_root: Path) -> Path:
    image, _ = synthetic_nuclei((140, 170), density=0.004, seed=21)  # some nuclei touch
    path = image_root / "instances-nuclei.tif"
    tifffile.imwrite(path, image[0])
    return path


@pytest.fixture(scope="module")
def local(image_path: Path, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("instances-local")
    result = segment(image_path, "nuclei", folder / "local.ome.zarr", **OPTIONS,
                     measure=folder / "objects.csv")  # fmt: skip
    return result, pd.read_csv(folder / "objects.csv")


def test_a_job_with_instances_and_a_table_equals_the_facade(alice, image_path, local, tmp_path):
    expected, expected_table = local
    job = alice.submit_job("nuclei", image_path=image_path.name, **OPTIONS, measure=True)
    assert job["options"]["measure"] == "csv"
    assert finished(alice, job)["step"] == "measure"  # the last step it ran
    result = alice.download_result(job["id"], tmp_path / "zip")
    instances = read(result, "instances")
    assert instances.max() >= 5, "too few nuclei to compare"
    assert np.array_equal(instances, read(expected, "instances"))
    assert np.array_equal(read(result, "labels"), read(expected, "labels"))
    assert sorted(p.name for p in result.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in expected.iterdir() if not p.name.startswith(".")
    )  # the probabilities seeds were made from are not kept, as locally

    beside = pd.read_csv(result.parent / f"{job['id']}.csv")  # in the zip, beside the store
    table = pd.read_csv(alice.download_table(job["id"], tmp_path / "table"))
    ids = np.unique(instances[instances > 0])
    assert sorted(table["label"]) == ids.tolist()  # one row per instance
    pd.testing.assert_frame_equal(table, expected_table)
    pd.testing.assert_frame_equal(beside, expected_table)


def test_client_side_segment_makes_the_same_instances(alice, image_path, local, tmp_path):
    expected, expected_table = local
    remote = alice.segment(image_path, "nuclei", tmp_path / "remote.ome.zarr", **OPTIONS,
                           measure=tmp_path / "remote.csv")  # fmt: skip
    assert np.array_equal(read(remote, "instances"), read(expected, "instances"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "remote.csv"), expected_table)


def test_instance_options_and_parquet_as_locally(alice, image_path, tmp_path):
    chosen = InstanceOptions(seed_threshold=None, grow=2, min_size=20)  # argmax seeds
    local = segment(image_path, "nuclei", tmp_path / "local.ome.zarr", tile_size=48,
                    instances=chosen, measure=tmp_path / "local.parquet")  # fmt: skip
    job = alice.submit_job(
        "nuclei", image_path=image_path.name, tile_size=48, instances=chosen, measure="parquet"
    )
    assert job["options"]["instances"]["seed_threshold"] is None
    assert "class" in job["options"]["instances"]  # the JSON name; no old one to warn about
    assert not {"class_", "boundary", "threshold"} & set(job["options"]["instances"])
    finished(alice, job)
    result = alice.download_result(job["id"], tmp_path / "zip")
    assert np.array_equal(read(result, "instances"), read(local, "instances"))
    assert (tmp_path / "zip" / f"{job['id']}.parquet").is_file()  # the table it asked for
    assert not (tmp_path / "zip" / f"{job['id']}.csv").exists()
    table = pd.read_parquet(alice.download_table(job["id"], tmp_path / "table"))
    pd.testing.assert_frame_equal(table, pd.read_parquet(tmp_path / "local.parquet"))
    default = segment(image_path, "nuclei", tmp_path / "default.ome.zarr", tile_size=48,
                      outputs=("labels", "instances"))  # fmt: skip
    assert not np.array_equal(read(default, "instances"), read(local, "instances"))


def test_the_child_reports_each_step_and_publishes_only_when_all_are_made(image_path, tmp_path):
    """The job's process, as the server runs it: the engine's tiles as progress, then the
    steps after it; the outputs appear in place only at the end, the stage folder is gone."""
    job = tmp_path / "job"
    task = {
        "kind": "segment", "model": str(resolve_model("nuclei")), "time_budget": 60.0,
        "image": str(image_path), "roots": [str(image_path.parent)],
        "options": {"tile_size": 64, "scale": 1, "outputs": ["instances"], "measure": "parquet"},
        "output": str(job / "result.ome.zarr"), "table": str(job / "objects.parquet"),
        "stage": str(job / "stage"),
    }  # fmt: skip
    progress, steps, seen = [], [], []

    def on_step(name: str) -> None:
        steps.append(name)
        seen.append(sorted(p.name for p in job.iterdir()) if job.exists() else [])

    assert run_in_child(task, lambda *done: progress.append((steps[-1], *done)),
                        (threading.Event(),), None, on_step) is None  # fmt: skip
    # the nuclei model's normalisation reads the image first (its blocks are the progress then)
    assert steps == ["statistics", "segment", "instances", "measure"]
    engine = [done for step, *done in progress if step == "segment"]
    assert engine[-1] == [9, 9]  # 3 × 3 tiles
    assert {step for step, *_ in progress} == set(steps)  # every step counts its work
    assert seen[2:] == [["stage"], ["stage"]]  # nothing in place while the steps run
    assert sorted(p.name for p in job.iterdir()) == ["objects.parquet", "result.ome.zarr"]
    assert (job / "result.ome.zarr" / "instances").is_dir()
    assert not (job / "result.ome.zarr" / "probabilities").exists()  # seeds only, as locally
    table = pd.read_parquet(job / "objects.parquet")
    instances = read(job / "result.ome.zarr", "instances")
    assert sorted(table["label"]) == np.unique(instances[instances > 0]).tolist()
    assert {"perimeter", "solidity"} <= set(table.columns)


def test_a_job_measures_without_shape_features_when_asked(image_path, tmp_path):
    job = tmp_path / "job"
    task = {
        "kind": "segment", "model": str(resolve_model("nuclei")), "time_budget": 60.0,
        "image": str(image_path), "roots": [str(image_path.parent)],
        "options": {"tile_size": 64, "measure": "csv", "shape_features": False},
        "output": str(job / "result.ome.zarr"), "table": str(job / "objects.csv"),
        "stage": str(job / "stage"),
    }  # fmt: skip
    assert run_in_child(task, lambda *done: None, (threading.Event(),), None, None) is None
    table = pd.read_csv(job / "objects.csv")
    assert len(table) and not {"perimeter", "solidity", "feret_diameter_max"} & set(table)


@pytest.mark.parametrize("stop_in", ["segment", "instances"])
def test_a_job_stopped_in_any_step_ends_as_the_facade(image_path, local, tmp_path, stop_in):
    """A server stopping (or dying) terminates the job's process: in the engine's tiles (they
    resume) or in the instance step (the engine's finished partial store in the stage is
    kept, only the steps after the tiles run again); nothing is in place until the next
    attempt ends, and then it equals the facade's."""
    expected, expected_table = local
    job = tmp_path / "job"
    task = {
        "kind": "segment", "model": str(resolve_model("nuclei")), "time_budget": 60.0,
        "image": str(image_path), "roots": [str(image_path.parent)],
        "options": {**OPTIONS, "batch_size": 1, "measure": "csv"},
        "output": str(job / "result.ome.zarr"), "table": str(job / "objects.csv"),
        "stage": str(job / "stage"),
    }  # fmt: skip
    stop, step = threading.Event(), [""]

    def on_progress(done: int, total: int) -> None:
        if stop_in == "segment" and step[0] == "segment" and done >= 2:  # tiles, not blocks
            stop.set()

    def on_step(name: str) -> None:
        step[0] = name
        if name == stop_in and name != "segment":
            stop.set()

    with pytest.raises(Cancelled):
        run_in_child(task, on_progress, (stop,), None, on_step)
    assert sorted(p.name for p in job.iterdir()) == ["stage"]
    left = sorted(p.name for p in (job / "stage").iterdir())
    assert left == ["result.ome.zarr.partial"]  # published only with its instances
    progress: list[tuple[int, int]] = []
    step[0] = ""
    run_in_child(task, lambda *done: progress.append(done) if step[0] == "segment" else None,
                 (threading.Event(),), None, lambda name: step.__setitem__(0, name))  # fmt: skip
    if stop_in == "segment":  # the tiles written before are not run again
        assert 0 < progress[-1][1] < 9
    else:  # the model runs no tile
        assert all(total == 0 for _, total in progress), progress
    assert sorted(p.name for p in job.iterdir()) == ["objects.csv", "result.ome.zarr"]
    assert np.array_equal(read(job / "result.ome.zarr", "instances"), read(expected, "instances"))
    pd.testing.assert_frame_equal(pd.read_csv(job / "objects.csv"), expected_table)


def test_an_attempt_stopped_before_its_moves_only_moves(image_path, local, tmp_path):
    """Every output made in the stage, the attempt stopped before moving them into place: the
    next attempt runs nothing and moves them."""
    expected, expected_table = local
    job = tmp_path / "job"
    task = {
        "kind": "segment", "model": str(resolve_model("nuclei")), "time_budget": 60.0,
        "image": str(image_path), "roots": [str(image_path.parent)],
        "options": {**OPTIONS, "measure": "csv"},
        "output": str(job / "result.ome.zarr"), "table": str(job / "objects.csv"),
        "stage": str(job / "stage"),
    }  # fmt: skip
    segment(image_path, "nuclei", job / "stage" / "result.ome.zarr", **OPTIONS,
            measure=job / "stage" / "objects.csv")  # fmt: skip
    progress: list[tuple[int, int]] = []
    steps: list[str] = []
    run_in_child(task, lambda *done: progress.append(done), (threading.Event(),), None,
                 steps.append)  # fmt: skip
    assert progress == [] and steps == []
    assert sorted(p.name for p in job.iterdir()) == ["objects.csv", "result.ome.zarr"]
    assert np.array_equal(read(job / "result.ome.zarr", "instances"), read(expected, "instances"))
    pd.testing.assert_frame_equal(pd.read_csv(job / "objects.csv"), expected_table)


def test_a_partial_store_of_an_older_server_resumes(image_path, tmp_path):
    """A job that a server from before the stage folder was running when it stopped left its
    partial store beside the result: the next server resumes it (a written tile, marked here,
    is kept, not run again)."""
    from scopeml.io import open_image
    from scopeml.model import load_model
    from scopeml.server.config import ServerConfig
    from scopeml.server.jobs import JobRunner
    from scopeml.server.metrics import Metrics
    from scopeml.server.models import ModelRegistry
    from scopeml.tiling.engine import segment_image
    from scopeml.tiling.options import SegmentOptions
    from scopeml.tiling.store import partial_path

    config = ServerConfig(tmp_path / "data", allowed_root=image_path.parent)
    db = Database(config.db)
    options = {"tile_size": 64, "batch_size": 1, "outputs": ["labels"]}
    db.add_job({"id": "j1", "owner": "a", "model_id": "nuclei", "image": str(image_path),
                "options": options})  # fmt: skip
    legacy = config.jobs_dir / "j1" / "result.ome.zarr"

    def stop_after_two(event) -> None:
        if event.done >= 2:
            raise Cancelled("stopped")

    settings = SegmentOptions(**options, resume=True, quiet=True)  # as the older child ran it
    model = load_model(resolve_model("nuclei"), time_budget=config.model_time_budget)
    with (
        open_image(image_path, allowed_roots=[image_path.parent]) as image,
        pytest.raises(Cancelled),
    ):
        segment_image(image, model, legacy, settings, progress=stop_after_two)
    zarr.open_array(partial_path(legacy) / "labels" / "0", mode="r+")[:64, :64] = 7
    runner = JobRunner(config, db, ModelRegistry(config, db, Metrics()))
    try:
        runner.resume_unfinished()
        deadline = time.monotonic() + WAIT_S
        while db.get_job("j1")["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        runner.close()
        job = db.get_job("j1")
        db.close()
    assert job["status"] == "done" and job["done"] == job["total"] == 9, job
    labels = read(legacy, "labels")
    assert (labels[:64, :64] == 7).all()  # the marked tile was kept
    assert set(np.unique(labels[64:]).tolist()) == {1, 2, 3}  # the others were run
    assert not partial_path(legacy).exists() and not (legacy.parent / "stage").exists()
    recorded = zarr.open_group(str(legacy), mode="r").attrs["scopeml"]["image"]  # its record
    assert recorded["name"] == image_path.name and "path" not in recorded  # renamed on resume


def test_a_job_without_a_table_has_none_to_download(alice, image_path, tmp_path):
    job = finished(alice, alice.submit_job("nuclei", image_path=image_path.name, **OPTIONS))
    with pytest.raises(ServerResponseError) as err:
        alice.download_table(job["id"], tmp_path)
    assert err.value.status_code == 404 and "measured no objects" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def refusal(client: Client, model: str, image: str, **options) -> ServerResponseError:
    count = len(client.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        client.submit_job(model, image_path=image, **options)
    assert err.value.status_code == 422
    assert len(client.list_jobs()) == count  # nothing queued
    return err.value


def test_impossible_instances_are_refused_at_submit(alice, image_path, container, tmp_path):
    name = image_path.name
    unet = alice.upload_model(container)["id"]  # classes c0, c1, c2: which are the objects?
    for asked in ({"outputs": ["labels", "instances"]}, {"measure": True}):
        err = refusal(alice, unet, name, **asked)
        assert "model unet.czann gives no instances: which class are the objects?" in str(err)
    box = alice.upload_model(box_filter_czann(tmp_path / "box.czann"))["id"]
    err = refusal(alice, box, name, outputs=["instances"])
    assert "gives no instances: they are made from class labels" in str(err)
    err = refusal(alice, "nuclei", name, instances={"class": "boundary"})
    assert "neither the instances output nor measure" in str(err)
    err = refusal(alice, "nuclei", name, outputs=["instances"], instances={"class": "cell"})
    assert "cell" in str(err) and "nucleus" in str(err)
    for bad in ({"grow": 65}, {"seed_threshold": 1.0}, {"min_size": -1}, {"nuclei": 1}):
        err = refusal(alice, "nuclei", name, outputs=["instances"], instances=bad)
        assert (
            "instances" in str(err).split("422:", 1)[1]
        )  # the field named, e.g. options.instances.grow
    err = refusal(alice, "nuclei", name, extract_class="nope")  # was accepted, then failed
    assert "class 'nope' is not a class of the model; classes are" in str(err)
    err = refusal(alice, "nuclei", name, measure="xlsx")
    assert "measure" in str(err).split("422:", 1)[1]
    err = refusal(alice, "nuclei", name, outputs=["instances"], shape_features=False)
    assert "shape_features given, but no measure table is asked for" in str(err)
    # a named object class makes the same model's instances possible
    job = alice.submit_job(unet, image_path=name, outputs=["instances"], instances={"class": 2})
    assert finished(alice, job)["options"]["instances"] == {"class": 2}
    # the old field names, for one release: taken as the new ones; both at once refused
    job = alice.submit_job(unet, image_path=name, outputs=["instances"], instances={"class_": 2})
    assert finished(alice, job)["options"]["instances"] == {"class": 2}
    assert alice.job(job["id"])["warnings"] == [
        "instances: 'class_' is renamed 'class'; the old goes next release"
    ]  # told to the client, not only in the server's log
    err = refusal(alice, unet, name, outputs=["instances"],
                  instances={"threshold": 0.5, "seed_threshold": 0.5})  # fmt: skip
    assert "give 'seed_threshold' only" in str(err)


def test_deleting_a_running_instance_job_cancels_it(server, alice, image_root):
    image, _ = synthetic_nuclei((384, 384), density=0.003, seed=2)
    tifffile.imwrite(image_root / "instances-big.tif", image[0])
    job = alice.submit_job(
        "nuclei", image_path="instances-big.tif", tile_size=32, batch_size=1,
        outputs=["instances"], measure=True,
    )  # fmt: skip
    state = alice.job(job["id"])
    while state["status"] != "done" and state["done"] < 3:
        state = alice.job(job["id"])
    assert state["status"] == "running" and state["done"] < state["total"], state
    alice.delete_job(job["id"])  # cancelled, kept
    assert alice.job(job["id"])["status"] == "cancelled"
    alice.delete_job(job["id"])  # removed
    with pytest.raises(ServerResponseError) as err:
        alice.job(job["id"])
    assert err.value.status_code == 404
    assert not (server.data_dir / "jobs" / job["id"]).exists()


def pointwise_nuclei_czann(path: Path) -> Path:
    """Classes background, nucleus, boundary from a 1×1 convolution and a softmax, on a fixed
    64² input: the engine's batches are small, whatever the job's tile size."""
    weights = np.array([-1.0, 1.0, 0.0], np.float32).reshape(3, 1, 1, 1)
    kernel = numpy_helper.from_array(weights, "kernel")
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "kernel"], ["conv"]),
        helper.make_node("Softmax", ["conv"], ["soft"], axis=1),
        helper.make_node("Transpose", ["soft"], ["output"], perm=[0, 2, 3, 1]),
    ]
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes,
        "pointwise",
        [value("input", TensorProto.FLOAT, [None, 64, 64, 1])],
        [value("output", TensorProto.FLOAT, [None, 64, 64, 3])],
        [kernel],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ModelMetadata(
        model_type="MultiClassSemanticSegmentation", input_shape=(64, 64, 1),
        output_shape=(64, 64, 3), classes=("background", "nucleus", "boundary"),
        min_overlap=(0, 0), model_name="pointwise",
    )  # fmt: skip
    return write_container(path, model, meta)


def test_the_instance_stage_is_counted_in_a_jobs_memory(tmp_path, image_root):
    """A limit between the engine's batch and the instance stage refuses only the latter."""
    image_path = image_root / "instances-zeros.tif"
    tifffile.imwrite(image_path, np.zeros((1024, 1024), np.uint16))
    shape = (1, 1, 1, 1, 1024, 1024)
    db = Database(tmp_path / "data" / "scopeml.db")
    token = db.create_token("ada")
    db.close()
    container = pointwise_nuclei_czann(tmp_path / "pointwise.czann")
    server = ServerProcess(tmp_path / "data", "--allowed-root", str(image_root)).start()
    try:
        with Client(server.url, token) as client:
            record = client.upload_model(container)
    finally:
        server.stop()
    spec, runtime = spec_from_dict(record["spec"]), record["spec"].get(RUNTIME_KEY, 0)
    engine = job_memory({}, spec, runtime, shape)
    instances = job_memory({"outputs": ["instances"]}, spec, runtime, shape)
    assert instances > engine  # the instance stage's tiles are 1024², the engine's 64²
    limit_mb = (engine + instances) / 2 / 2**20
    server = ServerProcess(
        tmp_path / "data", "--allowed-root", str(image_root), "--max-tile-memory-mb", str(limit_mb)
    ).start()
    try:
        with Client(server.url, token) as client:
            err = refusal(client, record["id"], image_path.name, outputs=["labels", "instances"])
            assert f"needs about {megabytes(instances)} MB of server memory" in str(err)
            err = refusal(client, record["id"], image_path.name, measure=True)
            assert "MB of server memory" in str(err)
            job = client.submit_job(record["id"], image_path=image_path.name)  # the engine fits
            client.delete_job(job["id"])
    finally:
        server.stop()


def test_the_facades_stages_stay_within_the_estimate(tmp_path):
    """tracemalloc's peak (numpy buffers; the runtime's own memory is not traced) in each stage
    of a real run — seeds, growth, measuring — against :func:`after_engine_memory`."""
    image, _ = synthetic_nuclei((600, 600), density=0.003, seed=8)
    spec_shape = (1, 1, 1, 1, 600, 600)
    peaks: dict[str, int] = {}
    stage_of = {"label": "instances", "relabel": "instances", "grow": "instances",
                "find objects": "measure", "measure": "measure"}  # fmt: skip
    current = ["segment", 0]  # the stage, and what was held when it began

    def progress(event) -> None:
        stage = stage_of.get(event.stage, "segment")
        held, peak = tracemalloc.get_traced_memory()
        peaks[current[0]] = max(peaks.get(current[0], 0), peak - current[1])
        if stage != current[0]:
            tracemalloc.reset_peak()
            current[:] = [stage, held]

    from scopeml.model import load_model

    spec = load_model(resolve_model("nuclei")).spec
    for options in ({"tile_size": 256}, {"tile_size": 128, "instances": {"grow": 8}}):
        peaks.clear()
        current[:] = ["segment", 0]
        kwargs = {"instances": InstanceOptions.from_fields(options.get("instances", {}))}
        tracemalloc.start()
        try:
            segment(image[0], "nuclei", tmp_path / f"{len(kwargs)}{options['tile_size']}.ome.zarr",
                    tile_size=options["tile_size"], outputs=("instances",),
                    measure=tmp_path / f"{options['tile_size']}.csv", progress=progress,
                    **kwargs)  # fmt: skip
            progress(type("End", (), {"stage": "end"})())
        finally:
            tracemalloc.stop()
        chunk = options["tile_size"] ** 2  # the engine's output chunks: its tiles
        want = after_engine_memory({**options, "measure": "csv"}, spec, spec_shape, chunk)
        assert 0 < peaks["instances"] <= want[0], (options, peaks, want)
        assert 0 < peaks["measure"] <= want[1], (options, peaks, want)


def test_a_large_outputs_lower_resolutions_are_a_step_of_their_own(tmp_path):
    """An output larger than 1024 px gets lower resolutions after the engine: the job says so
    and counts their chunks (it sat at 100 % of segment meanwhile)."""
    image = tmp_path / "large.tif"
    tifffile.imwrite(image, synthetic_nuclei((1100, 1300), density=0.002, seed=4)[0][0])
    task = {
        "kind": "segment", "model": str(resolve_model("nuclei")), "time_budget": 120.0,
        "image": str(image), "roots": [str(tmp_path)],
        "options": {"scale": 1, "outputs": ["labels", "instances"], "measure": "parquet"},
        "table": str(tmp_path / "job" / "objects.parquet"),
        "output": str(tmp_path / "job" / "result.ome.zarr"),
        "stage": str(tmp_path / "job" / "stage"),
    }  # fmt: skip
    progress, steps = [], []
    assert run_in_child(task, lambda *done: progress.append((steps[-1], *done)),
                        (threading.Event(),), None, steps.append) is None  # fmt: skip
    # the instances' own levels are a pass of their step (its memory words stay its own)
    assert steps == ["statistics", "segment", "pyramid", "instances", "measure"]
    built = [done for step, *done in progress if step == "pyramid"]
    assert built and built[-1][0] == built[-1][1] > 0  # every chunk of the level counted
    passes = [done for step, *done in progress if step == "instances"]
    assert passes[-1][0] == passes[-1][1] and passes == sorted(passes)  # never back
