"""Converters: PyTorch and ONNX to containers, with the options czmodel offers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from scopeml.errors import InvalidRequestError
from scopeml.model import convert_onnx, convert_torch, load_model, read_container
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import CPU, run_onnx


def small_net(dims: int = 2, in_channels: int = 2, classes: int = 3) -> torch.nn.Module:
    conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
    pool = torch.nn.MaxPool2d if dims == 2 else torch.nn.MaxPool3d
    torch.manual_seed(0)
    return torch.nn.Sequential(
        conv(in_channels, 4, 3, padding=1),
        torch.nn.ReLU(),
        pool(2),
        conv(4, classes, 3, padding=1),
        torch.nn.Upsample(scale_factor=2, mode="nearest"),
        torch.nn.Softmax(dim=1),
    )


@pytest.mark.parametrize(("dims", "size"), [(2, (40, 24)), (3, (6, 10, 8))])
def test_torch_module_predictions_survive_the_container(tmp_path, dims, size):
    net = small_net(dims).train()
    path = convert_torch(
        net,
        tmp_path / "net.czann",
        input_shape=(2, *(16,) * dims),
        classes=["a", "b", "c"],
        min_overlap=4,
        name="torch net",
    )
    assert net.training  # mode restored
    model = load_model(path, providers=CPU)
    spec = model.spec
    assert spec.tile_shape is None and spec.tile_step == (2,) * dims
    assert spec.halo == (4,) * dims and spec.classes == ("a", "b", "c")
    assert read_container(path).metadata.input_shape == (
        (512, 512, 2) if dims == 2 else (64, 128, 128, 2)
    )
    batch = np.random.default_rng(0).normal(size=(2, 2, *size)).astype(np.float32)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(model.predict(batch), expected, atol=1e-5)


def test_torch_fixed_spatial_and_legacy(tmp_path):
    net = small_net(in_channels=1, classes=2)
    path = convert_torch(
        net,
        tmp_path / "net.czmodel",
        input_shape=(1, 32, 32),
        spatial="keep",
        classes=["bg", "fg"],
        min_overlap=6,
        legacy=True,
    )
    container = read_container(path)
    assert container.legacy and container.metadata.border_size == 6
    model = load_model(container, providers=CPU)
    assert model.spec.tile_shape == (32, 32)
    batch = np.random.default_rng(1).normal(size=(1, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(model.predict(batch), expected, atol=1e-5)


def test_torch_errors_are_scopeml_errors(tmp_path):
    with pytest.raises(InvalidRequestError, match="input_shape"):
        convert_torch(small_net(), tmp_path / "x.czann", input_shape=(16, 16), classes=["a"] * 3)
    with pytest.raises(
        InvalidRequestError, match="could not export"
    ):  # 3 channels into a 2-channel net
        convert_torch(small_net(), tmp_path / "x.czann", input_shape=(3, 16, 16), classes=["a"] * 3)
    with pytest.raises(InvalidRequestError, match="2 classes given; the graph outputs 3"):
        convert_torch(
            small_net(), tmp_path / "x.czann", input_shape=(2, 16, 16), classes=["a", "b"]
        )
    assert not list(tmp_path.iterdir())


def test_convert_onnx_options(tmp_path):
    graph = tiny_unet_onnx(in_channels=3, n_classes=2)
    path = convert_onnx(
        graph,
        tmp_path / "o.czann",
        classes=["bg", "fg"],
        min_overlap=(8, 12),
        preprocessing="rgb2bgr,scale:255",
        spatial=(64, 32),
        scaling=[1e-7, 2e-7],
        model_type="MultiClassSemanticSegmentation",
    )
    meta = read_container(path).metadata
    assert meta.input_shape == (64, 32, 3) and meta.output_shape == (64, 32, 2)
    assert meta.min_overlap == (8, 12) and meta.scaling == (1e-7, 2e-7)
    model = load_model(path, providers=CPU)
    assert model.spec.tile_shape == (64, 32)
    batch = np.random.default_rng(2).uniform(0, 255, (1, 3, 64, 32)).astype(np.float32)
    expected = run_onnx(graph.SerializeToString(), np.moveaxis(batch[:, ::-1] / 255, 1, -1))
    np.testing.assert_allclose(model.predict(batch), np.moveaxis(expected, -1, 1), atol=1e-6)
    stored = onnx.load_model_from_string(read_container(path).onnx_bytes)
    assert [d.dim_value for d in stored.graph.input[0].type.tensor_type.shape.dim][1:] == [
        64,
        32,
        3,
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"classes": ["a"]}, "1 classes given; the graph outputs 2"),
        ({"min_overlap": (1, 2, 3)}, "min_overlap has 3 entries"),
        ({"min_overlap": -1}, ">= 0"),
        ({"legacy": True}, "fixed spatial sizes"),
        ({"preprocessing": "blur"}, "unknown pre-processing step"),
        ({"spatial": (0, 4)}, ">= 1"),
        ({"model_type": "Magic"}, "model_type"),
        ({"tile_shape": (8,)}, "tile_shape has 1 entries"),
    ],
)
def test_convert_onnx_refuses_bad_options(tmp_path, options, message):
    with pytest.raises(InvalidRequestError, match=message):
        convert_onnx(tiny_unet_onnx(), tmp_path / "bad.czann", **options)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_keras_model_predictions_survive_the_container(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras was imported with the {keras.backend.backend()} backend")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.UpSampling2D(2)(keras.layers.MaxPooling2D(2)(x))
    outputs = keras.layers.Conv2D(3, 1, activation="softmax")(x)
    net = keras.Model(inputs, outputs)
    from scopeml.model import convert_keras

    path = convert_keras(
        net, tmp_path / "k.czann", input_shape=(32, 32, 2), classes=["a", "b", "c"], min_overlap=4
    )
    model = load_model(path, providers=CPU)
    assert model.spec.tile_shape == (32, 32) and model.spec.tile_step == (2, 2)
    batch = np.random.default_rng(4).normal(size=(2, 2, 32, 32)).astype(np.float32)
    expected = np.moveaxis(net.predict(np.moveaxis(batch, 1, -1), verbose=0), -1, 1)
    np.testing.assert_allclose(model.predict(batch), expected, atol=1e-5)
    with pytest.raises(InvalidRequestError, match="give input_shape"):
        convert_keras(net, tmp_path / "k2.czann", classes=["a", "b", "c"])


def test_a_channels_first_graph_is_refused_with_the_option_that_wraps_it(tmp_path):
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "nchw",
        [value("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],  # as torch.onnx.export writes
        [value("y", TensorProto.FLOAT, ["n", 1, "h", "w"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(InvalidRequestError, match=r"input N×1×\?×\?.* needs --channels-first"):
        convert_onnx(model, tmp_path / "m.czann", classes=["a"])


def test_convert_torch_exports_an_image_classifier(tmp_path):
    """A module giving N×K class scores (no spatial axes) is a classification czann: the
    channels-last wrapper moves the input's axes only (it permuted the scores as an image)."""
    import tifffile

    import scopeml as sm

    torch.manual_seed(0)

    class Scores(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 3, 3, padding=1)

        def forward(self, x):
            return torch.softmax(self.conv(x).mean((2, 3)), 1)

    module = Scores().eval()
    path = convert_torch(module, tmp_path / "kinds.czann", input_shape=(1, 64, 64),
                         classes=["a", "b", "c"], model_type="MultiClassClassification",
                         spatial="keep")  # fmt: skip
    image = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    tifffile.imwrite(tmp_path / "image.tif", image)
    table = sm.classify_images([tmp_path / "image.tif"], path)
    with torch.no_grad():
        expected = module(torch.from_numpy(image[None, None])).numpy()[0]
    got = table[["probability_a", "probability_b", "probability_c"]].to_numpy()[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
