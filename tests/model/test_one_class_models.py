"""A model of one class (K=1: one sigmoid channel, or one classifier score) validates without
a warning: czmodel 6.2's czann metadata asks only that ``Classes`` name the output's last
dimension, of any length, and ``SingleClassClassification`` is a czann Type. ``validate``
warned "fewer than 2 Classes (the czann spec asks at least 2)", which no spec asks."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scopeml.cli import main
from scopeml.model import ModelMetadata, write_container
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo

SIZE = 16


def one_score_onnx() -> onnx.ModelProto:
    """NHWC in, ``N×1`` out: the sigmoid of the image's mean."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4", "shape"], ["mean"]),
        helper.make_node("Sigmoid", ["mean"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bright",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, SIZE, SIZE, 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(np.array([-1, 1], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_one_class_classifier_validates_without_a_warning(tmp_path, capsys):
    meta = ModelMetadata(model_type="SingleClassClassification", input_shape=(SIZE, SIZE, 1),
                         output_shape=(1,), classes=("bright",))  # fmt: skip
    path = write_container(tmp_path / "c1.czann", one_score_onnx(), meta)
    assert main(["model", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out and "Classes" not in out, out
    assert out.startswith(f"{path}: valid czann, a SingleClassClassification model of classes")


def test_a_one_class_segmentation_validates_without_a_warning(tmp_path, capsys):
    halo = unet_receptive_halo(2)
    meta = ModelMetadata(model_type="SingleClassSemanticSegmentation", input_shape=(64, 64, 1),
                         output_shape=(64, 64, 1), classes=("cell",),
                         min_overlap=(halo, halo))  # fmt: skip
    path = write_container(tmp_path / "one.czann", tiny_unet_onnx(n_classes=1), meta)
    assert main(["model", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out, out
    assert out.strip() == f"{path}: valid czann; ran on (1, 32, 32) → (1, 32, 32)"
