"""``model convert`` of a bioimage.io package runs it as ``model validate`` does (a probe tile
and the package's test input) before writing: a package whose axes disagree with its graph,
whose test input is pickled or whose test output is wrong is refused in one line, exit 2, and
nothing is written (such czanns were written, then failed or gave other values on every image).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

from scopeml.cli import main
from scopeml.errors import IncompatibleModelError, InvalidContainerError
from scopeml.model import read_container
from scopeml.model.bioimageio import import_bioimageio
from tests.model.test_bioimageio import conv_nchw_onnx, npy, rdf_v05, v05_files, write_package


def channels_last_description() -> dict:
    """:func:`rdf_v05` with its input axes described as ``batch, y, x, channel`` (the graph
    takes ``N×1×Y×X``); the test input laid out so."""
    rdf = rdf_v05()
    axes = rdf["inputs"][0]["axes"]
    rdf["inputs"][0]["axes"] = [axes[0], axes[2], axes[3], axes[1]]
    rdf["inputs"][0]["preprocessing"] = []  # per-axis statistics of the channels-first form
    return rdf


def channels_last_files(files: dict[str, bytes]) -> dict[str, bytes]:
    pixels = np.load(io.BytesIO(files["test_input.npy"]))
    return {**files, "test_input.npy": npy(np.moveaxis(pixels, 1, -1))}


def convert(tmp_path, package, capsys) -> tuple[int, str]:
    output = tmp_path / "out.czann"
    code = main(["model", "convert", str(package), "-o", str(output)])
    err = capsys.readouterr().err.strip()
    assert not output.exists()
    return code, err


def test_axes_the_fixed_graph_input_contradicts_are_refused_naming_both(tmp_path, capsys):
    files = channels_last_files(v05_files())
    package = write_package(tmp_path / "axes.zip", channels_last_description(), files)
    code, err = convert(tmp_path, package, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {package}: the description's input axes (batch, y, x, channel)")
    assert "(n×1×h×w)" in err and "at 1; the description's y takes 16 + n·8" in err
    assert main(["model", "info", str(package)]) == 2  # the import itself refuses it


def test_axes_only_a_run_contradicts_are_refused_before_writing(tmp_path, capsys):
    graph = conv_nchw_onnx()
    graph.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "c"  # nothing fixed
    files = {**channels_last_files(v05_files()), "weights.onnx": graph.SerializeToString()}
    package = write_package(tmp_path / "free.zip", channels_last_description(), files)
    code, err = convert(tmp_path, package, capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {package}: the graph failed on input (1, 32, 32, 1)")
    with pytest.raises(IncompatibleModelError) as caught:
        import_bioimageio(package, tmp_path / "lib.czann")
    assert caught.value.path == str(package) and not (tmp_path / "lib.czann").exists()


def test_a_pickled_test_input_is_refused_by_convert(tmp_path, capsys):
    files = v05_files()
    pickled = np.empty((1, 1, 48, 40), dtype=object)
    pickled[:] = 1.0
    buffer = io.BytesIO()
    np.save(buffer, pickled, allow_pickle=True)
    package = write_package(
        tmp_path / "pickle.zip", rdf_v05(), {**files, "test_input.npy": buffer.getvalue()}
    )
    code, err = convert(tmp_path, package, capsys)
    assert code == 2
    assert err == (
        f"error: {package}: the test tensor of raw holds object (1, 1, 48, 40); expected "
        "numbers in C order"
    )


def test_a_wrong_test_output_is_refused_by_convert(tmp_path, capsys):
    files = {**v05_files(), "test_output.npy": npy(np.zeros((1, 2, 48, 40), np.float32))}
    package = write_package(tmp_path / "wrong.zip", rdf_v05(), files)
    code, err = convert(tmp_path, package, capsys)
    assert code == 2
    assert err.startswith(
        f"error: {package}: the imported model does not reproduce the package's test output"
    )
    with pytest.raises(InvalidContainerError, match="does not reproduce"):
        import_bioimageio(package, tmp_path / "lib.czann")


def test_a_good_package_converts_after_the_same_runs(tmp_path, capsys):
    package = write_package(tmp_path / "good.zip", rdf_v05(), v05_files())
    output = tmp_path / "good.czann"
    assert main(["model", "convert", str(package), "-o", str(output)]) == 0
    assert read_container(output).metadata.classes == ("background", "cell")


def test_convert_takes_the_check_runs_limits_its_messages_name(tmp_path, capsys):
    """A package's check runs under the memory limit and time budget, whose refusal says
    "--memory-limit or …": convert had neither option."""
    package = write_package(tmp_path / "good.zip", rdf_v05(), v05_files())
    output = tmp_path / "good.czann"
    args = ["model", "convert", str(package), "-o", str(output)]
    assert main([*args, "--memory-limit", "1000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {package}: ") and "--memory-limit" in err, err
    assert not output.exists()
    assert main([*args, "--memory-limit", str(2**30), "--time-budget", "120"]) == 0
    assert output.is_file()
