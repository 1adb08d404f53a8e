"""A job's batch memory is counted at submit on the engine's own plan for the model at the
job's scale: its halo and step in the image's pixels, as the run feeds the model. (``scale:
auto`` counts 1 at submit; the job's process counts the factor it chose: tested in
``test_job_inputs_progress.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.api import segment
from scopeml.model import open_model
from scopeml.model.registry import resolve_model
from scopeml.model.spec import ModelSpec
from scopeml.server.limits import job_memory
from scopeml.server.models import served_spec


def nuclei_spec() -> ModelSpec:
    """The shipped model's spec as the server serves it."""
    return served_spec(open_model(resolve_model("nuclei")))


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
    """The model's input at the scale's halo and step (not the model's own: at 8, a halo of 14
    image pixels, not 112); shrinking, the batch read at the image's resolution."""
    spec = nuclei_spec()
    spy = Spy(ModelSpec(2, 1, spec.classes, spec.halo, spec.tile_step))
    image = np.zeros((160, 160), np.uint16)
    options = {"tile_size": 32, "scale": scale}
    segment(image, spy, tmp_path / "out.ome.zarr", **options, outputs=["labels"])
    runtime = 800.0  # bytes per model pixel, as the server measures an ONNX graph's
    per_pixel = (spy.spec.in_channels + 2 * spy.spec.n_classes) * 4 + runtime
    read = spy.largest / min(scale, 1.0) ** 2  # the window as the engine reads it
    shrunk = read * (spy.spec.in_channels + spy.spec.n_classes) * 4 if scale < 1 else 0
    counted = job_memory(options, spy.spec, runtime, (1, 1, 1, 1, 160, 160))
    assert counted == pytest.approx(spy.largest * per_pixel + shrunk, abs=1)


def test_shrinking_counts_fewer_model_pixels(tmp_path):
    """A job that shrinks a large image costs the model's terms on its smaller input (an 8192²
    nuclei job at 1/8 was refused at 1 GiB when every image pixel was charged the runtime's
    bytes per model pixel). In tiles of a given size, shrinking feeds the model fewer pixels;
    in the default tiles, which widen with the halo in image pixels up to 2048², a job at 1/8
    still fits where one at scale 1 does."""
    from scopeml.server.config import ServerConfig
    from scopeml.server.models import runtime_bytes_per_pixel

    spec = nuclei_spec()
    runtime = runtime_bytes_per_pixel(resolve_model("nuclei"), spec)
    shape = (1, 1, 1, 1, 8192, 8192)
    scales = (1.0, 0.5, 0.125)
    tiled = [job_memory({"scale": s, "tile_size": 512}, spec, runtime, shape) for s in scales]
    assert tiled[0] > tiled[1] > tiled[2]
    default = [job_memory({"scale": s}, spec, runtime, shape) for s in scales]
    assert default[2] < 2**30
    assert max(default) <= ServerConfig(tmp_path).max_tile_memory  # the default limit
