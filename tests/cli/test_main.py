"""``scopeml.cli.main``: bad input ends in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import onnx
import pytest

from scopeml.cli import main
from scopeml.model.testing import tiny_unet_onnx


def test_an_operating_system_error_is_one_line_and_exit_code_2(tmp_path, capsys):
    graph = tmp_path / "unet.onnx"
    onnx.save(tiny_unet_onnx(in_channels=1, n_classes=2), graph)
    blocker = tmp_path / "plain-file"
    blocker.write_text("")
    output = blocker / "model.czann"  # its parent is a file: mkdir fails (FileExistsError)
    assert main(["model", "convert", str(graph), "-o", str(output), "--classes", "a,b"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {blocker}: is a file where a folder is needed\n"  # before any work
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["segment", "img.tif"], "Missing option '--model'"),
        (["segment", "--bogus"], "No such option: --bogus"),
        (["no-such-command"], "No such command"),
        (["serve", "--port", "99999"], "Invalid value for '--port'"),
        (["segment", "i.tif", "-m", "m.czann", "-o", "o", "--batch-size", "x"], "--batch-size"),
    ],
)
def test_usage_errors_exit_2_with_usage_text_not_a_traceback(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Usage: scopeml" in err and message in err and "Traceback" not in err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert main(["model", "--help"]) == 0
    assert "Usage: scopeml" in capsys.readouterr().out


def test_a_warning_is_one_line(tmp_path, capsys):
    import numpy as np

    from tests.tiling.engine_doubles import write_image_file, write_model_file

    image = write_image_file(tmp_path / "img.ome.tif", np.zeros((1, 32, 32), np.uint16))
    model = write_model_file(tmp_path / "m.czann", in_channels=1, n_classes=2)
    args = ["segment", str(image), "-m", str(model), "-o", str(tmp_path / "o.ome.zarr")]
    assert main([*args, "--halo", "0", "-q"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "halo" in line]
    assert lines == [
        "warning: halo (0, 0) is below the model's need (24, 24): tile borders will differ "
        "from a whole-image run"
    ]


def test_the_command_line_needs_only_the_core_dependencies():
    # typer >= 0.24 vendors click and does not install it: importing click would break a core
    # install (found by running the README's demo command on a fresh machine)
    import subprocess
    import sys

    code = "import sys, scopeml.cli; sys.exit('click' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_python_dash_m_scopeml_is_the_command(tmp_path):
    """Where the ``scopeml`` script is not on PATH, ``python -m scopeml`` runs the same CLI,
    exit codes included."""
    import subprocess
    import sys

    listing = subprocess.run(
        [sys.executable, "-m", "scopeml", "model", "list"], capture_output=True, text=True
    )
    assert listing.returncode == 0 and "nuclei" in listing.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "scopeml", "model", "inspect", str(tmp_path / "none.czann")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")


def test_a_warning_is_printed_once_per_command(tmp_path, capsys):
    """``analyze --pixel-size 0.65,6.5`` printed its "mistyped point?" warning three times:
    read by the option, by the settings and for the image."""
    import numpy as np
    import tifffile

    image = np.zeros((64, 64), np.uint16)
    image[20:40, 20:40] = 900
    tifffile.imwrite(tmp_path / "a.tif", image)
    (tmp_path / "s.yaml").write_text(
        "version: 1\nchannels: [C0]\nclasses:\n  - name: blob\n"
        "    segmenter: {kind: threshold, channel: C0, method: otsu}\n"
    )
    args = ["analyze", str(tmp_path / "s.yaml"), str(tmp_path / "a.tif")]
    assert main([*args, "-o", str(tmp_path / "r"), "--pixel-size", "0.65,6.5", "-q"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "times longer" in line]
    assert lines == [
        "warning: pixel size Y 0.65 µm, X 6.5 µm: pixels 10 times longer than wide; "
        "microscopes write square pixels (a mistyped point?)"
    ]


def test_a_loop_of_symbolic_links_is_one_line_and_exit_code_2(tmp_path, capsys):
    """``Path.resolve`` raises RuntimeError for a loop (before Python 3.13): an internal error."""
    (tmp_path / "a.tif").symlink_to(tmp_path / "b.tif")
    (tmp_path / "b.tif").symlink_to(tmp_path / "a.tif")
    for args in (["segment", str(tmp_path / "a.tif"), "-m", "nuclei", "-o", str(tmp_path / "o")],
                 ["pixel", "train", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o",
                  str(tmp_path / "c.czseg")]):  # fmt: skip
        assert main(args) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("error: ") and "internal error" not in line, line
        assert "a.tif" in line or "b.tif" in line


def test_a_dangling_link_is_named_with_its_missing_target(tmp_path, capsys):
    """It was "no such file or folder", or, from segment, only the target's path."""
    link = tmp_path / "a.tif"
    link.symlink_to(tmp_path / "gone" / "b.tif")
    table = str(tmp_path / "m.csv")
    for args in (["segment", str(link), "-m", "nuclei", "-o", str(tmp_path / "o.ome.zarr")],
                 ["info", str(link)], ["objects", "measure", str(link), "-o", table]):  # fmt: skip
        assert main(args) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line == f"error: {link}: a symbolic link to {tmp_path / 'gone' / 'b.tif'}, which " \
            "does not exist", line  # fmt: skip
