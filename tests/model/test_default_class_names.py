"""Unnamed classes get one name everywhere: ``class k`` for the class written as label ``k``
(a converted graph, a container without names, a pixel classifier); they were ``class_0``,
``channel_0``, ``class0`` or ``class 1`` by path, so ``--class`` took a different name for the
same label in each."""

from __future__ import annotations

import numpy as np

from scopeml.api import train_pixel_classifier
from scopeml.model import convert_onnx, load_model, read_container
from scopeml.model.metadata import default_classes
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import CPU


def test_a_converted_graph_and_a_pixel_classifier_name_unnamed_classes_alike(tmp_path):
    path = convert_onnx(tiny_unet_onnx(n_classes=2), tmp_path / "o.czann")
    assert read_container(path).metadata.classes == default_classes(2) == ("class 1", "class 2")
    assert load_model(path, providers=CPU).spec.classes == ("class 1", "class 2")
    image = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    scribbles = np.zeros((32, 32), np.uint8)
    scribbles[2:6, 2:6], scribbles[20:24, 20:24] = 1, 2
    classifier = train_pixel_classifier(image, scribbles, n_estimators=4)
    assert tuple(c.name for c in classifier.classes) == default_classes(2)
