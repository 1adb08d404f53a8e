"""``predict_region`` with ``batch_size > 1`` batches tiles as ``segment`` does: tiles of one
input shape together (the edge tiles, clipped, are smaller), and equals ``segment`` bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.predict import predict_region
from scopeml.synthetic import synthetic_nuclei
from scopeml.tiling.kernel import TileContext, process_batch
from scopeml.tiling.plan import plan_tiles
from tests.tiling.engine_doubles import unet_double

OUTPUTS = ("labels", "probabilities")


def _pixels(planes: int) -> tuple[np.ndarray, np.ndarray]:
    """A 72×72 synthetic nuclei plane (``planes == 0``) or a stack of shifted copies of it."""
    pixels, truth = synthetic_nuclei((72, 72), channels=1, seed=2)
    if not planes:
        return pixels.astype(np.float32), truth
    stack = np.stack([np.roll(pixels[0], 5 * i, 1) for i in range(planes)])
    return stack.astype(np.float32)[None], np.stack(
        [np.roll(truth, 5 * i, 1) for i in range(planes)]
    )


def _classifier(planes: int):
    pixels, truth = _pixels(planes)
    scribbles = np.zeros(truth.shape, np.uint8)
    every = (slice(None, None, 2),) * (truth.ndim - 2) + (slice(None, None, 7),) * 2
    scribbles[every] = (truth[every] > 0) + 1
    model = sm.train_pixel_classifier(
        pixels, scribbles, features="gaussian_smoothing:1", n_estimators=4
    )
    return pixels, model


def _unet(planes: int):
    pixels, _ = _pixels(planes)
    return pixels, unet_double(depth=1, spatial_dims=3 if planes else 2, seed=3)


#: name → (pixels C×[Z×]Y×X and model, tile size): 72 px over tiles of 48 leaves an edge tile
#: of another input shape; 3-D stacks of 30 or 12 planes over 8 do so along Z too.
CASES = {
    "classifier-2d": (lambda: _classifier(0), 48),
    "classifier-3d": (lambda: _classifier(30), (8, 48, 48)),
    "unet-2d": (lambda: _unet(0), 48),
    "unet-3d": (lambda: _unet(12), (8, 48, 48)),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    """Image, model, tile size and what ``segment`` writes (batch size 1) for one case."""
    make, tile_size = CASES[request.param]
    pixels, model = make()
    image = sm.Image(pixels[None, None] if pixels.ndim == 4 else pixels[None, None, :, None])
    out = tmp_path_factory.mktemp(request.param) / "seg.ome.zarr"
    seg = sm.segment(image, model, out, tile_size=tile_size, workers=1, outputs=OUTPUTS)
    written = {}
    for name in OUTPUTS:
        data = seg.output(name).read()[0, 0]  # C×Z×Y×X
        data = data[0] if name == "labels" else data
        written[name] = data if pixels.ndim == 4 else data[..., 0, :, :]
    return image, model, tile_size, written


REGIONS = [None, {"Y": (30, 72), "X": (20, 72)}]  # the whole image; across to the far edges


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("batch_size", [1, 2, 3])
@pytest.mark.parametrize("output", OUTPUTS)
def test_predict_region_in_batches_equals_segment(case, batch_size, region, output):
    image, model, tile_size, written = case
    options = sm.SegmentOptions(tile_size=tile_size, workers=1, batch_size=batch_size)
    got = predict_region(image, model, region, outputs=output, options=options)
    window = (slice(*region["Y"]), slice(*region["X"])) if region else ()
    want = written[output][(..., *window)]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_the_facade_takes_batches_too(case):
    image, model, tile_size, written = case
    options = sm.SegmentOptions(tile_size=tile_size, batch_size=2)
    np.testing.assert_array_equal(
        sm.predict_region(image, model, options=options), written["labels"]
    )


def test_a_batch_of_several_input_shapes_is_refused_in_one_line():
    """The kernel predicts one shape per batch; a caller that mixes them hears so."""
    model = unet_double(depth=1)
    image = sm.Image(np.zeros((1, 1, 1, 1, 72, 72), np.float32))
    plan = plan_tiles({"Y": 72, "X": 72}, tile_shape={"Y": 48, "X": 48}, halo={"Y": 10, "X": 10})
    ctx = TileContext(scene=0, spatial_axes=("Y", "X"), output_axes={}, specs=(), batch_size=4)
    with pytest.raises(ValueError, match="one shape per batch: group tiles by input shape"):
        process_batch(model, image, {}, plan.tiles, ctx)
