"""Objects widget: label and measure; table ⇄ viewer selection; click-labels train the object
classifier; objects are coloured by class; the CSV carries the user's labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scopeml.synthetic import synthetic_nuclei
from tests.napari.conftest import save_screenshot

WAIT_MS = 120_000


@pytest.fixture
def nuclei():
    pixels, instances = synthetic_nuclei((384, 384), density=0.0015, seed=11)
    return pixels, instances


def centre(instances: np.ndarray, label: int) -> tuple[float, float]:
    """A pixel inside object ``label`` (its most central one)."""
    from scipy import ndimage

    inside = instances == label
    depth = ndimage.distance_transform_edt(inside)
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    return float(y), float(x)


def test_label_measure_select_click_train_colour_export(viewer, qtbot, nuclei, tmp_path):
    from scopeml.napari.objects_widget import USER_CLASS, ObjectsWidget

    pixels, instances = nuclei
    viewer.add_image(pixels, name="nuclei")
    semantic = viewer.add_labels((instances > 0).astype(np.uint8) * 2, name="classes")
    widget = ObjectsWidget(viewer)
    viewer.window.add_dock_widget(widget)

    widget.labels_choice.setCurrentText(semantic.name)
    widget.class_value.setText("2")
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    objects = viewer.layers[widget.labels_choice.currentText()]
    assert objects.name == "classes objects", widget.status.text()
    level0 = np.asarray(objects.data[0] if objects.multiscale else objects.data)
    from skimage.measure import label as sk_label

    assert level0.max() == sk_label(instances > 0, connectivity=1).max()

    widget.image_choice.setCurrentText("nuclei")
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    table = widget.table
    assert widget.model.rowCount() == len(table) == level0.max()
    assert {"area", "intensity_mean_nuclei", USER_CLASS} <= set(table.columns)

    # a selected row selects its object; a click on an object selects its row
    widget.select_row(3)
    assert objects.selected_label == table["label"].iat[3] and objects.show_selected_label
    label = int(table["label"].iat[7])
    widget.click(centre(level0, label))
    assert widget.view.currentIndex().row() == 7 and objects.selected_label == label
    assert not objects.show_selected_label  # clicked: the other objects stay in sight
    widget.view.clicked.emit(widget.model.index(7, 0))  # its row chosen in the table again
    assert objects.show_selected_label  # now it alone
    widget.click((0.0, 0.0))  # the background: every object again, no row chosen
    assert not objects.show_selected_label and widget.view.currentIndex().row() == -1

    # click-label the 10 smallest "A" and the 10 largest "B"; the rest follows from the classifier
    widget.classes.setText("A, B")
    widget._refresh_classes()
    widget.click_to_label.setChecked(True)
    order = table.sort_values("area")["label"].to_numpy()
    for name, labels in (("A", order[:10]), ("B", order[-10:])):
        widget.current_class.setCurrentText(name)
        for value in labels:
            widget.click(centre(level0, int(value)))
    assert (widget.table[USER_CLASS] != "").sum() == 20
    said = widget.status.text()  # each click says its object, and the clicks so far
    assert said == f"object {int(order[-1])}: B; A 10, B 10", said
    widget.train_and_classify()
    said = widget.status.text()
    assert said.startswith("classified: ") and "(blue)" in said and "(orange)" in said, said
    assert "; out-of-bag accuracy " in said and "20 objects); deciding most: " in said, said
    predicted = widget.table.set_index("label")["class"]
    median = table["area"].median()
    small = table[table["area"] < 0.5 * median]["label"]
    large = table[table["area"] > 2 * median]["label"]
    assert (predicted[small] == "A").mean() > 0.8 and (predicted[large] == "B").mean() > 0.8
    colors = widget.class_colors()
    for value in (int(small.iat[0]), int(large.iat[0])):
        shown = objects.colormap.map(np.array([value]))[0][:3]
        from napari.utils.colormaps.standardize_color import transform_color

        want = transform_color(colors[predicted[value]])[0][:3]
        np.testing.assert_allclose(shown, want, atol=1e-6)

    path = widget.export_csv(tmp_path / "objects.csv")
    written = pd.read_csv(path, keep_default_na=False)
    assert (written[USER_CLASS] != "").sum() == 20
    assert set(written["class"]) <= {"A", "B"} and len(written) == len(table)
    save_screenshot(widget, "objects_widget")
    save_screenshot(viewer, "objects_viewer")
    # an object of NaN features gets no class (NaN): it is drawn in none (sorting it failed)
    widget.table.loc[widget.table.index[0], "class"] = np.nan
    assert sorted(widget.class_colors()) == ["A", "B"]
    gone = int(widget.table["label"].iat[0])
    assert widget.class_colormap().map(np.array([gone]))[0][3] == 0  # transparent


def test_training_without_labels_is_a_one_line_error(viewer, qtbot, nuclei, tmp_path):
    from scopeml.errors import InvalidRequestError
    from scopeml.napari.objects_widget import NO_TABLE, ObjectsWidget

    _, instances = nuclei
    viewer.add_labels(instances, name="instances")
    widget = ObjectsWidget(viewer)
    widget.train_and_classify()  # before Measure: said so, not a Python error
    assert widget.status.text() == "error: " + NO_TABLE
    widget._export_dialog()  # no save dialog that would write nothing
    assert widget.status.text() == "error: " + NO_TABLE
    with pytest.raises(InvalidRequestError, match="measure the objects first"):
        widget.export_csv(tmp_path / "t.csv")
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    widget.train_and_classify()
    text = widget.status.text()
    assert text.startswith("error: ") and "\n" not in text


def test_objects_of_an_rgb_image_are_measured_in_its_colours(viewer, qtbot):
    """napari's reader opens a PNG as one Y×X×3 layer: its extent is Y×X, its channels R, G, B."""
    from scopeml.napari.objects_widget import ObjectsWidget

    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[10:30, 10:40] = (200, 100, 50)
    objects = np.zeros((60, 80), np.int32)
    objects[10:30, 10:40] = 1
    viewer.add_image(rgb, name="slide", rgb=True)
    viewer.add_labels(objects, name="cells")
    widget = ObjectsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_choice.setCurrentText("cells")
    widget.image_choice.setCurrentText("slide")
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.table is not None, widget.status.text()
    means = [widget.table[f"intensity_mean_{c}"].item() for c in "RGB"]
    assert means == [200, 100, 50]


def test_the_scribbles_are_no_objects_and_a_missing_class_is_said_in_the_widgets_words(
    viewer, qtbot, nuclei
):
    """Measure on the scribbles counted strokes as objects; a class the labels lack was
    answered with the library's ``class_= (--class)``."""
    from scopeml.napari.objects_widget import ObjectsWidget
    from scopeml.napari.pixel_widget import SCRIBBLES

    _, instances = nuclei
    viewer.add_labels((instances > 0).astype(np.uint8) + 1, name="classes")
    viewer.add_labels(np.zeros(instances.shape, np.uint8), name=SCRIBBLES)
    widget = ObjectsWidget(viewer)
    offered = [widget.labels_choice.itemText(i) for i in range(widget.labels_choice.count())]
    assert offered == ["classes"]
    widget.labels_choice.setCurrentText("classes")
    widget.class_value.setText("7")
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    said = widget.status.text()
    assert said.startswith("error: ") and "no label value 7" in said, said
    assert "in the class box above" in said and "class_=" not in said and "--class" not in said


def test_split_and_edge_objects_are_the_librarys(viewer, qtbot, tmp_path):
    """The boxes give ``label_objects(split=True, remove_border=True)`` (touching nuclei were
    one object in the widget: there was no way to split them)."""
    import scopeml as sm
    from scopeml.napari.objects_widget import ObjectsWidget

    _, truth = synthetic_nuclei((200, 220), density=0.004, radius=(5, 12), cluster_fraction=0.6,
                                seed=3)  # fmt: skip
    mask = (truth > 0).astype(np.uint8)
    layer = viewer.add_labels(mask, name="mask")
    widget = ObjectsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels_choice.setCurrentText(layer.name)
    widget.split.setChecked(True)
    widget.remove_border.setChecked(True)
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    objects = viewer.layers["mask objects"]
    got = np.asarray(objects.data[0] if objects.multiscale else objects.data)
    expected = sm.label_objects(mask, tmp_path / "s.ome.zarr", split=True, remove_border=True)
    np.testing.assert_array_equal(got, expected.read()[0, 0, 0, 0])
    plain = sm.label_objects(mask, tmp_path / "p.ome.zarr").read()
    assert got.max() != plain.max()  # the boxes changed what was made


def test_labelling_a_class_the_model_splits_at_its_boundary_says_how_in_the_widgets_words(
    viewer, qtbot, tmp_path
):
    """The facade's warning reached a notification only, in the command line's words
    (``segment --outputs instances``); the status said "labelled 38 objects"."""
    import scopeml as sm
    from scopeml.napari.objects_widget import ObjectsWidget

    pixels, _ = synthetic_nuclei((160, 160), density=0.003, seed=5)
    seg = sm.segment(pixels, "nuclei", tmp_path / "n.ome.zarr", scale=1)
    layer = viewer.open(str(seg / "labels"), plugin="scopeml")[0]
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText(layer.name)
    widget.class_value.setText("nucleus")
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    said = widget.status.text()
    assert said.startswith("labelled ") and "warning: labelling the nucleus pixels alone" in said
    assert "Apply with 'instances of' the class gives the objects" in said, said
    assert "--outputs" not in said
