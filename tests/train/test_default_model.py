"""The shipped default nuclei model: loads, tiles exactly, and finds held-out nuclei."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.data import default_model_path
from scopeml.model import load_model
from scopeml.synthetic import synthetic_nuclei
from scopeml.train import NUCLEI_CLASSES, nuclei_instances, object_scores

# Measured on these 4 held-out 256×256 images (seeds 555_000..555_003, default synthetic
# parameters): object F1 0.863 (208 matched, 225 found, 257 true); asserted with margin.
MIN_F1 = 0.8


@pytest.fixture(scope="module")
def model():
    return load_model(default_model_path(), providers=["CPUExecutionProvider"])


def test_default_model_contract(model) -> None:
    assert default_model_path().stat().st_size < 1_000_000
    assert model.spec.classes == NUCLEI_CLASSES
    assert model.spec.in_channels == 1 and model.spec.spatial_dims == 2
    assert model.spec.halo == (56, 56) and model.spec.tile_step == (8, 8)


def test_default_model_finds_held_out_nuclei(model) -> None:
    matched = predicted = true = 0
    for seed in range(555_000, 555_004):  # seeds the training script never uses
        image, truth = synthetic_nuclei((256, 256), seed=seed)
        probabilities = model.predict(image[None].astype(np.float32))[0]
        scores = object_scores(nuclei_instances(probabilities), truth)
        matched, predicted, true = (matched + scores["matched"], predicted + scores["predicted"],
                                    true + scores["true"])  # fmt: skip
    f1 = 2 * matched / (predicted + true)
    assert true > 100
    assert f1 >= MIN_F1, f"object F1 {f1:.3f} ({matched} matched, {predicted} found, {true} true)"


def test_default_model_tiled_equals_whole(model, tmp_path) -> None:
    from scopeml.api import segment
    from scopeml.io import Image, open_image

    image, _ = synthetic_nuclei((200, 232), seed=7)
    whole = model.predict(image[None].astype(np.float32))[0]
    out = segment(Image(image[None, None, :, None]), model, tmp_path / "s.ome.zarr",
                  outputs=("probabilities",), tile_size=64, quiet=True)  # fmt: skip
    with open_image(out / "probabilities") as result:
        tiled = result.read()[0, 0, :, 0]
    np.testing.assert_array_equal(tiled, whole)  # exact tiling: bit for bit
