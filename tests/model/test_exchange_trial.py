"""What a new user's trial of model exchange found: an unknown czann Type not quoted, exports
that differ by the time of writing, a graph that grew by 17 nodes per bioimage.io round trip
(its output channels made dynamic), and ``model info`` missing from ``model --help``."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest

from scopeml.cli import main
from scopeml.errors import InvalidContainerError
from scopeml.model import ModelMetadata, open_model, read_container
from scopeml.model.graph import inspect_graph
from scopeml.model.testing import tiny_czann

FIXED = (1980, 1, 1, 0, 0, 0)


def test_an_unknown_type_is_quoted_with_the_known_ones():
    """It said ``Type: Input should be 'SingleClass…' … or 'Regression'``, not what was given."""
    fields = {"Type": "InstanceSegmentation3000", "InputShape": [8, 8, 1], "OutputShape": [8, 8, 2]}
    with pytest.raises(InvalidContainerError) as caught:
        ModelMetadata.from_json_dict(fields)
    problem = caught.value.problem
    assert problem == (
        "invalid model.json: Type 'InstanceSegmentation3000' is not one of "
        "SingleClassInstanceSegmentation, MultiClassInstanceSegmentation, "
        "SingleClassSemanticSegmentation, MultiClassSemanticSegmentation, "
        "SingleClassClassification, MultiClassClassification, ObjectDetection or Regression"
    )


def test_an_unknown_type_in_a_czann_is_said_by_validate(tmp_path, capsys):
    source = tiny_czann(tmp_path / "src")
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    meta = json.loads(members["model.json"])
    members["model.json"] = json.dumps({**meta, "Type": "InstanceSegmentation3000"}).encode()
    path = tmp_path / "bad.czann"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert main(["model", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Type 'InstanceSegmentation3000' is not one of" in err, err


def test_two_exports_of_one_model_are_the_same_bytes(tmp_path):
    """``rdf.yaml`` got the time of writing (the other members 1980): no two exports agreed."""
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    from scopeml.model.bioimageio import export_bioimageio

    czann = tiny_czann(tmp_path)
    first = export_bioimageio(czann, tmp_path / "a.zip", authors="X")
    second = export_bioimageio(czann, tmp_path / "b.zip", authors="X")
    with zipfile.ZipFile(first) as archive:
        stamps = {info.filename: info.date_time for info in archive.infolist()}
    assert "rdf.yaml" in stamps and set(stamps.values()) == {FIXED}, stamps
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("suffix", [".czann", ".czseg"])
def test_converted_containers_have_fixed_timestamps(tmp_path, suffix):
    czann = tiny_czann(tmp_path)
    outputs = [tmp_path / f"{name}{suffix}" for name in ("a", "b")]
    for output in outputs:
        args = ["model", "convert", str(czann), "-o", str(output)]
        assert main(args + (["--spatial", "64x64"] if suffix == ".czseg" else [])) == 0
    with zipfile.ZipFile(outputs[0]) as archive:
        assert {info.date_time for info in archive.infolist()} == {FIXED}
    assert outputs[0].read_bytes() == outputs[1].read_bytes()


def test_a_bioimageio_round_trip_does_not_grow_the_graph(tmp_path, capsys):
    """nuclei → package → czann → package → czann: the graph grew 58 → 75 → 92 nodes and its
    output channel count became dynamic; after the first trip it stays as it is."""
    pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
    source, graphs = "nuclei", []
    for trip in (1, 2):
        package, czann = tmp_path / f"p{trip}.zip", tmp_path / f"c{trip}.czann"
        assert (
            main(["model", "export-bioimageio", source, "-o", str(package), "--author", "X"]) == 0
        )
        assert main(["model", "convert", str(package), "-o", str(czann)]) == 0
        graphs.append(onnx.load_from_string(read_container(czann).onnx_bytes))
        source = str(czann)
    capsys.readouterr()
    assert len(graphs[0].graph.node) == len(graphs[1].graph.node)
    assert [inspect_graph(graph).output_shape[-1] for graph in graphs] == [3, 3]
    batch = np.random.default_rng(0).random((1, 1, 96, 112), np.float32)
    expected = open_model("nuclei").predict(batch)
    np.testing.assert_array_equal(open_model(tmp_path / "c2.czann").predict(batch), expected)


def test_model_help_lists_info(capsys):
    assert main(["model", "--help"]) == 0
    commands = capsys.readouterr().out.split("Commands:")[1]
    assert "  info " in commands and "same as inspect" in " ".join(commands.split())


def test_a_wrapped_graph_is_not_wrapped_again():
    from scopeml.model.bioimageio.graph import PixelStep, wrap_graph
    from scopeml.model.testing import tiny_unet_onnx

    roles = {"input_roles": ["batch", "y", "x", "channel"], "spatial": ["y", "x"]}
    options = {**roles, "output_roles": roles["input_roles"], "input_sizes": [None, None],
               "channels": 1, "valid_sizes": [(16, 8), (16, 8)], "out_channels": 2}  # fmt: skip
    once = wrap_graph(tiny_unet_onnx(), **options)
    twice = wrap_graph(once, **options)
    assert len(twice.graph.node) == len(once.graph.node)
    assert twice.graph.output[0].type.tensor_type.shape.dim[-1].dim_value == 2
    scaled = wrap_graph(once, **options, pre=[PixelStep("scale", (2.0,), (0.0,))])
    assert len(scaled.graph.node) > len(once.graph.node)  # a step to add: wrapped again
