"""A one-class segmentation model (one sigmoid channel, as many bioimage.io U-Nets are): its
class where the probability is at least one half. Its argmax labelled every pixel that class
(a converted binary U-Net found "1 object", the whole image)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

import scopeml as sm
from scopeml.model import convert_onnx


def _sigmoid_model(path):
    """``p = sigmoid((x - 100) / 10)``, channels last: a bright pixel is the class."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "H", "W", 1])
    p = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", "H", "W", 1])
    consts = [helper.make_tensor("c", TensorProto.FLOAT, [], [100.0]),
              helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])]  # fmt: skip
    nodes = [
        helper.make_node("Sub", ["x", "c"], ["d"]),
        helper.make_node("Mul", ["d", "s"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
    ]
    graph = helper.make_graph(nodes, "one", [x], [p], initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return convert_onnx(model, path, classes=["cell"])


def test_a_one_class_model_labels_its_class_where_it_is_likelier_than_not(tmp_path):
    model = _sigmoid_model(tmp_path / "one.czann")
    image = np.zeros((64, 64), np.float32)
    image[8:20, 8:20] = image[40:56, 30:50] = 200.0
    image[30:34, 2:6] = 104.0  # p = 0.6: the class, if barely
    image[2:6, 56:60] = 96.0  # p = 0.4: not
    seg = sm.segment(image, model, tmp_path / "o.ome.zarr", progress=False,
                     outputs=("labels", "probabilities", "instances"))  # fmt: skip
    labels, p = seg.labels.read()[0, 0, 0, 0], seg.probabilities.read()[0, 0, 0, 0]
    np.testing.assert_array_equal(labels, (p >= 0.5).astype(labels.dtype))
    assert labels.sum() == 12 * 12 + 16 * 20 + 16
    assert seg.n_objects == 3
    strict = sm.predict_region(image, model, outputs="labels", min_confidence=0.9)
    assert strict.sum() == 12 * 12 + 16 * 20  # a min_confidence given is the level


def test_every_labelling_of_one_class_probabilities_thresholds_them(tmp_path):
    """``threshold_confidence`` and ``model_segmenter`` defaulted to a confidence of 0 and the
    CRF softmaxed one channel: each labelled every pixel the class (found in review)."""
    from scopeml.objects.hierarchy import model_segmenter
    from scopeml.post.crf import dense_crf
    from scopeml.post.threshold import threshold_confidence

    p = np.full((1, 20, 20), 0.1, np.float32)
    p[0, :, 10:] = 0.9
    expected = (p[0] >= 0.5).astype(np.uint8)
    np.testing.assert_array_equal(threshold_confidence(p), expected)
    image = np.where(expected, 200.0, 0.0).astype(np.float32)
    np.testing.assert_array_equal(dense_crf(p, image, intensity_sigma=20.0), expected)
    model = sm.open_model(_sigmoid_model(tmp_path / "one.czann"))
    mask = model_segmenter(model, "cell")(image[np.newaxis])
    np.testing.assert_array_equal(mask, expected.astype(bool))
