"""Tile kernel: blending is independent of the block a pixel falls in; padding and shapes."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import IncompatibleModelError
from scopeml.tiling.kernel import TileContext, gaussian_weights, pad_to, predict_tiles
from scopeml.tiling.plan import plan_blend_tiles, plan_tiles
from tests.tiling.engine_doubles import random_image, unet_double

SIZES = {"T": 1, "Z": 1, "Y": 100, "X": 90}


def fused(model, image, plan, ctx):
    out = np.zeros((model.spec.n_classes, SIZES["Y"], SIZES["X"]), np.float32)
    for tile, probabilities in zip(plan, predict_tiles(model, image, plan.tiles, ctx), strict=True):
        out[:, slice(*tile.core["Y"]), slice(*tile.core["X"])] = probabilities
    return out


@pytest.mark.parametrize("tile_shape", [None, (32, 32)])
def test_blended_blocks_equal_one_whole_image_block(tile_shape):
    model = unet_double(in_channels=2, n_classes=3, tile_shape=tile_shape)
    image = random_image((1, 1, 2, 1, 100, 90), seed=11)
    ctx = TileContext(
        scene=0,
        spatial_axes=("Y", "X"),
        output_axes={},
        specs=(),
        batch_size=3,
        step={"Y": 4, "X": 4},
        window={"Y": 32, "X": 32},
        fixed_input=tile_shape is not None,
    )

    def run(block):
        plan = plan_blend_tiles(
            SIZES,
            window={"Y": 32, "X": 32},
            overlap={"Y": 8, "X": 8},
            block=block,
            step={"Y": 4, "X": 4},
            fixed_input=bool(tile_shape),
        )
        return fused(model, image, plan, ctx)

    blocked, whole = run({"Y": 32, "X": 48}), run({"Y": 100, "X": 92})
    np.testing.assert_array_equal(blocked, whole)
    np.testing.assert_allclose(whole.sum(axis=0), 1.0, atol=1e-5)
    if tile_shape:
        assert {shape[2:] for shape in model.input_shapes} == {tile_shape}


def test_model_answer_of_wrong_shape_is_an_error():
    class Broken:
        spec = unet_double().spec

        def predict(self, batch):
            return np.zeros((len(batch), 5, 4, 4), np.float32)

    plan = plan_tiles(SIZES, tile_shape={"Y": 32, "X": 32}, step={"Y": 4, "X": 4})
    ctx = TileContext(scene=0, spatial_axes=("Y", "X"), output_axes={}, specs=())
    with pytest.raises(IncompatibleModelError, match="model returned shape"):
        predict_tiles(Broken(), random_image((1, 1, 1, 1, 100, 90)), plan.tiles[:1], ctx)


def test_pad_to_pads_far_end_only():
    block = np.ones((1, 2, 3), np.float32)
    padded = pad_to(block, (4, 4))
    assert padded.shape == (1, 4, 4) and padded[:, :2, :3].all() and padded.sum() == 6


def test_gaussian_weights_peak_in_the_middle():
    weights = gaussian_weights((9, 8))
    assert weights.shape == (9, 8) and weights.min() > 0
    assert np.unravel_index(weights.argmax(), weights.shape)[0] == 4
