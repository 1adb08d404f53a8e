"""A channels-first graph with fixed sizes is refused by convert unless its layout is declared.

Read channels-last (as czann stores graphs), ``N×1×64×64`` is 64 channels on tiles of one row;
it used to be converted silently into that model.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.model import convert_onnx, load_model
from scopeml.model.convert import check_channels_last

CPU = ["CPUExecutionProvider"]


def nchw_conv(shape: list[int], classes: int = 2, seed: int = 0) -> onnx.ModelProto:
    """A 3×3 convolution + softmax over channels, channels-first (as PyTorch exports it)."""
    rng = np.random.default_rng(seed)
    channels, rank = shape[1], len(shape)
    kernel = rng.normal(size=(classes, channels, *([3] * (rank - 2)))).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["z"], pads=[1] * (2 * (rank - 2))),
        helper.make_node("Softmax", ["z"], ["y"], axis=1),
    ]
    out = [shape[0], classes, *shape[2:]]
    graph = helper.make_graph(
        nodes,
        "nchw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        [numpy_helper.from_array(kernel, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def identity(shape: list[int]) -> onnx.ModelProto:
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [value("x", TensorProto.FLOAT, shape)],
        [value("y", TensorProto.FLOAT, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_cli_refuses_a_fixed_channels_first_graph_and_converts_it_when_told(tmp_path, capsys):
    source = tmp_path / "unet_nchw.onnx"
    onnx.save(nchw_conv([1, 1, 64, 64]), source)
    out = tmp_path / "m.czann"
    args = ["model", "convert", str(source), "-o", str(out), "--classes", "bg,fg"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {source}: the graph input is N×1×64×64")
    assert "64 channels on 1×64 tiles" in err
    assert "--channels-first" in err and "--channels-last" in err
    assert not out.exists()

    assert main([*args, "--channels-first"]) == 0, capsys.readouterr().err
    model = load_model(out, providers=CPU)
    assert model.spec.in_channels == 1 and model.spec.tile_shape == (64, 64)
    batch = np.random.default_rng(1).normal(size=(1, 1, 64, 64)).astype(np.float32)
    expected = _run(source, batch)
    np.testing.assert_allclose(model.predict(batch), expected, atol=1e-5)


def test_channels_last_forces_the_reading_the_graph_declares(tmp_path, capsys):
    source = tmp_path / "wide.onnx"
    onnx.save(identity([1, 2, 32, 32]), source)  # really 2×32 tiles of 32 channels
    out = tmp_path / "wide.czann"
    args = [
        "model",
        "convert",
        str(source),
        "-o",
        str(out),
        "--classes",
        ",".join(f"c{i}" for i in range(32)),
    ]
    assert main(args) == 2 and "looks like a channels-first graph" in capsys.readouterr().err
    assert main([*args, "--channels-last"]) == 0, capsys.readouterr().err
    assert load_model(out, providers=CPU).spec.in_channels == 32
    both = [*args, "--channels-last", "--channels-first", "-o", str(tmp_path / "x.czann")]
    assert main(both) == 2
    assert "not both" in capsys.readouterr().err


def test_the_library_refuses_it_too_naming_the_file_and_not_after_spatial(tmp_path):
    graph = nchw_conv([1, 1, 64, 64])
    out = tmp_path / "m.czann"
    with pytest.raises(InvalidRequestError, match="looks like a channels-first") as caught:
        convert_onnx(graph, out, classes=["a", "b"])
    assert caught.value.path == str(out)
    source = tmp_path / "m.onnx"
    onnx.save(graph, source)
    for spatial in ("keep", "dynamic", (32, 32)):  # a dynamic or new size hides no channel axis
        with pytest.raises(InvalidRequestError, match="--channels-first") as caught:
            convert_onnx(source, out, classes=["a", "b"], spatial=spatial)
        assert caught.value.path == str(source)
    assert not out.exists()


@pytest.mark.parametrize(
    "shape",
    [[1, 1, 64, 64], [1, 3, 256, 256], [2, 4, 16, 16], [1, 8, 128, 128], [1, 1, 16, 64, 64]],
)
def test_channels_first_looking_inputs_are_refused(shape):
    with pytest.raises(InvalidRequestError, match=f"N×{'×'.join(map(str, shape[1:]))}"):
        check_channels_last(identity(shape), path="g.onnx")


@pytest.mark.parametrize(
    "shape",
    [
        [1, 64, 64, 1],
        [1, 256, 256, 3],
        [1, 32, 32, 64],  # many channels on tiles that are not thin
        [1, 4, 64, 8],
        [1, 16, 64, 64, 1],
        ["n", 1, "h", "w"],  # dynamic: refused elsewhere, with its own message
    ],
)
def test_channels_last_inputs_pass(shape):
    check_channels_last(identity(shape), path="g.onnx")


def _run(source, batch):
    import onnxruntime as ort

    session = ort.InferenceSession(str(source), providers=CPU)
    return session.run(None, {"x": batch})[0]
