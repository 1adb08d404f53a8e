"""Apply a model to the whole file behind a layer, with progress, Cancel and Resume.

The run is ``sm.segment`` on the layer's file (every pixel of the chosen scene, not only what
napari has loaded) in napari's worker thread. Its progress callback draws the bar and raises
:class:`~scopeml.errors.Cancelled` after Cancel; the partial store stays, and Resume continues
it (``resume=True``) to the same result as an uninterrupted run. *scale* is ``segment``'s
(the model sees the image magnified by it; the outputs keep the image's grid). The outputs
written (labels, confidence, and instances from ``sm.label_objects``) open as lazy multiscale
layers.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import scopeml as sm
from scopeml.errors import Cancelled
from scopeml.napari._layers import labels_layer_data, open_levels, segmentation_layer_data
from scopeml.napari._qt import LayerChoice, error_text, file_filter, row, run_in_thread
from scopeml.napari._source import layer_image, layer_source
from scopeml.tiling.scale import LIMITS as SCALE_LIMITS

#: The model of a docked pixel classifier widget, offered first in the model list.
FROM_WIDGET = "(trained in the pixel classifier widget)"


class ApplyWidget(QWidget):
    """Model, output store, outputs, tile size; Run / Cancel / Resume; a progress bar."""

    progressed = Signal(int, int)  # done, total: emitted from the worker, drawn on the GUI

    def __init__(self, napari_viewer: Any) -> None:
        import napari

        super().__init__()
        self.viewer = napari_viewer
        self.result: sm.Segmentation | None = None
        self._worker: Any = None
        self._cancel = threading.Event()
        self.image_choice = LayerChoice(napari_viewer, napari.layers.Image)
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText(f"a .czann/.czseg file, 'nuclei', or {FROM_WIDGET}")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse_model)
        self.output = QLineEdit()
        self.output.setPlaceholderText("OUT.ome.zarr (default: next to the image)")
        self.confidence = QCheckBox("confidence")
        self.confidence.setChecked(True)
        self.instances = QComboBox()  # the class whose objects to label, or none
        self.instances.addItem("(no instances)")
        self.tile_size = QSpinBox()
        self.tile_size.setRange(0, 8192)
        self.tile_size.setSpecialValueText("model default")
        self.scale = QDoubleSpinBox()  # segment's scale: the model sees the image magnified
        self.scale.setRange(*SCALE_LIMITS)
        self.scale.setDecimals(3)
        self.scale.setSingleStep(0.25)
        self.scale.setValue(1.0)
        self.scale.setToolTip(
            "Run the model on the image magnified by this factor (2: objects half the size "
            "the model expects); the outputs keep the image's pixel grid"
        )
        self.scale_auto = QCheckBox("auto")  # segment's scale "auto": from the objects' size
        self.scale_auto.setToolTip(  # scale 1 passes none: the model's default (nuclei: auto)
            "Estimate the objects' size and bring it to the model's; at scale 1 unticked, the "
            "model's default applies (auto for the shipped nuclei model)"
        )
        self.scale_auto.toggled.connect(lambda on: self.scale.setEnabled(not on))
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(lambda: self.run(resume=True))
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.bar = QProgressBar()
        self.status = QLabel("choose an image and a model")
        self.status.setWordWrap(True)
        self.progressed.connect(self._draw)

        layout = QVBoxLayout(self)
        layout.addWidget(row("image", self.image_choice))
        layout.addWidget(row("model", self.model_path, browse))
        layout.addWidget(row("output", self.output))
        layout.addWidget(row("outputs: labels +", self.confidence))
        layout.addWidget(row("instances of", self.instances))
        layout.addWidget(
            row("tile size", self.tile_size, QLabel("scale"), self.scale, self.scale_auto)
        )
        layout.addWidget(row("", self.run_button, self.cancel_button, self.resume_button))
        layout.addWidget(self.bar)
        layout.addWidget(self.status)

    @property
    def busy(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------ choices
    def model(self) -> Any:
        """The chosen model: the pixel classifier widget's, a file, or a built-in name."""
        text = self.model_path.text().strip()
        if not text or text == FROM_WIDGET:
            from scopeml.napari.pixel_widget import PixelClassifierWidget

            for widget in self.viewer.window.dock_widgets.values():
                if isinstance(widget, PixelClassifierWidget) and widget.model is not None:
                    return widget.model
            from scopeml.errors import InvalidRequestError

            raise InvalidRequestError("no model: choose a file, or train one in the widget")
        return sm.open_model(text)

    def set_model(self, text: str) -> None:
        """Choose a model file (or name) and offer its classes for instances."""
        self.model_path.setText(text)
        self._offer_classes(self.model())

    def _offer_classes(self, model: Any) -> None:
        current = self.instances.currentText()
        self.instances.clear()
        self.instances.addItems(["(no instances)", *model.spec.classes])
        self.instances.setCurrentText(current)

    def _browse_model(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Model", "", file_filter("models"))[0]
        if path:
            try:
                self.set_model(path)
            except Exception as err:
                self._fail(err)

    def output_path(self) -> Path:
        """The store to write: the one typed, else ``<image>.seg.ome.zarr`` next to the file."""
        if self.output.text().strip():
            return Path(self.output.text().strip())
        source = layer_source(self.image_choice.layer())
        if source is not None:
            path = Path(source["path"])
            stem = path.name.split(".")[0]
            return path.with_name(f"{stem}.seg.ome.zarr")
        return Path(tempfile.mkdtemp(prefix="scopeml-")) / "segmentation.ome.zarr"

    # ------------------------------------------------------------------ run
    def run(self, *, resume: bool = False) -> None:
        """Segment the whole file in a worker thread (``resume``: continue a cancelled run)."""
        if self.busy:
            return
        try:
            layer = self.image_choice.layer()
            if layer is None:
                from scopeml.errors import InvalidRequestError

                raise InvalidRequestError("open an image first")
            model = self.model()
            output = self.output_path()
        except Exception as err:
            self._fail(err)
            return
        self.output.setText(str(output))
        self._offer_classes(model)
        source = layer_source(layer)
        image = Path(source["path"]) if source else layer_image(layer)
        options = {
            "outputs": ("labels", "confidence") if self.confidence.isChecked() else ("labels",),
            "tile_size": self.tile_size.value() or None,
            "scene": source.get("scene") if source else None,
            "scale": "auto"
            if self.scale_auto.isChecked()
            else (self.scale.value() if self.scale.value() != 1.0 else None),
            "resume": resume,
            "overwrite": not resume,
        }
        instances = self.instances.currentText() if self.instances.currentIndex() > 0 else None
        self._cancel.clear()
        self.bar.setValue(0)
        self.status.setText("resuming…" if resume else "segmenting…")
        self.run_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._worker = run_in_thread(
            self._segment,
            image,
            model,
            output,
            options,
            instances,
            on_done=self._finished,
            on_error=self._fail,
        )

    def cancel(self) -> None:
        """Stop the run after the tile in progress; the partial store can be resumed."""
        self._cancel.set()
        self.status.setText("cancelling…")

    def _report(self, event: sm.ProgressEvent) -> None:
        """The progress callback (worker thread): draw, and stop when cancelled."""
        self.progressed.emit(event.done, event.total or 0)
        if self._cancel.is_set():
            raise Cancelled("cancelled in napari")

    def _segment(
        self, image: Any, model: Any, output: Path, options: dict, instances: str | None
    ) -> tuple[sm.Segmentation, sm.Image | None]:
        seg = sm.segment(image, model, output, progress=self._report, **options)
        objects = None
        if instances is not None:
            objects = sm.label_objects(
                seg, output.with_name(output.name.replace(".ome.zarr", "") + ".objects.ome.zarr"),
                class_=instances, overwrite=True, progress=self._report,
            )  # fmt: skip
        return seg, objects

    def _draw(self, done: int, total: int) -> None:
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(done)

    def _finished(self, result: tuple[sm.Segmentation, sm.Image | None]) -> None:
        self._worker = None
        seg, objects = result
        self.result = seg
        self._idle(resumable=False)
        self.show_results(seg, objects)
        self.status.setText(f"wrote {seg.path}")

    def show_results(self, seg: sm.Segmentation, objects: sm.Image | None = None) -> list[Any]:
        """Open the store's outputs (and instances) as lazy multiscale layers, as the reader
        opens the store (labels with their class names)."""
        stem = seg.path.name.replace(".ome.zarr", "")
        layer_data = segmentation_layer_data(seg.path)
        if objects is not None:
            layer_data.append(
                labels_layer_data(open_levels(objects.path), name=f"{stem} instances")
            )
        layers = []
        for data, kwargs, kind in layer_data:
            layers.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
        return layers

    def _idle(self, *, resumable: bool) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(resumable)

    def _fail(self, err: BaseException) -> None:
        self._worker = None
        cancelled = isinstance(err, Cancelled)
        self._idle(resumable=cancelled)
        self.status.setText(
            "cancelled: Resume continues from the tiles written"
            if cancelled
            else f"error: {error_text(err)}"
        )
