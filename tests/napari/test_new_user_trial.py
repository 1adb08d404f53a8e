"""What a new user's trial of the plugin found: docks taller than the screen, Apply's instances
not offered to Objects, a guessed Z stack said twice (the second time in the command line's
words), int64 scribbles that would not export, deep features refused for a Z stack in the
library's words, a stale status after the image was removed, and a class not named
background painted over the whole image on the preview."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from tests.napari.test_pixel_widget_checks import WAIT_MS, paint_two_classes, trained
from tests.napari.test_pixel_widget_lifecycle import blobs, widget_for

pytest.importorskip("napari", reason="napari is not installed (pip install 'scopeml[napari]')")


def docked(viewer, name: str):
    return viewer.window.add_plugin_dock_widget("scopeml", name)[1]


@pytest.fixture
def stack(tmp_path):
    """A plain TIFF of 6 pages (no metadata: its pages of unknown kind are read as Z)."""
    rng = np.random.default_rng(4)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, rng.integers(0, 4000, (6, 40, 48)).astype(np.uint16))
    return path


def test_the_docks_fit_on_the_screen(viewer, qtbot):
    """The docks' minimum heights added up: Pixel, Apply and Objects docked grew a 1600×1000
    window to 1600×1345; the Pixel dock was 532 px wide (four file buttons in a row)."""
    viewer.add_image(np.zeros((60, 64, 64), np.uint16), name="planes")  # the axes choice shows
    window = viewer.window._qt_window
    window.resize(1600, 1000)
    window.show()
    names = ["Pixel classifier", "Apply model", "Objects", "Analysis settings"]
    widgets = {name: docked(viewer, name) for name in names}
    qtbot.wait(200)
    assert window.height() <= 1000, window.size()
    for name, widget in widgets.items():
        assert widget.minimumSizeHint().height() < 200, (name, widget.minimumSizeHint())
    assert widgets["Pixel classifier"].minimumSizeHint().width() < 400


def test_the_pixel_widgets_class_table_does_not_stretch(viewer, qtbot):
    """A tall dock made the classes table a big empty grey area, and the importances ~4 lines."""
    viewer.add_image(np.zeros((64, 64), np.uint16), name="plane")
    widget = docked(viewer, "Pixel classifier")
    viewer.window._qt_window.resize(1600, 1400)
    viewer.window._qt_window.show()
    qtbot.wait(200)
    rows = widget.classes.verticalHeader().length() + widget.classes.horizontalHeader().height()
    assert widget.classes.height() < rows + 150, (widget.classes.height(), rows)
    lines = widget.importances.fontMetrics().lineSpacing()
    assert widget.importances.height() >= 5 * lines


def test_apply_instances_become_the_objects_choice(viewer, qtbot, tmp_path):
    """Apply adds its class labels, then the instances: the class labels stayed chosen, and
    Measure said "these are class labels, not objects"."""
    from scopeml.synthetic import realistic_nuclei

    pixels = realistic_nuclei((128, 128), seed=3)[0][0]
    viewer.add_image(np.clip(pixels / pixels.max() * 4000 + 100, 0, 65535).astype(np.uint16),
                     name="cells")  # fmt: skip
    objects = docked(viewer, "Objects")
    apply = docked(viewer, "Apply model")
    apply.image_choice.setCurrentText("cells")
    apply.set_model("nuclei")
    apply.output.setText(str(tmp_path / "cells.ome.zarr"))
    apply.instances.setCurrentText("nucleus")
    apply.run()
    qtbot.waitUntil(lambda: not apply.busy, timeout=WAIT_MS)
    assert apply.status.text().startswith("wrote"), apply.status.text()
    assert objects.labels_choice.currentText() == "cells instances"
    objects.measure()
    qtbot.waitUntil(lambda: not objects.busy, timeout=WAIT_MS)
    assert objects.status.text().endswith("objects measured"), objects.status.text()


def test_a_guessed_z_stack_is_said_once_in_the_guis_words(viewer, qtbot, stack):
    """The reader's note, then docking the Pixel classifier said it again as the command
    line does ("pass --axes TYX or --axes CYX (Python: …)"), and Apply's status too."""
    from scopeml.napari.pixel_widget import SCRIBBLES

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (layer,) = viewer.open(str(stack), plugin="scopeml")
        widget = docked(viewer, "Pixel classifier")
        qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
        widget.features.setCurrentText("gaussian_smoothing:1")
        widget.trees.setValue(3)
        viewer.layers[SCRIBBLES].data[2, 2:6, 2:20] = 1
        viewer.layers[SCRIBBLES].data[2, 30:34, 10:40] = 2
        assert trained(qtbot, widget).startswith("trained"), widget.status.text()
        apply = docked(viewer, "Apply model")  # its run reopens the file: not said again
        apply.image_choice.setCurrentText(layer.name)
        apply.set_model("nuclei")
        apply.run()
        qtbot.waitUntil(lambda: not apply.busy, timeout=WAIT_MS)
    said = [str(w.message) for w in caught if "pages" in str(w.message)]
    assert said == [layer.metadata["scopeml"]["note"]], said
    assert apply.status.text().startswith("wrote") and "--axes" not in apply.status.text()


def test_int64_scribbles_export_as_the_smallest_unsigned_type(viewer, qtbot, tmp_path):
    """napari's own Labels default is int64, which the OME-TIFF writer refused."""
    from scopeml.napari.pixel_widget import SCRIBBLES

    blobs(viewer)
    widget = widget_for(viewer, qtbot)
    scribbles = viewer.layers[SCRIBBLES]
    paint_two_classes(scribbles)
    scribbles.data = scribbles.data.astype(np.int64)
    path = widget.export_scribbles(tmp_path / "strokes")
    written = tifffile.imread(path)
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(written, scribbles.data)
    scribbles.data = scribbles.data * 200  # a class value past 255
    assert tifffile.imread(widget.export_scribbles(path)).dtype == np.uint16


def test_deep_features_on_a_z_stack_are_refused_in_the_widgets_words(viewer, qtbot, stack):
    """Training said "deep features are 2-D; got an image of shape (1, 60, 152, 152)" (a block
    inside training); the widget says how to train on the planes as time points."""
    from scopeml.napari.pixel_widget import SCRIBBLES

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        viewer.open(str(stack), plugin="scopeml")
    widget = docked(viewer, "Pixel classifier")
    qtbot.waitUntil(lambda: SCRIBBLES in viewer.layers, timeout=10_000)
    viewer.layers[SCRIBBLES].data[2, 2:6, 2:20] = 1
    viewer.layers[SCRIBBLES].data[2, 30:34, 10:40] = 2
    widget.features.setCurrentText("vgg19-random-256+basic25")
    text = trained(qtbot, widget)
    assert text.startswith("error: deep features are 2-D; stack is a Z stack of 6 planes"), text
    assert "Open image scene with axes TYX" in text and "--axes" not in text, text
    assert widget.model is None


def test_deep_features_say_the_axes_choice_for_an_array(viewer, qtbot):
    from scopeml.napari.pixel_widget import SCRIBBLES

    viewer.add_image(np.random.default_rng(1).random((4, 40, 48), np.float32), name="planes")
    widget = widget_for(viewer, qtbot)
    viewer.layers[SCRIBBLES].data[1, 2:6, 2:20] = 1
    viewer.layers[SCRIBBLES].data[1, 30:34, 10:40] = 2
    widget.features.setCurrentText("vgg19-random:conv1_2")  # a spec typed
    text = trained(qtbot, widget)
    assert "choose T×Y×X beside the image" in text, text


def test_a_removed_image_leaves_no_stale_status(viewer, qtbot):
    """The image removed while training: the preview ran on the next image, then the status
    said again that the scribbles were for another image (and to choose the one removed)."""
    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES

    blobs(viewer, "second")
    blobs(viewer, "first")
    widget = widget_for(viewer, qtbot)
    widget.image_choice.setCurrentText("first")
    paint_two_classes(viewer.layers[SCRIBBLES])
    widget.train(then_preview=True)
    viewer.layers.remove("first")
    qtbot.waitUntil(lambda: PREVIEW in viewer.layers and not widget.busy, timeout=WAIT_MS)
    qtbot.wait(100)  # the layer list's changes are answered after the event loop turns
    assert widget.status.text().startswith("preview of"), widget.status.text()
    _, other = widget._scribbles_for(viewer.layers["second"])
    assert "choose first again" not in other and "first, which is closed" in other, other


def test_the_first_class_is_clear_when_none_is_named_background(viewer, qtbot):
    """Classes other, nuclei: 'other' laid a 50% tint over the whole image. As segment takes
    the first class as the background where none is named so (ZEN's convention)."""
    from scopeml.napari.pixel_widget import PREVIEW

    blobs(viewer)
    widget = widget_for(viewer, qtbot)
    widget.set_classes(["other", "nuclei"], ["#1f77b4", "#ff7f0e"])
    paint_two_classes(viewer.layers["scopeml scribbles"])
    assert trained(qtbot, widget).startswith("trained")
    widget.update_preview()
    qtbot.waitUntil(lambda: PREVIEW in viewer.layers and not widget.busy, timeout=WAIT_MS)
    clear, shown = viewer.layers[PREVIEW].colormap.map(np.array([1, 2]))
    assert clear[3] == 0 and shown[3] == 1
    scribbles = viewer.layers["scopeml scribbles"].colormap.map(np.array([1]))
    assert scribbles[0][3] == 1  # painted strokes of every class show
