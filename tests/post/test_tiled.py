"""Tiled post-processing equals the whole-image result, step by step, in 2-D and 3-D."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from scopeml.errors import Cancelled, InvalidImageError, InvalidRequestError
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.io.omezarr import create_ome_zarr
from scopeml.post.steps import PostStep, apply_steps, steps_halo
from scopeml.post.tiled import post_process_file, post_process_tiled


def blobs(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Two classes of blobs of many sizes, with holes, specks and thin bridges."""
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.random(shape), 1.5)
    labels = np.zeros(shape, np.uint8)
    labels[smooth > np.quantile(smooth, 0.55)] = 1
    labels[smooth > np.quantile(smooth, 0.85)] = 2
    labels[rng.random(shape) < 0.03] = 0  # pinholes
    labels[rng.random(shape) < 0.01] = 2  # specks
    return labels


STEPS = ["fill_holes:20", "remove_small:9", "opening:2", "closing:2"]


@pytest.mark.parametrize("step", [*STEPS, ",".join(STEPS)])
@pytest.mark.parametrize("shape", [(70, 83), (9, 40, 37)])
def test_tiled_equals_whole(step: str, shape: tuple[int, ...]) -> None:
    steps = [PostStep.parse(s) for s in step.split(",")]
    labels = blobs(shape)
    whole = apply_steps(labels, steps)
    assert (whole != labels).any()  # the step does something here
    image = Image(labels.reshape((1, 1, 1) + (1,) * (3 - labels.ndim) + shape))
    out = np.zeros(image.shape, np.uint8)
    post_process_tiled(image, steps, out, tile_size=16)
    np.testing.assert_array_equal(out.reshape(shape), whole)


def test_small_halo_would_not_be_exact() -> None:
    # the halo is needed: the same tiling without it differs (so the test above can fail)
    labels = blobs((70, 83))
    steps = [PostStep.parse("opening:2")]
    whole = apply_steps(labels, steps)
    pieces = np.zeros_like(labels)
    for y in range(0, 70, 16):
        for x in range(0, 83, 16):
            pieces[y : y + 16, x : x + 16] = apply_steps(labels[y : y + 16, x : x + 16], steps)
    assert (pieces != whole).any()
    assert steps_halo(steps) == 4


def test_file_round_trip_keeps_axes_and_pixel_sizes(tmp_path) -> None:
    labels = np.stack([blobs((40, 50), seed) for seed in (1, 2)])  # T×Y×X
    source = tmp_path / "labels.ome.zarr"
    array = create_ome_zarr(
        source, shape=labels.shape, dtype="uint8", axes="TYX", chunks=(1, 16, 16),
        pixel_sizes={"Y": 0.25, "X": 0.5},
    )  # fmt: skip
    array[:] = labels
    steps = [PostStep.parse("fill_holes:6"), PostStep.parse("remove_small:5")]  # halo 9
    events = []
    out = post_process_file(source, tmp_path / "post.ome.zarr", steps, tile_size=16,
                            progress=events.append)  # fmt: skip
    with open_image(out) as result:
        assert result.pixel_sizes == {"Y": 0.25, "X": 0.5}
        got = result.read()[0, :, 0, 0]
    np.testing.assert_array_equal(got, np.stack([apply_steps(p, steps) for p in labels]))
    assert events[-1].done == events[-1].total == 2 * 3 * 4  # two time points, 3×4 tiles


def test_cancel_leaves_no_output(tmp_path) -> None:
    source = tmp_path / "labels.ome.zarr"
    create_ome_zarr(source, shape=(40, 40), dtype="uint8", axes="YX", chunks=(16, 16))[:] = 1

    def stop(event) -> None:
        if event.done >= 2:
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        post_process_file(source, tmp_path / "out.ome.zarr", [PostStep.parse("opening")],
                          tile_size=8, progress=stop)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.ome.zarr"]


def test_bad_input_is_refused(tmp_path) -> None:
    with pytest.raises(InvalidImageError, match="integer labels"):
        post_process_tiled(Image(np.zeros((1, 1, 1, 1, 4, 4), np.float32)), [], np.zeros(1))
    with pytest.raises(InvalidRequestError, match="unknown post-processing step 'dilate'"):
        PostStep.parse("dilate:2")
    with pytest.raises(InvalidRequestError, match="remove_small needs a size"):
        PostStep.parse("remove_small")
    with pytest.raises(InvalidRequestError, match="not a whole number"):
        PostStep.parse("opening:two")
    for size in ("-1", "0"):  # a whole number, too small ("-1" was "not a whole number")
        with pytest.raises(InvalidRequestError, match=f"size must be >= 1; got {size}$"):
            PostStep.parse(f"closing:{size}")
    assert PostStep.parse("closing: 2 ") == PostStep("closing", 2)
