"""The pixel classifier widget through a user's session (h152): a widget opened anew takes over
the strokes from the one whose dock was closed; removing a class drops the classifier and
preview of the classes before; imported scribbles are the chosen image's."""

from __future__ import annotations

import numpy as np

from tests.napari.test_pixel_widget_checks import WAIT_MS, paint_two_classes, trained


def blobs(viewer, name: str = "cells"):
    image = np.zeros((48, 56), np.float32)
    image[10:30, 12:40] = 1
    image += np.random.default_rng(0).random(image.shape).astype(np.float32) * 0.2
    return viewer.add_image(image, name=name)


def widget_for(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    widget = PixelClassifierWidget(viewer)
    widget.features.setCurrentText("gaussian_smoothing:1")
    widget.trees.setValue(3)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    return widget


def test_a_widget_opened_anew_takes_over_the_strokes(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES

    blobs(viewer)
    first = widget_for(viewer, qtbot)
    paint_two_classes(viewer.layers[SCRIBBLES])
    first.live.setChecked(True)
    second = widget_for(viewer, qtbot)  # the first's dock closed, the widget opened again
    assert not first.live.isChecked()  # the first one stopped listening
    second.live.setChecked(True)
    viewer.layers[SCRIBBLES].paint((20, 20), 1)  # a stroke on the existing scribbles
    assert second.busy and not first.busy  # was: the closed one retrained, this one never
    qtbot.waitUntil(lambda: not second.busy, timeout=WAIT_MS)
    assert second.model is not None and first.model is None


def test_a_widget_opened_anew_takes_over_the_unsaved_classifier(viewer, qtbot, tmp_path):
    """Closing the dock dropped a classifier nobody saved, without a word: the widget opened
    again uses it, its classes and forest with it; a saved one is left to its file."""
    import gc

    from scopeml.napari.pixel_widget import SCRIBBLES

    blobs(viewer)
    first = widget_for(viewer, qtbot)
    first.set_classes(["dish", "cell"], [None, None])  # names a new widget would not have
    paint_two_classes(viewer.layers[SCRIBBLES])
    assert trained(qtbot, first).startswith("trained")
    model = first.model
    del first
    gc.collect()  # the closed dock's widget is gone
    second = widget_for(viewer, qtbot)
    assert second.model is model and second.class_names() == list(model.spec.classes)
    assert second.status.text().startswith("took over the classifier trained before this dock")
    assert second.trees.value() == 3
    second.save_model(tmp_path / "kept.czseg")
    third = widget_for(viewer, qtbot)
    assert third.model is None  # saved: Load opens its file


def test_removing_a_class_drops_the_classifier_and_preview_of_the_classes_before(viewer, qtbot):
    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES

    blobs(viewer)
    widget = widget_for(viewer, qtbot)
    widget.add_class("debris")
    scribbles = viewer.layers[SCRIBBLES]
    paint_two_classes(scribbles)
    scribbles.data[40:44, 2:10] = 3
    scribbles.selected_label = 3
    assert trained(qtbot, widget).startswith("trained")
    widget.update_preview()
    qtbot.waitUntil(lambda: PREVIEW in viewer.layers and not widget.busy, timeout=WAIT_MS)
    widget.classes.setCurrentCell(2, 0)  # debris
    widget._remove_class()
    assert widget.model is None and PREVIEW not in viewer.layers
    assert widget.status.text() == ("removed class debris and its 32 painted pixels; the "
                                    "classifier and its preview were of the classes before: "
                                    "Train again")  # fmt: skip
    assert scribbles.selected_label == 2 and int(np.asarray(scribbles.data).max()) == 2
    assert trained(qtbot, widget).startswith("trained")
    assert widget.model.spec.classes == ("background", "foreground")


def test_imported_scribbles_are_the_chosen_images(viewer, qtbot, tmp_path):
    from scopeml.napari.pixel_widget import SCRIBBLES

    blobs(viewer, "cells")
    blobs(viewer, "copy")
    viewer.layers.selection.active = viewer.layers["cells"]  # the widget starts on it
    widget = widget_for(viewer, qtbot)
    paint_two_classes(viewer.layers[SCRIBBLES])
    widget.image_choice.setCurrentText("copy")
    qtbot.waitUntil(lambda: "painted on cells, not copy" in widget.status.text(), timeout=10_000)
    exported = widget.export_scribbles(tmp_path / "scribbles.tif")
    widget.import_scribbles(exported)  # the route the warning gives
    said = trained(qtbot, widget)
    assert said.startswith("trained") and "painted on" not in said, said


def test_a_class_added_after_training_and_removed_keeps_the_classifier(viewer, qtbot):
    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES

    blobs(viewer)
    widget = widget_for(viewer, qtbot)
    paint_two_classes(viewer.layers[SCRIBBLES])
    assert trained(qtbot, widget).startswith("trained")
    model = widget.model
    widget.update_preview()
    qtbot.waitUntil(lambda: PREVIEW in viewer.layers and not widget.busy, timeout=WAIT_MS)
    widget.add_class("debris")  # changed its mind before painting any
    widget.classes.setCurrentCell(2, 0)
    widget._remove_class()
    assert widget.model is model and PREVIEW in viewer.layers
    assert widget.status.text() == "removed class debris"
