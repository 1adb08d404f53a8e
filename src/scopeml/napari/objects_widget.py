"""Label instances, measure them, inspect the table, click-label objects, train and apply the
object classifier, colour objects by class, export the table with the user's labels.

Everything is the facade: ``sm.label_objects``, ``sm.measure_objects``,
``sm.train_object_classifier``, ``sm.classify_objects``. The table is shown in a Qt view and
set as the layer's napari ``features``; a click on an object selects its row, a selected row
selects (and highlights) its object. With "click to label" on, a click gives the object the
chosen class in the ``user_class`` column, which trains the classifier. The click is hooked on
the measured layer once (napari's plugin proxy gives a new object for the same layer on every
access: the layer behind it is compared), and unhooked from a layer measured before.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableView,
    QWidget,
)

import scopeml as sm
from scopeml.errors import InvalidLabelsError, InvalidRequestError
from scopeml.napari._layers import labels_layer_data, layer_classes, open_levels
from scopeml.napari._qt import (
    LayerChoice,
    error_text,
    row,
    run_in_thread,
    scrolled_layout,
    show_rows,
)
from scopeml.napari._source import layer_image, layer_source, name_for_file
from scopeml.napari._table import DataFrameModel
from scopeml.napari.apply_widget import MADE_FROM, real_layer
from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES
from scopeml.objects.quality import quality_text
from scopeml.objects.table import TABLE_SUFFIXES
from scopeml.palette import NAMES, colour_of

USER_CLASS = "user_class"
PREDICTED = "class"
#: What a classification adds to the table, dropped before the next (retrain, reclassify).
PREDICTED_COLUMNS = [PREDICTED, f"{PREDICTED}_probability"]
#: An objects layer's metadata key: the class labels layer it was labelled from.
LABELLED_FROM = "scopeml_labelled_from"
#: What Train & classify and Export say before there is a table.
NO_TABLE = "measure the objects first (Measure), then click objects to give them classes"
#: Label objects' min size: 10, not the CLI's 0, so that a pixel classifier's specks of a few
#: pixels are not objects (a user test: 108 of 154 objects under 10 px, their median 1 px).
MIN_SIZE = 10


class ObjectsWidget(QWidget):
    """Instances → table ⇄ viewer selection → click labels → object classifier → colours."""

    def __init__(self, napari_viewer: Any) -> None:
        import napari

        super().__init__()
        self.viewer = napari_viewer
        self.table: pd.DataFrame | None = None
        self.layer: Any = None  # the objects layer measured
        self.classifier: Any = None
        self._worker: Any = None
        self._hooked: Any = None
        self._folders: dict[int, tuple[Any, Path]] = {}  # id(class layer): (ref, its temp folder)
        self._warnings: list[str] = []  # the labelling's, said with its result
        self.labels_choice = LayerChoice(  # not the scribbles: strokes are no objects
            napari_viewer, napari.layers.Labels, leave_out=lambda layer: layer.name == SCRIBBLES
        )
        napari_viewer.layers.events.inserted.connect(self._choose_objects)
        self.image_choice = LayerChoice(napari_viewer, napari.layers.Image)
        self._labels_seen: Any = lambda: None  # the labels chosen last (weakly): their image
        # is chosen once, not again each time the layer list changes
        # the combo changes several times while the layer list changes: act once it settles
        self.labels_choice.currentTextChanged.connect(
            lambda *_: QTimer.singleShot(0, self._follow_labels)
        )
        self.class_value = QLineEdit()
        self.class_value.setPlaceholderText(
            "class (name or value) to label; empty: a mask, or a store's one class"
        )
        self.min_size = _min_size_box()
        self.split, self.remove_border = _label_boxes()
        label_button = QPushButton("Label objects")
        label_button.clicked.connect(lambda: self.label_objects())
        measure_button = QPushButton("Measure")
        measure_button.clicked.connect(lambda: self.measure())
        self._make_table()
        self.classes = QLineEdit("A, B")
        self._names: list[str] = []  # the class names as last typed
        self.current_class = QComboBox()
        self.classes.editingFinished.connect(self._refresh_classes)
        self._refresh_classes()
        self.click_to_label = QCheckBox("click to label")
        train_button = QPushButton("Train && classify")
        train_button.clicked.connect(lambda: self.train_and_classify())
        export_button = QPushButton("Export CSV…")
        export_button.clicked.connect(self._export_dialog)
        self.status = QLabel("choose instance labels (or class labels and Label objects)")
        self.status.setWordWrap(True)

        layout = scrolled_layout(self)
        layout.addWidget(row("labels", self.labels_choice))
        layout.addWidget(row("intensities", self.image_choice))
        layout.addWidget(row("", self.class_value, self.min_size, label_button))
        layout.addWidget(row("", self.split, self.remove_border))
        layout.addWidget(measure_button)
        layout.addWidget(self.view)
        layout.addWidget(row("object classes", self.classes))
        layout.addWidget(row("", self.click_to_label, self.current_class))
        layout.addWidget(row("", train_button, export_button))
        layout.addWidget(self.status)

    def _make_table(self) -> None:
        """The table view, one row selected at a time: selected, its object is shown."""
        self.view = QTableView()
        show_rows(self.view, 4)
        self.model = DataFrameModel()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SingleSelection)
        self._clicked = False  # a row selected by a click on its object in the viewer
        self.view.selectionModel().currentRowChanged.connect(
            lambda c, _: self.select_row(c.row(), alone=not self._clicked)
        )
        self.view.clicked.connect(lambda c: self.select_row(c.row()))  # the same row again

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def _choose_objects(self, event: Any) -> None:
        """A layer of objects added (Apply's instances) is chosen over class labels, which
        Measure refuses: Apply adds its class labels first, and they stayed chosen."""
        import napari

        layer = real_layer(event.value)
        if not isinstance(layer, napari.layers.Labels) or layer.name == SCRIBBLES:
            return
        with contextlib.suppress(RuntimeError):  # the widget closed; napari still calls it
            current = self.labels_choice.layer()
            if not layer_classes(layer) and (current is None or layer_classes(current)):
                self.labels_choice.refresh()  # it may not list the layer yet
                self.labels_choice.setCurrentText(layer.name)

    def _follow_labels(self) -> None:
        """Labels newly chosen that Apply (or Label objects from Apply's) made: choose under
        *intensities* the image they were made from, where it is open (the image chosen
        before stayed, and Measure refused objects of another image's size)."""
        with contextlib.suppress(RuntimeError):  # the widget closed; napari still calls it
            layer = self.labels_choice.layer()
            if layer is None or real_layer(layer) is self._labels_seen():
                return
            self._labels_seen = weakref.ref(real_layer(layer))
            image = _made_from(self.viewer, layer)
            if image is not None:
                self.image_choice.setCurrentText(image.name)

    def class_names(self) -> list[str]:
        return [name.strip() for name in self.classes.text().split(",") if name.strip()]

    def _refresh_classes(self) -> None:
        """The class chooser follows the names typed; a class renamed in place (as many names
        as before) renames its clicked and predicted objects too."""
        names, before = self.class_names(), self._names
        current = self.current_class.currentText()
        renamed = dict(zip(before, names, strict=True)) if len(names) == len(before) else {}
        renamed = {old: new for old, new in renamed.items() if old != new}
        if renamed and self.table is not None:
            columns = [c for c in (USER_CLASS, PREDICTED) if c in self.table]
            n = int(self.table[columns].isin(list(renamed)).any(axis=1).sum())
            self.table[columns] = self.table[columns].replace(renamed)
            moves = ", ".join(f"{old} → {new}" for old, new in renamed.items())
            if n:  # names typed before any object has them are no rename to speak of
                self.status.setText(f"renamed {moves} on {n} objects")
            self.model.set_table(self.table)
            if PREDICTED in self.table:
                self.layer.colormap = self.class_colormap()
        self._names = names
        self.current_class.clear()
        self.current_class.addItems(names)
        self.current_class.setCurrentText(renamed.get(current, current))

    # ------------------------------------------------------------------ label, measure
    def label_objects(self) -> None:
        """Instance labels of the chosen class of the labels layer (a worker thread). Chosen
        again (another class, min size), the objects layer it made stands for its class
        labels: they are labelled again and the objects layer replaced, not another added.
        One run at a time: a labelling done while a Measure reads the objects it replaces
        would delete them under it."""
        if self.busy:
            return
        layer = self.labels_choice.layer()
        if layer is None:
            self.status.setText("error: choose a labels layer")
            return
        layer = _labelled_from(self.viewer, layer) or layer
        text = self.class_value.text().strip()
        class_: Any = None if not text else int(text) if text.isdigit() else text
        source = layer_source(layer)
        if source is None and (names := layer_classes(layer)):  # an array's classes, by name
            try:
                class_ = _class_value(class_, names)
            except InvalidRequestError as err:
                self._fail(err)
                return
        labels: Any = _source_of(layer)
        if source is not None and Path(source["path"]).name == "labels":
            labels = sm.Segmentation(Path(source["path"]).parent)  # its class names too
        folder = Path(tempfile.mkdtemp(prefix="scopeml-"))
        output = folder / f"{name_for_file(layer, 'labels')}.objects.ome.zarr"
        self.status.setText("labelling…")
        self._warnings.clear()

        def failed(err: BaseException) -> None:
            shutil.rmtree(folder, ignore_errors=True)  # nothing of this run to keep
            self._fail(err)

        self._worker = run_in_thread(
            sm.label_objects,
            labels,
            output,
            class_=class_,
            min_size=self.min_size.value(),
            split=self.split.isChecked(),
            remove_border=self.remove_border.isChecked(),
            on_done=self._guarded(lambda objects: self._labelled(objects, layer, folder), folder),
            on_error=failed,
            on_warning=self._warnings.append,  # said with the result, in the widgets' words
        )

    def _guarded(self, slot: Any, folder: Path | None = None) -> Any:
        """``slot`` for a worker's result, any error it raises said in the status line (a Qt
        slot must not raise: the status stayed "labelling…"), ``folder`` removed unless a
        layer shows what is in it."""

        def call(result: Any) -> None:
            try:
                slot(result)
            except Exception as err:
                if folder is not None and all(f != folder for _, f in self._folders.values()):
                    shutil.rmtree(folder, ignore_errors=True)
                self._fail(err)

        return call

    def _labelled(self, objects: sm.Image, source_layer: Any, folder: Path) -> None:
        """Show the objects in place of those labelled before from ``source_layer``, whose
        temporary folder goes with their layer (labelling again leaves no folder behind)."""
        from scopeml.io.omezarr import open_ome_zarr_array

        self._worker = None
        if not any(real_layer(other) is real_layer(source_layer) for other in self.viewer.layers):
            shutil.rmtree(folder, ignore_errors=True)  # nothing left to lay the objects on
            self.status.setText(f"labelling discarded: {source_layer.name} was removed")
            return
        data, kwargs = _laid_on(
            *labels_layer_data(open_levels(objects.path), name=f"{source_layer.name} objects")[:2],
            source_layer,
        )
        kwargs["metadata"][LABELLED_FROM] = weakref.ref(real_layer(source_layer))  # its store too
        earlier, dropped = self._remove_objects_of(source_layer)
        source = real_layer(source_layer)
        replaced = self._folders.get(id(source))
        if replaced is not None and replaced[0]() is source:
            shutil.rmtree(replaced[1], ignore_errors=True)  # its layer was just removed
        self._folders[id(source)] = (weakref.ref(source), folder)
        layer = self.viewer.add_labels(data, **kwargs)
        if earlier is not None:  # where the objects layer replaced was
            self.viewer.layers.move(len(self.viewer.layers) - 1, earlier)
        self.labels_choice.setCurrentText(layer.name)
        first = objects.path if objects.sizes["S"] == 1 else Path(objects.path) / "0"
        n_objects = open_ome_zarr_array(first, mode="r").attrs["n_objects"]  # as the CLI says it
        size = self.min_size.value()
        larger = f" of at least {size} px" if size > 1 else ""  # smaller ones were dropped
        said = "".join(f"; warning: {_widget_words(w)}" for w in dict.fromkeys(self._warnings))
        self.status.setText(
            f"labelled {n_objects} objects{larger} into {objects.path}{dropped}{said}"
            f"{_part_of(layer, self.image_choice.layer())}"
        )

    def _remove_objects_of(self, source_layer: Any) -> tuple[int | None, str]:
        """Remove the objects layers Label objects made from ``source_layer`` (replaced): the
        index of the first, and what the status adds when the table was of them (cleared)."""
        earlier = [index for index, other in enumerate(self.viewer.layers)
                   if _labelled_from(self.viewer, other) is real_layer(source_layer)]  # fmt: skip
        dropped = ""
        for index in reversed(earlier):
            if self.table is not None and real_layer(self.layer) is real_layer(
                self.viewer.layers[index]
            ):
                clicks = int((self.table[USER_CLASS] != "").sum())
                gone = f" (its {clicks} clicked classes are gone: the objects are new)"
                dropped = "; the table of the objects replaced is cleared: Measure again"
                dropped += gone if clicks else ""
                self.table = None
                self.model.set_table(pd.DataFrame())
            self.viewer.layers.pop(index)
        return (earlier[0] if earlier else None), dropped

    def measure(self) -> None:
        """Measure every object of the labels layer with the intensity layer (a worker; one
        run at a time, as :meth:`label_objects`)."""
        if self.busy:
            return
        layer = self.labels_choice.layer()
        image_layer = self.image_choice.layer()
        if layer is None:
            self.status.setText("error: choose a labels layer")
            return
        if layer_classes(layer):  # each class would be measured as one object
            self.status.setText(f"error: {_widget_words(CLASS_LABELS)}")
            return
        if image_layer is not None and _extent(layer) != _extent(image_layer):
            self.status.setText(f"error: {_sizes_differ(self.viewer, layer, image_layer)}")
            return
        intensities = None if image_layer is None else layer_image(image_layer)
        self.status.setText("measuring…")
        self._worker = run_in_thread(
            sm.measure_objects,
            _source_of(layer),
            intensities,
            on_done=self._guarded(lambda table: self.set_table(table, layer)),
            on_error=self._fail,
        )

    def set_table(self, table: pd.DataFrame, layer: Any) -> None:
        """Show ``table`` (one row per object), hook clicks on ``layer``. Measured again (the
        same objects layer, other intensities), the objects keep the classes clicked; the
        predictions, made from the earlier columns, go."""
        self._worker = None
        table = table.reset_index(drop=True)
        kept = self._clicked_on(layer)
        if USER_CLASS not in table:
            table.insert(table.columns.get_loc("label") + 1, USER_CLASS, "")
        if kept is not None:
            keys = _object_keys(table)
            merged = table[keys].merge(kept, on=keys, how="left")[USER_CLASS].to_numpy()
            table[USER_CLASS] = np.where(pd.isna(merged), table[USER_CLASS], merged)
        self.table = table
        self.layer = layer
        self.model.set_table(table)
        if not getattr(layer, "multiscale", False):
            layer.features = table.assign(index=table["label"].to_numpy())
        self._hook(real_layer(layer))
        n_kept = 0 if kept is None else int((table[USER_CLASS] != "").sum())
        kept_text = f" ({n_kept} clicked classes kept)" if n_kept else ""
        without = "" if self.image_choice.layer() is not None else " (shapes only: no image chosen)"
        if table.empty:  # an empty layer (the scribbles), or class labels not labelled yet
            without += f": {layer.name} holds no objects; choose instance labels, or Label objects"
        self.status.setText(f"{len(table)} objects measured{kept_text}{without}")

    def _clicked_on(self, layer: Any) -> pd.DataFrame | None:
        """The classes clicked on the objects of ``layer`` when it is the layer measured
        before (by label, and scene and time point where the table has them), else ``None``."""
        if self.table is None or real_layer(self.layer) is not real_layer(layer):
            return None
        clicked = self.table[self.table[USER_CLASS] != ""]
        return clicked[[*_object_keys(clicked), USER_CLASS]]

    def _hook(self, layer: Any) -> None:
        """Clicks on ``layer`` (only) select and label its objects: hooked once."""
        if self._hooked is not None and self._hooked is not layer:
            with contextlib.suppress(ValueError):
                self._hooked.mouse_drag_callbacks.remove(self._on_click)
        if self._on_click not in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.append(self._on_click)
        self._hooked = layer

    # ------------------------------------------------------------------ selection
    def row_of(self, label: int) -> int | None:
        rows = np.flatnonzero(self.table["label"].to_numpy() == label)
        return int(rows[0]) if len(rows) else None

    def select_row(self, index: int, *, alone: bool = True) -> None:
        """Select a row: its object becomes the layer's selected label, shown ``alone`` (a row
        chosen in the table: where is it?) or among the others (clicked in the viewer: the
        next one to click stays in sight)."""
        if self.table is None or not 0 <= index < len(self.table):
            return
        label = int(self.table["label"].iat[index])
        self.layer.selected_label = label
        self.layer.show_selected_label = alone
        if self.view.currentIndex().row() != index:
            self._clicked = not alone
            try:
                self.view.selectRow(index)
            finally:
                self._clicked = False

    def _on_click(self, layer: Any, event: Any) -> None:
        self.click(event.position)

    def click(self, position: Any) -> None:
        """A click on the viewer at world ``position``: select the object's row, and with
        "click to label" give it the current class."""
        value = self.layer.get_value(position, world=True)
        if isinstance(value, tuple):  # multiscale: (level, value)
            value = value[1]
        if self.table is None:
            return
        if value is None or int(value) == 0:  # every object in sight again, no row chosen
            self.layer.show_selected_label = False
            self.view.clearSelection()
            self.view.setCurrentIndex(self.model.index(-1, -1))
            self._no_object("outside the objects" if value is None else "the background")
            return
        index = self.row_of(int(value))
        if index is None:
            return
        if self.click_to_label.isChecked() and self.current_class.currentText():
            self.table.loc[index, USER_CLASS] = self.current_class.currentText()
            self.model.set_table(self.table)
            self.status.setText(f"object {int(value)}: {self.current_class.currentText()}; "
                                f"{self.clicked_counts()}")  # fmt: skip
        self.select_row(index, alone=False)

    def _no_object(self, where: str) -> None:
        """Say a click hit no object where the status held an error (stale: it stayed after
        the click) or the clicks so far (labelling)."""
        labelling = self.click_to_label.isChecked()
        if labelling or self.status.text().startswith("error:"):
            counts = f"; {self.clicked_counts()}" if labelling else ""
            self.status.setText(f"no object there ({where}): click an object{counts}")

    def clicked_counts(self) -> str:
        """``small 6, large 6``: the objects click-labelled with each class, what training
        learns from."""
        counts = self.table[USER_CLASS][self.table[USER_CLASS] != ""].value_counts()
        return ", ".join(f"{name} {counts.get(name, 0)}" for name in self.class_names())

    # ------------------------------------------------------------------ classify
    def train_and_classify(self) -> None:
        """Train on the click-labelled objects, classify all, colour objects by class."""
        if self.table is None:
            self.status.setText(f"error: {NO_TABLE}")
            return
        try:
            annotated = self.table[self.table[USER_CLASS] != ""]
            self.classifier = sm.train_object_classifier(
                annotated.replace({USER_CLASS: {"": None}}), USER_CLASS
            )
            classified = sm.classify_objects(
                self.table.drop(columns=PREDICTED_COLUMNS, errors="ignore"), self.classifier,
                column=PREDICTED,
            )  # fmt: skip
        except Exception as err:
            self._fail(err, self._in_widget_words(err))
            return
        self.table = classified
        self.model.set_table(classified)
        if not getattr(self.layer, "multiscale", False):
            self.layer.features = classified.assign(index=classified["label"].to_numpy())
        self.layer.colormap = self.class_colormap()
        self.layer.show_selected_label = False  # every object, in its class colour
        counts = classified[PREDICTED].value_counts().to_dict()
        colors = self.class_colors()  # the key to the colours
        self.status.setText(
            "classified: "
            + ", ".join(f"{k} {v} ({NAMES.get(colors[k], colors[k])})" for k, v in counts.items())
            + f"; {quality_text(self.classifier.quality)}"  # how far to trust it
        )

    def class_colors(self) -> dict[str, str]:
        predicted = [n for n in self.table.get(PREDICTED, []) if isinstance(n, str)]  # NaN: none
        names = sorted(set(self.class_names()) | set(predicted))
        return {name: colour_of(i) for i, name in enumerate(names)}

    def class_colormap(self) -> Any:
        """Each object in the colour of its predicted class."""
        from napari.utils.colormaps import DirectLabelColormap

        colors = self.class_colors()
        mapping: dict[Any, Any] = {None: "transparent", 0: "transparent"}
        for label, name in zip(self.table["label"], self.table[PREDICTED], strict=True):
            mapping[int(label)] = colors.get(name, "transparent")  # no class (NaN features)
        return DirectLabelColormap(color_dict=mapping)

    def export_csv(self, path: str | Path) -> Path:
        """Write the table, the user's labels and predicted classes included (replacing a file
        there: the save dialog has asked); a name without a table suffix gets ``.csv``, as a
        dialog may return the name typed."""
        from scopeml.objects.table import write_table

        if self.table is None:
            raise InvalidRequestError(NO_TABLE)
        path = Path(path)
        if path.suffix.lower() not in TABLE_SUFFIXES:
            path = path.with_name(f"{path.name}.csv")
        written = write_table(self.table, path, overwrite=True)
        self.status.setText(f"exported {len(self.table)} rows to {written}")
        return written

    def _export_dialog(self) -> None:
        if self.table is None:  # said before a dialog that could write nothing
            self.status.setText(f"error: {NO_TABLE}")
            return
        path = QFileDialog.getSaveFileName(self, "Export table", "", "CSV (*.csv)")[0]
        if path:
            try:
                self.export_csv(path)
            except Exception as err:
                self._fail(err)

    def _in_widget_words(self, err: BaseException) -> str:
        """Too few classes to train on, said as the user made them (clicks), not with the
        library's ``user_class`` column they never see; any other error as it is."""
        annotated = self.table[USER_CLASS][self.table[USER_CLASS] != ""]
        names = sorted(set(annotated))
        if not isinstance(err, InvalidLabelsError) or len(names) >= 2:
            return error_text(err)
        so_far = f"only {names[0]}" if names else "none"
        return f"click-label objects of at least two classes ({so_far} so far)"

    def _fail(self, err: BaseException, text: str | None = None) -> None:
        self._worker = None
        self.status.setText(f"error: {text or _widget_words(error_text(err))}")


#: What the facade says of class labels given to measure (its words are replaced here).
CLASS_LABELS = "these are class labels, not objects"


def _widget_words(text: str) -> str:
    """The library's advice for Python and the CLI, said with this widget's controls.

    >>> _widget_words("…: read the image with axes TYX (--axes TYX, axes='TYX')")
    '…: read the image as frames: open its file again with Open image scene (axes T×Y×X) and choose that layer'
    """  # noqa: E501
    text = text.replace(
        " with axes TYX (--axes TYX, axes='TYX')",
        " as frames: open its file again with Open image scene (axes T×Y×X) and choose that layer",
    )
    text = text.replace("with class_= (--class)", "in the class box above")
    text = text.replace("segment --outputs instances (outputs=('labels', 'instances'))",
                        "Apply with 'instances of' the class")  # fmt: skip
    if CLASS_LABELS in text:
        return (
            "these are class labels, not objects: type the class above and press Label "
            "objects, then Measure the objects layer it makes"
        )
    if "but these labels carry no class names" in text:
        return (
            "these labels name no classes: type the class's label value (a number) above, "
            "not its name"
        )
    return text


def _label_boxes() -> tuple[QCheckBox, QCheckBox]:
    """Label objects' ``split=`` and ``remove_border=`` (the CLI's ``--split``,
    ``--remove-border``)."""
    split = QCheckBox("split touching")
    split.setToolTip(
        "split touching objects at the necks of their distance to the background (watershed)"
    )
    edge = QCheckBox("drop edge objects")
    edge.setToolTip("drop the objects the image's edge cuts")
    return split, edge


def _min_size_box() -> QSpinBox:
    """Label objects' min size: ``label_objects(min_size=)``, the CLI's ``--min-size``."""
    box = QSpinBox()
    box.setRange(0, 2**31 - 1)
    box.setValue(MIN_SIZE)
    box.setSuffix(" px")
    box.setToolTip(
        f"Label objects drops objects of fewer pixels (voxels in a Z stack), as objects label "
        f"--min-size does; {MIN_SIZE} here (the CLI's default is 0) so that a pixel "
        "classifier's specks are not objects; 0 keeps every object"
    )
    return box


def _object_keys(table: pd.DataFrame) -> list[str]:
    """What names one row's object: its label, in its scene and time point (a movie's ids
    may recur from frame to frame)."""
    return ["label", *(column for column in ("scene", "t") if column in table)]


def _part_of(objects: Any, image: Any) -> str:
    """What the status adds where the objects cover part of the image (a preview's view), so
    a user learns it at Label objects, not when Measure refuses them."""
    if image is None or _extent(objects) == _extent(image):
        return ""
    sizes = ["×".join(map(str, _extent(one))) for one in (objects, image)]
    return (f"; they cover {sizes[0]} of {image.name}'s {sizes[1]} pixels (a preview's view): "
            "to measure them, Apply the model, then Label objects on Apply's layer")  # fmt: skip


def _extent(layer: Any) -> tuple[int, ...]:
    """A layer's Y×X size in pixels (its full-resolution level's; an RGB layer's before its
    colour axis)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    shape = data.shape[:-1] if getattr(layer, "rgb", False) else data.shape
    return tuple(int(n) for n in shape[-2:])


def _laid_on(data: Any, kwargs: dict[str, Any], layer: Any) -> tuple[Any, dict[str, Any]]:
    """Objects labelled from ``layer`` laid where it lies: its placement (scale, translate,
    rotation …) and dimensions. Labelled from one plane of a stack or series (a preview:
    ``1×Y×X``), they are ``Y×X`` and are given the plane's axis back, so they lie at that
    plane (a 2-D layer with the 3-D one's scale was refused by napari)."""
    from scopeml.napari._layers import SOURCE_KEY
    from scopeml.napari._preview import layer_axes, layer_placement

    levels = data if kwargs.get("multiscale") else [data]
    extra = layer.ndim - len(levels[0].shape)
    full = (layer.data[0] if getattr(layer, "multiscale", False) else layer.data).shape
    if extra < 0 or any(int(n) != 1 for n in full[:extra]):
        raise InvalidRequestError(
            f"the objects are {'×'.join(map(str, levels[0].shape))} pixels, not laid on "
            f"{layer.name} ({'×'.join(map(str, full[: layer.ndim]))}): label a layer of the "
            "image's dimensions"
        )
    axes = layer_axes(layer)
    if extra:
        levels = [level[(None,) * extra] for level in levels]
        kwargs["axis_labels"] = tuple(str(label) for label in layer.axis_labels)
        kwargs["metadata"][SOURCE_KEY]["axes"] = axes
    kwargs.update(layer_placement(layer, axes))
    return (levels if kwargs.get("multiscale") else levels[0]), kwargs


def _sizes_differ(viewer: Any, layer: Any, image: Any) -> str:
    """Why objects of ``layer`` are not measured with ``image`` of another size, and what to
    do: a preview's cover its view only; others are another image's objects."""
    sizes = ["×".join(map(str, _extent(one))) for one in (layer, image)]
    said = f"{layer.name} covers {sizes[0]} pixels and {image.name} {sizes[1]}"
    made = real_layer(layer).metadata.get(LABELLED_FROM)
    source = made() if callable(made) else None
    if PREVIEW in (layer.name, getattr(source, "name", None)):
        return (f"{said}: measure objects of the whole image (a preview covers its view "
                "only: Apply the model, then Label objects on Apply's layer)")  # fmt: skip
    origin = _made_from(viewer, layer)
    which = f"{origin.name}, " if origin is not None else ""
    return f"{said}: choose under intensities {which}the image these objects came from"


def _made_from(viewer: Any, layer: Any) -> Any:
    """The image layer (still open) Apply ran on to make ``layer``, or the class labels
    Label objects made it from, else None."""
    layer = _labelled_from(viewer, layer) or layer
    made = real_layer(layer).metadata.get(MADE_FROM)
    image = made() if callable(made) else None
    return next((other for other in viewer.layers if real_layer(other) is image), None)


def _labelled_from(viewer: Any, layer: Any) -> Any:
    """The class labels layer (still open) that Label objects made ``layer`` from, else None."""
    made = real_layer(layer).metadata.get(LABELLED_FROM)
    source = made() if callable(made) else None
    return next((source for other in viewer.layers if real_layer(other) is source), None)


def _class_value(class_: str | int | None, names: list[str]) -> str | int:
    """The label value of the class to label in a layer whose classes are ``names`` (a
    preview's): the one given (by value, or by the name the layer shows), else the one class
    that may be objects (as a store's is chosen), never the whole image as one mask.

    >>> _class_value(None, ["background", "cell"]), _class_value("cell", ["bg", "cell"])
    (2, 2)
    """
    from scopeml.objects.instances import object_candidates

    if isinstance(class_, int):
        return class_
    if class_ is None:
        candidates = object_candidates(names)
        if len(candidates) == 1:
            return candidates[0]
        raise InvalidRequestError(
            f"these labels hold the classes {', '.join(names)}: type the class to label above"
        )
    if class_ not in names:
        raise InvalidRequestError(
            f"no class {class_!r} in these labels: their classes are {', '.join(names)}"
        )
    return names.index(class_) + 1


def _source_of(layer: Any) -> Any:
    """What the facade takes for a labels layer: its file's image, else its array."""
    if layer_source(layer) is not None:
        return layer_image(layer)
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)
