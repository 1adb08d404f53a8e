"""The preview of a region equals what ``sm.segment`` writes there (no GUI needed)."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.napari._preview import predict_region
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A 2-channel image of 3 Z planes, a small classifier and what segment writes."""
    pixels, truth = synthetic_nuclei((300, 280), channels=2, seed=4)
    stack = np.stack([pixels, pixels[:, ::-1, :], pixels[:, :, ::-1]], axis=1)  # C×Z×Y×X
    image = sm.Image(stack[None, None], pixel_sizes={"Y": 0.5, "X": 0.5})
    labels = np.zeros(truth.shape, np.uint8)
    labels[::9, ::9] = (truth[::9, ::9] > 0) + 1
    model = sm.train_pixel_classifier(
        pixels, labels, n_estimators=8,
        features="gaussian_smoothing:1,3.5;hessian_of_gaussian_eigenvalues:1.6",
    )  # fmt: skip
    out = tmp_path_factory.mktemp("preview") / "seg.ome.zarr"
    seg = sm.segment(image, model, out, tile_size=96)
    return image, model, seg.labels.read()[0, 0, 0]  # Z×Y×X


@pytest.mark.parametrize(
    "region",
    [
        {"Y": (0, 300), "X": (0, 280)},  # the whole image
        {"Y": (41, 173), "X": (90, 280)},  # across tile borders, touching the right edge
        {"Y": (299, 300), "X": (7, 8)},  # one pixel at the bottom
        {"Z": (1, 3), "Y": (100, 200), "X": (5, 77)},  # two planes
    ],
)
@pytest.mark.parametrize("tile_size", [None, 64])
def test_region_equals_the_segment_store(written, region, tile_size):
    image, model, expected = written
    preview = predict_region(image, model, region, options=sm.SegmentOptions(tile_size=tile_size))
    z = slice(*region.get("Z", (0, 3)))
    np.testing.assert_array_equal(preview, expected[z, slice(*region["Y"]), slice(*region["X"])])


def test_a_region_outside_the_image_is_refused(written):
    image, model, _ = written
    with pytest.raises(sm.ScopeMLError, match="outside the image"):
        predict_region(image, model, {"Y": (400, 500), "X": (0, 10)})
