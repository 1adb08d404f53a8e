"""An operating-system error names the file the user named: a full disk the output (it
named the input image), a temporary file its final name (``ro/.t.csv.f109eded3d2a.tmp``),
and a table whose folder cannot be made is refused before the model runs."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import tifffile

import scopeml.api
from scopeml.cli import main
from tests.tiling.engine_doubles import write_model_file


def test_a_full_disk_names_the_output_and_a_temporary_file_its_final_name(
    tmp_path, capsys, monkeypatch
):
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.zeros((32, 32), np.uint16))
    out = tmp_path / "out.ome.zarr"
    errors = iter([
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".t.csv.f109eded3d2a.tmp")),
        OSError(errno.EFBIG, "File too large"),  # a file-size limit (ulimit -f, FAT32's 4 GB)
    ])  # fmt: skip

    def fail(*args, **kwargs):
        raise next(errors)

    monkeypatch.setattr(scopeml.api, "segment", fail)
    assert main(["segment", str(image), "-m", "nuclei", "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out}: No space left on device\n"
    assert main(["segment", str(image), "-m", "nuclei", f"--output={out}"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 't.csv'}: Read-only file system\n"
    assert main(["segment", str(image), "-m", "nuclei", "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out}: File too large\n"  # it named the image


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


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_no_file_can_be_made_in_is_named_in_python_too(tmp_path):
    """``segment`` from Python (napari's Apply) said ``/proc/.o.ome.zarr.partial.….tmp: no
    such file or folder``, a name the user never gave; the folder is named instead."""
    from scopeml.errors import InvalidRequestError

    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.zeros((32, 32), np.uint16))
    model = tmp_path / "m.czann"
    write_model_file(model, depth=1)
    with pytest.raises(InvalidRequestError, match=r"^/proc: cannot make a file in this folder"):
        scopeml.api.segment(image, model, "/proc/o.ome.zarr")


def test_an_output_with_a_long_name_is_written(tmp_path):
    """A name of 249 characters is a file's; its temporary name (``.NAME.HEX.tmp``) went over
    255 and the write was refused, blaming the folder."""
    from scopeml.objects.table import write_table

    out = tmp_path / f"{'a' * 245}.csv"
    import pandas as pd

    write_table(pd.DataFrame({"label": [1, 2]}), out)
    assert pd.read_csv(out)["label"].tolist() == [1, 2]
