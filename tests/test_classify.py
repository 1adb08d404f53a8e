"""Classification models (whole planes, objects) and the refusal of ObjectDetection models.

The classifier is trained here: logistic regression of "bright" against "dim" on the mean
intensity of synthetic images, written as an ONNX graph (mean → linear → softmax) in a czann.
"""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression

from scopeml.classify import ImageClassifier, classify_images, classify_object_crops, fit_size
from scopeml.cli import main
from scopeml.errors import IncompatibleModelError, InvalidContainerError
from scopeml.io import write_ome_tiff
from scopeml.io.image import Image
from scopeml.model import ModelMetadata, open_model, write_container

SIZE = 16


def synthetic_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Images of noise around a dim (≈ 2) or bright (≈ 6) level, and their class (1 = bright)."""
    kinds = rng.integers(0, 2, n)
    levels = np.where(kinds == 1, 6.0, 2.0)[:, None, None]
    return (levels + rng.normal(0, 1.0, (n, SIZE, SIZE))).astype(np.float32), kinds


def classifier_onnx(coef: float, intercept: float, *, outputs: int = 2) -> onnx.ModelProto:
    """NHWC in, ``N×K`` out: ReduceMean → logits of (dim, bright) → Softmax."""
    weights = np.array([[-coef / 2, coef / 2]], np.float32)
    bias = np.array([-intercept / 2, intercept / 2], np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4", "shape"], ["mean"]),
        helper.make_node("MatMul", ["mean", "weights"], ["logits0"]),
        helper.make_node("Add", ["logits0", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["output"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1], np.int64), "shape"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(bias, "bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "bright",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, SIZE, SIZE, 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, outputs])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def bright_model(tmp_path_factory):
    images, kinds = synthetic_pairs(np.random.default_rng(0), 200)
    fit = LogisticRegression().fit(images.mean(axis=(1, 2))[:, None], kinds)
    meta = ModelMetadata(
        model_type="MultiClassClassification",
        input_shape=(SIZE, SIZE, 1),
        output_shape=(2,),
        classes=("dim", "bright"),
        model_name="bright",
    )
    graph = classifier_onnx(float(fit.coef_[0, 0]), float(fit.intercept_[0]))
    return write_container(tmp_path_factory.mktemp("m") / "bright.czann", graph, meta)


def test_trained_classifier_separates_unseen_images(bright_model):
    images, kinds = synthetic_pairs(np.random.default_rng(1), 40)
    classifier = ImageClassifier(bright_model)
    scores = classifier.predict(images[:, None])
    assert scores.shape == (40, 2)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-6)
    assert (scores.argmax(axis=1) == kinds).mean() > 0.95


def test_every_scene_time_point_and_plane_gets_a_class(bright_model, tmp_path):
    # 2 scenes × T=3 of 40×50 (resized to 16×16): dim, bright, dim, then bright, dim, bright
    rng = np.random.default_rng(2)
    levels = np.array([2.0, 6.0, 2.0, 6.0, 2.0, 6.0])[:, None, None]
    frames = (levels + rng.normal(0, 1, (6, 40, 50))).astype(np.float32)
    image = Image(frames.reshape(2, 3, 1, 1, 40, 50))
    table = classify_images([image], bright_model)
    assert table["scene"].tolist() == [0, 0, 0, 1, 1, 1]
    assert table["t"].tolist() == [0, 1, 2, 0, 1, 2]
    assert table["class"].tolist() == ["dim", "bright", "dim", "bright", "dim", "bright"]
    assert set(table.columns) >= {"probability_dim", "probability_bright", "scene", "z"}
    np.testing.assert_allclose(table["probability_dim"] + table["probability_bright"], 1, 1e-6)


def test_resizing_keeps_the_mean_the_classifier_uses():
    block = np.random.default_rng(3).random((1, 64, 48)).astype(np.float32)
    resized = fit_size(block, (SIZE, SIZE))
    assert resized.shape == (1, SIZE, SIZE)
    assert resized.mean() == pytest.approx(block.mean(), abs=0.01)


def test_objects_get_classes_from_crops(bright_model):
    labels = np.zeros((60, 60), np.int32)
    pixels = np.full((60, 60), 2.0, np.float32)
    centres = {1: (10, 10, 2.0), 2: (30, 40, 25.0), 3: (50, 12, 25.0), 4: (55, 55, 2.0)}
    yy, xx = np.mgrid[:60, :60]
    for label, (cy, cx, level) in centres.items():
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= 16
        labels[disk], pixels[disk] = label, level
    table = classify_object_crops(labels, pixels, bright_model)
    assert table["label"].tolist() == [1, 2, 3, 4]
    assert table["class"].tolist() == ["dim", "bright", "bright", "dim"]
    assert "area" in table.columns  # the objects table, with the class added
    given = pd.DataFrame({"label": [4, 2], "area": [1.0, 2.0]})
    merged = classify_object_crops(labels, pixels, bright_model, table=given, column="kind")
    assert merged[["label", "kind"]].values.tolist() == [[4, "dim"], [2, "bright"]]


def test_cli_classify_writes_a_table(bright_model, tmp_path):
    rng = np.random.default_rng(4)
    paths = []
    for name, level in (("dim", 2.0), ("bright", 6.0)):
        pixels = (level + rng.normal(0, 1, (1, 1, 1, 1, 32, 32))).astype(np.float32)
        paths.append(_write(tmp_path / f"{name}.ome.tiff", pixels))
    out = tmp_path / "table.csv"
    assert main(["classify", *map(str, paths), "-m", str(bright_model), "-o", str(out), "-q"]) == 0
    table = pd.read_csv(out)
    assert table["class"].tolist() == ["dim", "bright"]
    assert table["image"].tolist() == [str(p) for p in paths]


def test_cli_classify_takes_channels_and_axes(bright_model, tmp_path, capsys):
    """A two-channel image and a plain TIFF of time points: the model's channel chosen by
    name or index (it refused the image), the pages read as time points with --axes."""
    import tifffile

    rng = np.random.default_rng(5)
    frames = (np.array([6.0, 2.0, 6.0])[:, None, None] + rng.normal(0, 1, (3, 32, 32))).astype(
        np.float32
    )  # bright, dim, bright
    noise = (2.0 + rng.normal(0, 1, frames.shape)).astype(np.float32)  # always dim
    two = np.stack([noise, frames], axis=1)[:, :, None]  # T C Z Y X
    path = tmp_path / "two.ome.tiff"
    write_ome_tiff(path, two, axes="TCZYX", channel_names=["GFP", "DAPI"])
    out = tmp_path / "t.csv"
    args = ["classify", str(path), "-m", str(bright_model), "-o", str(out), "-q"]
    assert main(args) == 2
    assert "choose with --channels" in capsys.readouterr().err and not out.exists()
    for channel in ("DAPI", "1"):
        assert main([*args, "--channels", channel, "--overwrite"]) == 0
        assert pd.read_csv(out)["class"].tolist() == ["bright", "dim", "bright"]
    assert main([*args, "--channels", "GFP", "--overwrite"]) == 0
    assert pd.read_csv(out)["class"].tolist() == ["dim"] * 3
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, frames)
    assert main(["classify", str(plain), "-m", str(bright_model), "-o", str(out), "-q",
                 "--axes", "TYX", "--overwrite"]) == 0  # fmt: skip
    table = pd.read_csv(out)
    assert table["t"].tolist() == [0, 1, 2] and table["z"].tolist() == [0, 0, 0]
    assert table["class"].tolist() == ["bright", "dim", "bright"]


def _write(path, pixels):
    write_ome_tiff(path, pixels[0], axes="TCZYX")
    return path


def test_cli_refuses_a_segmentation_model_for_classification(tmp_path, capsys):
    image = _write(tmp_path / "i.ome.tiff", np.zeros((1, 1, 1, 1, 16, 16), np.float32))
    code = main(["classify", str(image), "-m", "nuclei", "-o", str(tmp_path / "t.csv")])
    assert code == 2


@pytest.fixture()
def detection_model(tmp_path):
    """An ObjectDetection container: NHWC image in, 10 boxes × (y, x, h, w, score, class) out."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["m", "shape"], ["m2"]),
        helper.make_node("Expand", ["m2", "boxes"], ["output"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
        numpy_helper.from_array(np.array([1, 10, 6], np.int64), "boxes"),
    ]
    graph = helper.make_graph(
        nodes,
        "detector",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 32, 32, 1])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 10, 6])],
        inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    meta = ModelMetadata(
        model_type="ObjectDetection",
        input_shape=(32, 32, 1),
        output_shape=(10, 6),
        model_name="boxes",
    )
    return write_container(tmp_path / "detector.czann", onnx_model, meta)


def test_object_detection_is_inspected_and_refused_at_run_time(detection_model, tmp_path, capsys):
    assert main(["model", "inspect", str(detection_model)]) == 0
    assert "ObjectDetection" in capsys.readouterr().out
    with pytest.raises(IncompatibleModelError, match="ObjectDetection"):
        open_model(detection_model)
    with pytest.raises(IncompatibleModelError, match="ObjectDetection models are not supported"):
        ImageClassifier(detection_model)
    image = _write(tmp_path / "i.ome.tiff", np.zeros((1, 1, 1, 1, 32, 32), np.float32))
    capsys.readouterr()
    segment_args = ["segment", str(image), "-m", str(detection_model), "-o", str(tmp_path / "o")]
    assert main(segment_args) == 2
    assert "ObjectDetection" in capsys.readouterr().err
    classify_args = ["classify", str(image), "-m", str(detection_model), "-o", "t.csv"]
    assert main(classify_args) == 2
    err = capsys.readouterr().err
    assert "detector.czann" in err and "ObjectDetection models are not supported" in err


def test_a_classification_model_given_as_a_classifier_is_named_so(bright_model):
    from scopeml.objects.classifier import load_object_classifier
    from scopeml.pixel import load_classifier

    with pytest.raises(InvalidContainerError) as caught:
        load_object_classifier(bright_model)
    assert caught.value.problem == (
        "a classification model (czann), not an object classifier (it goes to scopeml classify)"
    )
    with pytest.raises(IncompatibleModelError, match=r"scopeml classify \(sm.classify_images"):
        open_model(bright_model)
    with pytest.raises(InvalidContainerError) as caught:
        load_classifier(bright_model)
    assert caught.value.problem.endswith(
        "(a classification model (czann)? it goes to scopeml classify)"
    )
