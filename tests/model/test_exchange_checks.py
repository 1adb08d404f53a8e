"""What a new user's trial of model exchange found: a halo too small for the graph, legacy
files czmodel cannot read, ``convert -o x.onnx`` / ``x.zip``, a fixed batch, an absurd
InputShape and an RGB legacy XML on a 1-channel graph."""

from __future__ import annotations

import json

import pytest

from scopeml.cli import main
from scopeml.errors import IncompatibleModelError
from scopeml.model import LegacyModelMetadata, convert_onnx, read_container, write_container
from scopeml.model.probe import check_halo
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from tests.model.model_builders import unet_metadata, write_czann


def fixed_batch_unet(batch: int, in_channels: int = 2):
    """The tiny U-Net at 64², its batch fixed as a .pt2 exported without dynamic shapes."""
    graph = tiny_unet_onnx(in_channels=in_channels, tile_shape=(64, 64))
    for value in (graph.graph.input[0], graph.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = batch
    return graph


def test_validate_warns_of_a_min_overlap_too_small_for_the_graph(tmp_path, capsys):
    """MinOverlap 2 on a graph that reaches 24 px validated; segment then showed seams."""
    small = write_czann(tmp_path, "small.czann", min_overlap=(2, 2))
    assert main(["model", "validate", str(small)]) == 0
    out = capsys.readouterr().out
    assert "warning: MinOverlap [2, 2] ([4, 4] at the tile step) is too small for the graph" in out
    needed = unet_receptive_halo(2)
    assert f"a MinOverlap of [{needed}, {needed}] gives the same core" in out
    assert "valid czann" in out
    assert check_halo(write_czann(tmp_path), time_budget=30) is None  # MinOverlap 24: enough


def test_a_legacy_file_czmodel_cannot_read_is_warned_of(tmp_path):
    """czmodel's reader takes one Channels item: a 2-channel legacy file failed in it with a
    TypeError, whatever the XML (czmodel writes the same XML for several channels)."""
    pytest.importorskip("czmodel", reason="czmodel is not installed")
    from czmodel.core.util._extract_model import extract_czseg_model

    two = tmp_path / "seg2ch.czseg"
    with pytest.warns(UserWarning, match=r"czmodel \(6.2\) cannot read .* of 2 input channels"):
        convert_onnx(tiny_unet_onnx(in_channels=2), two, classes=["a", "b"], min_overlap=8,
                     spatial=(64, 64), legacy=True)  # fmt: skip
    with pytest.raises(TypeError, match="list indices must be integers"):
        extract_czseg_model(str(two), tmp_path / "two")
    one = convert_onnx(tiny_unet_onnx(), tmp_path / "one.czseg", classes=["a", "b"],
                       min_overlap=8, spatial=(64, 64), legacy=True)  # fmt: skip
    assert extract_czseg_model(str(one), tmp_path / "one")[0].pixel_types == ["Gray32Float"]


def test_convert_to_onnx_writes_the_stored_graph_and_a_zip_names_export(czann, tmp_path, capsys):
    graph = tmp_path / "unet.onnx"
    assert main(["model", "convert", str(czann), "-o", str(graph)]) == 0
    out = capsys.readouterr().out
    assert "channels-last" in out and "N×?×?×1" in out
    assert graph.read_bytes() == read_container(czann).onnx_bytes
    assert main(["model", "convert", str(czann), "-o", str(tmp_path / "x.zip")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'x.zip'}: bioimage.io packages are written by scopeml model "
        "export-bioimageio\n"
    )
    assert main(["model", "convert", str(graph), "-o", str(tmp_path / "y.onnx")]) == 2
    assert "convert this source to a .czann first" in capsys.readouterr().err


def test_a_fixed_batch_is_shown_and_exported_as_fixed(tmp_path, capsys):
    """inspect said N for a batch fixed at 1; the package declared a free batch, which
    bioimageio.core's test ran at 2 ("Got: 2 Expected: 1")."""
    meta = unet_metadata(in_channels=2)
    path = write_container(tmp_path / "b1.czann", fixed_batch_unet(1), meta)
    assert main(["model", "inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["graph"]["input_shape"] == [1, 64, 64, 2]
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    import zipfile

    import yaml

    from scopeml.model.bioimageio import export_bioimageio

    package = export_bioimageio(path, tmp_path / "b1.zip")
    with zipfile.ZipFile(package) as members:
        rdf = yaml.safe_load(members.read("rdf.yaml"))
    batch = [axis for axis in rdf["inputs"][0]["axes"] if axis["type"] == "batch"]
    assert batch and batch[0].get("size") == 1  # declared fixed, not free
    four = write_container(tmp_path / "b4.czann", fixed_batch_unet(4), meta)
    with pytest.raises(IncompatibleModelError, match="the graph's batch is fixed at 4"):
        export_bioimageio(four, tmp_path / "b4.zip")
    core = pytest.importorskip("bioimageio.core", reason="bioimageio.core is installed apart")
    summary = core.test_model(package)  # it ran the package at batch 2
    assert summary.status == "passed", [e.msg for d in summary.details for e in d.errors]


def test_an_input_shape_beyond_the_engine_is_warned_of_and_not_made_legacy(tmp_path, capsys):
    huge = convert_onnx(tiny_unet_onnx(), tmp_path / "huge.czann", classes=["a", "b"],
                        min_overlap=24, tile_shape=(100000, 100000))  # fmt: skip
    assert main(["model", "validate", str(huge)]) == 0
    assert "warning: InputShape [100000, 100000, 1]: its 100000×100000 tile" in (
        capsys.readouterr().out
    )
    legacy = tmp_path / "huge.czseg"
    assert main(["model", "convert", str(huge), "-o", str(legacy)]) == 2
    assert "a legacy container fixes the input at 100000×100000" in capsys.readouterr().err
    assert not legacy.exists()


def test_an_rgb_legacy_xml_on_a_one_channel_graph_is_refused(tmp_path, capsys):
    """Bgr24 split into 3 channels passed silently on a graph that takes 1 (then a warning;
    a model that cannot run as its XML says is an error, as a czann's channels are)."""
    rgb = LegacyModelMetadata(name="rgb", classes=("bg", "fg"), border_size=8,
                              pixel_types=("Bgr24",), color_handling="SplitRgb")  # fmt: skip
    path = write_container(tmp_path / "rgb.czseg", tiny_unet_onnx(tile_shape=(64, 64)), rgb,
                           legacy=True)  # fmt: skip
    assert main(["model", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and "the graph takes 1" in err, err
