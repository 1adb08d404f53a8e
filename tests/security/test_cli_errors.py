"""The command line's errors a person can read (issue 18, low): input failures are one line
naming the file (exit 2), bugs are one line with the path of a log holding the traceback
(exit 1), nothing floods the terminal."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from scopeml.cli import main
from tests.tiling.engine_doubles import write_image_file, write_model_file


@pytest.fixture
def files(tmp_path):
    image = write_image_file(tmp_path / "img.ome.tif", np.zeros((1, 32, 32), np.uint16))
    return image, write_model_file(tmp_path / "m.czann", in_channels=1, n_classes=2)


def segment_args(files, tmp_path, *extra):
    image, model = files
    return ["segment", str(image), "-m", str(model), "-o", str(tmp_path / "o.ome.zarr"), "-q",
            *extra]  # fmt: skip


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing.tif", "no such file"),
        (lambda d: (d / "junk.tif").write_bytes(b"II*\0junk") and d / "junk.tif", ""),
        (lambda d: (d / "junk.ome.zarr").mkdir() or d / "junk.ome.zarr", ""),
    ],
)
def test_a_bad_image_is_one_line_naming_it(files, tmp_path, capsys, make, problem):
    _, model = files
    bad = make(tmp_path)
    code = main(["segment", str(bad), "-m", str(model), "-o", str(tmp_path / "o.ome.zarr")])
    line = one_line(capsys)
    assert code == 2 and line.startswith(f"error: {bad}: ") and problem in line.lower()


def test_a_bad_model_is_one_line_naming_it(files, tmp_path, capsys):
    image, _ = files
    model = tmp_path / "bad.czann"
    model.write_bytes(b"PK\x03\x04 not really a zip")
    code = main(["segment", str(image), "-m", str(model), "-o", str(tmp_path / "o.ome.zarr")])
    assert code == 2 and one_line(capsys).startswith(f"error: {model}: ")


def test_a_message_that_names_no_file_gets_the_input(files, tmp_path, capsys):
    assert main(segment_args(files, tmp_path, "--tile-size", "0")) == 2
    assert one_line(capsys) == f"error: {files[0]}: tile_size must be positive; got 0"


def test_a_long_list_in_a_message_is_summarised(files, tmp_path, capsys):
    names = ",".join(f"out{k}" for k in range(3000))
    assert main(segment_args(files, tmp_path, "--outputs", names)) == 2
    line = one_line(capsys)
    assert "'out0', 'out1', 'out2', 'out3', 'out4', … (3000 in all)" in line and len(line) < 400


def test_running_out_of_memory_on_an_input_is_exit_2_naming_it(
    files, tmp_path, capsys, monkeypatch
):
    from scopeml.tiling import engine

    def huge(*args, **kwargs):  # what a reader does with a file declaring 10^12 × 10^12 pixels
        return np.empty((10**6, 10**6, 10**6), np.uint8)

    monkeypatch.setattr(engine, "compute_normalization", huge)
    assert main(segment_args(files, tmp_path)) == 2
    line = one_line(capsys)
    assert line.startswith(f"error: {files[0]}: not enough memory")


def test_an_internal_error_is_exit_1_with_a_log_of_the_traceback(
    files, tmp_path, capsys, monkeypatch
):
    from scopeml.tiling import kernel

    def broken(*args, **kwargs):  # a bug deep in the engine
        return {}["no such key"]

    monkeypatch.setattr(kernel, "run_model", broken)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert main(segment_args(files, tmp_path)) == 1
    line = one_line(capsys)
    found = re.fullmatch(
        r"error: internal error, KeyError: 'no such key' \(traceback in (.+)\)", line
    )
    assert found, line
    log = found.group(1)
    assert log.startswith(str(tmp_path / "home" / ".cache" / "scopeml" / "logs"))
    text = Path(log).read_text()
    assert "Traceback" in text and "in broken" in text and "segment" in text.splitlines()[0]


def test_a_second_run_on_a_locked_output_is_one_line(files, tmp_path, capsys):
    from scopeml.tiling.store import _LOCK, _lock, partial_path

    out = tmp_path / "o.ome.zarr"
    assert main(segment_args(files, tmp_path, "--tile-size", "16")) == 0
    out.rename(partial_path(out))  # a run's store, as if another process were writing it
    handle = _lock(partial_path(out) / _LOCK)
    try:
        assert main(segment_args(files, tmp_path, "--resume")) == 2
        assert one_line(capsys).startswith(
            f"error: {partial_path(out)}: another scopeml run is writing this output"
        )
    finally:
        import os

        os.close(handle)
    assert main(segment_args(files, tmp_path, "--overwrite")) == 0
