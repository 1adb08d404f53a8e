"""A bioimage.io package runs where a model is asked for (``open_model``, ``segment``, the CLI),
with the very result of ``model convert`` and then the czann; ``model validate PKG`` checks it
as scopeml runs it; ``model inspect PKG`` describes it."""

from __future__ import annotations

import json
import time
import zipfile

import numpy as np
import pytest
import tifffile
import zarr

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidContainerError
from scopeml.model import read_container
from scopeml.model.bioimageio import export_bioimageio, import_bioimageio
from scopeml.model.bioimageio.run import package_container
from tests.model.test_bioimageio import (
    npy,
    rdf_v05,
    torchscript_files,
    v05_files,
    write_package,
)
from tests.model.test_bioimageio import test_image as smooth_image


def _forms(tmp_path, package, which: str):
    """The package as a zip, an unpacked folder, or that folder's rdf.yaml."""
    if which == "zip":
        return package
    folder = tmp_path / f"{package.stem}-unpacked"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder if which == "folder" else folder / "rdf.yaml"


def _segment(image, model, out) -> np.ndarray:
    result = sm.segment(image, model, out, outputs=["probabilities", "labels"], tile_size=24)
    return np.asarray(result.probabilities.read()), np.asarray(result.labels.read())


@pytest.mark.parametrize("which", ["zip", "folder", "rdf.yaml"])
def test_an_onnx_package_runs_as_its_converted_czann_bit_for_bit(tmp_path, which):
    package = _forms(tmp_path, write_package(tmp_path / "conv.zip", rdf_v05(), v05_files()), which)
    czann = import_bioimageio(package, tmp_path / "conv.czann")
    direct = sm.open_model(package)
    converted = sm.open_model(czann)
    assert direct.spec.classes == converted.spec.classes == ("background", "cell")
    assert direct.spec.halo == converted.spec.halo == (1, 1)
    assert package_container(package).onnx_bytes == read_container(czann).onnx_bytes
    assert direct.metadata.normalize == "percentile:1,99" and direct.path == package
    pixels = smooth_image(5, (53, 47))
    got = _segment(pixels, package, tmp_path / "direct.ome.zarr")
    want = _segment(pixels, czann, tmp_path / "converted.ome.zarr")
    assert got[0].shape[-2:] == (53, 47) and np.ptp(got[0]) > 0.1  # a real, varied output
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_exported_package_runs_as_the_model_it_came_from(tmp_path):
    package = export_bioimageio("nuclei", tmp_path / "nuclei.zip", test_size=32)
    back = import_bioimageio(package, tmp_path / "back.czann")
    rng = np.random.default_rng(3)
    pixels = (rng.random((64, 72)) * 800 + 100).astype(np.uint16)
    got = _segment(pixels, package, tmp_path / "direct.ome.zarr")
    want = _segment(pixels, back, tmp_path / "converted.ome.zarr")
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    # a size the package takes as is (2 halos + steps: no padding), as the shipped model runs it
    shipped = sm.open_model("nuclei")
    spec = shipped.spec
    size = [
        2 * h + (2 + i) * s for i, (h, s) in enumerate(zip(spec.halo, spec.tile_step, strict=True))
    ]
    batch = rng.normal(size=(1, 1, *size)).astype(np.float32)
    np.testing.assert_array_equal(sm.open_model(package).predict(batch), shipped.predict(batch))


def test_the_segment_command_runs_a_package(tmp_path, capsys):
    package = write_package(tmp_path / "conv.zip", rdf_v05(), v05_files())
    czann = tmp_path / "conv.czann"
    assert main(["model", "convert", str(package), "-o", str(czann)]) == 0
    tifffile.imwrite(tmp_path / "img.tif", (smooth_image(4, (40, 36))).astype(np.uint16))
    outputs = {}
    for model in (package, czann):
        out = tmp_path / f"{model.suffix[1:]}.ome.zarr"
        args = ["segment", str(tmp_path / "img.tif"), "-m", str(model), "-o", str(out)]
        assert main(args) == 0, capsys.readouterr().err
        outputs[model] = np.asarray(zarr.open_array(str(out / "labels" / "0"), mode="r")[...])
    np.testing.assert_array_equal(outputs[package], outputs[czann])


def _broken(tmp_path, name: str, **changes):
    files = {**v05_files(), "weights.h5": b"not really"}
    return write_package(tmp_path / name, rdf_v05(**changes), files)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (
            {"weights": {"onnx": {"source": "https://example.org/w.onnx", "opset_version": 17}}},
            "the ONNX weights is a URL",
        ),
        (
            {"weights": {"keras_hdf5": {"source": "weights.h5", "tensorflow_version": "2.15"}}},
            "weights are keras_hdf5; scopeml imports ONNX and TorchScript",
        ),
    ],
)
def test_a_package_scopeml_cannot_run_is_refused_in_one_line(tmp_path, capsys, changes, needle):
    package = _broken(tmp_path, "bad.zip", **changes)
    with pytest.raises(InvalidContainerError, match=needle):
        sm.open_model(package)
    tifffile.imwrite(tmp_path / "img.tif", np.zeros((32, 32), np.uint8))
    out = tmp_path / "o.ome.zarr"
    for args in (
        ["segment", str(tmp_path / "img.tif"), "-m", str(package), "-o", str(out)],
        ["model", "inspect", str(package)],
        ["model", "validate", str(package)],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{package}: " in err and needle in err, err
    assert not out.exists()


def _torchscript_package(tmp_path):
    files, weights = torchscript_files()
    return write_package(tmp_path / "ts.zip", rdf_v05(weights=weights), files)


def test_torchscript_weights_are_exported_once_into_the_cache(tmp_path, monkeypatch):
    package = _torchscript_package(tmp_path)
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path / "cache"))
    start = time.perf_counter()
    first = package_container(package)
    first_s = time.perf_counter() - start
    cached = list((tmp_path / "cache" / "bioimageio").iterdir())
    assert [p.suffix for p in cached] == [".onnx"]  # one entry, written whole (no temp left)

    from scopeml.model.bioimageio import torchscript

    def no_export(*args, **kwargs):
        raise AssertionError("exported again despite the cache")

    export = torchscript.torchscript_to_onnx
    monkeypatch.setattr(torchscript, "torchscript_to_onnx", no_export)
    start = time.perf_counter()
    again = package_container(package)
    again_s = time.perf_counter() - start
    assert again.onnx_bytes == first.onnx_bytes
    print(f"TorchScript package opened in {first_s:.2f} s, then {again_s:.2f} s from the cache")
    monkeypatch.setattr(torchscript, "torchscript_to_onnx", export)
    czann = import_bioimageio(package, tmp_path / "ts.czann")  # exports afresh
    batch = smooth_image(6, (40, 48))[None, None]
    direct = sm.open_model(package)  # from the cache
    np.testing.assert_array_equal(direct.predict(batch), sm.open_model(czann).predict(batch))
    # an unwritable cache only costs the export
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path / "ts.czann"))  # a file: no folder there
    np.testing.assert_array_equal(sm.open_model(package).predict(batch), direct.predict(batch))


def test_validate_checks_a_package_as_scopeml_runs_it(tmp_path, capsys):
    package = write_package(tmp_path / "conv.zip", rdf_v05(), v05_files())
    assert main(["model", "validate", str(package)]) == 0
    out = capsys.readouterr().out
    assert f"{package}: valid bioimage.io package (format 0.5.4, ONNX weights)" in out
    assert "normalisation percentile:1,99" in out and "ran on (1, " in out
    assert "reproduces the package's test output (2, 48, 40)" in out
    # a package whose test output the weights do not give: invalid, in one line
    files = v05_files()
    wrong = np.load(__import__("io").BytesIO(files["test_output.npy"]))
    wrong[0, 1, 10:20, 10:20] += 0.05
    files["test_output.npy"] = npy(wrong)
    bad = write_package(tmp_path / "wrong.zip", rdf_v05(), files)
    assert main(["model", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: " in err
    assert "does not reproduce the package's test output: max difference 0.05" in err


def test_inspect_describes_a_package(tmp_path, capsys):
    package = _forms(tmp_path, write_package(tmp_path / "conv.zip", rdf_v05(), v05_files()),
                     "folder")  # fmt: skip
    assert main(["model", "inspect", str(package), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["format"] == "bioimage.io package, imported as a czann in memory"
    assert described["package"]["weights"] == ["onnx"]
    assert described["package"]["input"] == "raw (batch,channel,y,x); scale_range, scale_linear"
    assert described["engine"]["classes"] == ["background", "cell"]
    assert described["metadata"]["ScopeMLNormalize"] == "percentile:1,99"
    assert main(["model", "inspect", str(package)]) == 0
    text = capsys.readouterr().out
    assert "package output: probabilities (batch,channel,y,x); sigmoid" in text
    assert main(["model", "list"]) == 0
    assert "  bioimageio: bioimage.io model package" in capsys.readouterr().out


def test_package_container_is_what_convert_writes(tmp_path):
    package = write_package(tmp_path / "conv.zip", rdf_v05(), v05_files())
    container = package_container(package)
    written = read_container(import_bioimageio(package, tmp_path / "conv.czann"))
    assert container.path == package
    assert container.onnx_bytes == written.onnx_bytes
    mine, theirs = container.metadata.to_json_dict(), written.metadata.to_json_dict()
    assert mine.pop("Id") != theirs.pop("Id")  # a fresh Id per import, as convert gives
    assert mine == theirs


def classification_package(folder):
    """A dim/bright image classifier czann and its bioimage.io package: ``(czann, package)``."""
    from scopeml.model import ModelMetadata, write_container
    from tests.test_classify import SIZE, classifier_onnx

    czann = write_container(
        folder / "bright.czann",
        classifier_onnx(2.0, -8.0),
        ModelMetadata(model_type="MultiClassClassification", input_shape=(SIZE, SIZE, 1),
                      output_shape=(2,), classes=("dim", "bright")),
    )  # fmt: skip
    return czann, export_bioimageio(czann, folder / "bright.zip")


def test_a_classification_package_classifies_as_its_czann(tmp_path):
    from scopeml.classify import classify_images
    from scopeml.io.image import Image

    czann, package = classification_package(tmp_path)
    rng = np.random.default_rng(1)
    planes = np.stack([rng.random((24, 20)) * 3, rng.random((24, 20)) * 3 + 5])
    image = Image(planes.reshape(1, 2, 1, 1, 24, 20).astype(np.float32))
    got = classify_images([image], package)
    want = classify_images([image], czann)
    assert got["class"].tolist() == ["dim", "bright"]
    np.testing.assert_array_equal(got["probability"], want["probability"])


def test_validate_runs_a_classifier_and_its_package_test(tmp_path, capsys):
    """``model validate`` ran no classification model ("not run: per-pixel models only"): one
    whose graph gives a score per pixel, not per class, passed and failed only in classify."""
    from scopeml.cli import main
    from scopeml.model import ModelMetadata, write_container
    from scopeml.model.testing import tiny_unet_onnx

    czann, package = classification_package(tmp_path)
    assert main(["model", "validate", str(czann)]) == 0
    assert "ran on (1, 16, 16) → (2,)" in capsys.readouterr().out
    assert main(["model", "validate", str(package)]) == 0
    assert "reproduces the package's test output (2,)" in capsys.readouterr().out
    spatial = write_container(
        tmp_path / "spatial.czann",
        tiny_unet_onnx(n_classes=2, depth=1),
        ModelMetadata(model_type="MultiClassClassification", input_shape=(16, 16, 1),
                      output_shape=(16, 16, 2), classes=("dim", "bright")),
    )  # fmt: skip
    assert main(["model", "validate", str(spatial)]) == 2
    err = capsys.readouterr().err
    assert "spatial.czann" in err and "returned 512 scores; the model has 2 classes" in err
