"""The preview of one plane of a Z stack with a 3-D classifier: one model run over the view
and its halo (not one per 128 px cube, each again over the whole ``Z`` halo), reading only
the planes within the features' halo, and equal to that plane of the whole stack's
prediction. No wall time is asserted (the figures are measured apart)."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei

Z, Y, X = 10, 150, 170  # wider than predict_region's 3-D default tile (128)


class CountingStack:
    """A ``Z×Y×X`` array-like that records the ``Z`` span of every read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, 3
        self.z_reads: list[tuple[int, int]] = []

    def __getitem__(self, key):
        z = key[0] if isinstance(key, tuple) else key
        z = z if isinstance(z, slice) else slice(int(z), int(z) + 1)
        start, stop, _ = z.indices(self.shape[0])
        self.z_reads.append((start, stop))
        return self.array[key]


class CountingModel:
    """A model that counts its runs and passes them on."""

    def __init__(self, model) -> None:
        self.model, self.spec, self.runs = model, model.spec, 0

    def predict(self, batch):
        self.runs += len(batch)
        return self.model.predict(batch)

    def predict_index(self, batch):
        self.runs += len(batch)
        return self.model.predict_index(batch)


class Layer:
    """What the preview takes from a napari image layer of an in-memory stack."""

    def __init__(self, data) -> None:
        self.data, self.ndim, self.metadata, self.rgb = data, 3, {}, False
        self.scale, self.name = (2.0, 0.5, 0.5), "stack"


@pytest.fixture(scope="module")
def stack_and_model():
    pixels, truth = synthetic_nuclei((Y, X), channels=1, seed=7)
    stack = np.stack([np.roll(pixels[0], 5 * z, 1) for z in range(Z)]).astype(np.float32)
    truths = np.stack([np.roll(truth, 5 * z, 1) for z in range(Z)])
    labels = np.zeros(truths.shape, np.uint8)
    labels[::3, ::6, ::6] = (truths[::3, ::6, ::6] > 0) + 1
    model = sm.train_pixel_classifier(
        stack[None], labels, features="gaussian_smoothing:1; hessian_of_gaussian_eigenvalues:1",
        n_estimators=6,
    )  # fmt: skip
    assert model.spec.spatial_dims == 3
    whole = sm.predict_region(sm.Image(stack[None, None, None]), model)  # Z×Y×X
    return stack, model, whole


@pytest.mark.parametrize("z", [0, 4, Z - 1])
def test_plane_preview_is_one_run_on_the_halo_and_equals_the_whole_stack(stack_and_model, z):
    from scopeml.napari._preview import predict_region, preview_request
    from scopeml.napari._source import layer_image

    stack, model, whole = stack_and_model
    halo = model.spec.halo[0]
    data, counting = CountingStack(stack), CountingModel(model)
    region, options = preview_request(model, {"Z": (z, z + 1), "Y": (0, Y), "X": (0, X)})
    with layer_image(Layer(data)) as image:
        plane = predict_region(image, counting, region, options=options)
    np.testing.assert_array_equal(plane, whole[z : z + 1])
    assert counting.runs == 1
    read = set().union(*(range(*span) for span in data.z_reads))
    assert read == set(range(max(0, z - halo), min(Z, z + halo + 1)))


def test_a_part_of_the_plane_equals_the_whole_stack_there(stack_and_model):
    from scopeml.napari._preview import predict_region, preview_request

    stack, model, whole = stack_and_model
    region, options = preview_request(model, {"Z": (5, 6), "Y": (37, 101), "X": (90, 170)})
    plane = predict_region(sm.Image(stack[None, None, None]), model, region, options=options)
    np.testing.assert_array_equal(plane, whole[5:6, 37:101, 90:170])
