"""What the widgets let a user choose: the layer lists follow renames (a reader's ``C0``
renamed ``DAPI`` stays chosen, instead of every button saying no image is open), a 3-D
layer can be read as the frames of a time series, and *Remove class* removes the class
selected, keeping every other stroke its class."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_a_renamed_layer_stays_chosen(viewer):
    import napari
    from scopeml.napari._qt import LayerChoice

    viewer.add_image(np.zeros((8, 8)), name="C0")
    viewer.add_image(np.ones((8, 8)), name="C1")
    choice = LayerChoice(viewer, napari.layers.Image)
    choice.setCurrentText("C1")
    viewer.layers["C1"].name = "GFP"
    assert [choice.itemText(i) for i in range(choice.count())] == ["C0", "GFP"]
    assert choice.currentText() == "GFP" and choice.layer() is viewer.layers["GFP"]
    later = viewer.add_image(np.ones((8, 8)), name="C2")  # added after: followed too
    choice.setCurrentText("C2")
    later.name = "DAPI"
    assert choice.currentText() == "DAPI" and choice.layer() is later


def test_a_new_widget_starts_on_the_selected_image_else_the_latest(viewer):
    """A movie read as Z, then opened again as frames: the widgets take the second."""
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.napari.objects_widget import ObjectsWidget

    viewer.add_image(np.zeros((4, 8, 8)), name="movie")
    frames = viewer.add_image(np.zeros((4, 8, 8)), name="movie (TYX)")
    assert ApplyWidget(viewer).image_choice.layer() is frames
    viewer.layers["movie (TYX)"].visible = False
    viewer.layers.selection.active = viewer.layers["movie"]
    assert ObjectsWidget(viewer).image_choice.layer() is viewer.layers["movie"]


def test_the_apply_widget_runs_on_a_renamed_layer(viewer):
    from scopeml.napari.apply_widget import ApplyWidget

    layer = viewer.add_image(np.zeros((8, 8)), name="C0")
    widget = ApplyWidget(viewer)
    layer.name = "DAPI"
    assert widget.image_choice.layer() is layer


def test_a_movie_added_in_memory_can_be_read_as_frames(viewer, qtbot, tmp_path):
    """A 3-D layer without axis labels reads as Z×Y×X: the *image* row offers T×Y×X, which
    writes the layer's axis labels, so the run labels each frame's nuclei on their own (as
    ``segment(..., axes="TYX")``) instead of joining them across frames."""
    import scopeml as sm
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.objects.images import array_image
    from scopeml.synthetic import realistic_nuclei

    frames = np.stack([realistic_nuclei((128, 128), seed=s)[0][0] for s in (3, 3, 4)])
    layer = viewer.add_image(frames, name="movie")
    other = viewer.add_image(np.zeros((16, 16)), name="plane")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("plane")
    assert widget.axes_choice.isHidden()  # 2-D: nothing to choose
    widget.image_choice.setCurrentText("movie")
    assert not widget.axes_choice.isHidden()
    assert widget.axes_choice.currentText().startswith("Z×Y×X")
    widget.set_model("nuclei")
    widget.instances.setCurrentText("nucleus")
    widget.output.setText(str(tmp_path / "movie.ome.zarr"))
    widget.run()  # as a Z stack first: a run the T×Y×X one must not take for its own
    qtbot.waitUntil(lambda: not widget.busy, timeout=180_000)
    assert "Z×Y×X" in widget.status.text(), widget.status.text()
    widget.axes_choice.setCurrentIndex(1)
    assert tuple(layer.axis_labels) == ("t", "y", "x") and other.axis_labels[-1] == "-1"
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=180_000)
    assert "T×Y×X" in widget.status.text(), widget.status.text()
    instances = viewer.layers["movie instances"]
    shown = np.asarray(instances.data[0] if instances.multiscale else instances.data)
    movie = array_image(frames, "TYX")
    expected = sm.segment(movie, "nuclei", tmp_path / "py.ome.zarr", outputs=("instances",))
    expected = expected.instances.read()[0, :, 0, 0]
    np.testing.assert_array_equal(shown, expected)
    first, second = (set(np.unique(shown[t])) - {0} for t in (0, 1))
    assert first and not first & second  # the same nuclei in two frames: other objects


def test_remove_class_removes_the_selected_one_and_keeps_every_stroke_its_class(viewer):
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    viewer.add_image(np.zeros((16, 16), np.float32), name="img")
    widget = PixelClassifierWidget(viewer)
    widget.image_choice.setCurrentText("img")
    widget.add_class("debris")
    names = [widget.classes.item(i, 0).text() for i in range(3)]
    scribbles = widget.scribbles()
    painted = np.zeros((16, 16), np.uint8)
    painted[0], painted[1], painted[2] = 1, 2, 3
    scribbles.data = painted
    widget.classes.setCurrentCell(1, 0)  # the middle class
    widget._remove_class()
    assert [widget.classes.item(i, 0).text() for i in range(2)] == [names[0], names[2]]
    data = np.asarray(scribbles.data)
    assert (data[0] == 1).all() and (data[1] == 0).all() and (data[2] == 2).all()
    assert widget.status.text() == f"removed class {names[1]} and its 16 painted pixels"
    widget._remove_class()  # two left: kept, said why
    assert widget.classes.rowCount() == 2 and "at least two classes" in widget.status.text()


def test_a_preview_on_an_image_of_other_channels_says_so_in_the_widgets_words(viewer, qtbot):
    """A classifier trained on a one-channel image, previewed on an RGB one: said as train on
    this image or choose the one it was trained on, not with segment's --channels."""
    import scopeml as sm
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    gray = np.zeros((32, 32), np.float32)
    gray[8:20, 8:20] = 5.0
    labels = np.zeros((32, 32), np.uint8)
    labels[0:3], labels[10:14, 10:14] = 1, 2
    viewer.add_image(np.stack([gray] * 3, axis=-1), name="rgb", rgb=True)
    widget = PixelClassifierWidget(viewer)
    widget.model = sm.train_pixel_classifier(gray, labels, n_estimators=2)
    widget.image_choice.setCurrentText("rgb")
    widget.update_preview({"Y": (0, 32), "X": (0, 32)})
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    text = widget.status.text()
    assert text.startswith("error: the classifier takes 1 channel"), text
    assert "rgb has 3 (R, G, B): train on this image" in text and "--channels" not in text


def test_apply_with_a_one_channel_model_reads_the_channel_of_the_layer_chosen(
    viewer, qtbot, tmp_path
):
    """The built-in one-channel ``nuclei`` model applied, channels automatic, to the ``GFP``
    layer of a two-channel file segments that channel (``segment`` alone would take both
    and refuse), the ``DAPI`` layer its own; the status line says which channel was read."""
    import tifffile

    import scopeml as sm
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.synthetic import synthetic_nuclei
    from tests.napari.test_pixel_widget_series import wait_idle

    nuclei = synthetic_nuclei((96, 96), density=0.003, seed=3)[0][0]
    other = synthetic_nuclei((96, 96), density=0.002, seed=4)[0][0]
    path = tmp_path / "two.ome.tif"
    channels = {"Name": ["DAPI", "GFP"]}
    tifffile.imwrite(path, np.stack([other, nuclei]),
                     metadata={"axes": "CYX", "Channel": channels})  # fmt: skip
    viewer.open(str(path), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("GFP")
    widget.set_model("nuclei")
    widget.output.setText(str(tmp_path / "gfp.ome.zarr"))
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    alone = sm.segment(path, "nuclei", tmp_path / "alone.ome.zarr", channels=["GFP"])
    labels = widget.result.labels.read()
    np.testing.assert_array_equal(labels, alone.labels.read())
    assert "(channel GFP, the layer's)" in widget.status.text()
    assert " at scale " in widget.status.text() and "(auto: " in widget.status.text()  # as the CLI

    widget.image_choice.setCurrentText("DAPI")  # the other layer: its own channel
    widget.output.setText(str(tmp_path / "dapi.ome.zarr"))
    widget.run()
    wait_idle(qtbot, widget)
    alone = sm.segment(path, "nuclei", tmp_path / "alone2.ome.zarr", channels=["DAPI"])
    np.testing.assert_array_equal(widget.result.labels.read(), alone.labels.read())
    assert not np.array_equal(alone.labels.read(), labels)


def test_no_result_goes_next_to_a_sample_image_of_an_installed_package(viewer, tmp_path):
    """A file inside an installed package (a sample a package ships) gets a temporary
    folder by default, said in the output's placeholder, not a store in the environment;
    a file elsewhere its ``<stem>.seg.ome.zarr`` beside it."""
    import sysconfig

    import tifffile

    from scopeml.napari.apply_widget import ApplyWidget

    package = Path(sysconfig.get_paths()["purelib"])
    sample = next(package.glob("tifffile/*.py"))  # any file of an installed package
    widget = ApplyWidget(viewer)
    assert widget._beside(_FileLayer(sample)) is None
    mine = tmp_path / "cells.tif"
    tifffile.imwrite(mine, np.zeros((8, 8), np.uint8))
    viewer.open(str(mine), plugin="scopeml")
    assert widget.output_path() == tmp_path / "cells.seg.ome.zarr"


class _FileLayer:
    """What ``_beside`` reads of a layer another reader opened from ``path``."""

    def __init__(self, path: Path) -> None:
        self.metadata: dict = {}
        self.source = type("Source", (), {"path": str(path)})()


def test_choosing_t_y_x_after_the_scribbles_were_made_reads_them_as_time_points(viewer, tmp_path):
    import tifffile

    from scopeml.napari.pixel_widget import PixelClassifierWidget

    viewer.add_image(np.zeros((3, 32, 32), np.float32), name="movie")
    widget = PixelClassifierWidget(viewer)
    widget.image_choice.setCurrentText("movie")
    scribbles = widget.scribbles()  # made at once, as a Z stack's
    assert tuple(scribbles.axis_labels) == ("z", "y", "x")
    scribbles.data[1, 4, 4] = 1
    widget.axes_choice.setCurrentIndex(1)  # T×Y×X, chosen afterwards
    assert tuple(scribbles.axis_labels) == ("t", "y", "x")
    with tifffile.TiffFile(widget.export_scribbles(tmp_path / "s.tif")) as tiff:
        assert tiff.series[0].axes == "TYX"
