"""A 3-D pixel classifier answers for a few planes of its input (``planes=``), and the engine asks
it for a tile's core planes only, the halo planes it would throw away never computed: every
output equal bit for bit to the whole stack's prediction."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.errors import InvalidRequestError
from scopeml.predict import predict_region
from scopeml.synthetic import synthetic_nuclei
from scopeml.tiling.kernel import predicts_planes
from scopeml.tiling.scale import ScaledModel


def _stack(z: int, yx: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    pixels, truth = synthetic_nuclei((yx, yx), channels=1, seed=seed)
    rng = np.random.default_rng(seed)
    stack = np.stack(
        [np.roll(pixels[0], 5 * i, 1) + rng.normal(0, 5, truth.shape) for i in range(z)]
    )
    truths = np.stack([np.roll(truth, 5 * i, 1) for i in range(z)])
    scribbles = np.zeros(truths.shape, np.uint8)
    scribbles[::2, ::7, ::7] = (truths[::2, ::7, ::7] > 0) + 1
    return stack.astype(np.float32)[None], scribbles


@pytest.fixture(
    scope="module", params=["basic25", "gaussian_smoothing:1;hessian_of_gaussian_eigenvalues:3.5"]
)
def stack_and_model(request):
    stack, scribbles = _stack(30, 72, seed=2)
    model = sm.train_pixel_classifier(stack, scribbles, features=request.param, n_estimators=8)
    return stack, model


class Recording:
    """The classifier, recording the Z extent of each answer; the class offers planes too."""

    predicts_planes = True

    def __init__(self, model) -> None:
        self.model, self.spec, self.answers = model, model.spec, []

    def predict(self, batch, **kwargs):
        out = self.model.predict(batch, **kwargs)
        self.answers.append((batch.shape[2], out.shape[2]))
        return out

    def predict_index(self, batch, **kwargs):
        out = self.model.predict_index(batch, **kwargs)
        self.answers.append((batch.shape[2], out.shape[1]))
        return out


@pytest.mark.parametrize("planes", [(0, 1), (14, 15), (29, 30), (3, 27)])
def test_planes_equal_the_whole_answer(stack_and_model, planes):
    stack, model = stack_and_model
    lo, hi = planes
    np.testing.assert_array_equal(
        model.predict(stack[None], planes=planes), model.predict(stack[None])[:, :, lo:hi]
    )
    np.testing.assert_array_equal(
        model.predict_index(stack[None], planes=planes), model.predict_index(stack[None])[:, lo:hi]
    )


def test_tiled_prediction_asks_for_core_planes_and_equals_the_whole(stack_and_model):
    stack, model = stack_and_model
    image = sm.Image(stack[None, None])
    whole = model.predict_labels(stack)
    for outputs in ("labels", "probabilities"):
        recording = Recording(model)
        options = sm.SegmentOptions(tile_size=(8, 48, 48), workers=1)
        tiled = predict_region(image, recording, outputs=outputs, options=options)
        if outputs == "labels":
            np.testing.assert_array_equal(tiled, whole)
        else:
            np.testing.assert_array_equal(tiled, model.predict(stack[None])[0])
        # each answer holds the core planes only (8 per tile), never the input's halo planes
        assert recording.answers and all(got <= 8 < read for read, got in recording.answers)


def test_preview_plane_equals_the_whole_stack_plane(stack_and_model):
    from scopeml.napari._preview import preview_request

    stack, model = stack_and_model
    image = sm.Image(stack[None, None])
    region = {"Z": (11, 12), "Y": (0, 72), "X": (0, 72)}
    request, options = preview_request(model, region)
    recording = Recording(model)
    plane = predict_region(image, recording, request, options=options)
    np.testing.assert_array_equal(plane, model.predict_labels(stack)[11:12])
    assert [got for _, got in recording.answers] == [1]


def test_a_scaled_classifier_is_not_asked_for_planes(stack_and_model):
    _, model = stack_and_model
    assert predicts_planes(model)
    assert not predicts_planes(ScaledModel(model, 0.5))


def test_planes_outside_the_input_are_refused(stack_and_model):
    stack, model = stack_and_model
    with pytest.raises(InvalidRequestError, match="planes 20:40"):
        model.predict(stack[None], planes=(20, 40))
