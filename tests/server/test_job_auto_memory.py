"""A job at ``scale: auto`` has its batch memory counted at submit at the largest factor auto
can choose for its model (the factor of the smallest diameter the estimate measures), on the
engine's own plan for the model at that scale, so a job that might not fit is refused then."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.api import segment
from scopeml.client import Client, ServerResponseError
from scopeml.io.image import Image
from scopeml.model import open_model
from scopeml.model.registry import resolve_model
from scopeml.model.spec import ModelSpec
from scopeml.server.jobs import SMALLEST_DIAMETER, job_memory, largest_auto_scale
from scopeml.server.models import served_spec
from scopeml.tiling.size import auto_scale, estimate_diameter

from .conftest import ServerProcess, own_server

MB = 2**20
LIMIT_MB = 300  # nuclei on 128²: ×1 ~14 MB, auto's ×8 ~875 MB; ×8 in 32-pixel tiles ~145 MB
WAIT_S = 300.0


def nuclei_spec() -> tuple[ModelSpec, float]:
    """The shipped model's spec as the server serves it, and its runtime bytes per pixel."""
    from scopeml.server.models import runtime_bytes_per_pixel

    path = resolve_model("nuclei")
    spec = served_spec(open_model(path))
    return spec, runtime_bytes_per_pixel(path, spec)


def thin_lines(size: int = 128) -> np.ndarray:
    """Bright lines a pixel wide, four apart: objects the estimate measures at its smallest."""
    plane = np.full((size, size), 100, np.uint16)
    plane[:, ::4] = 3000
    return plane


def test_the_largest_factor_is_the_estimates_smallest_diameters_and_auto_reaches_it():
    spec, _ = nuclei_spec()
    assert largest_auto_scale(spec) == 8.0  # nuclei: 20 px / 2 px = 10, clipped to 8
    image = Image(thin_lines()[None, None, None, None])
    assert estimate_diameter(image) == SMALLEST_DIAMETER
    assert auto_scale(image, open_model(resolve_model("nuclei"))).scale == 8.0
    rng = np.random.default_rng(0)
    for _ in range(5):  # speckle, however fine, measures no smaller
        noise = Image(rng.integers(0, 4000, (1, 1, 1, 1, 96, 96)).astype(np.uint16))
        assert estimate_diameter(noise) >= SMALLEST_DIAMETER


class Spy:
    """A model that answers zeros and records the largest input it was given."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.largest = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.largest = max(self.largest, int(np.prod(batch.shape[2:])) * batch.shape[0])
        return np.zeros((batch.shape[0], self.spec.n_classes, *batch.shape[2:]), np.float32)


@pytest.mark.parametrize("scale", [8.0, 2.0, 1.5, 0.5])
def test_a_batch_is_counted_on_the_engines_plan_at_the_jobs_scale(tmp_path, scale):
    """The model's input at the scale's halo and step (not the model's own: at 8, a halo of 10
    image pixels, not 56); shrinking, the batch read at the image's resolution."""
    spec, _ = nuclei_spec()
    spy = Spy(ModelSpec(2, 1, spec.classes, spec.halo, spec.tile_step))
    image = np.zeros((160, 160), np.uint16)
    options = {"tile_size": 32, "scale": scale}
    segment(image, spy, tmp_path / "out.ome.zarr", **options, outputs=["labels"])
    per_pixel = (spy.spec.in_channels + 2 * spy.spec.n_classes) * 4
    read = spy.largest / min(scale, 1.0) ** 2  # the batch's pixels as the engine holds them
    assert job_memory(options, spy.spec, 0.0, (1, 1, 1, 1, 160, 160)) == read * per_pixel


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("auto-memory")
    tifffile.imwrite(root / "lines.tif", thin_lines())
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root) -> Iterator[ServerProcess]:
    yield from own_server(
        tmp_path_factory,
        "auto-memory",
        *("--allowed-root", str(root), "--max-tile-memory-mb", str(LIMIT_MB)),
    )


@pytest.fixture(scope="module")
def client(server) -> Iterator[Client]:
    with Client(server.url, server.tokens["alice"]) as client:
        yield client


@pytest.mark.parametrize("options", [{"scale": "auto"}, {}], ids=["auto", "model-default"])
def test_auto_that_might_not_fit_is_refused_at_submit_naming_the_limit(client, options):
    spec, runtime = nuclei_spec()
    shape = (1, 1, 1, 1, 128, 128)
    at_one = job_memory({"scale": 1.0}, spec, runtime, shape)
    at_worst = job_memory({"scale": 8.0}, spec, runtime, shape)
    assert at_one <= LIMIT_MB * MB < at_worst
    before = len(client.list_jobs())
    with pytest.raises(ServerResponseError) as err:
        client.submit_job("nuclei", image_path="lines.tif", **options)
    message = str(err.value)
    assert err.value.status_code == 422, message
    assert f"needs about {at_worst} bytes of server memory" in message, message
    assert "at scale auto's largest factor for model 'nuclei', 8" in message, message
    assert f"the limit is {LIMIT_MB * MB} (--max-tile-memory)" in message, message
    assert "give a number for scale" in message
    assert len(client.list_jobs()) == before  # nothing queued


def test_auto_that_fits_at_its_largest_factor_runs(client):
    job = client.submit_job("nuclei", image_path="lines.tif", scale="auto", tile_size=32)
    job = client.wait_job(job["id"], timeout=WAIT_S)
    assert job["status"] == "done", job["error"]  # and auto chose its largest factor, 8
