"""``scopeml model convert`` refuses, in one line, sizes and types a written file would not run
with: a size off the tile step, a tile that is all halo, sizes of the wrong rank, a classifier
graph given a segmentation type; and a .pt2 converts without torch's torchvision notes."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from scopeml.cli import main
from scopeml.cli.model import TORCH_REGISTRATION_LOGGER
from scopeml.model import read_container


def _convert(*args) -> list[str]:
    return ["model", "convert", *map(str, args)]


@pytest.mark.parametrize("suffix", [".czseg", ".czann"])
def test_a_size_off_the_tile_step_is_refused_with_the_nearest_valid(
    czann, tmp_path, capsys, suffix
):
    """101×101 on a U-Net of step 4 was written, and ONNX Runtime refused the file (101 ≠ 100)."""
    out = tmp_path / f"sp101{suffix}"
    assert main(_convert(czann, "-o", out, "--spatial", "101x101")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {out}: --spatial 101x101"), err
    assert "tile step 4×4" in err and "nearest valid: 100x100 or 104x104" in err
    assert not out.exists()
    assert main(_convert(czann, "-o", out, "--spatial", "100x100")) == 0
    assert read_container(out).graph.fixed_spatial == (100, 100)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_channels_first_graph_off_its_tile_step_is_refused(tmp_path, capsys):
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.MaxPool2d(2),
                              torch.nn.Upsample(scale_factor=2))  # fmt: skip
    graph = tmp_path / "nchw.onnx"
    torch.onnx.export(net, (torch.zeros(1, 1, 32, 32),), str(graph), dynamo=False)
    out = tmp_path / "x.czann"
    base = _convert(graph, "-o", out, "--channels-first", "--classes", "a,b", "--spatial")
    assert main([*base, "33x32"]) == 2
    err = capsys.readouterr().err
    assert "--spatial 33x32" in err and "tile step 2×2" in err and "32x32 or 34x32" in err, err
    assert main([*base, "34x32"]) == 0, capsys.readouterr().err


def test_a_tile_no_larger_than_twice_the_halo_is_refused_with_the_smallest_that_works(
    czann, tmp_path, capsys
):
    """40×40 with a halo of 24 kept 0×0 per tile ("about 1000000000 pixels"), then failed
    validation."""
    for suffix in (".czseg", ".czann"):
        out = tmp_path / f"sp40{suffix}"
        assert main(_convert(czann, "-o", out, "--spatial", "40x40")) == 2
        err = capsys.readouterr().err
        assert "halo of 24 px" in err and "smallest size that keeps one is 52x52" in err, err
        assert "1000000000" not in err and not out.exists()
    smallest = tmp_path / "sp52.czseg"
    assert main(_convert(czann, "-o", smallest, "--spatial", "52x52")) == 0
    assert main(["model", "validate", str(smallest)]) == 0, capsys.readouterr().err


def test_sizes_of_the_wrong_rank_are_refused_as_for_a_czann(czann, tmp_path, capsys):
    """To .czseg this was an internal error (zip() in the small-core warning), exit 1."""
    for suffix in (".czseg", ".czann"):
        assert main(_convert(czann, "-o", tmp_path / f"sp3d{suffix}", "--spatial", "8x64x64")) == 2
        err = capsys.readouterr().err
        assert "spatial shape [8, 64, 64] must be 2 sizes" in err and "internal" not in err, err


def test_a_classifier_graph_converted_as_segmentation_names_the_classification_types(
    tmp_path, capsys
):
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], np.ones(6, np.float32))
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["y"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "cls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [weights],
    )  # fmt: skip
    source = tmp_path / "cls.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), source)
    base = _convert(source, "--channels-first", "--classes", "x,y,z", "-o", tmp_path / "c.czann")
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "no spatial axes" in err and "--model-type SingleClassClassification" in err, err
    assert "MultiClassClassification" in err and "must have the rank" not in err
    assert main([*base, "--model-type", "MultiClassClassification"]) == 0


def test_a_segmentation_graph_converted_as_classification_is_refused(tmp_path, capsys):
    """Written, then every run failed: "the graph returned 786432 scores; the model has 3
    classes"."""
    from scopeml.model.testing import tiny_unet_onnx

    source = tmp_path / "seg.onnx"
    onnx.save(tiny_unet_onnx(n_classes=3, depth=2), source)
    out = tmp_path / "c.czann"
    base = _convert(source, "--classes", "a,b,c", "-o", out)
    assert main([*base, "--model-type", "MultiClassClassification"]) == 2
    err = capsys.readouterr().err
    assert "is an image, as a segmentation's; MultiClassClassification needs one score" in err
    assert err.count("\n") == 1 and not out.exists()
    assert main(base) == 0  # no type: a segmentation, multi-class for three classes
    assert read_container(out).metadata.model_type.value == "MultiClassSemanticSegmentation"


def test_a_halo_too_small_for_the_graph_is_said_when_it_is_wrapped(tmp_path, capsys):
    """The nuclei graph wrapped with MinOverlap 0 found 182 objects for 122, with seams; only
    ``model validate`` said so."""
    from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo

    source = tmp_path / "unet.onnx"
    onnx.save(tiny_unet_onnx(n_classes=2, depth=2), source)
    assert main(_convert(source, "--classes", "bg,fg", "-o", tmp_path / "a.czann")) == 0
    err = capsys.readouterr().err
    assert "warning: a.czann: MinOverlap [0, 0] is too small for the graph" in err, err
    halo = str(unet_receptive_halo(2))
    args = _convert(source, "--classes", "bg,fg", "--min-overlap", halo, "-o", tmp_path / "b.czann")
    assert main(args) == 0
    assert "too small" not in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None,
    reason="torch notes the skipped torchvision operators only without torchvision",
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_a_torch_export_program_converts_without_the_torchvision_notes(tmp_path, capsys):
    import torch

    program = tmp_path / "net.pt2"
    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 16, 16),)), str(program))
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger(TORCH_REGISTRATION_LOGGER)
    logger.addHandler(handler)
    try:
        code = main(_convert(program, "-o", tmp_path / "net.czann", "--classes", "a,b"))
    finally:
        logger.removeHandler(handler)
    assert code == 0, capsys.readouterr().err
    assert not [r.getMessage() for r in seen if "torchvision" in r.getMessage()]
    assert not [r for r in logger.filters]  # the filter is taken off after the export


def test_a_graphs_own_fixed_size_is_checked_against_the_halo(tmp_path):
    """Only a size given as --spatial was checked: a graph fixed at 64² with a halo of 40
    was written, then refused by validate."""
    from scopeml.errors import InvalidRequestError
    from scopeml.model import convert_onnx
    from scopeml.model.graph import set_spatial_dims
    from scopeml.model.testing import tiny_unet_onnx

    fixed = set_spatial_dims(tiny_unet_onnx(depth=2), (64, 64))
    for name in ("t.czann", "t.czseg"):
        with pytest.raises(InvalidRequestError, match="the graph's fixed size 64x64 leaves no"):
            convert_onnx(fixed, tmp_path / name, classes=["a", "b"], min_overlap=40,
                         legacy=name.endswith(".czseg"))  # fmt: skip
        assert not (tmp_path / name).exists()


@pytest.mark.parametrize("target", ["c.onnx", "c.czann"])
def test_a_pixel_classifier_is_not_converted_and_the_refusal_names_no_one_target(
    tmp_path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``model convert pixels.czseg -o c.onnx`` said it "cannot be converted to a czann/czseg
    container": the format the user asked for was not the one refused."""
    import scopeml as sm
    from scopeml.synthetic import synthetic_nuclei

    pixels, truth = synthetic_nuclei((48, 48), seed=1)
    labels = np.zeros(truth.shape, np.uint8)
    labels[::4, ::4] = (truth[::4, ::4] > 0) + 1
    trained = sm.train_pixel_classifier(pixels, labels, n_estimators=3,
                                        features="gaussian_smoothing:1")  # fmt: skip
    source = trained.save(tmp_path / "pixels.czseg")
    assert main(["model", "convert", str(source), "-o", str(tmp_path / target)]) == 2
    said = capsys.readouterr().err
    assert "holds a random forest, not a graph; no model format holds one (ONNX" in said
    assert not (tmp_path / target).exists()
