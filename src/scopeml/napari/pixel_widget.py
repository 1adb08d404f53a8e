"""Paint scribbles, train a pixel classifier, preview it live, save and load models.

Scribbles live in a napari Labels layer (painted with napari's own brush; label ``k`` is class
``k``). Training is ``sm.train_pixel_classifier`` on the lazy image behind the chosen layer;
the preview is ``sm.predict_region`` over the visible region, so it equals what ``sm.segment``
writes there. Both run in napari's worker thread: painting never waits for them. A stroke
made while one runs is picked up by one more run afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

import scopeml as sm
from scopeml.napari._preview import predict_region, region_normalization, visible_region
from scopeml.napari._qt import LayerChoice, error_text, file_filter, row, run_in_thread
from scopeml.napari._source import layer_image, spatial_shape

SCRIBBLES = "scopeml scribbles"
PREVIEW = "scopeml preview"
DEFAULT_CLASSES = (("background", "#1f77b4"), ("foreground", "#ff7f0e"))
#: Feature importances listed (the largest first).
TOP_FEATURES = 10


class PixelClassifierWidget(QWidget):
    """Classes, features, Train, live preview, importances, save/load, scribbles in/out."""

    def __init__(self, napari_viewer: Any) -> None:
        import napari

        super().__init__()
        self.viewer = napari_viewer
        self.model: Any = None
        self._normalization: Any = None
        self._worker: Any = None
        self._pending = False
        self.last_region: dict[str, tuple[int, int]] | None = None

        self.image_choice = LayerChoice(napari_viewer, napari.layers.Image)
        # training sees every channel of the file behind the chosen layer: say which
        self.channels = QLabel()
        self.channels.setWordWrap(True)
        self.image_choice.currentTextChanged.connect(self._show_channels)
        self.features = QComboBox()
        from scopeml.features import PRESETS

        self.features.addItems(list(PRESETS))
        self.trees = QSpinBox()  # fewer trees: faster live retraining, a noisier forest
        self.trees.setRange(1, 1000)
        self.trees.setValue(100)
        self.classes = QTableWidget(0, 2)
        self.classes.setHorizontalHeaderLabels(["class", "colour"])
        self.classes.cellDoubleClicked.connect(self._pick_color)
        for name, color in DEFAULT_CLASSES:
            self.add_class(name, color)
        add, remove = QPushButton("Add class"), QPushButton("Remove class")
        add.clicked.connect(lambda: self.add_class(f"class {self.classes.rowCount() + 1}"))
        remove.clicked.connect(self._remove_class)
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(lambda: self.train())
        self.live = QCheckBox("Live preview (after each stroke)")
        self.update_button = QPushButton("Update preview")
        self.update_button.clicked.connect(lambda: self.update_preview())
        self.importances = QPlainTextEdit()
        self.importances.setReadOnly(True)
        self.importances.setMaximumHeight(160)
        self.status = QLabel("paint scribbles, then Train")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(row("image", self.image_choice))
        layout.addWidget(self.channels)
        layout.addWidget(row("features", self.features, QLabel("trees"), self.trees))
        layout.addWidget(self.classes)
        layout.addWidget(row("", add, remove))
        layout.addWidget(self.train_button)
        layout.addWidget(row("", self.live, self.update_button))
        layout.addWidget(QLabel("feature importances"))
        layout.addWidget(self.importances)
        layout.addWidget(self._file_buttons())
        layout.addWidget(self.status)
        self._show_channels()

    def _file_buttons(self) -> QWidget:
        """Save/load the model, import/export the scribbles: one row of buttons."""
        buttons = {
            "Save model…": self._save_dialog,
            "Load model…": self._load_dialog,
            "Import scribbles…": self._import_dialog,
            "Export scribbles…": self._export_dialog,
        }
        files = QWidget()
        grid = QHBoxLayout(files)
        grid.setContentsMargins(0, 0, 0, 0)
        for text, slot in buttons.items():
            button = QPushButton(text)
            button.clicked.connect(slot)
            grid.addWidget(button)
        return files

    # ------------------------------------------------------------------ classes
    def add_class(self, name: str, color: str | None = None) -> None:
        """Append a class (label value = its row + 1) with a display colour."""
        from scopeml.pixel._classifier import PALETTE

        index = self.classes.rowCount()
        color = color or PALETTE[index % len(PALETTE)]
        self.classes.insertRow(index)
        self.classes.setItem(index, 0, QTableWidgetItem(name))
        self.classes.setItem(index, 1, QTableWidgetItem(color))
        self._recolor()

    def class_names(self) -> list[str]:
        return [self.classes.item(r, 0).text() for r in range(self.classes.rowCount())]

    def class_colors(self) -> list[str]:
        return [self.classes.item(r, 1).text() for r in range(self.classes.rowCount())]

    def set_classes(self, names: list[str], colors: list[str]) -> None:
        self.classes.setRowCount(0)
        for name, color in zip(names, colors, strict=True):
            self.add_class(name, color)

    def _remove_class(self) -> None:
        if self.classes.rowCount() > 2:
            self.classes.removeRow(self.classes.rowCount() - 1)
            self._recolor()

    def _pick_color(self, row_: int, column: int) -> None:
        if column != 1:
            return
        from qtpy.QtGui import QColor

        color = QColorDialog.getColor(QColor(self.classes.item(row_, 1).text()), self)
        if color.isValid():
            self.classes.item(row_, 1).setText(color.name())
            self._recolor()

    def _colormap(self) -> Any:
        from napari.utils.colormaps import DirectLabelColormap

        colors: dict[Any, Any] = {None: "transparent", 0: "transparent"}
        colors.update({k: c for k, c in enumerate(self.class_colors(), 1)})
        return DirectLabelColormap(color_dict=colors)

    def _recolor(self) -> None:
        for name in (SCRIBBLES, PREVIEW):
            if name in self.viewer.layers:
                self.viewer.layers[name].colormap = self._colormap()

    # ------------------------------------------------------------------ layers
    def image_layer(self) -> Any:
        layer = self.image_choice.layer()
        if layer is None:
            from scopeml.errors import InvalidRequestError

            raise InvalidRequestError("open an image first (File › Open, or the demo sample)")
        return layer

    def training_channels(self) -> list[str]:
        """The channels training and the preview use: every channel of the chosen layer's
        file (not only the layer shown), or the layer's own (an RGB layer's R, G, B)."""
        layer = self.image_choice.layer()
        if layer is None:
            return []
        with layer_image(layer) as image:
            return [str(name) for name in image.channel_names]

    def _show_channels(self, *_: Any) -> None:
        try:
            names = self.training_channels()
        except Exception as err:  # an unreadable file: the status line says why on Train
            self.channels.setText(f"channels: ? ({error_text(err)})")
            return
        if not names:
            self.channels.setText("")
            return
        plural = "s" * (len(names) != 1)
        self.channels.setText(f"trains on channel{plural} {', '.join(names)}")

    def scribbles(self) -> Any:
        """The scribbles Labels layer, made (empty, the image's ``[Z×]Y×X``) when missing."""
        if SCRIBBLES in self.viewer.layers:
            return self.viewer.layers[SCRIBBLES]
        layer = self.image_layer()
        with layer_image(layer) as image:
            shape = spatial_shape(image)
        scale, units = layer.scale[-len(shape) :], layer.units[-len(shape) :]
        labels = self.viewer.add_labels(
            np.zeros(shape, np.uint8), name=SCRIBBLES, scale=scale, units=units,
            colormap=self._colormap(),
        )  # fmt: skip
        labels.brush_size = 5
        labels.selected_label = 1
        labels.mode = "paint"
        labels.events.paint.connect(self._on_paint)
        self.viewer.layers.selection.active = labels
        return labels

    def _on_paint(self, *_: Any) -> None:
        if self.live.isChecked():
            self.train(then_preview=True)

    # ------------------------------------------------------------------ work
    @property
    def busy(self) -> bool:
        return self._worker is not None

    def train(self, *, then_preview: bool | None = None) -> None:
        """Train on the scribbles in a worker thread; then preview if live (or asked)."""
        if then_preview is None:
            then_preview = self.live.isChecked()
        if self.busy:
            self._pending = True
            return
        try:
            layer = self.image_layer()
            labels = np.asarray(self.scribbles().data)
        except Exception as err:
            self._fail(err)
            return
        self.status.setText("training…")
        self._worker = run_in_thread(
            _train,
            layer_image(layer),
            labels,
            self.class_names(),
            self.class_colors(),
            self.features.currentText(),
            self.trees.value(),
            on_done=lambda model: self._trained(model, then_preview),
            on_error=self._fail,
        )

    def _trained(self, model: Any, then_preview: bool) -> None:
        self._worker = None
        self.set_model(model)
        channels = ", ".join(map(str, model.info.get("channels", ())))
        self.status.setText(
            f"trained on {model.info.get('n_samples', '?')} labelled pixels"
            + (f" of channels {channels}" if channels else "")
        )
        if self._pending:
            self._pending = False
            self.train(then_preview=then_preview)
        elif then_preview:
            self.update_preview()

    def set_model(self, model: Any) -> None:
        """Use ``model`` (a pixel classifier or any scopeml model) for the preview."""
        self.model = model
        self._normalization = None
        importances = getattr(model, "info", {}).get("feature_importances")
        if importances:
            names = model.feature_names
            order = np.argsort(importances)[::-1][:TOP_FEATURES]
            self.importances.setPlainText(
                "\n".join(f"{importances[i]:.3f}  {names[i]}" for i in order)
            )
        else:
            self.importances.setPlainText("(this model records no feature importances)")

    def update_preview(self, region: dict[str, tuple[int, int]] | None = None) -> None:
        """Re-predict the visible region (or ``region``) in a worker thread."""
        if self.model is None:
            self.status.setText("train or load a model first")
            return
        if self.busy:
            self._pending = True
            return
        try:
            layer = self.image_layer()
        except Exception as err:
            self._fail(err)
            return
        region = region or visible_region(layer)
        self.last_region = dict(region)
        self.status.setText("predicting the visible region…")
        self._worker = run_in_thread(
            self._predict,
            layer_image(layer),
            self.model,
            region,
            on_done=lambda labels: self._show_preview(labels, region, layer),
            on_error=self._fail,
        )

    def _predict(self, image: sm.Image, model: Any, region: dict[str, tuple[int, int]]) -> Any:
        with image:
            if self._normalization is None or self._normalization[0] is not model:
                self._normalization = (model, region_normalization(image, model))
            return predict_region(image, model, region, normalization=self._normalization[1])

    def _show_preview(self, labels: np.ndarray, region: dict[str, tuple[int, int]], layer: Any):
        self._worker = None
        scale = np.asarray(layer.scale[-2:])
        translate = np.asarray([region["Y"][0], region["X"][0]]) * scale + layer.translate[-2:]
        labels = labels.reshape(labels.shape[-2:]) if labels.ndim > 2 else labels
        if PREVIEW in self.viewer.layers:
            preview = self.viewer.layers[PREVIEW]
            preview.data, preview.translate, preview.scale = labels, translate, scale
        else:
            preview = self.viewer.add_labels(
                labels, name=PREVIEW, scale=scale, translate=translate, opacity=0.5,
                units=layer.units[-2:], colormap=self._colormap(),
            )  # fmt: skip
            if SCRIBBLES in self.viewer.layers:  # keep painting on the scribbles
                self.viewer.layers.selection.active = self.viewer.layers[SCRIBBLES]
        self.status.setText(f"preview of Y {region['Y']}, X {region['X']}")
        if self._pending:
            self._pending = False
            self.train(then_preview=True)

    def _fail(self, err: BaseException) -> None:
        self._worker = None
        self._pending = False
        self.status.setText(f"error: {error_text(err)}")

    # ------------------------------------------------------------------ files
    def save_model(self, path: str | Path) -> Path:
        """Save the trained pixel classifier as ``.czseg``."""
        if self.model is None or not hasattr(self.model, "save"):
            from scopeml.errors import InvalidRequestError

            raise InvalidRequestError("no trained pixel classifier to save")
        saved = self.model.save(path)
        self.status.setText(f"saved {saved}")
        return saved

    def load_model(self, path: str | Path) -> None:
        """Load a ``.czseg`` (its classes and colours too) or a ``.czann`` for the preview."""
        try:
            model = sm.open_model(path)
        except Exception as err:
            self._fail(err)
            return
        classes = getattr(model, "classes", None)
        if classes and hasattr(classes[0], "color"):
            self.set_classes([c.name for c in classes], [c.color for c in classes])
        else:
            names = list(model.spec.classes)
            self.set_classes(names, [None] * len(names))  # type: ignore[list-item]
        self.set_model(model)
        self.status.setText(f"loaded {Path(path).name}: {', '.join(model.spec.classes)}")

    def import_scribbles(self, path: str | Path) -> None:
        """Replace the scribbles with a label image file (TIFF, PNG, OME-Zarr …)."""
        with sm.open_image(path) as image:
            data = image.read()
        layer = self.scribbles()
        want = layer.data.shape
        data = data.reshape(data.shape[-len(want) :]) if data.size == np.prod(want) else data
        if data.shape != want:
            from scopeml.errors import InvalidLabelsError

            raise InvalidLabelsError(
                f"scribbles of shape {data.shape}; the image is {want}", path=path
            )
        layer.data = data.astype(np.uint8 if data.max() < 256 else np.uint16)

    def export_scribbles(self, path: str | Path) -> Path:
        """Write the scribbles as a TIFF label image (0 unlabelled, k = class k)."""
        import tifffile

        tifffile.imwrite(path, np.asarray(self.scribbles().data), compression="zlib")
        return Path(path)

    def _dialog(self, save: bool, title: str, pattern: str) -> str:
        call = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        return call(self, title, "", pattern)[0]

    def _guard(self, action: Any, *args: Any) -> None:
        try:
            action(*args)
        except Exception as err:
            self._fail(err)

    def _save_dialog(self) -> None:
        if path := self._dialog(True, "Save pixel classifier", "czseg (*.czseg)"):
            self._guard(self.save_model, path)

    def _load_dialog(self) -> None:
        if path := self._dialog(False, "Load model", file_filter("models")):
            self._guard(self.load_model, path)

    def _import_dialog(self) -> None:
        if path := self._dialog(False, "Import scribbles", "images (*.tif *.tiff *.png)"):
            self._guard(self.import_scribbles, path)

    def _export_dialog(self) -> None:
        if path := self._dialog(True, "Export scribbles", "TIFF (*.tif)"):
            self._guard(self.export_scribbles, path)


def _train(
    image: sm.Image,
    labels: np.ndarray,
    classes: list[str],
    colors: list[str],
    features: str,
    n_estimators: int,
) -> Any:
    """Train in the worker thread, with the class colours and the channel names kept in the
    model (as ``scopeml pixel train`` keeps them: ``pixel info`` shows them, and a run on an
    image with other channels names them)."""
    with image:
        model = sm.train_pixel_classifier(
            image,
            labels,
            classes=classes,
            colors=colors,
            features=features,
            n_estimators=n_estimators,
        )
        model.info["channels"] = [str(name) for name in image.channel_names]
        return model
