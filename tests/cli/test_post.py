"""``scopeml post``: steps from the command line, tiled, OME-Zarr out; bad input in one line."""

from __future__ import annotations

import numpy as np

from scopeml.cli import main
from scopeml.io import open_image
from scopeml.io.omezarr import create_ome_zarr
from scopeml.post import PostStep, apply_steps
from tests.post.test_tiled import blobs


def test_post_from_the_command_line(tmp_path, capsys) -> None:
    labels = blobs((60, 70))
    source = tmp_path / "seg.ome.zarr" / "labels"
    array = create_ome_zarr(source, shape=labels.shape, dtype="uint8", axes="YX",
                            chunks=(32, 32), pixel_sizes={"Y": 0.3, "X": 0.3})  # fmt: skip
    array[:] = labels
    out = tmp_path / "post.ome.zarr"
    args = ["post", str(source), "-o", str(out), "--tile-size", "16"]
    steps = ["fill_holes:12", "remove_small:6", "opening:1", "closing:2"]
    assert main([*args, *(f"--step={s}" for s in steps)]) == 0
    printed, err = capsys.readouterr()
    expected = apply_steps(labels, [PostStep.parse(s) for s in steps])
    changed = int((expected != labels).sum())
    assert printed.startswith(f"labels → {out}; fill_holes:12, remove_small:6, opening:1, ")
    assert f": {changed:,} pixels changed (0 is the background); " in printed
    assert printed.count("\n") == 1 and "post:" in err
    with open_image(out / "labels") as result:  # named as the input's output
        np.testing.assert_array_equal(result.read()[0, 0, 0, 0], expected)
        assert result.pixel_sizes == {"Y": 0.3, "X": 0.3}
    assert main([*args, "--step", "opening"]) == 2  # exists, no --overwrite
    assert "post.ome.zarr: output exists" in capsys.readouterr().err


def test_bad_step_is_one_line(tmp_path, capsys) -> None:
    source = tmp_path / "l.ome.zarr"
    create_ome_zarr(source, shape=(8, 8), dtype="uint8", axes="YX", chunks=(8, 8))
    assert main(["post", str(source), "-o", str(tmp_path / "o.ome.zarr"), "-s", "grow:3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown post-processing step 'grow'" in err and "opening" in err


def test_a_tile_size_below_one_is_one_clear_line(tmp_path, capsys) -> None:
    source = tmp_path / "l.ome.zarr"
    create_ome_zarr(source, shape=(8, 8), dtype="uint8", axes="YX", chunks=(8, 8))
    out = tmp_path / "o.ome.zarr"
    assert main(["post", str(source), "-o", str(out), "-s", "closing", "--tile-size", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tile_size must be positive; got 0" in err, err
    assert not out.exists()
