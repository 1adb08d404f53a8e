"""The pixel classifier widget as a user's trial met it: opened from the Plugins menu (napari
gives each widget a new proxy of the viewer), closed and opened again it takes over the unsaved
classifier and the closed one answers no stroke; live, an undo retrains as a stroke does; the
preview lies under the scribbles; a deleted scribbles layer is said; another image chosen
clears the last error."""

from __future__ import annotations

import numpy as np

from tests.napari.test_pixel_widget_checks import WAIT_MS, paint_two_classes, trained
from tests.napari.test_pixel_widget_lifecycle import blobs


def from_menu(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES

    dock, widget = viewer.window.add_plugin_dock_widget("scopeml", "Pixel classifier")
    assert type(widget.viewer).__name__ == "PublicOnlyProxy"  # what the menu gives
    widget.features.setCurrentText("gaussian_smoothing:1")
    widget.trees.setValue(3)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    return dock, widget


def test_reopened_from_the_menu_it_takes_over_the_classifier_and_the_closed_one_stops(
    viewer, qtbot
):
    from scopeml.napari.pixel_widget import SCRIBBLES

    blobs(viewer)
    dock, first = from_menu(viewer, qtbot)
    first.set_classes(["dish", "cell"], [None, None])  # names a new widget would not have
    first.min_leaf.setValue(2)
    paint_two_classes(viewer.layers[SCRIBBLES])
    assert trained(qtbot, first).startswith("trained")
    first.live.setChecked(True)
    model = first.model
    viewer.window.remove_dock_widget(dock)  # the dock's close button
    _, second = from_menu(viewer, qtbot)
    assert second.model is model  # was: a fresh widget, the classifier lost
    assert second.class_names() == ["dish", "cell"]
    assert (second.trees.value(), second.min_leaf.value()) == (3, 2)
    assert second.status.text().startswith("took over the classifier trained before this dock")
    assert not first.live.isChecked()
    viewer.layers[SCRIBBLES].paint((20, 20), 1)  # a stroke
    assert not first.busy  # was: the closed widget retrained where nobody saw it


def test_a_closed_widget_stops_listening_though_none_is_opened_again(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES

    blobs(viewer)
    dock, widget = from_menu(viewer, qtbot)
    paint_two_classes(viewer.layers[SCRIBBLES])
    widget.live.setChecked(True)
    viewer.window.remove_dock_widget(dock)
    viewer.layers[SCRIBBLES].paint((20, 20), 1)
    assert not widget.busy and not widget.live.isChecked()


def test_live_an_undo_retrains_without_the_stroke_undone(viewer, qtbot, monkeypatch):
    from scopeml.napari import pixel_widget
    from scopeml.napari.pixel_widget import SCRIBBLES

    blobs(viewer)
    _, widget = from_menu(viewer, qtbot)
    scribbles = viewer.layers[SCRIBBLES]
    paint_two_classes(scribbles)
    widget.live.setChecked(True)
    scribbles.brush_size = 3
    scribbles.paint((20, 30), 1)  # a stroke, with its undo step
    qtbot.waitUntil(lambda: not widget.busy and widget.model is not None, timeout=WAIT_MS)
    painted = int(widget.model.info["n_samples"])
    assert painted == int(np.count_nonzero(scribbles.data))
    scribbles.undo()  # Ctrl-Z: napari sends no paint event for it
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert int(widget.model.info["n_samples"]) == 4 * 18 + 4 * 30 < painted
    scribbles.redo()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert int(widget.model.info["n_samples"]) == painted
    model = widget.model
    scribbles.refresh()  # a refresh changing nothing trains nothing
    assert not widget.busy and widget.model is model
    sums = []  # nor checksums the scribbles again: a slider step sends set_data on each tick
    monkeypatch.setattr(pixel_widget, "_digest", lambda data: sums.append(1) or (0, 0))
    for _ in range(3):
        scribbles.refresh()
    assert sums == [] and widget.model is model


def test_the_preview_lies_under_the_scribbles(viewer, qtbot):
    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES

    blobs(viewer)
    _, widget = from_menu(viewer, qtbot)
    paint_two_classes(viewer.layers[SCRIBBLES])
    assert trained(qtbot, widget).startswith("trained")
    widget.update_preview()
    qtbot.waitUntil(lambda: PREVIEW in viewer.layers and not widget.busy, timeout=WAIT_MS)
    names = [layer.name for layer in viewer.layers]
    assert names == ["cells", PREVIEW, SCRIBBLES]  # was: the preview on top, hiding strokes
    assert viewer.layers.selection.active.name == SCRIBBLES


def test_a_removed_scribbles_layer_made_anew_is_said(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES

    blobs(viewer)
    _, widget = from_menu(viewer, qtbot)
    paint_two_classes(viewer.layers[SCRIBBLES])
    viewer.layers.remove(SCRIBBLES)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    assert not np.any(viewer.layers[SCRIBBLES].data)
    assert widget.status.text() == (
        "the scribbles layer was removed: a new empty one was made (Import scribbles… brings "
        "back exported ones)"
    )


def test_another_image_chosen_clears_the_error_of_the_one_before(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES
    from tests.napari.test_pixel_widget_checks import two_images

    widget = two_images(viewer)
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    assert trained(qtbot, widget).startswith("error:")  # nothing painted
    widget.image_choice.setCurrentText("hela")
    qtbot.waitUntil(lambda: widget.status.text() == "paint scribbles, then Train", timeout=5_000)
    widget.status.setText("error: something of hela")
    viewer.add_points(name="marks")  # the layer list changes, the image chosen does not
    qtbot.wait(100)
    assert widget.status.text() == "error: something of hela"
