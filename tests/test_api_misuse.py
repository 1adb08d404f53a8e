"""The flat API used as a notebook user slips: one value where a list goes, forest settings
scikit-learn would refuse deep in a fit, swapped arguments, a channels-last array, a missing
table or settings file, settings without a segmenter's kind. Each is one ScopeMLError line
naming the problem, or is taken as the command line takes it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.errors import (
    InputNotFoundError,
    InvalidImageError,
    InvalidLabelsError,
    InvalidRequestError,
    ScopeMLError,
)
from scopeml.inputs import image_of_array


@pytest.fixture
def scribbled() -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(0).normal(size=(1, 48, 48)).astype(np.float32)
    image[:, 16:32, 16:32] += 4
    labels = np.zeros((48, 48), np.uint8)
    labels[:4] = 1
    labels[20:28, 20:28] = 2
    return image, labels


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"n_estimators": 0}, "n_estimators must be 1 or more; got 0"),
        ({"max_depth": -1}, "max_depth must be 1 or more; got -1"),
        ({"min_samples_leaf": 0}, "min_samples_leaf must be 1 or more; got 0"),
        ({"workers": 0}, "workers must be 1 or more, or -1 (every core); got 0"),
        ({"n_estimators": 2.5}, "n_estimators must be a whole number; got 2.5"),
    ],
)
def test_forest_settings_are_refused_before_any_work(scribbled, given, said):
    with pytest.raises(InvalidRequestError) as caught:
        sm.train_pixel_classifier(*scribbled, features="gaussian_smoothing:1", **given)
    assert str(caught.value) == said


def test_class_names_and_channels_given_as_one_text_are_the_command_lines_list(scribbled):
    image, labels = scribbled
    clf = sm.train_pixel_classifier(
        image, labels, classes="bg, cell", features="gaussian_smoothing:1",
        n_estimators=np.int64(3),
    )  # fmt: skip
    assert clf.spec.classes == ("bg", "cell")
    two = np.concatenate([image, image * 2])
    by_index = sm.predict_region(two, clf, channels=1)  # one index, not a list of one
    by_list = sm.predict_region(two, clf, channels=[1])
    np.testing.assert_array_equal(by_index, by_list)
    assert not np.array_equal(by_index, sm.predict_region(two, clf, channels="C0"))


def test_object_classifier_misuse_is_one_line():
    table = pd.DataFrame({"area": np.arange(20) * 1.5, "round": np.arange(20) % 3,
                          "kind": ["a", "b"] * 10})  # fmt: skip
    with pytest.raises(InvalidLabelsError, match="column 'area' holds measurements"):
        sm.train_object_classifier(table, "area")
    with pytest.raises(InvalidRequestError, match=r"must be a pandas DataFrame .* not list"):
        sm.train_object_classifier([{"area": 1, "kind": "a"}], "kind")
    with pytest.raises(InvalidRequestError, match="workers must be 1 or more"):
        sm.train_object_classifier(table, "kind", workers=0)
    clf = sm.train_object_classifier(table, "kind", features="area, round", n_estimators=3)
    assert clf.features == ("area", "round")  # not letter by letter
    codes = table.assign(code=(table["area"] > 10).astype(float))  # whole numbers: classes
    assert sm.train_object_classifier(codes, "code", n_estimators=3).classes == ("0", "1")
    pixels = pd.concat([table] * 3, ignore_index=True).assign(pixels=np.arange(60) * 7)
    with pytest.raises(InvalidLabelsError, match=r"'pixels' holds measurements \(60 different"):
        sm.train_object_classifier(pixels, "pixels")  # whole numbers, one per object: areas
    with pytest.raises(InvalidLabelsError, match=r"features: no column 'Area' in the table "
                       r"\(did you mean 'area'\?\)"):  # fmt: skip
        sm.train_object_classifier(table, "kind", features=["Area", "round"])
    with pytest.raises(InvalidRequestError, match=r"objects come first, then the classifier"):
        sm.classify_objects(clf, table)


def test_missing_table_and_settings_files_are_scopeml_errors_and_file_not_found(tmp_path):
    with pytest.raises(InputNotFoundError) as caught:
        sm.train_object_classifier(tmp_path / "nope.csv", "kind")
    assert isinstance(caught.value, FileNotFoundError)
    assert str(caught.value) == f"{tmp_path / 'nope.csv'}: no such file"
    with pytest.raises(InputNotFoundError, match=r"no such file$"):
        sm.analyze(tmp_path / "nope.yaml", tmp_path, tmp_path / "results")
    segmenter = {"kind": "threshold", "channel": "C0"}
    settings = {
        "version": 1,
        "channels": ["C0"],
        "classes": [{"name": "n", "segmenter": segmenter}],
    }
    with pytest.raises(InputNotFoundError, match="no such file or folder"):
        sm.analyze(settings, tmp_path / "no images", tmp_path / "results")
    with pytest.raises(InvalidRequestError, match="not ndarray: each image's results are named"):
        sm.analyze(settings, [np.zeros((8, 8))], tmp_path / "results")


@pytest.mark.parametrize(
    ("segmenter", "said"),
    [
        ({"model": "nuclei"}, "classes[0].segmenter: no kind: key; give one of threshold, model"),
        ({"kind": "modle"}, "kind: 'modle' is not one of threshold, model, instances, grow (did "),
    ],
)
def test_a_segmenters_kind_missing_or_misspelt_is_said_with_the_kinds(tmp_path, segmenter, said):
    settings = {
        "version": 1,
        "channels": ["C0"],
        "classes": [{"name": "n", "segmenter": segmenter}],
    }
    with pytest.raises(ScopeMLError) as caught:
        sm.analyze(settings, tmp_path, tmp_path / "results")
    assert said in str(caught.value)
    assert "discriminator" not in str(caught.value)


def test_swapped_or_missing_arguments_name_what_was_given(tmp_path):
    with pytest.raises(InvalidImageError, match=r"not OnnxModel \(the image comes first"):
        sm.predict_region(sm.open_model("nuclei"), np.zeros((8, 8), np.float32))
    with pytest.raises(InvalidRequestError, match="label_objects writes the objects into a store"):
        sm.label_objects(np.ones((8, 8), np.uint8), None)


def test_a_channels_last_rgb_array_is_warned_of_with_the_axes_to_give():
    rgb = np.zeros((32, 32, 3), np.uint8)
    with pytest.warns(UserWarning, match=r"\(32, 32, 3\) is read as C×Y×X .* needs axes='YXC'"):
        image_of_array(rgb)
    assert image_of_array(rgb, axes="YXC").sizes["C"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image_of_array(np.zeros((3, 32, 32)))  # C×Y×X: nothing to say


def test_train_pixel_classifier_takes_the_command_lines_channels_and_scene():
    """``channels=``/``scene=`` as ``pixel train --channels/--scene``; the channels' names are
    kept, so ``predict_region`` of the whole image reads the channel trained on."""
    rng = np.random.default_rng(3)
    cells = np.zeros((24, 24), np.float32)
    cells[6:18, 6:18] = 10
    noise = rng.normal(0, 3, (24, 24)).astype(np.float32)
    two = np.stack([noise, cells + rng.normal(0, 0.5, (24, 24)).astype(np.float32)])
    scribbles = np.zeros((24, 24), np.uint8)
    scribbles[0, :], scribbles[12, 8:16] = 1, 2
    fast = {"features": "gaussian_smoothing:1", "n_estimators": 5, "classes": ["bg", "cell"]}
    clf = sm.train_pixel_classifier(two, scribbles, channels=1, **fast)
    assert clf.spec.in_channels == 1 and clf.info["channels"] == ["C1"]
    with pytest.warns(UserWarning, match=r"on channel C1: using the image's C1 \(of its C0, C1"):
        whole = sm.predict_region(two, clf)
    np.testing.assert_array_equal(whole, sm.predict_region(two[1:], clf))
    assert (whole[6:18, 6:18] == 2).mean() > 0.9
    from scopeml.predict import region_normalization

    both = region_normalization(
        sm.Image(two[None, None, :, None]), clf, normalize="percentile:1,99"
    )
    with pytest.raises(InvalidRequestError, match=r"normalization= is of 2 channels; the model "
                       r"reads 1 \(C1\): compute it"):  # fmt: skip
        sm.predict_region(two, clf, normalization=both, normalize="percentile:1,99")
    scenes = np.stack([np.zeros_like(two), two])[:, None]  # S×T×C×Y×X ... as 6-D below
    by_scene = sm.train_pixel_classifier(scenes[:, :, :, None], scribbles, scene=1,
                                         channels="C1", **fast)  # fmt: skip
    np.testing.assert_array_equal(sm.predict_region(two[1:], by_scene), whole)


def test_an_output_a_run_did_not_write_is_absent_to_hasattr(tmp_path):
    """``hasattr(seg, "instances")`` raised InvalidRequestError, not False."""
    from scopeml.errors import InvalidRequestError, MissingOutputError

    image = np.zeros((32, 32), np.uint16)
    image[8:16, 8:16] = 1000
    seg = sm.segment(image, "nuclei", tmp_path / "a.ome.zarr", progress=False)
    assert seg.outputs == ("labels",)
    assert hasattr(seg, "labels") and not hasattr(seg, "instances")
    assert not hasattr(seg, "probabilities")
    with pytest.raises(MissingOutputError, match="no 'instances' output; this run wrote labels"):
        seg.instances  # noqa: B018
    assert issubclass(MissingOutputError, InvalidRequestError)  # the CLI's one-line error


def test_features_given_as_a_list_say_to_give_one_spec(scribbled):
    """``features=["basic25"]`` read as the text "['basic25']" (did you mean 'basic25'?)."""
    image, labels = scribbled
    with pytest.raises(InvalidRequestError, match=r"features are one spec, not a list: give "
                       r"'basic25' \(a preset"):  # fmt: skip
        sm.train_pixel_classifier(image, labels, features=["basic25"])
