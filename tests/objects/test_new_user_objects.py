"""Objects after a new user's trial (nu1 findings 3, 4, 13): numeric class columns, NaN pixels
in measured objects, ``--min-size`` when labelling, rotation-invariant default features."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from skimage.morphology import remove_small_objects

from scopeml.cli import main
from scopeml.io.image import Image
from scopeml.objects import (
    ObjectClassifier,
    default_features,
    label_instances,
    label_instances_tiled,
    load_object_classifier,
    measure_objects,
    measure_objects_tiled,
)
from scopeml.objects.images import label_image
from scopeml.synthetic import synthetic_nuclei

from .test_label import assert_same_objects

# --- 1. a class column of numbers ---------------------------------------------------------


def _sized_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = np.r_[rng.uniform(10, 20, 20), rng.uniform(50, 70, 20)]
    return pd.DataFrame({"label": np.arange(1, 41), "area": area, "code": [1] * 20 + [2] * 20})


def test_integer_class_column_trains_with_classes_named_by_value():
    table = _sized_table()
    assert table["code"].dtype.kind == "i"
    clf = ObjectClassifier.train(table, "code", n_estimators=10)
    assert clf.classes == ("1", "2")
    assert clf.predict(pd.DataFrame({"area": [12.0, 65.0]})).tolist() == ["1", "2"]


def test_blank_rows_make_the_column_float_but_classes_stay_1_and_2():
    table = _sized_table().astype({"code": float})
    table.loc[[3, 25], "code"] = np.nan  # unannotated objects
    clf = ObjectClassifier.train(table, "code", n_estimators=10)
    assert clf.classes == ("1", "2")
    table.loc[0, "code"] = 2.5  # a fraction keeps its digits
    assert ObjectClassifier.train(table, "code", n_estimators=5).classes == ("1", "2", "2.5")


def test_cli_trains_on_a_numeric_column_and_classifies(tmp_path, capsys):
    table = _sized_table()
    table.to_csv(tmp_path / "all.csv", index=False)
    blank = table.astype({"code": object})
    blank.loc[[1, 30], "code"] = ""
    blank.to_csv(tmp_path / "blank.csv", index=False)
    for name in ("all", "blank"):
        model = tmp_path / f"{name}.zip"
        args = ["objects", "train", str(tmp_path / f"{name}.csv"), "--class-column", "code"]
        assert main([*args, "-o", str(model), "--n-estimators", "10"]) == 0
        assert "classes=['1', '2']" in capsys.readouterr().out
        out = tmp_path / f"{name}_classified.csv"
        assert (
            main(["objects", "classify", str(model), str(tmp_path / "all.csv"), "-o", str(out)])
            == 0
        )
        got = pd.read_csv(out, dtype={"class": str})
        assert (got["class"] == table["code"].astype(str)).mean() > 0.95


# --- 2. NaN pixels inside objects ---------------------------------------------------------


def _nan_scene() -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((40, 50), np.uint32)
    labels[2:12, 3:15] = 1
    labels[20:30, 5:25] = 2  # a few NaN and an infinite pixel
    labels[25:38, 30:47] = 3
    labels[5:9, 30:34] = 4  # nothing finite
    image = np.random.default_rng(0).normal(100, 10, labels.shape).astype(np.float32)
    image[22, 7:10] = np.nan
    image[27, 20] = np.inf
    image[5:9, 30:34] = np.nan
    return labels, image


def test_nan_pixels_are_left_out_with_one_warning():
    labels, image = _nan_scene()
    with pytest.warns(UserWarning, match="2 of 4 objects have NaN or infinite") as caught:
        table = measure_objects(labels, image).set_index("label")
    assert len([w for w in caught if "NaN" in str(w.message)]) == 1
    for obj in (1, 2, 3):
        values = image[labels == obj]
        values = values[np.isfinite(values)].astype(np.float64)
        row = table.loc[obj]
        np.testing.assert_allclose(row["intensity_mean_C0"], values.mean(), rtol=1e-12)
        np.testing.assert_allclose(row["intensity_std_C0"], values.std(), rtol=1e-9)
        np.testing.assert_allclose(row["intensity_sum_C0"], values.sum(), rtol=1e-12)
        assert row["intensity_median_C0"] == np.median(values)
        assert (row["intensity_min_C0"], row["intensity_max_C0"]) == (values.min(), values.max())
    assert table.loc[4].filter(like="intensity_").isna().all()


def test_tiled_measurement_warns_once_for_the_whole_image(tmp_path):
    labels, image = _nan_scene()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        whole = measure_objects(labels, image)
        tiled = measure_objects_tiled(labels, image, tile_size=16, margin=4)
    messages = [str(w.message) for w in caught if "NaN" in str(w.message)]
    assert len(messages) == 2 and all("2 of 4 objects" in m for m in messages)
    pd.testing.assert_frame_equal(whole, tiled, check_exact=False, rtol=1e-12)


def test_cli_measure_warns_on_nan_pixels(tmp_path, capsys):
    labels, image = _nan_scene()
    np.save(tmp_path / "labels.npy", labels)
    tifffile.imwrite(tmp_path / "image.tif", image)
    out = tmp_path / "t.csv"
    args = [
        "objects",
        "measure",
        str(tmp_path / "labels.npy"),
        "--image",
        str(tmp_path / "image.tif"),
    ]
    assert main([*args, "-o", str(out), "-q", "--tile-size", "16"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "2 of 4 objects have NaN or infinite" in err
    assert pd.read_csv(out)["intensity_mean_C0"].notna().sum() == 3


def test_median_equals_numpy_for_integer_images():
    image, labels = synthetic_nuclei((90, 80), density=0.004, channels=2, seed=2)
    image = (image * 1000).astype(np.uint16)
    table = measure_objects(labels, image).set_index("label")
    for obj in table.index:
        for c in (0, 1):
            expected = np.median(image[c][labels == obj].astype(np.float64))
            assert table.loc[obj, f"intensity_median_C{c}"] == expected


# --- 3. --min-size ------------------------------------------------------------------------


def _specks(seed: int = 7) -> np.ndarray:
    """Nuclei, specks of 1–5 px, and a thin line cut by many tile borders (each piece small)."""
    _, truth = synthetic_nuclei((150, 170), density=0.003, seed=seed)
    mask = truth > 0
    rng = np.random.default_rng(seed)
    for y, x in rng.integers(0, (148, 168), (60, 2)):
        mask[y : y + rng.integers(1, 3), x : x + rng.integers(1, 3)] = True
    mask[140, 2:60] = True  # 58 px, crossing tiles of 16: pieces of ≤ 16 px
    return mask


@pytest.mark.parametrize("tile", [(16, 16), (37, 23), (150, 170)])
def test_min_size_tiled_equals_whole_and_ids_are_consecutive(tmp_path, tile):
    mask = _specks()
    reference = remove_small_objects(label_instances(mask), max_size=19)  # < 20 px removed
    whole = label_instances(mask, min_size=20)
    tiled = label_instances_tiled(mask, tmp_path / "o.zarr", tile_size=tile, min_size=20)[...]
    assert_same_objects(reference, whole)
    assert_same_objects(whole, tiled)
    n = len(np.unique(reference)) - 1
    assert np.array_equal(np.unique(whole), np.arange(n + 1))
    assert np.array_equal(np.unique(tiled), np.arange(n + 1))
    assert tiled[140, 2] > 0  # the line, small in every tile, is kept whole
    assert label_instances(mask).max() - n >= 25  # specks really were dropped


def test_min_size_over_time_points_and_the_python_api(tmp_path):
    import scopeml as sm

    mask = _specks()
    stack = np.zeros((1, 2, 1, 1, *mask.shape), np.uint8)
    stack[0, 0, 0, 0], stack[0, 1, 0, 0] = mask * 2, mask[::-1] * 2  # class 2
    out = sm.label_objects(stack, tmp_path / "o.ome.zarr", class_=2, min_size=20, tile_size=32)
    ids = out.read()[0, :, 0, 0]
    n = int(label_instances(mask, min_size=20).max())
    assert ids[0].max() == n and np.array_equal(np.unique(ids[1]), np.r_[0, n + 1 : 2 * n + 1])
    attrs = zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r")["0"].attrs
    assert attrs["n_objects"] == 2 * n and attrs["time_offsets"] == [0, n]
    # a class that is present but only in small objects: 0 objects, not "no label value"
    tiny = np.zeros((1, 1, 1, 1, 8, 8), np.uint8)
    tiny[..., 2, 2] = 3
    found = label_image(Image(tiny), tmp_path / "t.ome.zarr", class_id=3, min_size=2,
                        require_class=True)  # fmt: skip
    assert found.read().max() == 0


def test_cli_label_min_size(tmp_path, capsys):
    mask = _specks()
    tifffile.imwrite(tmp_path / "mask.tif", mask.astype(np.uint8))
    out = tmp_path / "o.ome.zarr"
    args = ["objects", "label", str(tmp_path / "mask.tif"), "-o", str(out), "-q"]
    assert main([*args, "--min-size", "20", "--tile-size", "32"]) == 0
    n = int(label_instances(mask, min_size=20).max())
    assert capsys.readouterr().out.startswith(f"{n} objects")
    assert main([*args, "--min-size", "-1", "--overwrite"]) == 2
    assert "the min size must be a whole number" in capsys.readouterr().err


# --- 4. default features ------------------------------------------------------------------


def test_default_features_are_rotation_invariant_and_one_size_copy(tmp_path):
    image, labels = synthetic_nuclei((96, 96), density=0.004, channels=1, seed=3)
    sizes = {"Y": 0.5, "X": 0.5}
    table = measure_objects(labels, image, pixel_sizes=sizes)
    turned = measure_objects(np.rot90(labels), np.rot90(image, axes=(-2, -1)), pixel_sizes=sizes)
    names = default_features(table)
    assert "orientation" not in names and not any(n.startswith("moments_central") for n in names)
    assert {"area_um2", "perimeter_um", "feret_diameter_max_um", "moments_hu-0"} <= set(names)
    assert "area_convex_um2" in names
    assert not {
        "area",
        "area_convex",
        "perimeter",
        "feret_diameter_max",
        "axis_major_length",
    } & set(names)
    assert {"circularity", "intensity_median_C0"} <= set(names)
    assert "extent" not in names  # area over the bounding box: it changes as the object turns
    for name in names:  # a quarter turn is exact on the pixel grid
        np.testing.assert_allclose(turned[name], table[name], rtol=1e-9, atol=1e-9, err_msg=name)
    assert not np.allclose(turned["orientation"], table["orientation"])
    # without a pixel size, the pixel copies are the features
    in_pixels = default_features(measure_objects(labels, image))
    assert {"area", "perimeter", "feret_diameter_max"} <= set(in_pixels)


def test_ids_and_probabilities_are_not_features():
    table = pd.DataFrame({"object_id": [1, 2], "area": [3.0, 4.0], "class_probability": [0.6, 1]})
    assert default_features(table) == ["area"]


def test_a_classifier_on_the_old_default_features_still_loads_and_applies(tmp_path):
    image, labels = synthetic_nuclei((96, 96), density=0.004, channels=1, seed=3)
    table = measure_objects(labels, image, pixel_sizes={"Y": 0.5, "X": 0.5})
    table["kind"] = np.where(table["area"] > table["area"].median(), "big", "small")
    old = ["area", "area_um2", "orientation", "moments_central-2-0", "perimeter"]
    ObjectClassifier.train(table, "kind", features=old, n_estimators=10).save(tmp_path / "c.zip")
    loaded = load_object_classifier(tmp_path / "c.zip")
    assert loaded.features == tuple(old)
    assert (loaded.predict(table) == table["kind"]).mean() > 0.9


def test_circularity_and_extent_of_simple_shapes():
    """Circularity 4π·area/perimeter² with the Crofton perimeter: ~1 for a disc, ~π/4 for a
    square, low for a line (the 4-connected perimeter gave 0.82, 0.97 and 0.88)."""
    labels = np.zeros((300, 300), np.int32)
    yy, xx = np.mgrid[:300, :300]
    labels[(yy - 150) ** 2 + (xx - 150) ** 2 <= 100**2] = 1  # disc
    labels[2:32, 2:32] = 2  # square
    labels[280, 10:100] = 3  # a line
    labels[40:50, 10:14] = labels[46:50, 14:30] = 4  # an L
    table = measure_objects(labels).set_index("label")
    assert table.loc[1, "circularity"] == pytest.approx(1, abs=0.01)
    assert 0.78 < table.loc[2, "circularity"] < 0.92  # π/4 = 0.785; Crofton's corners cut
    assert table.loc[2, "circularity"] > table.loc[4, "circularity"] > table.loc[3, "circularity"]
    assert table.loc[3, "circularity"] < 0.1
    np.testing.assert_allclose(
        table["circularity"], 4 * np.pi * table["area"] / table["perimeter_crofton"] ** 2
    )
    assert table.loc[1, "extent"] == table.loc[1, "area"] / 201**2
    assert table.loc[2, "extent"] == table.loc[3, "extent"] == 1.0
    assert table.loc[4, "extent"] == (40 + 64) / (10 * 20)
