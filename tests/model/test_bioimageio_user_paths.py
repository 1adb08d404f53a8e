"""bioimage.io in and out as a user expects (t2 finding 7): a built-in model's name exports;
a package given where a model is run runs (imported in memory); importing or exporting never
replaces an existing file without ``overwrite``/``--overwrite``."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.model import read_container
from scopeml.model.bioimageio import export_bioimageio, import_bioimageio, open_package
from scopeml.model.registry import BUILTIN_MODELS
from tests.model.test_bioimageio import rdf_v05, v05_files, write_package

REFUSAL = "output exists; pass --overwrite (overwrite=True) to replace it"


@pytest.fixture(scope="module")
def nuclei_package(tmp_path_factory) -> object:
    """The built-in nuclei model exported by its name (small test tensors)."""
    out = tmp_path_factory.mktemp("export") / "nuclei.zip"
    return export_bioimageio("nuclei", out, test_size=32)


def test_a_built_in_name_exports(nuclei_package):
    package = open_package(nuclei_package)
    try:
        weights = package.read(package.description.weights.onnx.source, "weights")
        names = [str(t.id) for t in package.description.outputs]
    finally:
        package.close()
    shipped = read_container(BUILTIN_MODELS["nuclei"].path)
    assert weights == shipped.onnx_bytes  # the shipped graph as is
    assert len(names) == 1


def test_the_export_command_takes_a_built_in_name(tmp_path, capsys):
    out = tmp_path / "n.zip"
    assert main(["model", "export-bioimageio", "nuclei", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and out.stat().st_size > 100_000


def test_export_refuses_an_existing_file_before_any_work(nuclei_package, tmp_path, capsys):
    mine = tmp_path / "mine.zip"
    mine.write_bytes(b"my own")
    with pytest.raises(InvalidRequestError, match="pass --overwrite") as err:
        export_bioimageio("nuclei", mine)
    assert err.value.path == str(mine) and mine.read_bytes() == b"my own"
    assert main(["model", "export-bioimageio", "nuclei", "-o", str(mine)]) == 2
    assert REFUSAL in capsys.readouterr().err and mine.read_bytes() == b"my own"
    opened = sm.open_model("nuclei")  # an opened model exports the file it was read from
    assert export_bioimageio(opened, mine, test_size=32, overwrite=True) == mine
    assert open_package(mine).description.name == open_package(nuclei_package).description.name


def test_import_refuses_an_existing_output_unless_overwrite(tmp_path, capsys):
    package = write_package(tmp_path / "conv.zip", rdf_v05(), v05_files())
    mine = tmp_path / "mine.czann"
    mine.write_bytes(b"my own")
    with pytest.raises(InvalidRequestError) as err:
        import_bioimageio(package, mine)
    assert err.value.path == str(mine) and REFUSAL in str(err.value)
    assert mine.read_bytes() == b"my own"
    assert main(["model", "convert", str(package), "-o", str(mine)]) == 2
    assert REFUSAL in capsys.readouterr().err and mine.read_bytes() == b"my own"
    with pytest.raises(InvalidRequestError, match="would replace the input"):
        import_bioimageio(package, package, overwrite=True)
    import_bioimageio(package, mine, overwrite=True)
    assert read_container(mine).metadata.classes == ("background", "cell")
    assert main(["model", "convert", str(package), "-o", str(mine), "--overwrite"]) == 0


@pytest.mark.parametrize("which", ["zip", "folder", "rdf.yaml"])
def test_a_package_given_where_a_model_is_run_runs(tmp_path, capsys, which):
    package = write_package(tmp_path / "conv.zip", rdf_v05(), v05_files())
    if which != "zip":
        import zipfile

        with zipfile.ZipFile(package) as archive:
            archive.extractall(tmp_path / "conv")
        package = tmp_path / "conv" if which == "folder" else tmp_path / "conv" / "rdf.yaml"
    assert sm.open_model(package).spec.classes == ("background", "cell")
    pixels = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    seg = sm.segment(pixels, package, tmp_path / "o.ome.zarr")
    assert seg.labels.read().shape[-2:] == (32, 32)
    tifffile.imwrite(tmp_path / "image.tif", (pixels * 1000).astype(np.uint16))
    out = tmp_path / "cli.ome.zarr"
    assert main(["segment", str(tmp_path / "image.tif"), "-m", str(package), "-o", str(out)]) == 0
    assert out.is_dir(), capsys.readouterr().err
