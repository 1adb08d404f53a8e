"""Measurements equal scikit-image's regionprops_table for every property we claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops_table

from scopeml.errors import InvalidImageError, InvalidLabelsError
from scopeml.objects import measure_objects
from scopeml.synthetic import synthetic_nuclei

PROPS_2D = [
    "label", "area", "bbox", "centroid", "extent", "equivalent_diameter_area", "axis_major_length",
    "axis_minor_length", "eccentricity", "orientation", "moments_central", "moments_hu",
    "perimeter", "perimeter_crofton", "area_convex", "solidity", "feret_diameter_max",
    "intensity_mean", "intensity_min", "intensity_max", "intensity_std",
]  # fmt: skip
PROPS_3D = [
    "label", "area", "bbox", "centroid", "extent", "equivalent_diameter_area", "axis_major_length",
    "axis_minor_length", "moments_central", "area_convex", "solidity", "feret_diameter_max",
    "intensity_mean", "intensity_min", "intensity_max", "intensity_std",
]  # fmt: skip


def _our_name(name: str, n_channels: int) -> str:
    if name.startswith("intensity_"):
        family, _, channel = name.rpartition("-")
        return f"{family}_C{channel}" if n_channels > 1 else f"{name}_C0"
    return name


def _compare(ours: pd.DataFrame, ref: dict, n_channels: int) -> None:
    assert len(ours) == len(ref["label"])
    for name, expected in ref.items():
        got = ours[_our_name(name, n_channels)].to_numpy(float)
        expected = np.asarray(expected, float)
        # first-order central moments are 0 up to rounding: compare those absolutely
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-6, err_msg=name)


def test_2d_matches_regionprops_table():
    image, labels = synthetic_nuclei((160, 150), density=0.003, channels=2, seed=11)
    labels[0:3, 0:4] = labels.max() + 1  # a tiny object on the border
    labels[50, 140:150] = labels.max() + 1  # a one-pixel-thick line
    ours = measure_objects(labels, image)
    ref = regionprops_table(labels, np.moveaxis(image, 0, -1), properties=PROPS_2D)
    _compare(ours, ref, 2)
    # intensity_sum is not a regionprops property: mean × area
    np.testing.assert_allclose(ours["intensity_sum_C1"], ours["intensity_mean_C1"] * ours["area"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_2d_random_labels_match_regionprops_table(seed):
    """Touching and disconnected objects, holes, lone pixels and objects on every border: the
    cases where hull rasterisation, contour points and perimeter patterns are easiest to get
    wrong."""
    rng = np.random.default_rng(seed)
    labels = np.kron(rng.integers(0, 9, (11, 13)), np.ones((7, 6), np.int64))  # touching blocks
    speckle = rng.random(labels.shape) < 0.04
    labels[speckle] = rng.integers(0, 40, int(speckle.sum()))  # lone pixels, new ids, holes
    labels[30:45, 20:35] = 60
    labels[34:41, 24:31] = 0  # a ring: its hole counts in the hull, not in the area
    labels[37, 27] = 61  # one pixel inside the hole
    labels[0, 0], labels[-1, -1], labels[-1, 0] = 62, 63, 64  # one-pixel objects in corners
    image = rng.random((2, *labels.shape))
    ours = measure_objects(labels, image)
    ref = regionprops_table(labels, np.moveaxis(image, 0, -1), properties=PROPS_2D)
    _compare(ours, ref, 2)
    assert (ours["feret_diameter_min"] <= ours["feret_diameter_max"] + 1e-12).all()
    _check_feret_min(labels, ours)


def test_3d_matches_regionprops_table():
    image, labels = synthetic_nuclei((16, 40, 40), density=0.002, radius=(3, 5), seed=2)
    flat = measure_objects(labels, shape_features=False)
    extent = flat[["bbox-3", "bbox-4", "bbox-5"]].to_numpy() - flat[["bbox-0", "bbox-1", "bbox-2"]]
    for label in flat["label"][(extent.to_numpy() < 2).any(axis=1)]:
        labels[labels == label] = 0  # regionprops cannot hull flat objects; tested below
    ours = measure_objects(labels, image[0])
    ref = regionprops_table(labels, image[0], properties=PROPS_3D)
    _compare(ours, ref, 1)
    assert "volume_um3" not in ours  # no pixel sizes, no physical columns


@pytest.mark.parametrize("seed", [0, 1])
def test_3d_hull_is_scikit_images_voxel_for_voxel(seed):
    """The row-by-row hull equals ``convex_hull_image`` on blobs, sparse speckle (a hull with
    many slanted facets) and crops only two voxels deep."""
    import warnings

    from scipy import ndimage as ndi
    from skimage.morphology import convex_hull_image

    from scopeml.objects.measure import _convex_image_3d

    rng = np.random.default_rng(seed)
    for i in range(40):
        shape = tuple(rng.integers(2, 24, 3))
        smooth = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 3))
        mask = smooth > np.quantile(smooth, 0.6) if i % 4 else rng.random(shape) < 0.05
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # flat hulls
            expected = convex_hull_image(mask)
        np.testing.assert_array_equal(_convex_image_3d(mask), expected, err_msg=str(shape))


def test_3d_random_labels_match_regionprops_table():
    rng = np.random.default_rng(3)
    labels = np.kron(rng.integers(0, 6, (3, 4, 4)), np.ones((5, 6, 7), np.int64))
    speckle = rng.random(labels.shape) < 0.02
    labels[speckle] = rng.integers(1, 6, int(speckle.sum()))  # ragged, disconnected objects
    image = rng.random(labels.shape)
    ours = measure_objects(labels, image)
    ref = regionprops_table(labels, image, properties=PROPS_3D)
    _compare(ours, ref, 1)


def test_flat_objects_get_finite_shape_features():
    labels = np.zeros((5, 8, 8), np.int32)
    labels[2, 1:6, 1:6] = 1  # one slice thick
    labels[0:3, 7, 7] = 2  # a line
    table = measure_objects(labels)
    assert table["area_convex"].tolist() == [25, 3]
    assert table["solidity"].tolist() == [1.0, 1.0]
    assert np.isfinite(table["feret_diameter_max"]).all()


def _check_feret_min(labels: np.ndarray, table: pd.DataFrame) -> None:
    """Brute force on the points regionprops uses for Feret max: the smallest width is across
    one of their hull's edges (Qhull here), so try every edge normal."""
    from scipy.spatial import ConvexHull
    from skimage.measure import find_contours
    from skimage.morphology import convex_hull_image

    for label, fmin in zip(table["label"], table["feret_diameter_min"], strict=True):
        mask = labels == label
        box = tuple(slice(i.min(), i.max() + 1) for i in np.nonzero(mask))
        hull = convex_hull_image(mask[box]) if min(mask[box].shape) > 1 else mask[box]
        pts = np.vstack(find_contours(np.pad(hull, 2), 0.5, fully_connected="high"))
        edges = np.diff(pts[ConvexHull(pts).simplices], axis=1)[:, 0]
        normals = np.stack([-edges[:, 1], edges[:, 0]]) / np.hypot(edges[:, 0], edges[:, 1])
        proj = pts @ normals
        assert fmin == pytest.approx((proj.max(0) - proj.min(0)).min(), abs=1e-9), label


def test_feret_min_is_the_smallest_caliper_width():
    labels = np.zeros((40, 40), np.int32)
    labels[10:14, 5:35] = 1  # 4 × 30 bar
    yy, xx = np.mgrid[:40, :40]
    labels[((yy - 28) ** 2 + (xx - 20) ** 2) <= 36] = 2  # disk of radius 6
    table = measure_objects(labels)
    # brute force on the same boundary points regionprops uses for feret_diameter_max
    from skimage.measure import find_contours
    from skimage.morphology import convex_hull_image

    for row, label in zip(table.itertuples(), (1, 2), strict=True):
        hull = convex_hull_image(labels == label)
        pts = np.vstack(find_contours(np.pad(hull, 2), 0.5, fully_connected="high"))
        angles = np.linspace(0, np.pi, 3600, endpoint=False)
        proj = pts @ np.stack([np.cos(angles), np.sin(angles)])
        brute = (proj.max(0) - proj.min(0)).min()
        assert row.feret_diameter_min == pytest.approx(brute, abs=1e-3)
        assert row.feret_diameter_min <= row.feret_diameter_max
    assert table["feret_diameter_min"][0] == pytest.approx(4.0, abs=0.01)


def test_physical_units():
    labels = np.zeros((10, 12), np.int32)
    labels[2:6, 3:9] = 4
    table = measure_objects(labels, pixel_sizes={"Y": 0.5, "X": 0.5})
    row = table.iloc[0]
    assert row["area"] == 24 and row["area_um2"] == pytest.approx(6.0)
    assert row["centroid_um-1"] == pytest.approx(row["centroid-1"] * 0.5)
    assert row["feret_diameter_max_um"] == pytest.approx(row["feret_diameter_max"] * 0.5)
    assert row["perimeter_um"] == pytest.approx(row["perimeter"] * 0.5)
    assert row["equivalent_diameter_area_um"] == pytest.approx(2 * np.sqrt(6.0 / np.pi))
    # anisotropic pixels: direction-dependent lengths are left out, Feret uses true geometry
    aniso = measure_objects(labels, pixel_sizes=[2.0, 0.5])
    assert "perimeter_um" not in aniso
    assert aniso["area_um2"][0] == pytest.approx(24.0)
    ref = regionprops_table(labels, spacing=(2.0, 0.5), properties=["feret_diameter_max"])
    assert aniso["feret_diameter_max_um"][0] == pytest.approx(ref["feret_diameter_max"][0])


def test_3d_volume_and_names():
    labels = np.zeros((4, 5, 6), np.uint16)
    labels[1:3, 1:4, 2:5] = 9
    table = measure_objects(
        labels, pixel_sizes={"Z": 2.0, "Y": 0.5, "X": 0.5}, shape_features=False
    )
    assert table["volume_um3"][0] == pytest.approx(18 * 0.5)
    assert "centroid_um-2" in table and "perimeter" not in table


def test_ids_far_apart_and_empty():
    labels = np.zeros((6, 6), np.uint32)
    labels[1, 1] = 7
    labels[4, 4] = 4_000_000_000
    table = measure_objects(labels, shape_features=False)
    assert table["label"].tolist() == [7, 4_000_000_000]
    assert len(measure_objects(np.zeros((3, 3), np.int32))) == 0


def test_bad_input():
    with pytest.raises(InvalidLabelsError, match="integers"):
        measure_objects(np.zeros((4, 4), np.float32))
    with pytest.raises(InvalidLabelsError, match="non-negative"):
        measure_objects(-np.ones((4, 4), np.int32))
    with pytest.raises(InvalidImageError, match=r"image has shape \(3, 4\)"):
        measure_objects(np.ones((4, 4), np.int32), np.zeros((3, 4)))
