"""Objects widget: Label objects drops specks under its min size (``label_objects(min_size=)``,
the CLI's ``--min-size``) and says how many objects it kept; too few click-labelled classes
are said in the widget's words, not with the ``user_class`` column the user never sees."""

from __future__ import annotations

import numpy as np

import scopeml as sm
from tests.napari.conftest import sample_classifier

WAIT_MS = 120_000


def blobs_and_specks() -> np.ndarray:
    """Class 1: three 6×6 blobs and five 1-pixel specks (a pixel classifier's noise)."""
    labels = np.zeros((64, 64), np.uint8)
    for y, x in ((5, 5), (5, 40), (40, 20)):
        labels[y : y + 6, x : x + 6] = 1
    for y, x in ((30, 2), (30, 60), (60, 60), (20, 30), (50, 50)):
        labels[y, x] = 1
    return labels


def label_with(widget, qtbot, viewer, layer_name: str, min_size: int | None) -> np.ndarray:
    """Label objects of ``layer_name`` (``min_size`` None: the widget's default)."""
    widget.labels_choice.setCurrentText(layer_name)
    if min_size is not None:
        widget.min_size.setValue(min_size)
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    objects = viewer.layers[widget.labels_choice.currentText()]
    assert objects.name.startswith(f"{layer_name} objects"), widget.status.text()
    return np.asarray(objects.data[0] if objects.multiscale else objects.data)


def test_label_objects_drops_specks_under_the_min_size(viewer, qtbot):
    from scopeml.napari.objects_widget import ObjectsWidget

    viewer.add_labels(blobs_and_specks(), name="classes")
    widget = ObjectsWidget(viewer)
    widget.class_value.setText("1")
    kept = label_with(widget, qtbot, viewer, "classes", None)  # specks are not objects by default
    assert kept.max() == 3 and np.bincount(kept.ravel())[1:].tolist() == [36] * 3
    size = widget.min_size.value()
    assert 1 < size <= 36
    assert widget.status.text().startswith(f"labelled 3 objects of at least {size} px into")
    every = label_with(widget, qtbot, viewer, "classes", 0)  # 0: the CLI's default, all kept
    assert every.max() == 8
    assert widget.status.text().startswith("labelled 8 objects into")
    assert label_with(widget, qtbot, viewer, "classes", 37).max() == 0  # larger than any


def test_label_objects_again_relabels_its_class_layer_and_replaces_the_objects(viewer, qtbot):
    """After Label objects the chooser is on the objects layer: labelling again (another min
    size) labels the class layer it came from, and the objects layer is replaced in place,
    its temporary folder with it (none left behind)."""
    from pathlib import Path

    from scopeml.napari.objects_widget import ObjectsWidget

    viewer.add_labels(blobs_and_specks(), name="classes")
    widget = ObjectsWidget(viewer)
    widget.class_value.setText("1")
    assert label_with(widget, qtbot, viewer, "classes", 0).max() == 8
    first = Path(widget.status.text().split(" into ")[1])
    assert first.is_dir()
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="other")
    assert widget.labels_choice.currentText() == "classes objects"
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.table is not None and len(widget.table) == 8
    widget.min_size.setValue(10)
    widget.label_objects()  # the objects layer chosen: its class layer is labelled
    widget.measure()  # one run at a time: not started while the labelling runs
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    names = [layer.name for layer in viewer.layers]
    assert names == ["classes", "classes objects", "other"], (names, widget.status.text())
    kept = np.asarray(viewer.layers["classes objects"].data)
    assert kept.max() == 3 and widget.status.text().startswith("labelled 3 objects")
    assert widget.table is None  # the table measured the replaced objects
    second = Path(widget.status.text().split(" into ")[1].split(";")[0])
    assert second.is_dir() and not first.parent.exists()
    assert widget.status.text().endswith("; the table of the objects replaced is cleared: "
                                         "Measure again"), widget.status.text()  # fmt: skip


def test_too_few_classes_are_said_in_the_widgets_words(viewer, qtbot):
    from scopeml.napari.objects_widget import USER_CLASS, ObjectsWidget

    instances = np.zeros((64, 64), np.uint16)
    for i, (y, x) in enumerate(((5, 5), (5, 40), (40, 20), (40, 45)), start=1):
        instances[y : y + 6 + i, x : x + 6] = i
    viewer.add_labels(instances, name="instances")
    widget = ObjectsWidget(viewer)
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.table is not None, widget.status.text()
    widget.train_and_classify()  # no clicks yet
    want = "error: click-label objects of at least two classes"
    assert widget.status.text() == f"{want} (none so far)", widget.status.text()
    widget.click_to_label.setChecked(True)
    widget.current_class.setCurrentText("A")
    widget.click((7.0, 7.0))
    widget.click((7.0, 42.0))
    assert widget.table[USER_CLASS].tolist() == ["A", "A", "", ""]
    widget.train_and_classify()
    text = widget.status.text()
    assert text == f"{want} (only A so far)", text
    assert USER_CLASS not in text
    widget.current_class.setCurrentText("B")
    widget.click((42.0, 22.0))
    widget.train_and_classify()
    assert widget.status.text().startswith("classified"), widget.status.text()
    assert widget.table["class"].iloc[3] == "B", widget.table  # the unclicked 4th: tall, as 3

    widget.current_class.setCurrentText("A")  # one more click: train and classify again
    widget.click((42.0, 47.0))
    widget.train_and_classify()
    assert widget.status.text().startswith("classified"), widget.status.text()
    assert widget.table["class"].tolist() == ["A", "A", "B", "A"]
    assert widget.table.columns.tolist().count("class_probability") == 1

    widget.classes.setText("small, tall")  # renamed in place: the objects' classes follow
    widget.classes.editingFinished.emit()
    assert widget.table[USER_CLASS].tolist() == ["small", "small", "tall", "small"]
    assert widget.table["class"].tolist() == ["small", "small", "tall", "small"]
    assert sorted(widget.class_colors()) == ["small", "tall"]
    assert widget.current_class.currentText() == "small"
    assert widget.status.text() == "renamed A → small, B → tall on 4 objects"

    widget.measure()  # measured again (the same objects): the clicks stay, the predictions go
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.table[USER_CLASS].tolist() == ["small", "small", "tall", "small"]
    assert "class" not in widget.table
    assert widget.status.text() == "4 objects measured (4 clicked classes kept) (shapes only: " \
        "no image chosen)"  # fmt: skip


def test_the_librarys_advice_is_said_with_the_widgets_controls(viewer, qtbot, tmp_path):
    """Measure on class labels, a class name for labels that name none, and an export under
    a bare name: each in the widget's terms (no label_objects(...), no --class)."""
    import pandas as pd

    from scopeml.napari.objects_widget import ObjectsWidget

    viewer.add_labels(blobs_and_specks(), name="classes")
    widget = ObjectsWidget(viewer)
    widget.class_value.setText("nucleus")
    widget.label_objects()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text() == (
        "error: these labels name no classes: type the class's label value (a number) above, "
        "not its name"
    )
    image, model = sample_classifier(
        tmp_path / "small.ome.zarr", size=96, block=96, seed=8, every=6, n_estimators=3,
        features="gaussian_smoothing:1",
    )  # fmt: skip
    viewer.open(str(sm.segment(image, model, tmp_path / "s.ome.zarr").path), plugin="scopeml")
    widget.labels_choice.setCurrentText("s labels")
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    said = widget.status.text()
    assert said.startswith("error: these are class labels, not objects: type the class above")
    widget.class_value.setText("1")
    label_with(widget, qtbot, viewer, "classes", 0)
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    written = widget.export_csv(tmp_path / "objects")  # as a dialog returns a typed name
    assert written == tmp_path / "objects.csv" and len(pd.read_csv(written)) == 8


def test_measuring_a_layer_without_objects_says_what_to_choose(viewer, qtbot):
    """An empty labels layer (the scribbles, say) measures 0 objects, and the status says
    why and what to choose, instead of a bare "0 objects measured"."""
    from scopeml.napari.objects_widget import ObjectsWidget

    viewer.add_labels(np.zeros((32, 32), np.uint8), name="empty")
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText("empty")
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    said = widget.status.text()
    assert said.startswith("0 objects measured") and "empty holds no objects" in said, said
