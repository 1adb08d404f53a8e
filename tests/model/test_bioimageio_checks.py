"""What a bioimage.io package declares is held to: each file read matches its declared sha256
(run, convert, validate, inspect), files stay inside the package, the built-in ``nuclei``
exported as a package keeps its object size (``--scale auto``), and the server takes a package
upload as its czann."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile

import numpy as np
import pytest
import tifffile
import yaml
import zarr

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidContainerError
from scopeml.model import read_container
from scopeml.model.bioimageio import export_bioimageio, import_bioimageio
from tests.model.test_bioimageio import rdf_v04, rdf_v05, v04_files, v05_files, write_package

WRONG = "ab" * 32


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed_rdf(files: dict[str, bytes], **wrong: str) -> dict:
    """:func:`rdf_v05` with the sha256 of its weights and test tensors declared (``wrong``:
    ``weights``/``test_input``/``test_output`` → a declared hash that does not match)."""
    rdf = rdf_v05()
    entries = {
        "weights": (rdf["weights"]["onnx"], "weights.onnx"),
        "test_input": (rdf["inputs"][0]["test_tensor"], "test_input.npy"),
        "test_output": (rdf["outputs"][0]["test_tensor"], "test_output.npy"),
    }
    for key, (entry, name) in entries.items():
        entry["sha256"] = wrong.get(key, sha(files[name]))
    return rdf


def unpacked(tmp_path, package):
    folder = tmp_path / f"{package.stem}-folder"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_package_whose_hashes_match_runs_and_validates(tmp_path, capsys):
    files = v05_files()
    package = write_package(tmp_path / "good.zip", hashed_rdf(files), files)
    assert main(["model", "validate", str(package)]) == 0
    assert "reproduces the package's test output" in capsys.readouterr().out
    assert sm.open_model(unpacked(tmp_path, package)).spec.classes == ("background", "cell")


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_weights_that_do_not_match_their_sha256_are_refused_everywhere(tmp_path, capsys, form):
    files = v05_files()
    package = write_package(tmp_path / "w.zip", hashed_rdf(files, weights=WRONG), files)
    source = package if form == "zip" else unpacked(tmp_path, package)
    found = sha(files["weights.onnx"])[:12]
    commands = [
        ["model", "validate", str(source)],
        ["model", "inspect", str(source)],
        ["model", "convert", str(source), "-o", str(tmp_path / "w.czann")],
    ]
    for command in commands:
        assert main(command) == 2, command
        line = one_error_line(capsys)
        assert line.startswith(f"error: {source}: the ONNX weights 'weights.onnx'"), line
        assert f"declares {WRONG[:12]}…" in line and f"has {found}…" in line, line
    assert not (tmp_path / "w.czann").exists()
    with pytest.raises(InvalidContainerError, match=f"sha256 mismatch.*{found}"):
        sm.segment(np.ones((32, 32), np.float32), source, tmp_path / "o.ome.zarr")


def test_a_v04_packages_weights_are_held_to_their_sha256_too(tmp_path, capsys):
    """bioimageio.spec's update of a 0.4 description to 0.5 drops its weights' sha256; the
    hash as written is checked all the same, and a matching one still runs."""
    files = v04_files()
    for name, digest in (("good", sha(files["weights.onnx"])), ("wrong", WRONG)):
        rdf = rdf_v04()
        rdf["weights"]["onnx"]["sha256"] = digest
        folder = tmp_path / name
        folder.mkdir()
        (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
        for file, data in files.items():
            (folder / file).write_bytes(data)
    assert main(["model", "convert", str(tmp_path / "good"), "-o", str(tmp_path / "g.czann")]) == 0
    capsys.readouterr()
    for command in (["model", "validate"], ["model", "inspect"], ["segment"]):
        extra = [str(tmp_path / "in.tif"), "-m"] if command == ["segment"] else []
        tifffile.imwrite(tmp_path / "in.tif", np.ones((32, 32), np.float32))
        out = ["-o", str(tmp_path / "o.ome.zarr")] if command == ["segment"] else []
        assert main([*command, *extra, str(tmp_path / "wrong"), *out]) == 2, command
        line = one_error_line(capsys)
        assert f"'weights.onnx': sha256 mismatch, the description declares {WRONG[:12]}" in line
    assert not (tmp_path / "o.ome.zarr").exists()


@pytest.mark.parametrize("which", ["test_input", "test_output"])
def test_a_test_tensor_that_does_not_match_its_sha256_fails_validation(tmp_path, capsys, which):
    files = v05_files()
    package = write_package(tmp_path / "t.zip", hashed_rdf(files, **{which: WRONG}), files)
    assert main(["model", "validate", str(package)]) == 2
    line = one_error_line(capsys)
    assert f"the test tensor of {'raw' if which == 'test_input' else 'probabilities'}" in line
    assert f"'{which}.npy': sha256 mismatch" in line and sha(files[f"{which}.npy"])[:12] in line


def test_a_sha256_of_digits_only_says_to_quote_it(tmp_path):
    files = v05_files()
    package = write_package(tmp_path / "d.zip", hashed_rdf(files, weights="0" * 64), files)
    rdf = unpacked(tmp_path, package) / "rdf.yaml"  # yaml.safe_dump quoted the hash: unquote
    rdf.write_text(rdf.read_text().replace(f"'{'0' * 64}'", "0" * 64))  # as a hand edit does
    assert f"sha256: {'0' * 64}\n" in rdf.read_text()
    with pytest.raises(InvalidContainerError, match="quote a sha256 of digits only"):
        sm.open_model(rdf)


@pytest.mark.parametrize("where", ["relative", "absolute"])
@pytest.mark.parametrize("form", ["zip", "folder"])
def test_weights_named_outside_the_package_are_called_outside(tmp_path, form, where):
    files = v05_files()
    outside = tmp_path / "outside" / "weights.onnx"
    outside.parent.mkdir()
    outside.write_bytes(files["weights.onnx"])  # there, yet never read
    name = "../outside/weights.onnx" if where == "relative" else str(outside)
    rdf = rdf_v05(weights={"onnx": {"source": name, "opset_version": 17}})
    package = write_package(tmp_path / "o.zip", rdf, files)
    source = package if form == "zip" else unpacked(tmp_path, package)
    with pytest.raises(InvalidContainerError, match=re.escape(f"'{name}' is outside the package")):
        sm.open_model(source)


def test_output_channel_names_other_than_the_weights_give_are_refused_at_import(tmp_path):
    """Two names for a graph of three channels converted to a czann that failed on every image
    ("the graph returned shape (1, 32, 32, 3); expected (1, 32, 32, 2)")."""
    files = v05_files()
    rdf = rdf_v05()
    rdf["outputs"][0]["axes"][1]["channel_names"] = ["cell"]  # the weights give 2
    package = write_package(tmp_path / "n.zip", rdf, files)
    with pytest.raises(InvalidContainerError, match=re.escape(
        "the description names 1 output channels (channel_names); the weights give 2"
    )):  # fmt: skip
        sm.open_model(package)


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_a_test_tensor_named_outside_the_package_is_refused_at_import(tmp_path, form):
    """Weights out of the package were refused, a test tensor there accepted (and refused only
    where it was read: a TorchScript export, a package's own test)."""
    files = v05_files()
    rdf = rdf_v05()
    rdf["outputs"][0]["test_tensor"] = {"source": "../../secret/scopeml.db"}
    package = write_package(tmp_path / "t.zip", rdf, files)
    source = package if form == "zip" else unpacked(tmp_path, package)
    with pytest.raises(InvalidContainerError, match=re.escape(
        "the test tensor of probabilities '../../secret/scopeml.db' is outside the package"
    )):  # fmt: skip
        sm.open_model(source)


def test_a_link_out_of_a_package_folder_is_called_outside(tmp_path):
    files = v05_files()
    (tmp_path / "elsewhere.onnx").write_bytes(files["weights.onnx"])
    rdf = rdf_v05(weights={"onnx": {"source": "link.onnx", "opset_version": 17}})
    folder = unpacked(tmp_path, write_package(tmp_path / "l.zip", rdf, files))
    (folder / "link.onnx").symlink_to(tmp_path / "elsewhere.onnx")
    outside = re.escape("'link.onnx' is outside the package folder")
    with pytest.raises(InvalidContainerError, match=outside):
        sm.open_model(folder)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf_v05()))  # weights.onnx: really there
    assert sm.open_model(folder).spec.halo == (1, 1)


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_an_empty_weights_file_is_named(tmp_path, form):
    files = {**v05_files(), "weights.onnx": b""}
    package = write_package(tmp_path / "e.zip", rdf_v05(), files)
    source = package if form == "zip" else unpacked(tmp_path, package)
    with pytest.raises(InvalidContainerError) as caught:
        sm.open_model(source)
    assert str(caught.value) == f"{source}: the ONNX weights 'weights.onnx' is empty (0 bytes)"


@pytest.mark.parametrize(
    ("key", "value"),
    [("object_diameter", -3), ("object_diameter_range", [40, 10]), ("default_scale", 2)],
)
def test_size_keys_a_package_cannot_mean_are_refused(tmp_path, key, value):
    rdf = rdf_v05(config={"scopeml": {key: value}})
    package = write_package(tmp_path / "k.zip", rdf, v05_files())
    with pytest.raises(InvalidContainerError, match=re.escape(f"config.scopeml.{key} is ")):
        sm.open_model(package)


def large_nuclei(path) -> None:
    """Nine bright disks of diameter 70 px, past ``nuclei``'s 10–40 px, so auto scales (by 1/4:
    140 px, at least the 120 px the package declares as its smallest input; scopeml pads a
    smaller one only to the graph's own step, recorded in the package, as the built-in)."""
    from scipy import ndimage

    yy, xx = np.mgrid[:560, :560]
    mask = np.zeros((560, 560), np.float32)
    for cy in (100, 280, 460):
        for cx in (100, 280, 460):
            mask[(yy - cy + cx // 20) ** 2 + (xx - cx) ** 2 < 35**2] = 1
    noise = np.random.default_rng(1).normal(0, 10, mask.shape)
    tifffile.imwrite(path, (ndimage.gaussian_filter(mask, 2) * 800 + 100 + noise).astype(np.uint16))


def test_nuclei_as_a_package_keeps_its_object_size_and_auto_scale(tmp_path, capsys):
    package = export_bioimageio("nuclei", tmp_path / "n.zip", test_size=32)
    with zipfile.ZipFile(package) as archive:
        config = yaml.safe_load(archive.read("rdf.yaml"))["config"]["scopeml"]
    assert config["object_diameter"] == 20 and config["object_diameter_range"] == [10, 40]
    assert config["default_scale"] == "auto"
    converted = read_container(import_bioimageio(package, tmp_path / "n.czann")).metadata
    shipped = read_container(sm.model.registry.resolve_model("nuclei")).metadata
    assert converted.model_extra == shipped.model_extra != {}
    image = tmp_path / "big.tif"
    large_nuclei(image)
    results = {}
    for name, model in [("builtin", "nuclei"), ("package", str(package))]:
        out = tmp_path / f"{name}.ome.zarr"
        command = ["segment", str(image), "-m", model, "-o", str(out), "--outputs", "instances"]
        assert main(command) == 0, capsys.readouterr().err
        group = zarr.open_group(str(out), mode="r")
        results[name] = (np.asarray(group["instances"]["0"]), dict(group.attrs)["scopeml"])
    (got, got_record), (want, want_record) = results["package"], results["builtin"]
    assert want_record["scale_auto"]["scale"] == 0.25  # auto chose a factor: not scale 1
    assert got_record["scale_auto"] == want_record["scale_auto"]
    assert got.max() >= 9
    np.testing.assert_array_equal(got, want)


def test_the_server_takes_a_package_upload_as_its_czann(tmp_path):
    pytest.importorskip("fastapi", reason="the server extra is not installed")
    from fastapi.testclient import TestClient

    from scopeml.server.app import create_app
    from scopeml.server.config import ServerConfig
    from scopeml.server.database import Database

    config = ServerConfig(tmp_path / "data")
    db = Database(config.db)
    headers = {"Authorization": f"Bearer {db.create_token('ada')}"}
    db.close()
    files = v05_files()
    good = write_package(tmp_path / "conv.zip", hashed_rdf(files), files)
    czann = import_bioimageio(good, tmp_path / "conv.czann")
    wrong = write_package(tmp_path / "w.zip", hashed_rdf(files, weights=WRONG), files)
    weights = {"torchscript": {"source": "weights.pt", "pytorch_version": "2.13"}}
    torchscript = write_package(
        tmp_path / "ts.zip", rdf_v05(weights=weights), {**files, "weights.pt": b"code"}
    )
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("notes.txt", "no description")

    with TestClient(create_app(config)) as client:

        def upload(path):
            return client.post(
                "/models", content=path.read_bytes(), headers=headers,
                params={"filename": path.name},
            )  # fmt: skip

        as_package, as_czann = upload(good), upload(czann)
        assert as_package.status_code == 201, as_package.text
        record = as_package.json()
        assert record["name"] == "conv.zip"
        spec, converted = record["spec"], as_czann.json()["spec"]
        assert spec["extra"].pop("model_id") != converted["extra"].pop("model_id")
        assert spec == converted  # the czann model convert writes, but for its fresh Id
        assert record["spec"]["normalize"] == "percentile:1,99"
        refusals = {path.name: upload(path) for path in (wrong, torchscript, plain)}
    for name, answer in refusals.items():
        assert answer.status_code == 422, (name, answer.text)
        detail = answer.json()["detail"]
        assert detail.startswith(f"{name}: ") and str(config.uploads_dir) not in detail, detail
    assert f"sha256 mismatch, the description declares {WRONG[:12]}" in refusals["w.zip"].text
    assert "scopeml model convert" in refusals["ts.zip"].text
    assert "not a bioimage.io model package" in refusals["plain.zip"].text
    assert list(config.uploads_dir.iterdir()) == []  # nothing left behind
    assert sorted(p.suffix for p in config.models_dir.iterdir()) == [".czann", ".czann"]


def test_a_smallest_input_over_the_tile_bound_is_refused_when_opened(tmp_path):
    """Each tile would be padded up to it: a declared ``min: 20000`` took 10 GB on a 512²
    image before; refused now, as the engine refuses a tile over its bound, before any run."""
    rdf = rdf_v05()
    for axis in rdf["inputs"][0]["axes"][2:]:
        axis["size"] = {"min": 20000, "step": 8}
    package = write_package(tmp_path / "wide.zip", rdf, v05_files())
    with pytest.raises(InvalidContainerError) as caught:
        sm.open_model(package)
    assert caught.value.problem == (
        "its smallest input is 20000×20000 pixels (y, x); a tile may hold at most 67108864 "
        "(SCOPEML_MAX_TILE_ELEMENTS)"
    )


def test_converting_a_package_applies_the_container_options_never_ignores_them(tmp_path, capsys):
    package = write_package(tmp_path / "p.zip", rdf_v05(), v05_files())
    legacy = tmp_path / "p.czmodel"
    assert main(["model", "convert", str(package), "-o", str(legacy)]) == 0
    with zipfile.ZipFile(legacy) as archive:  # a legacy container, not a czann named so
        names = archive.namelist()
    assert any(n.startswith("modelid=") for n in names) and "model.json" not in names
    assert read_container(legacy).legacy
    renamed = tmp_path / "r.czann"
    args = ["--classes", "bg,cell", "--name", "renamed", "--min-overlap", "9"]  # 2 channels out
    assert main(["model", "convert", str(package), "-o", str(renamed), *args]) == 0
    meta = read_container(renamed).metadata
    assert (meta.classes, meta.model_name, meta.min_overlap) == (("bg", "cell"), "renamed", (9, 9))
    capsys.readouterr()
    assert main(["model", "convert", str(package), "-o", str(tmp_path / "x.czann"),
                 "--preprocess", "scale"]) == 2  # fmt: skip
    assert "--preprocess applies to a graph, not to a package source" in one_error_line(capsys)
    assert main(["model", "convert", str(package), "-o", str(tmp_path / "z.czann"),
                 "--legacy"]) == 2  # fmt: skip
    assert one_error_line(capsys).endswith("z.czann: --legacy writes a .czseg/.czmodel")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.czmodel", "p.zip", "r.czann"]
    nested = tmp_path / "new folder" / "p.czseg"  # made, as for a container source
    assert main(["model", "convert", str(package), "-o", str(nested)]) == 0 and nested.is_file()


def test_one_author_given_as_a_string_is_one_author_and_bad_fields_are_refused(tmp_path):
    package = export_bioimageio("nuclei", tmp_path / "n.zip", authors="Doe, Jane", test_size=96)
    rdf = yaml.safe_load(zipfile.ZipFile(package).read("rdf.yaml"))
    assert [author["name"] for author in rdf["authors"]] == ["Doe, Jane"]
    for fields, problem in (
        ({"authors": []}, "authors are one or more names"),
        ({"authors": ["A. Smith", ""]}, "authors are one or more names"),
        ({"citation": "my paper"}, r"citation is \(text, url or doi\)"),
    ):
        with pytest.raises(sm.ScopeMLError, match=problem):
            export_bioimageio("nuclei", tmp_path / "bad.zip", **fields)
    assert not (tmp_path / "bad.zip").exists()


def test_a_regression_model_with_small_outputs_exports_with_a_tolerance_of_its_size(tmp_path):
    """bioimage.io allows a tolerance of at most 1% of the test output's largest value: the
    default 1e-3 refused a model whose outputs stay below 0.1 (x·1e-4 here)."""
    import torch

    from scopeml.model import convert_torch

    class Scale(torch.nn.Module):
        def forward(self, x):
            return x * 1e-4

    czann = convert_torch(Scale(), tmp_path / "small.czann", input_shape=(1, 64, 64),
                          model_type="Regression")  # fmt: skip
    package = export_bioimageio(czann, tmp_path / "small.zip", test_size=64)
    rdf = yaml.safe_load(zipfile.ZipFile(package).read("rdf.yaml"))
    (tolerance,) = rdf["config"]["bioimageio"]["reproducibility_tolerance"]
    peak = np.load(io.BytesIO(zipfile.ZipFile(package).read("test_output.npy"))).max()
    assert 0 < tolerance["absolute_tolerance"] <= 0.01 * peak  # the spec's rule
    np.testing.assert_allclose(
        np.asarray(sm.open_model(package).predict(np.full((1, 1, 64, 64), 50, np.float32))),
        5e-3,
        rtol=1e-5,
    )


def test_a_package_whose_halo_is_too_small_for_its_graph_is_warned_of(tmp_path, capsys):
    """A package declaring no halo around a 3×3 convolution validated, then its results
    depended on the tile size; its halo is checked against the graph as a czann's is."""
    files = v04_files()
    rdf = rdf_v04()
    rdf["outputs"][0]["halo"] = [0, 0, 0, 0]  # 0.5 asks at least 1 where it names one
    package = write_package(tmp_path / "h.zip", rdf, files)
    assert main(["model", "validate", str(package)]) == 0
    out = capsys.readouterr().out
    assert "warning: halo [0, 0]" in out and "is too small for the graph" in out, out
    assert "MinOverlap" not in out
    good = write_package(tmp_path / "good.zip", rdf_v04(), files)
    assert main(["model", "validate", str(good)]) == 0
    assert "too small" not in capsys.readouterr().out
