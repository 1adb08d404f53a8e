"""The engine reports tiles to one progress callback, which can cancel a run between batches."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from scopeml.errors import Cancelled
from scopeml.io.image import Image
from scopeml.progress import ProgressEvent
from scopeml.tiling import SegmentOptions, segment_image
from scopeml.tiling.store import partial_path
from tests.tiling.engine_doubles import random_image

OUTPUTS = ("labels", "probabilities")


def read_all(out):
    return {name: zarr.open_array(str(out / name / "0"), mode="r")[...] for name in OUTPUTS}


def options(**extra):
    return SegmentOptions(outputs=OUTPUTS, tile_size=16, batch_size=1, workers=1, **extra)


def test_events_count_every_tile_once(unet2d, tmp_path):
    events: list[ProgressEvent] = []
    image = random_image((1, 1, 2, 1, 40, 50))
    segment_image(image, unet2d, tmp_path / "o.ome.zarr", options(), progress=events.append)
    tiles = 3 * 4  # ceil(40/16) × ceil(50/16)
    assert events[0] == ProgressEvent("segment", 0, tiles, "tile")
    assert [e.done for e in events] == list(range(tiles + 1))
    assert {(e.stage, e.total, e.unit) for e in events} == {("segment", tiles, "tile")}


def test_cancelled_run_resumes_to_the_uninterrupted_result(unet2d, tmp_path):
    image = random_image((1, 1, 2, 1, 70, 60), seed=3)
    out = tmp_path / "cancelled.ome.zarr"

    def cancel_after_three(event: ProgressEvent) -> None:
        if event.done >= 3:
            raise Cancelled("stopped by the test")

    with pytest.raises(Cancelled, match="stopped by the test"):
        segment_image(image, unet2d, out, options(), progress=cancel_after_three)
    assert not out.exists()
    written = len(list((partial_path(out) / ".scopeml-done").iterdir()))
    assert 3 <= written < 20  # 5 × 4 tiles of 16 px; at most one more in flight

    events: list[ProgressEvent] = []
    resumed = segment_image(image, unet2d, out, options(resume=True), progress=events.append)
    assert events[0].total == 20 - written and events[-1].done == 20 - written
    reference = segment_image(image, unet2d, tmp_path / "whole.ome.zarr", options(), progress=False)
    got, want = read_all(resumed), read_all(reference)
    for name in OUTPUTS:
        np.testing.assert_array_equal(got[name], want[name])
    assert not partial_path(out).exists()


def test_progress_does_not_change_a_runs_identity(unet2d, tmp_path):
    """A run started silently resumes under a progress bar and the other way round."""
    image = random_image((1, 1, 2, 1, 40, 40), seed=4)
    out = tmp_path / "o.ome.zarr"

    def cancel_at_once(event: ProgressEvent) -> None:
        if event.done >= 1:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        segment_image(image, unet2d, out, options(quiet=True), progress=cancel_at_once)
    assert segment_image(image, unet2d, out, options(resume=True), progress=True) == out


def test_a_plan_error_names_the_model_file(tmp_path):
    from scopeml.errors import ScopeMLError
    from scopeml.model.spec import ModelSpec

    class ZeroTile:  # a container declaring a fixed input of 0 rows
        spec = ModelSpec(
            spatial_dims=2, in_channels=1, classes=("a", "b"), halo=(0, 0), tile_shape=(0, 16)
        )
        path = str(tmp_path / "zero.czann")

        def predict(self, batch):  # pragma: no cover - never reached
            raise AssertionError

    image = random_image((1, 1, 1, 1, 20, 20))
    with pytest.raises(ScopeMLError, match=r"zero\.czann: .*\b0\b"):
        segment_image(image, ZeroTile(), tmp_path / "o.ome.zarr", options(), progress=False)


@pytest.mark.parametrize(("dtype", "passes"), [(np.uint16, 1), (np.float32, 2)])
def test_the_statistics_pass_is_a_stage_that_can_cancel(
    unet2d, tmp_path, monkeypatch, dtype, passes
):
    """A normalised run first reads the whole image for its statistics (in blocks; floats
    twice: min–max, then the histogram); a callback sees that stage and may stop it, leaving
    nothing behind."""
    from scopeml.tiling import normalize

    monkeypatch.setattr(normalize, "_BLOCK", 32)  # 2 × 2 blocks of the 40×50 image
    pixels = np.random.default_rng(0).integers(0, 1000, (1, 1, 2, 1, 40, 50))
    image = Image(pixels.astype(dtype))
    events: list[ProgressEvent] = []
    run = options(normalize="percentile:1,99")
    segment_image(image, unet2d, tmp_path / "o.ome.zarr", run, progress=events.append)
    statistics = [(e.done, e.total, e.unit) for e in events if e.stage == "statistics"]
    assert statistics == [(done, 4 * passes, "block") for done in range(4 * passes + 1)]
    assert events[len(statistics)].stage == "segment"  # the statistics come first

    def stop_in_statistics(event: ProgressEvent) -> None:
        if event.stage == "statistics" and event.done == 1:
            raise Cancelled("stopped")

    out = tmp_path / "stopped.ome.zarr"
    with pytest.raises(Cancelled):
        segment_image(image, unet2d, out, run, progress=stop_in_statistics)
    assert not out.exists() and not partial_path(out).exists()
