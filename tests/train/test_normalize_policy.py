"""A model trained on globally normalised images records its policy; the engine applies it."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from scopeml.errors import InvalidContainerError
from scopeml.io import Image, open_image
from scopeml.model import ModelMetadata, load_model
from scopeml.model.metadata import NORMALIZE_KEY
from scopeml.model.spec import recorded_normalize
from scopeml.train import TrainConfig, save_czann, train_unet
from scopeml.train.data import normalize_globally
from scopeml.train.unet import receptive_halo

POLICY = "percentile:1,99.8"


@pytest.fixture(scope="module")
def policy_model(tmp_path_factory, nuclei_pair):
    image, labels = nuclei_pair
    config = TrainConfig(depth=1, width=4, patch_size=32, epochs=1, steps_per_epoch=3,
                         val_fraction=0.0, normalize=POLICY)  # fmt: skip
    result = train_unet([image], [labels], config, progress=False)
    assert result.normalize_policy == POLICY
    path = tmp_path_factory.mktemp("policy") / "m.czann"
    save_czann(result.classifier(), path, classes=result.classes, normalize=POLICY)
    return path, result


def test_policy_is_recorded_and_the_graph_holds_no_statistics(policy_model) -> None:
    path, result = policy_model
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("model.json"))
    assert meta[NORMALIZE_KEY] == POLICY
    assert result.normalize.mean.abs().max() == 0 and (result.normalize.std == 1).all()
    model = load_model(path, providers=["CPUExecutionProvider"])
    assert recorded_normalize(model) == POLICY


def test_czmodel_reads_a_container_with_the_policy(policy_model, tmp_path) -> None:
    from czmodel.core.util._extract_model import extract_czann_model

    path, _ = policy_model
    cz_meta, model_file = extract_czann_model(str(path), tmp_path / "extracted")
    assert cz_meta.classes == ["background", "class 1"]
    assert list(cz_meta.min_overlap) == [receptive_halo(1)] * 2 and model_file.stat().st_size > 0


def test_unknown_policy_is_refused() -> None:
    data = {"Type": "MultiClassSemanticSegmentation", "InputShape": [8, 8, 1],
            "OutputShape": [8, 8, 2], NORMALIZE_KEY: "zscore-per-tile"}  # fmt: skip
    with pytest.raises(InvalidContainerError, match="normalisation policy"):
        ModelMetadata.from_json_dict(data, path="m.czann")


def _probabilities(path, image, tmp_path, name, **options) -> np.ndarray:
    from scopeml.api import segment

    out = segment(Image(image[None, None, :, None]), path, tmp_path / f"{name}.ome.zarr",
                  outputs=("probabilities",), tile_size=32, **options)  # fmt: skip
    with open_image(out / "probabilities") as result:
        return result.read()[0, 0, :, 0]


def test_segment_applies_the_recorded_policy_by_default(policy_model, nuclei_pair, tmp_path):
    path, _ = policy_model
    image, _ = nuclei_pair
    model = load_model(path, providers=["CPUExecutionProvider"])
    expected = model.predict(normalize_globally(image, POLICY)[None])[0]
    default = _probabilities(path, image, tmp_path, "default")
    np.testing.assert_allclose(default, expected, atol=1e-6)
    # intensity invariant: another gain and offset, same input to the graph
    brighter = _probabilities(path, image * 1000 + 7, tmp_path, "brighter")
    np.testing.assert_allclose(brighter, default, atol=1e-4)
    # the user's explicit choice wins: raw values give another result
    raw = _probabilities(path, image * 1000 + 7, tmp_path, "raw", normalize="none")
    assert np.abs(raw - default).max() > 1e-3
