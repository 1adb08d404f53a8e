"""An operating-system error names the file the user named: a full disk the output (it
named the input image), a temporary file its final name (``ro/.t.csv.f109eded3d2a.tmp``),
and a table whose folder cannot be made is refused before the model runs."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import tifffile

import scopeml.api
from scopeml.cli import main


def test_a_full_disk_names_the_output_and_a_temporary_file_its_final_name(
    tmp_path, capsys, monkeypatch
):
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.zeros((32, 32), np.uint16))
    out = tmp_path / "out.ome.zarr"
    errors = iter([
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".t.csv.f109eded3d2a.tmp")),
    ])  # fmt: skip

    def fail(*args, **kwargs):
        raise next(errors)

    monkeypatch.setattr(scopeml.api, "segment", fail)
    assert main(["segment", str(image), "-m", "nuclei", "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out}: No space left on device\n"
    assert main(["segment", str(image), "-m", "nuclei", f"--output={out}"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 't.csv'}: Read-only file system\n"


def test_a_table_under_a_file_is_refused_before_the_model_runs(tmp_path, capsys):
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.zeros((32, 32), np.uint16))
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "out.ome.zarr"
    table = tmp_path / "afile" / "t.csv"
    assert main(["segment", str(image), "-m", "nuclei", "-o", str(out), "--outputs",
                 "labels,instances", "--measure", str(table)]) == 2  # fmt: skip
    assert capsys.readouterr().err == f"error: {table.parent}: is a file where a folder is needed\n"
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))  # nothing run, nothing left


@pytest.mark.parametrize(
    ("written", "named"),
    [
        ("ro/.t.csv.f109eded3d2a.tmp", "ro/t.csv"),  # io.replace.create_temporary
        ("ro/.out.ome.zarr.partial.ken0zg0r", "ro/out.ome.zarr"),  # the engine's
        ("/d/.o.ome.zarr.1a2b3c4d.partial.zarr", "/d/o.ome.zarr"),  # objects' write_label_image
        ("/d/.results.1a2b3c4d.partial", "/d/results"),  # an analysis
        ("/d/out.ome.zarr.partial/labels/0/c/0", "/d/out.ome.zarr.partial/labels/0/c/0"),
    ],
)
def test_a_temporary_name_is_shown_as_the_name_it_becomes(written, named):
    from scopeml.cli import _os_error_place

    assert _os_error_place(OSError(errno.EROFS, "Read-only file system", written), []) == named
