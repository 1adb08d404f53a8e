"""The shipped default nuclei model: loads, tiles exactly, finds held-out nuclei at any intensity
range, and takes bad pixels without crashing."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.data import default_model_path
from scopeml.model import load_model
from scopeml.synthetic import HOLD_OUT_SEED, realistic_nuclei, synthetic_nuclei
from scopeml.train import NUCLEI_CLASSES, nuclei_instances, object_scores
from scopeml.train.data import normalize_globally
from scopeml.train.nuclei import SHIPPED_THRESHOLD

# Measured with scripts/train_nuclei.py's model on these scenes (seeds never used in training):
# object F1 0.914 on the realistic hold-out (scenes with cell bodies, out-of-focus light and
# saturation since stop 18), 0.785 on synthetic_nuclei's default scenes (whose clusters overlap
# and occlude each other, which the training scenes do not draw). The model before scored 0.863
# and 0.745. Asserted with margin; full figures: bench/eval_nuclei.py.
MIN_F1_SIMPLE = 0.72
MIN_F1_REALISTIC = 0.87


@pytest.fixture(scope="module")
def model():
    return load_model(default_model_path(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def holdout() -> list[tuple[np.ndarray, np.ndarray]]:
    return [realistic_nuclei((256, 256), seed=HOLD_OUT_SEED + 500 + i) for i in range(3)]


def _pooled_f1(pairs, find) -> float:
    matched = predicted = true = 0
    for image, truth in pairs:
        scores = object_scores(find(image), truth)
        matched, predicted, true = (matched + scores["matched"], predicted + scores["predicted"],
                                    true + scores["true"])  # fmt: skip
    assert true > 30
    return 2 * matched / (predicted + true)


def _segment(image: np.ndarray, tmp_path, name: str) -> np.ndarray:
    """Instances from ``scopeml.api.segment`` with the model's defaults (its recorded policy)."""
    from scopeml.api import segment
    from scopeml.io import Image, open_image

    pixels = Image(image.reshape(1, 1, 1, 1, *image.shape[-2:]))
    out = segment(pixels, default_model_path(), tmp_path / f"{name}.ome.zarr",
                  outputs=("probabilities",))  # fmt: skip
    with open_image(out / "probabilities") as result:
        return nuclei_instances(result.read()[0, 0, :, 0], threshold=SHIPPED_THRESHOLD)


def test_default_model_contract(model) -> None:
    assert default_model_path().stat().st_size < 2_000_000
    assert model.spec.classes == NUCLEI_CLASSES
    assert model.spec.in_channels == 1 and model.spec.spatial_dims == 2
    assert model.spec.halo == (112, 112) and model.spec.tile_step == (16, 16)
    assert model.metadata.normalize == "percentile:1,99.8"


def test_default_model_finds_held_out_nuclei(model, holdout) -> None:
    def find(image):
        x = normalize_globally(image, model.metadata.normalize)
        return nuclei_instances(model.predict(x[None])[0], threshold=SHIPPED_THRESHOLD)

    simple = [synthetic_nuclei((256, 256), seed=seed) for seed in range(555_000, 555_003)]
    f1_simple, f1_realistic = _pooled_f1(simple, find), _pooled_f1(holdout, find)
    assert f1_simple >= MIN_F1_SIMPLE
    assert f1_realistic >= MIN_F1_REALISTIC


def _as_bits(image: np.ndarray, bits: int) -> np.ndarray:
    """The same scene recorded with a ``bits``-bit camera (full range used)."""
    low, high = float(image.min()), float(image.max())
    top = 2**bits - 1
    scaled = np.round((image - low) / (high - low) * top)
    return scaled.astype(np.uint8 if bits <= 8 else np.uint16)


def test_same_nuclei_whatever_gain_offset_or_bit_depth(holdout, tmp_path) -> None:
    image, truth = holdout[0]
    reference = object_scores(_segment(image, tmp_path, "reference"), truth)["f1"]
    variants = {
        "gain 0.001": image * np.float32(0.001),
        "gain 100": image * np.float32(100),
        "offset": image + np.float32(500),
        "8-bit": _as_bits(image, 8),
        "12-bit": _as_bits(image, 12),
        "16-bit": _as_bits(image, 16),
    }
    for name, variant in variants.items():
        f1 = object_scores(_segment(variant, tmp_path, name.replace(" ", "")), truth)["f1"]
        assert abs(f1 - reference) <= 0.01, f"{name}: F1 {f1:.3f}, reference {reference:.3f}"


def test_bad_pixels_give_a_result_or_nothing_never_a_crash(tmp_path) -> None:
    image, _ = realistic_nuclei((96, 96), seed=HOLD_OUT_SEED + 9)
    spoiled = image.copy()
    spoiled[0, 10:20, 10:20] = np.nan
    spoiled[0, 50, 50] = np.inf
    with pytest.warns(UserWarning, match="NaN or infinite"):
        found = _segment(spoiled, tmp_path, "nan")
    assert found[10:20, 10:20].max() == 0  # bad pixels are unclassified
    with pytest.warns(UserWarning, match="NaN or infinite"):
        assert _segment(np.full((40, 40), np.inf, np.float32), tmp_path, "inf").max() == 0
    assert _segment(np.full((64, 64), 7, np.uint16), tmp_path, "constant").max() == 0
    assert _segment(np.full((1, 1), 7, np.uint16), tmp_path, "one").max() == 0


def test_default_model_tiled_equals_whole(model, tmp_path) -> None:
    from scopeml.api import segment
    from scopeml.io import Image, open_image

    image, _ = realistic_nuclei((208, 240), seed=HOLD_OUT_SEED + 7)  # multiples of the step, 16
    whole = model.predict(normalize_globally(image, model.metadata.normalize)[None])[0]
    out = segment(Image(image[None, None, :, None]), model, tmp_path / "s.ome.zarr",
                  outputs=("probabilities",), tile_size=64, scale=1)  # not auto  # fmt: skip
    with open_image(out / "probabilities") as result:
        tiled = result.read()[0, 0, :, 0]
    np.testing.assert_array_equal(tiled, whole)  # exact tiling: bit for bit
