"""The model-format registry: every kind of model file is recognised by content and opened."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scopeml.errors import InvalidContainerError
from scopeml.model import OnnxModel
from scopeml.model.registry import BUILTIN_MODELS, format_of, model_formats, open_model
from scopeml.objects import ObjectClassifier
from scopeml.pixel import PixelClassifier, train_classifier
from tests.model.model_builders import unet_metadata


def _pixel_classifier(path):
    image = np.random.default_rng(0).random((1, 16, 16)).astype(np.float32)
    labels = np.zeros((16, 16), np.uint8)
    labels[:4], labels[-4:] = 1, 2
    return train_classifier(image, labels, features="gaussian_smoothing:1", n_estimators=2).save(
        path
    )


def test_every_kind_is_sniffed_from_content_not_suffix(tmp_path):
    from scopeml.model import convert_onnx, write_container
    from scopeml.model.testing import tiny_unet_onnx

    czann = write_container(tmp_path / "a.czseg", tiny_unet_onnx(), unet_metadata())
    legacy = convert_onnx(
        tiny_unet_onnx(),
        tmp_path / "b.czann",
        classes=["bg", "fg"],
        min_overlap=8,
        spatial=(32, 32),
        legacy=True,
    )
    pixel = _pixel_classifier(tmp_path / "c.czseg").rename(tmp_path / "c.czann")  # renamed
    table = pd.DataFrame({"area": [1, 2, 8, 9], "kind": list("aabb")})
    objects = ObjectClassifier.train(table, "kind", n_estimators=2).save(tmp_path / "d.czseg")
    assert [format_of(p) for p in (czann, legacy, pixel, objects)] == [
        "czann",
        "czmodel",
        "pixel-classifier",
        "object-classifier",
    ]
    assert isinstance(open_model(czann, workers=1), OnnxModel)
    assert open_model(czann, time_budget=2.5).time_budget == 2.5  # the server's upload path
    assert isinstance(open_model(legacy), OnnxModel)
    assert isinstance(open_model(pixel), PixelClassifier)
    assert isinstance(open_model(objects), ObjectClassifier)


def test_unknown_kinds_and_names_list_the_known_ones(tmp_path):
    junk = tmp_path / "junk.czann"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(InvalidContainerError, match=r"junk\.czann: not a model file") as err:
        open_model(junk)
    for name in model_formats():
        assert name in str(err.value)
    with pytest.raises(FileNotFoundError, match="built-in models: nuclei"):
        open_model("no-such-model")


def test_builtin_names_open_the_shipped_files():
    assert BUILTIN_MODELS["nuclei"].path.is_file()
    model = open_model("nuclei")
    assert model.spec.in_channels == 1 and "nucleus" in model.spec.classes
