"""Instances split at a boundary class: tiled equals whole-image, touching nuclei parted."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image
from scopeml.objects.instances import (
    InstanceOptions,
    grow_seeds,
    instance_image,
    instance_labels,
)
from scopeml.synthetic import synthetic_nuclei


def class_labels(instances: np.ndarray) -> np.ndarray:
    """1 background, 2 nucleus interior, 3 boundary (the ring of every nucleus)."""
    classes = np.where(instances > 0, 2, 1).astype(np.uint8)
    classes[find_boundaries(instances, mode="inner")] = 3
    return classes


@pytest.fixture(scope="module")
def nuclei() -> tuple[np.ndarray, np.ndarray]:
    _, truth = synthetic_nuclei((150, 170), density=0.004, cluster_fraction=0.8, seed=3)
    return truth, class_labels(truth)


def test_grow_seeds_does_not_depend_on_the_window():
    rng = np.random.default_rng(0)
    seeds = np.where(rng.random((40, 40)) < 0.02, rng.integers(1, 9, (40, 40)), 0)
    mask = rng.random((40, 40)) < 0.7
    whole = grow_seeds(seeds, mask, 3.5)
    for y0, x0 in [(0, 0), (5, 11), (17, 3)]:
        window = (slice(y0, y0 + 20), slice(x0, x0 + 20))
        core = (slice(3, 17), slice(3, 17))
        part = grow_seeds(seeds[window], mask[window], 3.5)
        big = (slice(y0 + 3, y0 + 17), slice(x0 + 3, x0 + 17))
        np.testing.assert_array_equal(part[core], whole[big])
    assert ((whole > 0) <= (mask | (seeds > 0))).all()


@pytest.mark.parametrize(("shape", "distance"), [((23, 31), 3.5), ((7, 9, 11), 2.3)])
def test_grow_seeds_gives_the_nearest_seed_and_the_smaller_id_on_a_tie(shape, distance):
    rng = np.random.default_rng(1)
    seeds = np.where(rng.random(shape) < 0.05, rng.integers(1, 6, shape), 0).astype(np.uint16)
    mask = rng.random(shape) < 0.8
    points = np.argwhere(seeds > 0)
    want = seeds.copy()
    for pixel in np.argwhere(mask & (seeds == 0)):  # by definition, one pixel at a time
        squared = ((points - pixel) ** 2).sum(1)
        near = squared == squared.min()
        if squared.min() <= distance**2:
            want[tuple(pixel)] = seeds[tuple(points[near].T)].min()
    got = grow_seeds(seeds, mask, distance)
    assert got.dtype == seeds.dtype
    np.testing.assert_array_equal(got, want)


def test_touching_nuclei_are_split_and_recovered(nuclei):
    truth, classes = nuclei
    found = instance_labels(classes, class_id=2, grow_id=3, grow=2, min_size=1)
    # the ring is one pixel: every nucleus with an interior is found whole, touching ones apart
    merged_cc = instance_labels(np.where(classes > 1, 2, 1), class_id=2)
    assert found.max() > merged_cc.max()  # boundaries split what plain components merge
    pairs = {(int(t), int(f)) for t, f in zip(truth.ravel(), found.ravel(), strict=True) if t}
    with_interior = {int(t) for t in np.unique(truth[classes == 2])}
    matched = {t for t, f in pairs if f}
    matched_ids = {f for _, f in pairs if f}
    assert with_interior <= matched
    # no id spans two nuclei: at most a few seam pixels of a neighbour (nearest seed, not
    # geodesic), or the ring of a nucleus too small to have an interior
    owners = [np.bincount(truth[found == f]) for f in matched_ids]
    stray = sum(int(o.sum() - o.max()) for o in owners)
    assert stray < 0.02 * np.count_nonzero(found)
    covered = [np.bincount(found[truth == t]) for t in with_interior]
    whole = [c for c in covered if c.argmax() > 0 and c.max() >= 0.9 * c.sum()]
    assert len(whole) > 0.8 * len(with_interior)  # a few interiors are cut in two at a neck


@pytest.mark.parametrize("tile", [16, (40, 23), 1000])
def test_tiled_equals_whole_image(nuclei, tmp_path, tile):
    _, classes = nuclei
    stack = np.stack([classes, classes[::-1]])  # two time points
    image = Image(stack[None, :, None, None], pixel_sizes={"Y": 0.5, "X": 0.5})
    out = instance_image(image, tmp_path / "i.ome.zarr", class_id=2, grow_id=3, grow=3,
                         min_size=5, tile_size=tile)  # fmt: skip
    got = out.read()[0, :, 0, 0]
    first = instance_labels(classes, class_id=2, grow_id=3, grow=3, min_size=5)
    second = instance_labels(classes[::-1], class_id=2, grow_id=3, grow=3, min_size=5)
    np.testing.assert_array_equal(got[0], first)
    np.testing.assert_array_equal(got[1], np.where(second > 0, second + first.max(), 0))
    assert out.pixel_sizes["X"] == 0.5 and out.sizes["T"] == 2


def test_the_classes_are_read_once_tile_by_tile(nuclei, tmp_path):
    _, classes = nuclei
    reads = []

    class Counted:  # a costly source (a model's probabilities): each read is recorded
        shape, dtype = (1, 1, 1, 1, *classes.shape), classes.dtype

        def __getitem__(self, key):
            reads.append(key)
            return classes.reshape(self.shape)[key]

    out = instance_image(Image(Counted()), tmp_path / "i.ome.zarr", class_id=2, grow_id=3,
                         grow=3, min_size=5, tile_size=64)  # fmt: skip
    want = instance_labels(classes, class_id=2, grow_id=3, grow=3, min_size=5)
    np.testing.assert_array_equal(out.read()[0, 0, 0, 0], want)
    pixels = [classes[key[-2:]].size for key in reads]  # pixels each read selected
    assert len(reads) == 3 * 3 and sum(pixels) == classes.size  # 150×170 in 64-pixel tiles


def test_tiled_equals_whole_image_in_3d(tmp_path):
    _, truth = synthetic_nuclei((12, 40, 44), density=0.002, seed=1)
    classes = class_labels(truth)
    out = instance_image(Image(classes[None, None, None]), tmp_path / "i.ome.zarr", class_id=2,
                         grow_id=3, grow=2, min_size=3, tile_size=(5, 13, 17))  # fmt: skip
    want = instance_labels(classes, class_id=2, grow_id=3, grow=2, min_size=3)
    assert want.max() > 1
    np.testing.assert_array_equal(out.read()[0, 0, 0], want)


def test_options_pick_the_classes():
    assert InstanceOptions().resolve(("background", "nucleus", "boundary")) == (2, 3)
    assert InstanceOptions().resolve(("background", "cell")) == (2, None)
    with pytest.raises(InvalidRequestError, match="which class"):
        InstanceOptions().resolve(("background", "a", "b"))
    with pytest.raises(InvalidRequestError, match="no class 'x'"):
        InstanceOptions(class_="x").resolve(("background", "a"))


def test_every_scene_is_kept(nuclei, tmp_path):
    _, classes = nuclei
    scenes = np.stack([classes, classes[:, ::-1]])[:, None, None, None]  # S T C Z Y X
    out = instance_image(Image(scenes), tmp_path / "s.ome.zarr", class_id=2, grow_id=3,
                         grow=2, tile_size=64)  # fmt: skip
    got = out.read()[:, 0, 0, 0]
    first = instance_labels(classes, class_id=2, grow_id=3, grow=2)
    second = instance_labels(classes[:, ::-1], class_id=2, grow_id=3, grow=2)
    assert out.sizes["S"] == 2
    np.testing.assert_array_equal(got[0], first)
    np.testing.assert_array_equal(got[1], np.where(second > 0, second + first.max(), 0))


def test_the_old_keywords_still_work_for_a_release_with_a_warning_naming_the_new():
    classes = ("background", "cell", "edge")  # the seam class is not named boundary
    with pytest.raises(InvalidRequestError, match="which class"):
        InstanceOptions().resolve(classes)
    new = InstanceOptions(boundary_class="edge", seed_threshold=0.8)
    assert new.resolve(classes) == (2, 3)
    assert new.record(classes)["seed_threshold"] == 0.8
    with pytest.warns(DeprecationWarning, match="'boundary' is renamed 'boundary_class'"):
        old = InstanceOptions(boundary="edge", threshold=0.8)
    assert old == new and old.resolve(classes) == (2, 3)
    with pytest.warns(DeprecationWarning, match="'threshold' is renamed 'seed_threshold'"):
        assert old.threshold == 0.8
    with pytest.raises(TypeError, match="give seed_threshold= only"):
        InstanceOptions(threshold=0.5, seed_threshold=0.7)
    with pytest.raises(TypeError, match="unexpected keyword argument 'thresh'"):
        InstanceOptions(thresh=0.5)


def test_options_from_json_take_the_settings_names_and_the_old_ones_with_a_warning():
    fields = {"class": "cell", "boundary_class": "edge", "seed_threshold": None, "grow": 2}
    new = InstanceOptions.from_fields(fields)
    assert new == InstanceOptions(class_="cell", boundary_class="edge", seed_threshold=None,
                                  grow=2)  # fmt: skip
    assert InstanceOptions.from_fields(new.record(("bg", "cell", "edge"))) == new  # a record
    with pytest.warns(DeprecationWarning, match="job: 'threshold' is renamed 'seed_threshold'"):
        old = InstanceOptions.from_fields(
            {"class_": "cell", "boundary": "edge", "threshold": None, "grow": 2}, where="job"
        )
    assert old == new
    with pytest.raises(InvalidRequestError, match="given twice"):
        InstanceOptions.from_fields({"threshold": 0.5, "seed_threshold": 0.5})
