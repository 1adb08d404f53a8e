"""A command that needs an optional dependency which is not installed says which extra installs
it, in one line with exit code 2, not as an internal error (exit 1, "a bug"); a Parquet table is
refused so before any work, not when the run writes it at its end."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import tifffile

from scopeml.cli import main
from scopeml.extras import extra_for

#: Runs the command line with the imports of the named top-level modules failing.
BLOCKED = textwrap.dedent(
    """
    import importlib.abc, sys
    blocked = set(sys.argv[1].split(","))
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
    from scopeml.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def test_every_extra_is_found_by_its_modules_import_name():
    assert {m: extra_for(m) for m in ("fastapi", "multipart", "torch", "distributed", "pyarrow",
                                      "pylibCZIrw", "bioimageio.spec", "napari")} == {
        "fastapi": "server", "multipart": "server", "torch": "train", "distributed": "dask",
        "pyarrow": "parquet", "pylibCZIrw": "czi", "bioimageio.spec": "bioimageio",
        "napari": "napari",
    }  # fmt: skip
    assert extra_for("numpy") is None and extra_for(None) is None


def test_a_missing_extra_is_one_line_naming_the_install(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((32, 32), np.float32))
    np.save(tmp_path / "y.npy", np.zeros((32, 32), np.uint8))
    args = ["train", "unet", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-o",
            str(tmp_path / "u.czann")]  # fmt: skip
    run = subprocess.run([sys.executable, "-c", BLOCKED, "torch", *args],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines()[-1] == (
        "error: torch is not installed; this needs the train extra: pip install 'scopeml[train]'"
    )


def test_a_parquet_table_without_pyarrow_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))  # fmt: skip
    tifffile.imwrite(tmp_path / "im.tif", np.zeros((64, 64), np.uint16))
    args = ["segment", str(tmp_path / "im.tif"), "-m", "nuclei", "-o", str(tmp_path / "s.ome.zarr"),
            "--measure", str(tmp_path / "t.parquet")]  # fmt: skip
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 't.parquet'}: a Parquet table needs pyarrow, which is "
        "not installed: pip install 'scopeml[parquet]'"
    )
    assert not (tmp_path / "s.ome.zarr").exists()
