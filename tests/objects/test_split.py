"""``objects label --split``: touching objects split by a distance watershed, each object on
its own, so tiled equals whole-image (ids too); the pieces equal scikit-image-based
``split_touching`` on the whole mask, and the size and border rules judge the pieces."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage.segmentation import clear_border

import scopeml as sm
from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image
from scopeml.objects import split as split_module
from scopeml.objects.images import label_image
from scopeml.objects.split import Split
from scopeml.post.morphology import split_touching
from scopeml.synthetic import synthetic_nuclei


def clumps(shape=(260, 280), seed=3) -> np.ndarray:
    _, truth = synthetic_nuclei(shape, density=0.004, radius=(5, 12), cluster_fraction=0.6,
                                seed=seed)  # fmt: skip
    return (truth > 0).astype(np.uint8)


def label(mask: np.ndarray, path, **options) -> np.ndarray:
    image = Image(mask.reshape((1, 1, 1) + (mask.shape if mask.ndim == 3 else (1, *mask.shape))))
    out = label_image(image, path, **options).read()[0, 0, 0]
    return out if mask.ndim == 3 else out[0]


def each_object_split(mask: np.ndarray, **options) -> np.ndarray:
    """The reference: every connected component split on its own by ``split_touching`` in
    its bounding box grown by one pixel, pieces numbered by their first pixels."""
    from scipy import ndimage as ndi

    components, _ = ndi.label(mask > 0)
    out, count = np.zeros(mask.shape, np.int64), 0
    for value, box in enumerate(ndi.find_objects(components), start=1):
        grown = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        alone = components[grown] == value
        pieces = split_touching(alone, **options)
        out[grown][alone] = pieces[alone] + count
        count += int(pieces.max())
    return in_raster_order(out)


def in_raster_order(pieces: np.ndarray) -> np.ndarray:
    """Renumber labels 1..n by their first pixels, as ``ndi.label`` numbers objects."""
    values, first = np.unique(pieces.ravel(), return_index=True)
    order = values[values > 0][np.argsort(first[values > 0])]
    lookup = np.zeros(pieces.max() + 1, np.int64)
    lookup[order] = np.arange(1, order.size + 1)
    return lookup[pieces]


def test_tiled_split_equals_each_object_split_alone(tmp_path):
    mask = clumps()
    expected = each_object_split(mask)
    n_components = int(sm.label_objects(mask, tmp_path / "c.ome.zarr").read().max())
    assert expected.max() > n_components + 20  # clumps were split
    for tiles in ((23, 31), 512):
        got = label(mask, tmp_path / f"{tiles}.ome.zarr", split=Split(), tile_size=tiles)
        np.testing.assert_array_equal(got, expected)  # ids too, however it is tiled
    whole = in_raster_order(split_touching(mask > 0))  # all objects at once: the same pieces,
    assert whole.max() == expected.max()  # up to the watershed's ties between equal heights
    assert np.mean(whole == expected) > 0.999


def test_size_and_border_rules_judge_the_pieces(tmp_path):
    mask = clumps(seed=5)
    pieces = each_object_split(mask)
    sizes = np.bincount(pieces.ravel())
    kept = clear_border(pieces)
    kept[np.isin(kept, np.flatnonzero((sizes < 30) | (sizes > 300)))] = 0
    expected = in_raster_order(kept)
    assert 0 < expected.max() < pieces.max()
    got = sm.label_objects(mask, tmp_path / "o.ome.zarr", split=True, min_size=30,
                           max_size=300, remove_border=True, tile_size=40)  # fmt: skip
    np.testing.assert_array_equal(got.read()[0, 0, 0, 0], expected)


def test_a_z_stack_splits_in_3d_alike_however_tiled(tmp_path):
    _, truth = synthetic_nuclei((20, 70, 70), density=0.002, radius=(4, 7), cluster_fraction=0.6,
                                seed=2)  # fmt: skip
    mask = (truth > 0).astype(np.uint8)
    expected = each_object_split(mask, h=1.0)
    whole = label(mask, tmp_path / "w.ome.zarr", split=Split(h=1.0), tile_size=128)
    tiled = label(mask, tmp_path / "t.ome.zarr", split=Split(h=1.0), tile_size=(7, 30, 25))
    np.testing.assert_array_equal(whole, expected)
    np.testing.assert_array_equal(tiled, expected)


def test_an_object_too_big_to_hold_is_kept_whole_with_a_warning(tmp_path, monkeypatch):
    mask = clumps()
    monkeypatch.setattr(split_module, "MAX_OBJECT_PIXELS", 5000)
    with pytest.warns(UserWarning, match="3 objects span more than 5000 pixels and were not split"):
        got = label(mask, tmp_path / "o.ome.zarr", split=Split(), tile_size=64)
    whole = sm.label_objects(mask, tmp_path / "c.ome.zarr").read()[0, 0, 0, 0]
    assert whole.max() < got.max() < split_touching(mask > 0).max()  # small ones still split


def test_cli_split_and_bad_values(tmp_path, capsys):
    import tifffile

    from scopeml.cli import main

    mask = clumps()
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    expected = split_touching(mask > 0, min_distance=8).max()
    out = tmp_path / "o.ome.zarr"
    assert main(["objects", "label", str(tmp_path / "mask.tif"), "-o", str(out),
                 "--split-distance", "8", "-q"]) == 0  # fmt: skip
    assert f"{expected} objects" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["objects", "label", str(tmp_path / "mask.tif"), "-o",
                     str(tmp_path / "p.ome.zarr"), "--split-h", "-1", "-q"]) == 2  # fmt: skip
    assert "the split h must be a number > 0; got -1.0" in capsys.readouterr().err
    for bad, message in (({"split_distance": 2.5}, "split distance must be a whole number"),
                         ({"split_h": "2"}, "split h must be a number > 0"),
                         ({"split_h": float("inf")}, "split h must be a number > 0"),
                         ({"remove_border": "no"}, "remove_border must be True or False"),
                         ({"max_size": 0}, "max size must be a whole number >= 1")):  # fmt: skip
        with pytest.raises(InvalidRequestError, match=message):
            sm.label_objects(mask, tmp_path / "bad.ome.zarr", **bad)
    as_float = sm.label_objects(mask, tmp_path / "f.ome.zarr", split_distance=8.0).read()
    assert as_float.max() == expected  # a whole number given as a float


def test_a_split_distance_or_h_alone_splits_as_on_the_command_line(tmp_path):
    """``split_h=2`` alone split nothing in Python, where ``--split-h 2`` splits."""
    mask = clumps()
    alone = sm.label_objects(mask, tmp_path / "a.ome.zarr", split_h=2.0).read()
    told = sm.label_objects(mask, tmp_path / "b.ome.zarr", split=True, split_h=2.0).read()
    np.testing.assert_array_equal(alone, told)
    assert alone.max() > sm.label_objects(mask, tmp_path / "c.ome.zarr").read().max()
    with pytest.raises(InvalidRequestError, match="a split distance or a split h, not both"):
        sm.label_objects(mask, tmp_path / "d.ome.zarr", split_distance=7, split_h=2.0)


def test_the_settings_watershed_split_is_objects_label_split(tmp_path):
    """The analysis settings' step split the whole mask at once: objects touching at a corner
    became one (face connectivity broken) and split lines moved with the watershed's ties."""
    from scopeml.analysis.segment import apply_post
    from scopeml.analysis.settings import WatershedSplit
    from scopeml.objects.label import label_instances

    mask = clumps(seed=5)
    for step, options in ((WatershedSplit(), {}), (WatershedSplit(h=2.0), {"split_h": 2.0})):
        settings = apply_post(label_instances(mask), [step])
        cli = sm.label_objects(mask, tmp_path / f"{step.h}.ome.zarr", split=True, **options)
        np.testing.assert_array_equal(settings, cli.read()[0, 0, 0, 0])
