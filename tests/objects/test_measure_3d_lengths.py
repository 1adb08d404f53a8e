"""A Z stack's lengths in µm and the classifier's default features (user trial, items 1 and 4):
the ellipse axes in µm take the Z step (as ``regionprops(..., spacing=)``), 3-D tables have
them as 2-D ones do, and the default features are neither sizes in voxels where the table
has µm nor ``extent``; a class lost to NaN or infinite features is said to be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops_table

from scopeml.errors import InvalidLabelsError
from scopeml.objects import ObjectClassifier, default_features, measure_objects

PIXEL_SIZES = {"area", "area_convex", "axis_major_length", "axis_minor_length",
               "equivalent_diameter_area", "feret_diameter_max", "perimeter"}  # fmt: skip


def _stack() -> np.ndarray:
    """Two ellipsoids, one turned in Z-Y, one in Y-X, and a box."""
    z, y, x = np.mgrid[:14, :32, :32]
    labels = np.zeros((14, 32, 32), np.int32)
    labels[((z - 7) / 5) ** 2 + ((y - 9) / 7) ** 2 + ((x - 8) / 3) ** 2 + (z - 7) * (y - 9) / 40
           <= 1] = 1  # fmt: skip
    labels[((z - 6) / 3) ** 2 + ((y - 22) / 8) ** 2 + ((x - 20) / 4) ** 2 + (y - 22) * (x - 20) / 50
           <= 1] = 2  # fmt: skip
    labels[2:5, 26:30, 3:12] = 3
    return labels


@pytest.mark.parametrize("spacing", [(2.0, 0.26, 0.26), (0.29, 0.26, 0.26), (0.5, 0.5, 0.5)])
def test_3d_axis_lengths_in_um_take_the_z_step(spacing):
    labels = _stack()
    table = measure_objects(labels, pixel_sizes=list(spacing))
    ref = regionprops_table(labels, spacing=spacing,
                            properties=["axis_major_length", "axis_minor_length"])  # fmt: skip
    for name in ("axis_major_length", "axis_minor_length"):
        np.testing.assert_allclose(table[f"{name}_um"], ref[name], rtol=1e-9)
    # the pixel-unit axes are regionprops' without spacing, whatever the Z step
    plain = regionprops_table(labels, properties=["axis_major_length"])["axis_major_length"]
    np.testing.assert_allclose(table["axis_major_length"], plain, rtol=1e-9)


def test_the_z_step_changes_the_lengths_in_um_not_in_voxels():
    labels = _stack()
    thin, thick = (measure_objects(labels, pixel_sizes=[z, 0.26, 0.26]) for z in (0.29, 2.0))
    np.testing.assert_array_equal(thin["axis_major_length"], thick["axis_major_length"])
    assert (thick["axis_major_length_um"] > thin["axis_major_length_um"]).all()


def test_2d_axis_lengths_in_um_on_pixels_that_are_not_square():
    labels = _stack()[7]
    table = measure_objects(labels, pixel_sizes=[2.0, 0.5])
    ref = regionprops_table(labels, spacing=(2.0, 0.5), properties=["axis_major_length"])
    np.testing.assert_allclose(table["axis_major_length_um"], ref["axis_major_length"])
    assert "perimeter_um" not in table  # perimeters need square pixels


def test_default_features_of_a_3d_table_are_in_um_and_leave_out_extent():
    table = measure_objects(_stack(), np.ones((14, 32, 32)), pixel_sizes=[2.0, 0.26, 0.26])
    names = default_features(table)
    assert {"axis_major_length_um", "axis_minor_length_um", "volume_um3"} <= set(names)
    assert not PIXEL_SIZES & set(names), PIXEL_SIZES & set(names)
    assert "extent" not in names and "solidity" in names
    table["kind"] = ["a", "b", "a"]
    assert "axis_major_length" not in ObjectClassifier.train(table, "kind", n_estimators=3).features


def test_default_features_of_a_2d_table_on_pixels_that_are_not_square():
    """A perimeter in pixels on oblong pixels has no µm copy; it changes as the object turns,
    so it is no default feature of a table with µm."""
    labels = _stack()[7]
    names = default_features(measure_objects(labels, pixel_sizes=[2.0, 0.5]))
    assert {"area_um2", "axis_major_length_um", "feret_diameter_max_um"} <= set(names)
    assert not (PIXEL_SIZES | {"perimeter_crofton", "extent"}) & set(names)
    # without a pixel size the pixel copies are the sizes; extent is still left out
    in_pixels = default_features(measure_objects(labels))
    assert {"area", "perimeter", "axis_major_length"} <= set(in_pixels)
    assert "extent" not in in_pixels


def test_a_class_lost_to_nonfinite_features_is_named():
    table = pd.DataFrame({"area_um2": [1.0, 1.2, 1.1, 1.3, np.inf, np.inf],
                          "solidity": [0.9, 0.8, 0.85, 0.9, 0.7, 0.75],
                          "kind": ["bright"] * 4 + ["dim"] * 2})  # fmt: skip
    warned = pytest.warns(UserWarning, match="2 of 6 annotated objects")
    with warned, pytest.raises(InvalidLabelsError) as caught:
        ObjectClassifier.train(table, "kind", n_estimators=3)
    said = str(caught.value)
    assert said.startswith(
        "one class (bright) is left once the objects with NaN or infinite "
        "features (area_um2) are left out: every object of dim has them"
    )
    with pytest.raises(InvalidLabelsError, match=r"names one class \(bright\)"):
        ObjectClassifier.train(table.iloc[:4], "kind", n_estimators=3)  # one class, said so
