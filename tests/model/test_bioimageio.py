"""bioimage.io packages in (0.4 and 0.5 descriptions) and out (checked by bioimageio.core).

The packages are made here: a small NCHW convolution network with fixed weights, declared
channels-first with pre- and postprocessing, and test tensors computed with numpy/scipy.
"""

from __future__ import annotations

import zipfile

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper
from scipy import ndimage

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

from scopeml.api import segment
from scopeml.cli import main
from scopeml.errors import InvalidContainerError
from scopeml.io.image import Image
from scopeml.model import ModelMetadata, open_model, read_container, write_container
from scopeml.model.bioimageio import (
    export_bioimageio,
    import_bioimageio,
    open_package,
    read_test_tensors,
)
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo

KERNELS = np.random.default_rng(7).normal(0, 1, (2, 1, 3, 3)).astype(np.float32)
BIAS = np.array([0.1, -0.2], np.float32)


def conv_nchw_onnx() -> onnx.ModelProto:
    """``N×1×Y×X`` → ``N×2×Y×X``: one 3×3 convolution with zero padding (halo 1)."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["output"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 2, "h", "w"])],
        [numpy_helper.from_array(KERNELS, "w"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def conv_reference(pixels: np.ndarray) -> np.ndarray:
    """What :func:`conv_nchw_onnx` computes on a ``Y×X`` plane: ``2×Y×X``."""
    return np.stack(
        [ndimage.correlate(pixels, KERNELS[k, 0], mode="constant") + BIAS[k] for k in range(2)]
    ).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def test_image(seed: int = 0, shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    noise = np.random.default_rng(seed).random(shape)
    return (ndimage.gaussian_filter(noise, 2.0) * 1000 + 100).astype(np.float32)


def write_package(path, rdf: dict, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rdf.yaml", yaml.safe_dump(rdf))
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def common_fields() -> dict:
    return {
        "type": "model",
        "name": "conv test model",
        "description": "a convolution for scopeml's tests",
        "authors": [{"name": "scopeml tests"}],
        "cite": [{"text": "scopeml tests", "url": "https://example.org/scopeml"}],
        "license": "MIT",
        "documentation": "README.md",
        "tags": ["segmentation"],
    }


def rdf_v05(**changes) -> dict:
    """bcyx in, bcyx out with named channels; scale_range + scale_linear in, sigmoid out."""
    rdf = {
        **common_fields(),
        "format_version": "0.5.4",
        "inputs": [
            {
                "id": "raw",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["dapi"]},
                    {"type": "space", "id": "y", "size": {"min": 16, "step": 8}},
                    {"type": "space", "id": "x", "size": {"min": 16, "step": 8}},
                ],
                "test_tensor": {"source": "test_input.npy"},
                "preprocessing": [
                    {
                        "id": "scale_range",
                        "kwargs": {"axes": ["y", "x"], "min_percentile": 1, "max_percentile": 99},
                    },
                    {"id": "scale_linear", "kwargs": {"gain": 2.0, "offset": -1.0}},
                ],
            }
        ],
        "outputs": [
            {
                "id": "probabilities",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["background", "cell"]},
                    {
                        "type": "space",
                        "id": "y",
                        "halo": 1,
                        "size": {"tensor_id": "raw", "axis_id": "y"},
                    },
                    {
                        "type": "space",
                        "id": "x",
                        "halo": 1,
                        "size": {"tensor_id": "raw", "axis_id": "x"},
                    },
                ],
                "test_tensor": {"source": "test_output.npy"},
                "postprocessing": [{"id": "sigmoid"}],
            }
        ],
        "weights": {"onnx": {"source": "weights.onnx", "opset_version": 17}},
    }
    rdf.update(changes)
    return rdf


def v05_files() -> dict[str, bytes]:
    pixels = test_image()
    low, high = np.percentile(pixels, [1, 99])
    expected = sigmoid(conv_reference(((pixels - low) / (high - low + 1e-6)) * 2 - 1))
    return {
        "weights.onnx": conv_nchw_onnx().SerializeToString(),
        "test_input.npy": npy(pixels[None, None]),
        "test_output.npy": npy(expected[None].astype(np.float32)),
        "README.md": b"# conv\n",
    }


def rdf_v04() -> dict:
    """The same network in a 0.4 description: fixed zero-mean/unit-variance, raw output."""
    return {
        **common_fields(),
        "format_version": "0.4.10",
        "timestamp": "2026-01-01T00:00:00",
        "test_inputs": ["test_input.npy"],
        "test_outputs": ["test_output.npy"],
        "inputs": [
            {
                "name": "raw",
                "axes": "bcyx",
                "data_type": "float32",
                "shape": {"min": [1, 1, 16, 16], "step": [0, 0, 8, 8]},
                "preprocessing": [
                    {
                        "name": "zero_mean_unit_variance",
                        "kwargs": {"mode": "fixed", "axes": "yx", "mean": 500.0, "std": 250.0},
                    }
                ],
            }
        ],
        "outputs": [
            {
                "name": "scores",
                "axes": "bcyx",
                "data_type": "float32",
                "halo": [0, 0, 1, 1],
                "shape": {
                    "reference_tensor": "raw",
                    "scale": [1, 0, 1, 1],
                    "offset": [0, 1, 0, 0],  # 2 · 1 channels: the 0.4 way to say "2"
                },
            }
        ],
        "weights": {"onnx": {"source": "weights.onnx", "opset_version": 17}},
    }


def v04_files() -> dict[str, bytes]:
    pixels = test_image(1)
    expected = conv_reference((pixels - 500.0) / 250.0)
    return {
        "weights.onnx": conv_nchw_onnx().SerializeToString(),
        "test_input.npy": npy(pixels[None, None]),
        "test_output.npy": npy(expected[None]),
        "README.md": b"# conv\n",
    }


def core_test_passes(package) -> None:
    """bioimageio.core's own model test, offline: the test output from the test input."""
    core = pytest.importorskip("bioimageio.core", reason="bioimageio.core is not installed")
    summary = core.test_model(package)
    failures = [
        f"{detail.name}: {error.msg}" for detail in summary.details for error in detail.errors
    ]
    assert summary.status == "passed", failures


def steps(processing) -> list[str]:
    """The step ids, without the ``ensure_dtype`` steps bioimageio.spec adds itself."""
    return [str(step.id) for step in processing if step.id != "ensure_dtype"]


def run_czann_on(path, pixels: np.ndarray) -> np.ndarray:
    """The czann through the engine (tiled, global normalisation): ``K×Y×X``."""
    import zarr

    image = Image(pixels.reshape(1, 1, 1, 1, *pixels.shape))
    out = path.parent / f"{path.stem}-{pixels.shape[0]}.ome.zarr"
    segment(image, path, out, outputs=["probabilities"], tile_size=24)
    return np.asarray(zarr.open_array(str(out / "probabilities" / "0"), mode="r")[...])


def test_v05_package_becomes_a_czann_that_reproduces_its_test_output(tmp_path):
    package = write_package(tmp_path / "conv.zip", rdf_v05(), v05_files())
    czann = import_bioimageio(package, tmp_path / "conv.czann")
    meta = read_container(czann).metadata
    assert meta.classes == ("background", "cell")  # from the channel names
    assert meta.min_overlap == (1, 1)  # from the output halo
    assert meta.normalize == "percentile:1,99"  # scale_range made global
    assert meta.input_shape == (256, 256, 1)  # 16 + 8·n, the first ≥ 256
    opened = open_package(package)
    test_in, test_out = read_test_tensors(opened)
    opened.close()
    got = run_czann_on(czann, test_in[0, 0])
    # the engine's percentiles come from a histogram of the whole image: close, not equal
    np.testing.assert_allclose(got, test_out[0], atol=2e-3)


def test_v04_package_folder_and_description_file(tmp_path):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf_v04()))
    for name, data in v04_files().items():
        (folder / name).write_bytes(data)
    for source in (folder, folder / "rdf.yaml"):
        czann = import_bioimageio(source, tmp_path / f"{source.name}.czann")
        meta = read_container(czann).metadata
        assert meta.normalize is None  # fixed mean/std is baked into the graph
        assert meta.min_overlap == (1, 1)
        test_in = np.load(folder / "test_input.npy")
        expected = np.load(folder / "test_output.npy")
        got = open_model(czann).predict(test_in)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.fixture()
def unet_czann(tmp_path):
    meta = ModelMetadata(
        model_type="MultiClassSemanticSegmentation",
        input_shape=(64, 64, 1),
        output_shape=(64, 64, 2),
        classes=("bg", "fg"),
        min_overlap=(16, 16),
        model_name="tiny unet",
        normalize="meanstd",
    )
    return write_container(tmp_path / "unet.czann", tiny_unet_onnx(), meta)


def test_export_passes_bioimageio_core_model_test(unet_czann, tmp_path):
    package = export_bioimageio(unet_czann, tmp_path / "unet.zip", authors=["A. Author"])
    names = set(zipfile.ZipFile(package).namelist())
    assert {"rdf.yaml", "weights.onnx", "test_input.npy", "test_output.npy", "README.md",
            "cover.png"} <= names  # fmt: skip
    opened = open_package(package)
    descr = opened.description
    opened.close()
    assert [str(a.name) for a in descr.authors] == ["A. Author"]
    assert descr.cite and descr.documentation is not None and descr.covers
    assert [str(c) for c in descr.outputs[0].axes[-1].channel_names] == ["bg", "fg"]
    assert steps(descr.inputs[0].preprocessing) == ["zero_mean_unit_variance"]
    core_test_passes(package)


def test_round_trip_bioimageio_czann_bioimageio(tmp_path):
    package = write_package(tmp_path / "conv.zip", rdf_v05(), v05_files())
    czann = import_bioimageio(package, tmp_path / "conv.czann")
    again = export_bioimageio(czann, tmp_path / "again.zip")
    opened = open_package(again)
    descr = opened.description
    opened.close()
    assert [str(c) for c in descr.outputs[0].axes[-1].channel_names] == ["background", "cell"]
    assert steps(descr.inputs[0].preprocessing) == ["scale_range"]
    assert [ax.halo for ax in descr.outputs[0].axes if ax.type == "space"] == [1, 1]
    core_test_passes(again)
    back = import_bioimageio(again, tmp_path / "back.czann")
    assert read_container(back).metadata.normalize == "percentile:1,99"


def test_a_czann_exported_and_imported_again_keeps_its_type_and_id(tmp_path):
    """A SingleClass type came back MultiClass, with a new Id (the package records both)."""
    meta = ModelMetadata(
        model_type="SingleClassSemanticSegmentation", input_shape=(64, 64, 1),
        output_shape=(64, 64, 2), classes=("bg", "fg"), min_overlap=(16, 16),
    )  # fmt: skip
    czann = write_container(tmp_path / "single.czann", tiny_unet_onnx(), meta)
    back = import_bioimageio(export_bioimageio(czann, tmp_path / "s.zip"), tmp_path / "b.czann")
    again = read_container(back).metadata
    assert (again.model_type, again.model_id) == (meta.model_type, meta.model_id)
    rdf = yaml.safe_load(zipfile.ZipFile(tmp_path / "s.zip").read("rdf.yaml"))
    rdf["config"]["scopeml"]["czann_type"] = "MultiClassClassification"  # one value, not an image
    with (
        zipfile.ZipFile(tmp_path / "s.zip") as source,
        zipfile.ZipFile(tmp_path / "lie.zip", "w") as lie,
    ):
        for name in source.namelist():
            data = yaml.safe_dump(rdf).encode() if name == "rdf.yaml" else source.read(name)
            lie.writestr(name, data)
    with pytest.raises(InvalidContainerError, match="disagrees with the output's axes"):
        import_bioimageio(tmp_path / "lie.zip", tmp_path / "lie.czann")


def test_czann_made_by_czmodel_exports(tmp_path):
    from czmodel.core.model_metadata import ModelMetadata as CzMetadata
    from czmodel.core.model_metadata import ModelType as CzModelType
    from czmodel.core.util.onnx_export import DefaultOnnxConverter

    graph = tiny_unet_onnx(in_channels=2, n_classes=3, depth=2, seed=3)
    onnx.save(graph, tmp_path / "unet.onnx")
    cz_meta = CzMetadata(
        model_type=CzModelType.MULTI_CLASS_SEMANTIC_SEGMENTATION,
        input_shape=[128, 128, 2],
        output_shape=[128, 128, 3],
        classes=["bg", "nucleus", "border"],
        model_name="from czmodel",
        min_overlap=[unet_receptive_halo(2)] * 2,
    )
    target = tmp_path / "cz.czann"
    DefaultOnnxConverter().convert(str(tmp_path / "unet.onnx"), cz_meta, str(target))
    package = export_bioimageio(target, tmp_path / "cz.zip")
    core_test_passes(package)
    back = import_bioimageio(package, tmp_path / "back.czann")
    meta = read_container(back).metadata
    assert meta.classes == ("bg", "nucleus", "border") and meta.in_channels == 2


def test_cli_convert_and_export(tmp_path, capsys):
    package = write_package(tmp_path / "conv.zip", rdf_v05(), v05_files())
    czann = tmp_path / "conv.czann"
    assert main(["model", "convert", str(package), "-o", str(czann)]) == 0
    assert read_container(czann).metadata.model_type.value == "MultiClassSemanticSegmentation"
    out = tmp_path / "conv.bioimageio.zip"
    code = main(["model", "export-bioimageio", str(czann), "-o", str(out), "--author", "Me",
                 "--cite", "A paper|10.1000/xyz123"])  # fmt: skip
    assert code == 0
    opened = open_package(out)
    assert str(opened.description.cite[0].doi) == "10.1000/xyz123"
    opened.close()


def _bad(tmp_path, rdf: dict, files: dict[str, bytes] | None = None):
    return write_package(tmp_path / "bad.zip", rdf, v05_files() if files is None else files)


def _convert_fails(path, capsys, *needles: str) -> None:
    assert main(["model", "convert", str(path), "-o", str(path.parent / "x.czann")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err, err
    for needle in needles:
        assert needle in err, err
    assert not (path.parent / "x.czann").exists()


def test_url_weights_are_never_downloaded(tmp_path, capsys):
    rdf = rdf_v05(weights={"onnx": {"source": "https://example.org/w.onnx", "opset_version": 17}})
    _convert_fails(_bad(tmp_path, rdf), capsys, "is a URL", "never downloads")


def test_url_source_is_refused(tmp_path, capsys):
    code = main(["model", "convert", "https://example.org/m.zip", "-o", str(tmp_path / "m.czann")])
    assert code == 2
    assert "never downloads" in capsys.readouterr().err


def test_missing_weights_file(tmp_path, capsys):
    files = v05_files()
    del files["weights.onnx"]
    _convert_fails(_bad(tmp_path, rdf_v05(), files), capsys, "'weights.onnx' is missing")


def test_unknown_weight_format(tmp_path, capsys):
    weights = {"keras_hdf5": {"source": "weights.h5", "tensorflow_version": "2.15"}}
    files = {**v05_files(), "weights.h5": b"not really"}
    _convert_fails(
        _bad(tmp_path, rdf_v05(weights=weights), files), capsys, "weights are keras_hdf5"
    )


def torchscript_files() -> tuple[dict[str, bytes], dict]:
    """The v0.5 package's files and weights entry with the same convolution as TorchScript
    (skips without torch)."""
    torch = pytest.importorskip("torch", reason="TorchScript import needs the train extra")
    import io

    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(KERNELS))
        conv.bias.copy_(torch.from_numpy(BIAS))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(conv), buffer)
    files = v05_files()
    del files["weights.onnx"]
    files["weights.pt"] = buffer.getvalue()
    return files, {"torchscript": {"source": "weights.pt", "pytorch_version": "2.13"}}


def test_torchscript_weights_are_exported_to_onnx(tmp_path):
    files, weights = torchscript_files()
    package = write_package(tmp_path / "ts.zip", rdf_v05(weights=weights), files)
    czann = import_bioimageio(package, tmp_path / "ts.czann")
    opened = open_package(package)
    test_in, test_out = read_test_tensors(opened)
    opened.close()
    np.testing.assert_allclose(run_czann_on(czann, test_in[0, 0]), test_out[0], atol=2e-3)
    broken = {**files, "weights.pt": b"not a TorchScript archive"}
    bad = write_package(tmp_path / "bad.zip", rdf_v05(weights=weights), broken)
    with pytest.raises(InvalidContainerError, match="TorchScript weights cannot be loaded"):
        import_bioimageio(bad, tmp_path / "bad.czann")


def test_a_description_whose_channels_the_weights_do_not_take(tmp_path, capsys):
    """It made a czann declaring 3 channels that failed in ONNX Runtime's words when run."""
    rdf = rdf_v05()
    rdf["inputs"][0]["axes"][1] = {"type": "channel", "channel_names": ["a", "b", "c"]}
    _convert_fails(_bad(tmp_path, rdf), capsys, "the description gives the input 3 channels; "
                   "the weights take 1")  # fmt: skip


def test_unmappable_axis(tmp_path, capsys):
    rdf = rdf_v05()
    rdf["inputs"][0]["axes"].insert(1, {"type": "time", "size": 3})
    _convert_fails(_bad(tmp_path, rdf), capsys, "input axis 'time' (time) cannot be mapped")


@pytest.mark.parametrize(
    ("step", "needle"),
    [
        ({"id": "clip", "kwargs": {"min_percentile": 1, "max_percentile": 99}}, "percentile"),
        (
            {"id": "scale_mean_variance", "kwargs": {"reference_tensor": "raw"}},
            "cannot be expressed",
        ),
    ],
)
def test_inexpressible_postprocessing_names_the_step(tmp_path, capsys, step, needle):
    rdf = rdf_v05()
    rdf["outputs"][0]["postprocessing"] = [step]
    _convert_fails(_bad(tmp_path, rdf), capsys, f"postprocessing step 1 ({step['id']})", needle)


def test_statistics_after_a_pixel_step_are_refused(tmp_path):
    rdf = rdf_v05()
    rdf["inputs"][0]["preprocessing"].reverse()
    with pytest.raises(
        InvalidContainerError, match=r"step 2 \(scale_range\).*cannot be made global"
    ):
        import_bioimageio(_bad(tmp_path, rdf), tmp_path / "x.czann")


def test_not_a_package(tmp_path):
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.onnx", b"")
    with pytest.raises(InvalidContainerError, match=r"no rdf\.yaml or bioimageio\.yaml"):
        open_package(path)


def test_export_refuses_a_field_bioimageio_rejects(unet_czann, tmp_path, capsys):
    out = tmp_path / "x.zip"
    args = ["model", "export-bioimageio", str(unet_czann), "-o", str(out), "--cite", "A|no url"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(unet_czann) in err and "bioimage.io does not accept" in err, err
    assert not out.exists()


def test_imported_model_tiles_exactly_at_any_size(tmp_path):
    # the package takes 16 + 8·n pixels; the wrapper pads each tile to that and crops back, so
    # tiles of any size give the whole-image result (halo 1 covers the 3×3 convolution)
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf_v04()))
    for name, data in v04_files().items():
        (folder / name).write_bytes(data)
    czann = import_bioimageio(folder, tmp_path / "conv.czann")
    pixels = test_image(2, (50, 37))
    tiled = run_czann_on(czann, pixels)
    whole = open_model(czann).predict(pixels[None, None])[0]
    np.testing.assert_array_equal(tiled, whole)
    np.testing.assert_allclose(whole, conv_reference((pixels - 500) / 250), rtol=1e-5, atol=1e-4)


def test_regression_and_classification_models_export(tmp_path):
    from tests.test_classify import SIZE, classifier_onnx
    from tests.tiling.test_regression import RADIUS, denoiser_onnx, train_denoiser

    denoiser = write_container(
        tmp_path / "denoise.czann",
        denoiser_onnx(train_denoiser(np.random.default_rng(0))),
        ModelMetadata(model_type="Regression", input_shape=(64, 64, 1), output_shape=(64, 64, 1),
                      classes=("denoised",), min_overlap=(RADIUS, RADIUS)),
    )  # fmt: skip
    bright = write_container(
        tmp_path / "bright.czann",
        classifier_onnx(2.0, -8.0),
        ModelMetadata(model_type="MultiClassClassification", input_shape=(SIZE, SIZE, 1),
                      output_shape=(2,), classes=("dim", "bright")),
    )  # fmt: skip
    for czann, kind in ((denoiser, "Regression"), (bright, "MultiClassClassification")):
        package = export_bioimageio(czann, tmp_path / f"{czann.stem}.zip")
        core_test_passes(package)
        back = import_bioimageio(package, tmp_path / f"{czann.stem}-back.czann", model_type=kind)
        meta = read_container(back).metadata
        assert meta.model_type.value == kind
        assert meta.classes == read_container(czann).metadata.classes


def test_yaml_aliases_are_refused(tmp_path):
    # nested aliases expand exponentially when the description is walked
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    (tmp_path / "rdf.yaml").write_text("\n".join(lines) + "\ntype: model\n")
    with pytest.raises(InvalidContainerError, match=r"aliases \(\*name\) are not allowed"):
        open_package(tmp_path)


def test_deeply_nested_yaml_is_refused_not_a_recursion_error(tmp_path):
    (tmp_path / "rdf.yaml").write_text("type: model\nx: " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(InvalidContainerError, match="nested more than 64 levels deep") as caught:
        open_package(tmp_path)
    assert "\n" not in str(caught.value) and "(line 2: " in str(caught.value)


def test_model_info_of_a_package_scopeml_exported_shows_its_czann_id(unet_czann, tmp_path):
    """The Id was left out of every package's description (an import makes a fresh one), also
    where the package records the czann's own (config.scopeml.czann_id)."""
    from scopeml.model.describe import describe_package

    package = export_bioimageio(unet_czann, tmp_path / "unet.zip")
    shown = describe_package(package)["metadata"]
    assert shown["Id"] == str(read_container(unet_czann).metadata.model_id)


def test_a_czanns_pixel_size_goes_through_a_package_and_back(tmp_path):
    """``Scaling`` was dropped on export (bioimage.io space axes carry ``unit`` and ``scale``)
    and so lost on the way back."""
    from bioimageio.spec import load_description

    meta = ModelMetadata(
        model_type="MultiClassSemanticSegmentation", input_shape=(64, 64, 1),
        output_shape=(64, 64, 2), classes=("bg", "fg"), min_overlap=(16, 16),
        scaling=(2e-7, 3e-7),
    )  # fmt: skip
    czann = write_container(tmp_path / "sized.czann", tiny_unet_onnx(), meta)
    package = export_bioimageio(czann, tmp_path / "sized.zip")
    descr = load_description(package, perform_io_checks=True)
    assert descr.validation_summary.status == "valid-format"
    axes = {str(a.id): (a.unit, a.scale) for a in descr.inputs[0].axes if a.type == "space"}
    assert axes == {"y": ("micrometer", 0.3), "x": ("micrometer", 0.2)}
    back = import_bioimageio(package, tmp_path / "back.czann")
    assert read_container(back).metadata.scaling == pytest.approx([2e-7, 3e-7])
