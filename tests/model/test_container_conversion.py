"""Containers as exchange currency: czann ↔ legacy rewraps, the normalisation ZEN does not
apply, regression models without class names, and the ``model info`` alias."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from czmodel.core.util._extract_model import extract_czann_model, extract_czseg_model
from onnx import TensorProto, helper, numpy_helper

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image
from scopeml.model import load_model, read_container, write_container
from scopeml.model.convert import convert_container, convert_onnx
from scopeml.model.registry import BUILTIN_MODELS
from scopeml.model.testing import tiny_unet_onnx
from tests.model.model_builders import CPU, MODEL_ID, unet_metadata

POLICY = "percentile:1,99.8"
ZEN_NOTE = f"this model expects {POLICY} normalisation, which ZEN/czmodel do not apply"


@pytest.fixture
def normalised_czann(tmp_path):
    """A dynamic 3-class czann that records a percentile normalisation, as nuclei.czann does."""
    meta = unet_metadata(
        n_classes=3, classes=("background", "nucleus", "boundary"), normalize=POLICY
    )
    return write_container(tmp_path / "src.czann", tiny_unet_onnx(n_classes=3, seed=4), meta)


def _labels_and_probabilities(model, pixels, out, normalize=None):
    seg = sm.segment(
        Image(pixels[None, None, None, None]),
        model,
        out,
        outputs=["labels", "probabilities"],
        normalize=normalize,
        tile_size=64,
    )
    return seg.labels.read(), seg.probabilities.read()


def test_czann_to_legacy_and_back_keeps_predictions_bit_for_bit(normalised_czann, tmp_path, capsys):
    legacy, back = tmp_path / "legacy.czseg", tmp_path / "back.czann"
    assert main(["model", "convert", str(normalised_czann), "-o", str(legacy)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and ZEN_NOTE in warnings[0]  # one line, naming the policy
    assert "each tile keeps 16×16 of it" in warnings[1]  # and one on the cost of its tiles
    assert "(czseg, input 64×64)" in captured.out  # the czann's InputShape, as no --spatial
    meta = read_container(legacy).metadata
    assert (meta.classes, meta.border_size, meta.name) == (
        ("background", "nucleus", "boundary"),
        24,
        "tiny",
    )
    assert str(meta.model_id) == MODEL_ID
    cz_legacy, _ = extract_czseg_model(str(legacy), tmp_path / "cz_legacy")
    assert [c.name for c in cz_legacy.classes] == ["background", "nucleus", "boundary"]
    assert int(cz_legacy.border_size) == 24

    code = main(["model", "convert", str(legacy), "-o", str(back), "--spatial", "dynamic",
                 "--normalize", POLICY])  # fmt: skip
    assert code == 0 and "(czann, input dynamic)" in capsys.readouterr().out
    assert read_container(back).metadata == read_container(normalised_czann).metadata
    cz_back, _ = extract_czann_model(str(back), tmp_path / "cz_back")
    assert cz_back.classes == ["background", "nucleus", "boundary"]
    assert (
        cz_back.min_overlap == [24, 24]
        and cz_back.model_type.value == "MultiClassSemanticSegmentation"
    )

    pixels = np.random.default_rng(2).gamma(2.0, 300.0, (150, 130)).astype(np.float32)
    want_labels, want_probs = _labels_and_probabilities(
        normalised_czann, pixels, tmp_path / "a.ome.zarr"
    )
    labels, probs = _labels_and_probabilities(back, pixels, tmp_path / "b.ome.zarr")
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(probs, want_probs)
    # The same graph at a fixed 64×64 tile: bit for bit on a tile of that size ...
    batch = np.random.default_rng(3).normal(0, 1, (2, 1, 64, 64)).astype(np.float32)
    want = load_model(normalised_czann, providers=CPU).predict(batch)
    np.testing.assert_array_equal(load_model(legacy, providers=CPU).predict(batch), want)
    # ... and, as it cannot record the policy, the same labels only when it is given by hand
    # (its tiles differ in size, so probabilities differ where the halo is short of the field).
    labels, _ = _labels_and_probabilities(legacy, pixels, tmp_path / "c.ome.zarr", POLICY)
    np.testing.assert_array_equal(labels, want_labels)
    raw, _ = _labels_and_probabilities(legacy, pixels, tmp_path / "d.ome.zarr")
    assert not np.array_equal(raw, want_labels)  # without it the model sees raw values


def test_inspect_and_validate_name_the_normalisation_zen_does_not_apply(normalised_czann, capsys):
    assert main(["model", "inspect", str(normalised_czann)]) == 0
    assert f"note: {ZEN_NOTE}" in capsys.readouterr().out
    assert main(["model", "inspect", str(normalised_czann), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == [ZEN_NOTE]
    assert main(["model", "validate", str(normalised_czann)]) == 0
    assert f"warning: {ZEN_NOTE}" in capsys.readouterr().out
    assert main(["model", "info", "nuclei"]) == 0  # the alias of inspect
    out = capsys.readouterr().out
    assert "nucleus" in out and "note: this model expects percentile:1,99.8" in out


def test_legacy_rewrap_options_and_refusals(normalised_czann, tmp_path):
    with pytest.warns(UserWarning, match="ZEN/czmodel do not apply") as caught:
        legacy = convert_container(normalised_czann, tmp_path / "fixed.czmodel", spatial=(96, 96))
    assert len(caught) == 1
    assert read_container(legacy).graph.fixed_spatial == (96, 96)
    with pytest.raises(InvalidRequestError, match="--spatial HxW"):
        convert_container(normalised_czann, tmp_path / "x.czseg", spatial="dynamic")
    back = convert_container(legacy, tmp_path / "back.czann", model_type="Regression",
                             classes=["a", "b", "c"], min_overlap=8)  # fmt: skip
    meta = read_container(back).metadata
    assert (meta.model_type.value, meta.classes, meta.min_overlap) == (
        "Regression",
        ("a", "b", "c"),
        (8, 8),
    )
    assert meta.normalize is None and meta.input_shape == (96, 96, 1)  # legacy holds none
    with pytest.raises(InvalidRequestError, match="legacy containers hold segmentation"):
        convert_container(back, tmp_path / "y.czseg")
    with pytest.raises(InvalidRequestError, match="cannot record a normalisation"):
        convert_onnx(tiny_unet_onnx(tile_shape=(32, 32)), tmp_path / "z.czseg",
                     classes=["a", "b"], legacy=True, normalize=POLICY)  # fmt: skip


def test_legacy_from_a_dynamic_graph_names_the_cli_flag(tmp_path, capsys):
    onnx_file = tmp_path / "unet.onnx"
    onnx.save(tiny_unet_onnx(), onnx_file)
    code = main(["model", "convert", str(onnx_file), "-o", str(tmp_path / "u.czseg"), "--legacy",
                 "--classes", "bg,fg"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--spatial 256x256" in err and "spatial=(H, W))" not in err


def affine_onnx() -> onnx.ModelProto:
    """``y = 2x + 1`` per pixel, channels-last, dynamic spatial sizes: a regression graph."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "a"], ["ax"]), helper.make_node("Add", ["ax", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "h", "w", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "h", "w", 1])],
        [numpy_helper.from_array(np.float32([2.0]), "a"),
         numpy_helper.from_array(np.float32([1.0]), "b")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_regression_needs_no_classes_and_validates_without_warnings(tmp_path, capsys):
    onnx_file, czann = tmp_path / "affine.onnx", tmp_path / "affine.czann"
    onnx.save(affine_onnx(), onnx_file)
    code = main(
        ["model", "convert", str(onnx_file), "-o", str(czann), "--model-type", "Regression"]
    )
    assert code == 0, capsys.readouterr().err
    meta = read_container(czann).metadata
    assert meta.classes == ("intensity",) and meta.min_overlap == (0, 0)
    capsys.readouterr()
    assert main(["model", "validate", str(czann)]) == 0
    out = capsys.readouterr().out
    assert "valid czann" in out and "warning" not in out
    batch = np.arange(24, dtype=np.float32).reshape(1, 1, 4, 6)
    np.testing.assert_array_equal(load_model(czann, providers=CPU).predict(batch), 2 * batch + 1)
    code = main(["model", "convert", str(onnx_file), "-o", str(tmp_path / "s.czann")])
    assert code == 2 and "--classes" in capsys.readouterr().err  # segmentation still needs them


def test_export_of_a_model_without_halo(tmp_path):
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    import zipfile

    from scopeml.model.bioimageio import export_bioimageio, open_package
    from tests.model.test_bioimageio import core_test_passes

    czann = convert_onnx(affine_onnx(), tmp_path / "affine.czann", model_type="Regression")
    package = export_bioimageio(czann, tmp_path / "affine.zip")
    opened = open_package(package)
    axes = opened.description.outputs[0].axes
    opened.close()
    assert [type(axis).__name__ for axis in axes[1:3]] == ["SpaceOutputAxis"] * 2
    readme = zipfile.ZipFile(package).read("README.md").decode()
    assert "Regression" in readme and "intensity" in readme and "Border handling" not in readme
    core_test_passes(package)


def test_exported_readme_describes_output_and_border(tmp_path, normalised_czann):
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    import zipfile

    from scopeml.model.bioimageio import export_bioimageio

    package = export_bioimageio(normalised_czann, tmp_path / "seg.zip")
    readme = zipfile.ZipFile(package).read("README.md").decode()
    assert "## Intended use and output" in readme and "background, nucleus, boundary" in readme
    assert "## Border handling" in readme and "within 24 px of the image border" in readme


def test_a_legacy_export_names_the_conversion(normalised_czann, tmp_path, capsys):
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    with pytest.warns(UserWarning, match="ZEN/czmodel do not apply"):
        legacy = convert_container(normalised_czann, tmp_path / "l.czseg")
    code = main(["model", "export-bioimageio", str(legacy), "-o", str(tmp_path / "l.zip")])
    assert code == 2 and "scopeml model convert l.czseg -o l.czann" in capsys.readouterr().err


def test_a_legacy_tile_that_is_mostly_halo_is_warned_of_with_a_size_that_is_not(tmp_path):
    """The shipped nuclei model (halo 112) in a legacy container at its 256² input keeps 32²
    of each tile: said, with a --spatial that keeps half; at that size nothing is said, and
    the labels are those of the czann."""
    import warnings

    with pytest.warns(UserWarning, match=r"256×256; with the model's halo of 112 px on each "
                      r"side, each tile keeps 32×32 of it: a run computes about 64 pixels for "
                      r"each one it keeps \(--spatial 768x768"):  # fmt: skip
        small = convert_container(BUILTIN_MODELS["nuclei"].path, tmp_path / "n.czseg")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        convert_container(
            BUILTIN_MODELS["nuclei"].path, tmp_path / "n768.czseg", spatial=(768, 768)
        )
    assert not [w for w in said if "halo" in str(w.message)]
    assert read_container(small).graph.fixed_spatial == (256, 256)


def test_outputs_named_as_what_is_written_and_a_legacy_tile_kept_is_said(
    normalised_czann, tmp_path, capsys
):
    """``-o out.tif`` got a czann zip and ``-o pkg.tar`` a zip; a legacy container's fixed
    tile kept in a czann (segment ten times slower than dynamic) went unsaid."""
    for command, out in ((["convert"], "m.tif"), (["convert"], "m"),
                         (["export-bioimageio"], "p.tar")):  # fmt: skip
        assert main(["model", *command, str(normalised_czann), "-o", str(tmp_path / out)]) == 2
        assert "name the output so" in capsys.readouterr().err
        assert not (tmp_path / out).exists()
    legacy = tmp_path / "l.czseg"
    assert main(["model", "convert", str(normalised_czann), "-o", str(legacy)]) == 0
    capsys.readouterr()
    assert main(["model", "convert", str(legacy), "-o", str(tmp_path / "kept.czann")]) == 0
    assert "note: the legacy container's fixed 64×64 input is kept; if its graph takes " in (
        capsys.readouterr().out
    )


def test_validate_warns_of_classes_the_type_contradicts_or_leaves_unnamed(tmp_path, capsys):
    """A Regression model naming segmentation classes (its Type edited) wrote an intensity
    image and said nothing; a segmentation model naming no classes left instances to guess."""
    from scopeml.model.metadata import ModelType

    graph = tiny_unet_onnx(in_channels=1, n_classes=3, depth=1)
    cases = {
        "regression.czann": unet_metadata(n_classes=3, model_type=ModelType.REGRESSION),
        "unnamed.czann": unet_metadata(n_classes=3, classes=None),
    }
    for name, meta in cases.items():
        write_container(tmp_path / name, graph, meta)
    assert main(["model", "validate", str(tmp_path / "regression.czann")]) == 0
    assert ("warning: Type Regression with Classes (c0, c1, c2): its outputs are written as "
            "intensities, no labels") in capsys.readouterr().out  # fmt: skip
    assert main(["model", "validate", str(tmp_path / "unnamed.czann")]) == 0
    assert ("warning: no Classes: its outputs are named class 1, class 2, class 3 (instances "
            "take class 1 as the background)") in capsys.readouterr().out  # fmt: skip
