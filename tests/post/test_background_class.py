"""Post-processing a pixel classifier's labels, where the background is a class (not 0): holes
of an object class fill with it, removed pixels go to the class around them, never to 0, and
the tiled result equals the whole image; a segment store's names and label metadata are kept."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.io import open_image
from scopeml.io.image import Image
from scopeml.model.spec import ModelSpec
from scopeml.post import PostStep, apply_steps, post_process_file, post_process_tiled
from scopeml.post.steps import post_halo, removal_reach, steps_halo
from tests.post.test_tiled import blobs


def parse(*texts: str) -> list[PostStep]:
    return [PostStep.parse(text) for text in texts]


def classified(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A pixel classifier's labels: background class 1, object classes 2 and 3, and a few
    unclassified (0) pixels, as NaN pixels give."""
    labels = blobs(shape, seed) + 1
    labels[np.random.default_rng(seed + 1).random(shape) < 0.005] = 0
    return labels


def test_holes_of_the_background_class_fill_with_the_object_class() -> None:
    labels = np.ones((12, 12), np.uint8)  # background is class 1
    labels[2:10, 2:10] = 2
    labels[4:6, 4:6] = 1  # a hole of background ...
    labels[7, 7] = 3  # ... and an object of another class inside the coin
    filled = apply_steps(labels, parse("fill_holes"), background=1)
    assert (filled[4:6, 4:6] == 2).all() and filled[7, 7] == 3
    assert (filled[labels != 1] == labels[labels != 1]).all() and (filled[0] == 1).all()
    # 0 as the background (today's convention): class 1 is an object, the hole stays
    np.testing.assert_array_equal(apply_steps(labels, parse("fill_holes")), labels)


def test_removed_pixels_go_to_the_class_around_them_not_to_zero() -> None:
    labels = np.ones((20, 20), np.uint8)
    labels[2:18, 8:18] = 2
    labels[10, 12] = 3  # a speck of class 3 inside class 2
    labels[10, 3] = 2  # a speck of class 2 in the background
    labels[5, 14] = 0  # an unclassified pixel stays unclassified
    labels[2:5, 5:8] = 3  # a 9-pixel object of class 3 touching class 2 and the background
    for steps in (parse("remove_small:10"), parse("opening:1")):
        out = apply_steps(labels, steps, background=1)
        assert out[10, 12] == 2 and out[10, 3] == 1, steps
        assert (out == 0).sum() == 1 and out[5, 14] == 0, steps
    out = apply_steps(labels, parse("remove_small:10"), background=1)
    # the 3×3 object: each pixel takes its nearest class (class 2 is right of it, the
    # background above, left and below), the background winning ties
    np.testing.assert_array_equal(out[2:5, 5:8], [[1, 1, 1], [1, 1, 2], [1, 1, 1]])
    # with 0 as the background, the same specks become unclassified (today's behaviour)
    assert apply_steps(labels, parse("remove_small:10"))[10, 12] == 0


def test_the_removal_reach_is_part_of_the_halo() -> None:
    steps = parse("fill_holes:20", "remove_small:9", "opening:2", "closing:2")
    assert removal_reach(steps) == 8 and steps_halo(steps) == 19 + 8 + 4 + 4
    assert post_halo(steps, 1) == steps_halo(steps) + 8 and post_halo(steps) == steps_halo(steps)


STEPS = ["fill_holes:20", "remove_small:9", "opening:2", "closing:2", "fill_holes"]


@pytest.mark.parametrize(
    "step", [*STEPS, "remove_small:9,opening:1", "closing:1,fill_holes,remove_small:30"]
)
@pytest.mark.parametrize("shape", [(70, 83), (9, 40, 37)])
def test_tiled_equals_whole_with_a_background_class(step: str, shape: tuple[int, ...]) -> None:
    steps = parse(*step.split(","))
    labels = classified(shape)
    whole = apply_steps(labels, steps, background=1)
    assert (whole != labels).any()
    assert not ((whole == 0) & (labels != 0)).any()  # nothing becomes unclassified
    image = Image(labels.reshape((1, 1, 1) + (1,) * (3 - labels.ndim) + shape))
    out = np.zeros(image.shape, np.uint8)
    changed = post_process_tiled(image, steps, out, background=1, tile_size=16)
    np.testing.assert_array_equal(out.reshape(shape), whole)
    assert changed == int((whole != labels).sum())


def test_without_the_reach_in_the_halo_tiles_would_differ() -> None:
    # a removed speck takes the class nearest to it, which must be decided exactly too: a tile
    # with only the steps' halo cuts a long class-2 line short, removes it, and picks class 1
    labels = np.zeros((21, 31), np.uint8)  # unclassified, but for:
    labels[10, 10] = 3  # a speck, removed
    labels[10, 12:26] = 2  # a line of 14 pixels, kept, 2 pixels from the speck
    labels[10, 7] = 1  # the background class, 3 pixels from the speck
    steps = parse("remove_small:5")
    assert apply_steps(labels, steps, background=1)[10, 10] == 2
    for halo, expected in ((steps_halo(steps), 1), (post_halo(steps, 1), 2)):
        tile = labels[:, 10 - halo : 10 + halo + 1]
        assert apply_steps(tile, steps, background=1)[10, halo] == expected, halo


class Threshold:
    """A two-class model (background, coin) thresholding the image, as a pixel classifier would."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("background", "coin"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        coin = (batch > 107).astype(np.float32)  # Otsu's threshold of skimage's coins
        return np.concatenate([1 - coin, coin], axis=1)


@pytest.fixture(scope="module")
def coins_store(tmp_path_factory):
    from skimage import data

    image = data.coins()[np.newaxis, np.newaxis, np.newaxis, np.newaxis]
    out = tmp_path_factory.mktemp("coins") / "coins.ome.zarr"
    return sm.segment(Image(image), Threshold(), out, tile_size=128, workers=1)


def test_coins_holes_fill_and_specks_join_the_background(coins_store, tmp_path) -> None:
    labels = coins_store.labels.read()[0, 0, 0, 0]
    coin = labels == 2
    holes = ndi.binary_fill_holes(coin) & ~coin
    assert set(np.unique(labels).tolist()) == {1, 2} and holes.sum() > 1000
    assert ndi.label(coin)[1] > 100  # specks
    steps = ["fill_holes", "remove_small:200"]
    written = post_process_file(coins_store, tmp_path / "p.ome.zarr", steps, tile_size=64)
    assert written == tmp_path / "p.ome.zarr" / "labels"
    with open_image(written) as result:
        got = result.read()[0, 0, 0, 0]
    np.testing.assert_array_equal(got, apply_steps(labels, parse(*steps), background=1))
    coin = got == 2
    assert set(np.unique(got).tolist()) == {1, 2}  # no unclassified pixel appears
    assert not (ndi.binary_fill_holes(coin) & ~coin).any()
    sizes = np.bincount(ndi.label(coin)[0].ravel())[1:]
    assert sizes.min() >= 200 and 15 <= len(sizes) <= 30  # skimage's coins: 24 coins
    # the background class by name or value gives the same; 0 as background fills nothing
    by_name = post_process_file(
        coins_store, tmp_path / "n.ome.zarr", steps, background="Background"
    )
    np.testing.assert_array_equal(open_image(by_name).read()[0, 0, 0, 0], got)
    old = post_process_file(coins_store, tmp_path / "z.ome.zarr", ["fill_holes"], background=0)
    np.testing.assert_array_equal(open_image(old).read()[0, 0, 0, 0], labels)


def test_the_output_keeps_name_classes_and_label_metadata(coins_store, tmp_path) -> None:
    written = post_process_file(coins_store / "labels", tmp_path / "p.ome.zarr", ["opening:1"])
    store = sm.Segmentation(written.parent)
    assert written.name == "labels" and store.classes == ("background", "coin")
    assert store.outputs == ("labels",) and store.labels.pixel_sizes == {}
    ome = zarr.open_group(str(written), mode="r").attrs["ome"]
    assert ome["image-label"]["properties"] == [
        {"label-value": 1, "class": "background"},
        {"label-value": 2, "class": "coin"},
    ]
    record = zarr.open_group(str(written.parent), mode="r").attrs["scopeml"]["post"]
    assert record["steps"] == ["opening:1"] and record["background"] == 1
    objects = sm.label_objects(written.parent, tmp_path / "o.ome.zarr", class_="coin")
    assert objects.read().max() > 10


def test_a_mask_keeps_its_name_and_zero_background(coins_store, tmp_path) -> None:
    mask = (coins_store.labels.read()[0, 0, 0, 0] == 2).astype(np.uint8)
    store = tmp_path / "m.ome.zarr"
    from scopeml.io.omezarr import create_ome_zarr

    create_ome_zarr(store / "mask", shape=mask.shape, dtype="uint8", axes="YX", chunks=(64, 64))[
        :
    ] = mask
    written = post_process_file(store / "mask", tmp_path / "o.ome.zarr", ["fill_holes"])
    assert written.name == "mask"
    np.testing.assert_array_equal(
        open_image(written).read()[0, 0, 0, 0], ndi.binary_fill_holes(mask)
    )
    with pytest.raises(InvalidRequestError, match="carry no class names; give its label value"):
        post_process_file(store / "mask", tmp_path / "b.ome.zarr", ["fill_holes"], background="bg")


def test_the_command_line_ends_with_a_summary_and_feeds_objects_label(
    coins_store, tmp_path, capsys
):
    out = tmp_path / "p.ome.zarr"
    args = ["post", str(coins_store), "-o", str(out), "-s", "fill_holes", "-s", "remove_small:200"]
    assert main([*args, "-q"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out.strip().splitlines()
    changed = zarr.open_group(str(out), mode="r").attrs["scopeml"]["post"]["changed_pixels"]
    assert len(printed) == 1 and printed[0].startswith(f"labels → {out}; fill_holes, remove_small")
    assert f"{changed:,} pixels changed (background: label 1, 'background')" in printed[0]
    assert changed > 1000
    objects = tmp_path / "o.ome.zarr"
    assert main(["objects", "label", str(out), "-o", str(objects), "--class", "coin", "-q"]) == 0
    assert main([*args, "--background", "cell", "--overwrite", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no class 'cell'; the classes are 1 background, 2 coin" in err
    assert main([*args, "-q"]) == 2
    assert "output exists; pass --overwrite (overwrite=True)" in capsys.readouterr().err
