"""What a new user passes to the facade: arrays, a name as one string, a store by its path.

Each test is a call from the walk through the README that failed before (a raw TypeError, a
store named ``.tif``, a table name refused only after the whole run, a segment store read as
its first array).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import IncompleteOutputError, InvalidImageError, InvalidRequestError
from scopeml.model.spec import ModelSpec
from tests.test_facade import Threshold  # foreground above 5 in the first channel


def _cells() -> np.ndarray:
    """A 12×16 plane with two bright cells (values 7 and 9)."""
    plane = np.zeros((12, 16), np.uint16)
    plane[1:4, 1:4] = 9
    plane[6:10, 8:14] = 7
    return plane


@pytest.mark.parametrize(
    ("shape", "six", "scene"),
    [
        ((12, 16), (1, 1, 1, 1, 12, 16), None),  # Y×X: one channel
        ((1, 12, 16), (1, 1, 1, 1, 12, 16), None),  # C×Y×X
        ((1, 3, 12, 16), (1, 1, 1, 3, 12, 16), None),  # C×Z×Y×X
        ((1, 2, 1, 1, 12, 16), (1, 2, 1, 1, 12, 16), None),  # S×T×C×Z×Y×X
        ((2, 1, 1, 1, 12, 16), (2, 1, 1, 1, 12, 16), 1),  # one scene of two
    ],
)
def test_segment_takes_an_array_as_train_pixel_classifier_does(tmp_path, shape, six, scene):
    pixels = np.broadcast_to(_cells(), shape).copy()
    if pixels.size > 12 * 16:
        pixels.reshape(-1, 12, 16)[0] = 0  # the first scene, time point or plane is empty
    six = pixels.reshape(six)
    seg = sm.segment(
        pixels, Threshold(), tmp_path / "a.ome.zarr", scene=scene, measure=tmp_path / "a.csv"
    )
    whole = sm.segment(
        sm.Image(six), Threshold(), tmp_path / "i.ome.zarr", scene=scene, measure=tmp_path / "i.csv"
    )
    taken = six[scene : scene + 1] if scene is not None else six
    assert seg.labels.shape == (1, *taken.shape[1:2], 1, *taken.shape[3:])
    np.testing.assert_array_equal(seg.labels.read(), whole.labels.read())
    np.testing.assert_array_equal(seg.labels.read()[:, :, 0] == 2, taken[:, :, 0] > 5)
    table = pd.read_csv(tmp_path / "a.csv")  # measured against the array itself
    pd.testing.assert_frame_equal(table, pd.read_csv(tmp_path / "i.csv"))
    assert sorted(table["intensity_mean_C0"].unique()) == [7, 9]


def test_a_scene_an_array_lacks_is_refused_as_a_files_is(tmp_path):
    """``scene=3`` of a one-scene array was ignored (the plane segmented as if asked)."""
    with pytest.raises(InvalidRequestError, match="scene 3 does not exist; the image has 1"):
        sm.segment(_cells(), Threshold(), tmp_path / "a.ome.zarr", scene=3)
    assert not (tmp_path / "a.ome.zarr").exists()
    with pytest.raises(InvalidRequestError, match="scene 5 does not exist; the image has 1"):
        sm.predict_region(_cells(), Threshold(), scene=5)
    np.testing.assert_array_equal(
        sm.predict_region(_cells(), Threshold(), scene=0), sm.predict_region(_cells(), Threshold())
    )


def test_segment_refuses_an_array_of_unknown_axes(tmp_path):
    with pytest.raises(InvalidImageError, match=r"shape \(1, 1, 1, 12, 16\) has 5 axes; expected"):
        sm.segment(np.zeros((1, 1, 1, 12, 16)), Threshold(), tmp_path / "a.ome.zarr")


def test_segment_takes_one_output_or_channel_as_a_string(tmp_path):
    image = sm.Image(_cells()[None, None, None, None], channel_names=["DAPI"])
    seg = sm.segment(image, Threshold(), tmp_path / "a.ome.zarr", outputs="labels,confidence")
    assert seg.outputs == ("labels", "confidence")
    one = sm.segment(image, Threshold(), tmp_path / "b.ome.zarr", outputs="labels", channels="DAPI")
    assert one.outputs == ("labels",)
    np.testing.assert_array_equal(one.labels.read(), seg.labels.read())


def test_segment_refuses_bad_output_names_before_any_work(tmp_path):
    image = _cells()
    with pytest.raises(InvalidRequestError, match=r"not a \.tif file; name it out\.ome\.zarr"):
        sm.segment(image, Threshold(), tmp_path / "out.tif")
    with pytest.raises(InvalidRequestError, match=r"unknown table format '\.txt'"):
        sm.segment(image, Threshold(), tmp_path / "out.ome.zarr", measure=tmp_path / "n.txt")
    assert list(tmp_path.iterdir()) == []  # nothing was run, nothing written


def test_object_steps_read_a_segment_store_by_its_path(tmp_path):
    store = tmp_path / "seg.ome.zarr"
    seg = sm.segment(_cells(), Threshold(), store, outputs=("labels", "instances"))
    by_path = sm.label_objects(str(store), tmp_path / "a.ome.zarr", class_="cell")
    by_seg = sm.label_objects(seg, tmp_path / "b.ome.zarr", class_="cell")
    np.testing.assert_array_equal(by_path.read(), by_seg.read())
    assert by_path.read().max() == 2
    table = sm.measure_objects(store, _cells())  # its instances, as for the Segmentation
    pd.testing.assert_frame_equal(table, sm.measure_objects(seg, _cells()))
    assert table["area"].tolist() == [9, 24]

    out = tmp_path / "t.csv"
    assert main(["objects", "measure", str(store), "-o", str(out), "-q"]) == 0
    assert pd.read_csv(out)["area"].tolist() == [9, 24]
    out = tmp_path / "c.ome.zarr"
    assert main(["objects", "label", str(store), "-o", str(out), "--class", "cell", "-q"]) == 0
    for source, out in ((store, "p.ome.zarr"), (store / "labels", "q.ome.zarr")):
        args = ["post", str(source), "--step", "opening:1", "-o", str(tmp_path / out), "-q"]
        assert main(args) == 0  # the store was "no NGFF metadata"
    with pytest.raises(InvalidImageError, match=r"segment store: open one of its outputs \(its"):
        sm.open_image(store)  # it said only "no NGFF metadata …; members: ['labels']"
    np.testing.assert_array_equal(
        sm.open_image(tmp_path / "p.ome.zarr" / "labels").read(),  # post keeps the output's name
        sm.open_image(tmp_path / "q.ome.zarr" / "labels").read(),
    )


def test_pixel_classifier_takes_a_plane_and_a_channel_first_stack():
    plane = _cells().astype(np.float32)
    scribbles = np.zeros(plane.shape, np.uint8)
    scribbles[0, :] = 1
    scribbles[7, 9:12] = 2
    flat = sm.train_pixel_classifier(
        plane, scribbles, features="gaussian_smoothing:1", n_estimators=5
    )
    assert flat.spec.spatial_dims == 2 and flat.spec.in_channels == 1
    stack = np.stack([plane] * 3)[None]  # C×Z×Y×X
    deep = sm.train_pixel_classifier(
        stack, np.stack([scribbles] * 3), features="gaussian_smoothing:1", n_estimators=5
    )
    assert deep.spec.spatial_dims == 3
    assert deep.predict(stack[None]).argmax(1)[0, 1, 8, 10] == 1


class ThreeClasses(Threshold):
    """Background, a seam and two object classes (bright and dim)."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "bright", "dim", "boundary"),
                     halo=(0, 0))  # fmt: skip

    def predict(self, batch: np.ndarray) -> np.ndarray:
        bright, dim = (batch[:, :1] > 8), (batch[:, :1] > 5) & (batch[:, :1] <= 8)
        edge = np.zeros_like(bright)
        return np.concatenate([~(bright | dim), bright, dim, edge], axis=1).astype(np.float32)


def test_labelling_class_labels_takes_their_one_object_class(tmp_path, capsys):
    """As the instances choose it: the one class neither background nor boundary; with more,
    the class must be named (was one object: the whole image)."""
    store = tmp_path / "seg.ome.zarr"
    seg = sm.segment(_cells(), Threshold(), store)
    chosen = sm.label_objects(seg, tmp_path / "a.ome.zarr").read()
    np.testing.assert_array_equal(chosen, sm.label_objects(seg, tmp_path / "n.ome.zarr",
                                                           class_="cell").read())  # fmt: skip
    assert chosen.max() == 2
    assert main(["objects", "label", str(store), "-o", str(tmp_path / "b.ome.zarr"), "-q"]) == 0
    several = sm.segment(_cells(), ThreeClasses(), tmp_path / "three.ome.zarr")
    with pytest.raises(InvalidRequestError, match=r"classes bg, bright, dim, boundary .* choose"):
        sm.label_objects(several, tmp_path / "c.ome.zarr")
    three = str(tmp_path / "three.ome.zarr")
    assert main(["objects", "label", three, "-o", str(tmp_path / "d.ome.zarr"), "-q"]) == 2
    assert "choose the class to label" in capsys.readouterr().err
    mask = sm.label_objects(seg.labels.read() == 2, tmp_path / "e.ome.zarr")  # a mask: fine
    assert mask.read().max() == 2


def test_classifying_without_the_intensities_it_was_trained_on_says_so(tmp_path):
    objects = sm.label_objects(_cells() > 5, tmp_path / "o.ome.zarr")
    table = sm.measure_objects(objects, _cells())
    table["kind"] = ["small", "big"]
    kinds = sm.train_object_classifier(table, "kind", n_estimators=5)
    with pytest.raises(InvalidRequestError, match=r"trained with intensities: measure with the"):
        sm.classify_objects(objects, kinds)  # no image=
    assert sm.classify_objects(objects, kinds, image=_cells())["class"].tolist() == [
        "small", "big",
    ]  # fmt: skip


def test_output_names_and_the_normalize_default_are_told_right(tmp_path, capsys):
    with pytest.raises(
        InvalidRequestError,
        match=r"unknown outputs 'label', 'instance' \(did you mean 'labels', 'instances'\?\); "
        r"choose from .*instances",
    ):
        sm.segment(_cells(), Threshold(), tmp_path / "a.ome.zarr", outputs=("label", "instance"))
    assert main(["segment", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "default: the policy the model records" in shown  # not "raw values, default"


def test_classify_reads_a_built_in_model_name(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", _cells())
    args = ["classify", str(tmp_path / "a.tif"), "-m", "nuclei", "-o", str(tmp_path / "a.csv")]
    assert main(args) == 2  # was: "nuclei: No such file or directory"
    assert "model is not a classifier; run it with scopeml segment" in capsys.readouterr().err


def test_measuring_class_labels_as_objects_is_refused(tmp_path, capsys):
    store = tmp_path / "seg.ome.zarr"
    seg = sm.segment(_cells(), Threshold(), store)
    for labels in (seg, seg.labels, store, store / "labels"):
        with pytest.raises(InvalidRequestError, match="these are class labels, not objects"):
            sm.measure_objects(labels, _cells())  # was a row per class
    assert main(["objects", "measure", str(store / "labels"), "-o", str(tmp_path / "t.csv")]) == 2
    assert "label a class's objects first" in capsys.readouterr().err


def test_an_existing_output_names_the_command_line_flag(tmp_path, capsys):
    store = tmp_path / "seg.ome.zarr"
    sm.segment(_cells(), Threshold(), store)
    for args in (
        ["objects", "label", str(store), "--class", "cell", "-o", str(tmp_path / "o.ome.zarr")],
        ["post", str(store / "labels"), "--step", "opening:1", "-o", str(tmp_path / "p.ome.zarr")],
    ):
        assert main([*args, "-q"]) == 0
        assert main([*args, "-q"]) == 2
        assert "pass --overwrite (overwrite=True) to replace it" in capsys.readouterr().err


def test_converting_a_missing_file_says_so_first(tmp_path, capsys):
    missing = tmp_path / "unet.onnx"
    assert main(["model", "convert", str(missing), "-o", str(tmp_path / "m.czann")]) == 2
    assert capsys.readouterr().err == f"error: {missing}: no such file or folder\n"


def test_a_z_stack_array_without_a_channel_axis_is_told_how_to_pass_it(tmp_path):
    from scopeml.errors import IncompatibleModelError

    stack = np.stack([_cells()] * 3)  # Z×Y×X, read as three channels
    with pytest.raises(
        IncompatibleModelError, match=r"3 channels; .* a Z stack is axes='ZYX' or Z\[None\]"
    ):
        sm.segment(stack, Threshold(), tmp_path / "a.ome.zarr")
    assert sm.segment(stack[None], Threshold(), tmp_path / "b.ome.zarr").labels.sizes["Z"] == 3


def test_resuming_a_finished_run_does_nothing_and_another_run_is_named(tmp_path):
    # a finished run resumed is not an error (a script that always resumes can be rerun);
    # another run's store is refused naming what differs, not as "complete"
    sm.segment(_cells(), Threshold(), tmp_path / "a.ome.zarr")
    assert sm.segment(_cells(), Threshold(), tmp_path / "a.ome.zarr", resume=True).already_complete
    with pytest.raises(IncompleteOutputError, match=r"different run: options\.tile_size"):
        sm.segment(_cells(), Threshold(), tmp_path / "a.ome.zarr", resume=True, tile_size=4)


def test_an_intensity_array_is_read_against_the_labels_or_refused_saying_how():
    objects = np.zeros((12, 16), np.uint16)
    objects[1:4, 1:4], objects[6:10, 8:14] = 1, 2
    cells = _cells()
    plane = sm.measure_objects(objects, cells)
    six = sm.measure_objects(objects, cells[None, None, None, None])  # S×T×C×Z×Y×X, as segment
    pd.testing.assert_frame_equal(plane, six)
    assert plane["intensity_mean_C0"].tolist() == [9, 7]
    with pytest.raises(InvalidImageError) as err:
        sm.measure_objects(objects, np.zeros((2, 2, 12, 16)))
    message = str(err.value)
    assert "(2, 2, 12, 16)" in message and "2-D labels; expected Y×X or C×Y×X" in message


def test_one_channel_index_is_one_channel_and_a_bad_outputs_value_is_one_line(tmp_path):
    two = np.stack([np.zeros_like(_cells()), _cells()])  # C×Y×X: the cells in channel 1
    seg = sm.segment(two, Threshold(), tmp_path / "a.ome.zarr", channels=1)  # was a TypeError
    listed = sm.segment(two, Threshold(), tmp_path / "b.ome.zarr", channels=[1])
    np.testing.assert_array_equal(seg.labels.read(), listed.labels.read())
    assert seg.labels.read().max() == 2
    with pytest.raises(InvalidRequestError, match="unknown outputs 3; choose from labels"):
        sm.segment(_cells(), Threshold(), tmp_path / "c.ome.zarr", outputs=3)
    with pytest.raises(InvalidRequestError) as told:
        sm.segment(_cells(), Threshold(), tmp_path / "c.ome.zarr", outputs=["foo"])
    assert str(told.value).endswith(
        "unknown outputs 'foo'; choose from labels, probabilities, confidence, mask, instances "
        "(a Regression model's: image)"
    )
    with pytest.raises(InvalidRequestError, match=r"no outputs; choose from labels, .*instances"):
        sm.segment(_cells(), Threshold(), tmp_path / "d.ome.zarr", outputs=[])
    with pytest.raises(InvalidRequestError, match=r"unknown output 'foo'; choose from .*instances"):
        sm.predict_region(_cells(), Threshold(), outputs="foo")  # it makes instances too


def test_the_z_stack_hint_is_given_only_where_a_stack_may_have_been_read_as_channels(tmp_path):
    from scopeml.errors import IncompatibleModelError

    class ThreeChannels(Threshold):
        spec = ModelSpec(spatial_dims=2, in_channels=3, classes=("bg", "cell"), halo=(0, 0))

    no_hint = r"1 channel; model '' expects 3: give an image with 3 \(this one has C0\)$"
    with pytest.raises(IncompatibleModelError, match=no_hint):
        sm.segment(_cells(), ThreeChannels(), tmp_path / "a.ome.zarr")  # a plane: no Z hint
    with pytest.raises(IncompatibleModelError, match=r"a Z stack is axes='ZYX' or Z\[None\]"):
        sm.segment(np.stack([_cells()] * 4), ThreeChannels(), tmp_path / "b.ome.zarr")


def test_workers_minus_one_means_every_core_in_segment_too(tmp_path):
    """``train_pixel_classifier(workers=-1)`` took every core; ``segment`` refused -1."""
    import os

    from scopeml.tiling.options import SegmentOptions

    assert SegmentOptions(workers=-1).workers == (os.cpu_count() or 1)
    seg = sm.segment(_cells(), Threshold(), tmp_path / "a.ome.zarr", workers=-1)
    one = sm.segment(_cells(), Threshold(), tmp_path / "b.ome.zarr", workers=1)
    np.testing.assert_array_equal(seg.labels.read(), one.labels.read())
    with pytest.raises(InvalidRequestError, match="-1 for every core"):
        SegmentOptions(workers=-2)
