"""A table that does not fit an object classifier is refused with the real cause (newuser
report, finding 8): other channel names, no pixel size, no shape features, no intensities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image
from scopeml.objects.images import array_image
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture(scope="module")
def measured():
    """Objects, a 2-channel image, and a classifier trained on DAPI/GFP intensities, sizes in
    µm and shape features (the objects classed by area)."""
    image, labels = synthetic_nuclei((96, 96), density=0.004, channels=2, seed=11)
    named = Image(
        array_image(image, "CYX").data,
        channel_names=["DAPI", "GFP"],
        pixel_sizes={"Y": 0.5, "X": 0.5},
    )
    table = sm.measure_objects(labels, named)
    assert len(table) >= 4
    table["kind"] = np.where(table["area"] > table["area"].median(), "big", "small")
    kinds = sm.train_object_classifier(table, "kind", n_estimators=5)
    assert "intensity_mean_DAPI" in kinds.features and "area_um2" in kinds.features
    return labels, image, named, table, kinds


def _message(kinds, table: pd.DataFrame) -> str:
    with pytest.raises(InvalidRequestError) as info:
        kinds.classify(table)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_other_channel_names_are_named(measured):
    labels, image, _, _, kinds = measured
    unnamed = sm.measure_objects(labels, image, pixel_sizes={"Y": 0.5, "X": 0.5})  # C0, C1
    assert "intensity_mean_C0" in unnamed.columns
    message = _message(kinds, unnamed)
    n_intensity = sum(f.startswith("intensity_") for f in kinds.features)
    assert (
        f"lacks {n_intensity} of the classifier's {len(kinds.features)} feature columns" in message
    )
    assert "channels DAPI, GFP and the table has channels C0, C1" in message
    assert "measure with the image" not in message  # the table has intensities
    assert "_um" not in message.split(":", 1)[1]  # the sizes in µm are there


def test_no_pixel_size_names_the_um_columns(measured):
    labels, _, named, _, kinds = measured
    plain = Image(named.data, channel_names=["DAPI", "GFP"])  # no pixel size
    table = sm.measure_objects(labels, plain)
    assert not any(c.endswith("_um2") for c in table.columns)
    message = _message(kinds, table)
    assert "area_um2" in message or "… (" in message
    assert "sizes in micrometres (*_um columns) and the table has none" in message
    assert "--pixel-size" in message and "channel" not in message
    assert "shape features" not in message  # feret_diameter_max is there, only its _um is not


def test_no_shape_features_and_no_image_name_both_causes(measured):
    labels, _, _, _, kinds = measured
    table = sm.measure_objects(labels, pixel_sizes={"Y": 0.5, "X": 0.5}, shape_features=False)
    message = _message(kinds, table)
    assert (
        "trained with intensities: measure with the image (image=, --image), channels DAPI, GFP"
        in message
    )
    assert "shape features" in message and "--shape-features" in message
    assert "sizes in micrometres" not in message  # perimeter_um etc. are shape features


def test_a_fitting_table_is_classified(measured):
    labels, _, named, table, kinds = measured
    again = kinds.classify(sm.measure_objects(labels, named))
    assert (again["class"] == table["kind"]).mean() > 0.9


def test_cli_names_the_table_and_the_cause(measured, tmp_path, capsys):
    labels, image, _, _, kinds = measured
    kinds.save(tmp_path / "kinds.zip")
    sm.measure_objects(labels, image, output=tmp_path / "c0.csv")
    code = main(
        ["objects", "classify", str(tmp_path / "kinds.zip"), str(tmp_path / "c0.csv"),
         "-o", str(tmp_path / "out.csv")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and not (tmp_path / "out.csv").exists()
    assert err.startswith(f"error: {tmp_path / 'c0.csv'}: the table lacks ")
    assert "channels C0, C1" in err and "*_um columns" in err
    assert len(err.splitlines()) == 1


def test_a_table_of_3d_objects_is_named_as_such(measured):
    """Eccentricity and Hu moments do not exist in 3-D: "measure with shape features" was
    wrong advice for a Z stack's table measured with them."""
    kinds = measured[-1]
    stack = np.zeros((4, 24, 24), np.int32)
    stack[1:3, 2:9, 2:8], stack[:2, 12:20, 10:22] = 1, 2
    table = sm.measure_objects(stack, pixel_size=0.5)
    message = _message(kinds, table)
    assert message.startswith("the classifier was trained on 2-D objects and the table measures "
                              "3-D objects, whose features differ (it lacks ")  # fmt: skip
    assert message.endswith("train a classifier on 3-D objects") and "shape features" not in message
