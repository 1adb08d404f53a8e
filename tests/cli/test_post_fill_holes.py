"""``scopeml post --step fill_holes`` fills holes of any size, out of core, as scipy does on the
whole image (through the analysis runner's tiled pass, ``fill_holes_tiled``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from scopeml.cli import main
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.io.omezarr import create_ome_zarr
from scopeml.post import PostStep, apply_steps, post_process_file
from tests.post.test_tiled import blobs


def ring_image(shape: tuple[int, int] = (150, 170)) -> np.ndarray:
    """One class: a ring around a hole far wider than the tiles, a hole open to the border (not
    a hole), and a small hole; plus a second class inside the big hole."""
    labels = np.zeros(shape, np.uint8)
    labels[8:140, 10:160] = 1
    labels[20:128, 22:148] = 0  # the big hole: 108 × 126 pixels
    labels[60:70, 0:10] = 1  # a bay open to the left border ...
    labels[50:80, 2:8] = 1
    labels[55:75, 2:8] = 0  # ... inside a C that touches the border: not a hole
    labels[130, 50] = 0  # a one-pixel hole in the ring
    labels[60:80, 60:90] = 2  # an object of another class inside the hole
    return labels


def write_labels(path, labels: np.ndarray):
    axes = "ZYX"[-labels.ndim :]
    array = create_ome_zarr(path, shape=labels.shape, dtype=labels.dtype.name, axes=axes,
                            chunks=(32,) * labels.ndim)  # fmt: skip
    array[:] = labels
    return path


def test_post_fills_a_hole_of_any_size_as_scipy_does(tmp_path, capsys):
    labels = ring_image()
    mask = labels == 1
    hole = ndi.binary_fill_holes(mask) & ~mask
    assert hole.sum() > 10_000 and not hole[55:75, 2:8].any()  # big; the bay is no hole
    source = write_labels(tmp_path / "ring.ome.zarr", (labels == 1).astype(np.uint8))
    out = tmp_path / "filled.ome.zarr"
    args = ["post", str(source), "-o", str(out), "--tile-size", "32", "-q"]
    assert main([*args, "--step", "fill_holes"]) == 0, capsys.readouterr().err
    with open_image(out / "labels") as result:
        got = result.read()[0, 0, 0, 0]
    np.testing.assert_array_equal(got, ndi.binary_fill_holes(mask).astype(np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filled.ome.zarr", "ring.ome.zarr"]

    bounded = tmp_path / "bounded.ome.zarr"  # a size bound keeps the big hole open
    assert main([*args[:3], str(bounded), *args[4:], "--step", "fill_holes:1024"]) == 0
    with open_image(bounded / "labels") as result:
        kept = result.read()[0, 0, 0, 0]
    assert not kept[hole & (np.arange(labels.shape[0])[:, None] < 100)].any()
    assert kept[130, 50] == 1


def test_classes_and_steps_around_an_unbounded_fill_equal_the_whole_image(tmp_path):
    labels = ring_image()
    steps = [PostStep.parse(s) for s in ("opening:1", "fill_holes", "remove_small:30")]
    source = write_labels(tmp_path / "l.ome.zarr", labels)
    out = post_process_file(source, tmp_path / "o.ome.zarr", steps, tile_size=32)
    with open_image(out) as result:
        got = result.read()[0, 0, 0, 0]
    expected = apply_steps(labels, steps)  # in memory, ndi.binary_fill_holes per class
    np.testing.assert_array_equal(got, expected)
    assert not (expected[labels == 2] == 1).any()  # a filled class takes no other's pixels
    assert (expected == 1).sum() > (labels == 1).sum() + 10_000


@pytest.mark.parametrize("shape", [(9, 40, 37), (70, 83)])
def test_random_blobs_in_2d_and_3d(tmp_path, shape):
    labels = blobs(shape, seed=3)
    steps = [PostStep.parse(s) for s in ("closing:1", "fill_holes", "opening:1", "fill_holes")]
    image = Image(labels.reshape((1, 1, 1) + (1,) * (3 - labels.ndim) + shape))
    out = post_process_file(image, tmp_path / "o.ome.zarr", steps, tile_size=16)
    with open_image(out) as result:
        got = result.read().reshape(shape)
    np.testing.assert_array_equal(got, apply_steps(labels, steps))
    assert (got != labels).any()


def test_instance_labels_are_refused_for_an_unbounded_fill_in_one_line(tmp_path, capsys):
    instances = np.zeros((60, 60), np.uint16)
    instances[1::4, 1::4] = np.arange(1, 226).reshape(15, 15)  # 225 objects, one id each
    source = write_labels(tmp_path / "instances.ome.zarr", instances)
    out = tmp_path / "o.ome.zarr"
    assert main(["post", str(source), "-o", str(out), "--step", "fill_holes", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {source}: more than 64 label values")
    assert "fill_holes:MAX_PIXELS" in err and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instances.ome.zarr"]  # no scratch
    assert main(["post", str(source), "-o", str(out), "--step", "fill_holes:100", "-q"]) == 0
