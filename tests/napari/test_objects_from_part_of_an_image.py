"""Objects of a labels layer that covers part of its image (a preview of the view) lie where
their pixels are; measuring them against the whole image is refused in the widget's words; and
a widget's layer list starts on the selected layer, not the bottom one (the scribbles)."""

from __future__ import annotations

import numpy as np

WAIT_MS = 120_000


def test_objects_of_a_shifted_layer_keep_its_place_and_measure_says_why_not(viewer, qtbot):
    from scopeml.napari.objects_widget import ObjectsWidget

    viewer.add_image(np.zeros((64, 96), np.uint16), name="image")
    part = np.zeros((64, 40), np.uint8)
    part[10:20, 5:15] = 2
    preview = viewer.add_labels(part, name="scopeml preview", translate=(0, 30))
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText(preview.name)
    widget.class_value.setText("2")
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    objects = viewer.layers[widget.labels_choice.currentText()]
    assert objects.name == "scopeml preview objects", widget.status.text()
    assert tuple(objects.translate) == (0, 30)  # they were drawn 30 px left of their pixels
    assert widget.status.text().endswith(  # said at once, not only when Measure refuses
        "; they cover 64×40 of image's 64×96 pixels (a preview's view): to measure them, Apply "
        "the model, then Label objects on Apply's layer"
    ), widget.status.text()
    widget.image_choice.setCurrentText("image")
    widget.measure()
    assert widget.status.text() == (
        "error: scopeml preview objects covers 64×40 pixels and image 64×96: measure objects "
        "of the whole image (a preview covers its view only: Apply the model, then Label "
        "objects on Apply's layer)"
    )


def test_a_preview_is_labelled_by_class_name_and_never_measured_as_objects(viewer, qtbot):
    """The pixel classifier's preview carries its classes' names: Label objects takes the name
    it shows; Measure on it (each class one "object") says to label a class first."""
    from scopeml.napari._layers import class_features
    from scopeml.napari.objects_widget import ObjectsWidget

    viewer.add_image(np.zeros((32, 32), np.uint16), name="image")
    classes = np.ones((32, 32), np.uint8)
    classes[4:10, 4:10] = classes[20:28, 18:30] = 2
    viewer.add_labels(classes, name="scopeml preview", features=class_features(["bg", "cell"]))
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText("scopeml preview")
    widget.image_choice.setCurrentText("image")
    widget.measure()
    assert widget.status.text().startswith("error: these are class labels, not objects: type")
    widget.class_value.setText("cell")
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text().startswith("labelled 2 objects"), widget.status.text()


def test_a_layer_list_starts_on_the_selected_layer(viewer):
    from scopeml.napari.objects_widget import ObjectsWidget

    viewer.add_image(np.zeros((8, 8)), name="image")
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="scopeml scribbles")
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="classes")
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="later")
    viewer.layers.selection.active = viewer.layers["classes"]
    assert ObjectsWidget(viewer).labels_choice.currentText() == "classes"
    viewer.layers.selection.clear()
    assert ObjectsWidget(viewer).labels_choice.currentText() == "later"  # else the top one


def test_a_stores_background_class_is_left_clear(viewer, tmp_path):
    """Apply's and the reader's class labels painted the background class too, hiding the
    image under the labels; the other classes keep napari's colours."""
    import scopeml as sm
    from scopeml.synthetic import realistic_nuclei

    image, _ = realistic_nuclei((96, 96), seed=2)
    store = sm.segment(image[0], "nuclei", tmp_path / "n.ome.zarr", scale=1)
    opened = viewer.open(str(store.path), plugin="scopeml")
    (labels,) = [layer for layer in opened if layer.name.endswith("labels")]
    assert list(labels.features["class"]) == ["background", "nucleus", "boundary"]
    alpha = [labels.colormap.map(value)[-1] for value in (1, 2, 3)]
    assert alpha[0] == 0 and alpha[1] > 0 and alpha[2] > 0
