"""Apply a model to the whole file behind a layer, with progress, Cancel and Resume.

The run is ``sm.segment`` on the layer's file (every pixel of the chosen scene, not only what
napari has loaded) in napari's worker thread. Its progress callback draws the bar and raises
:class:`~scopeml.errors.Cancelled` after Cancel; the partial store stays, and Resume continues
it (``resume=True``) to the same result as an uninterrupted run. *scale* is ``segment``'s
(the model sees the image magnified by it; the outputs keep the image's grid). The outputs
written (labels, confidence, and the instances of a class, made in the run as ``segment
--outputs instances`` makes them: touching nuclei split at the ``nuclei`` model's boundary
class and grown over it) open as lazy multiscale layers; a run into the same store again
updates the layers that store made (and removes those of outputs it no longer holds) instead
of adding more.

*channels* is ``segment``'s ``channels=``: automatic (the channels the model was trained on, by
name; else, for a one-channel model on one channel's layer of a file of several, that channel;
else all of the image's), or the image's channels chosen by name. Instances asked for after
a run of this widget whose store is unchanged are labelled from its labels without running the
model again (as ``segment`` makes them, seeded from the labels where the store kept no
probabilities; none are made where the store's own are that class's), if the pixels are
unchanged too: the file's fingerprint, or a digest of an
in-memory layer's data (an array edited in place is another image), taken in the worker. A
``segment`` store made elsewhere (``scopeml segment``, Python) is taken the same way when its
run record is this run's (:func:`scopeml.reuse.why_not_this_run`: the library's own resume
check): the output typed, or one opened as layers whose record names the layer's file; one
that is not is said with why (another model, image or setting).
Without an output typed, the store goes next to the layer's file, or for a layer with no file
(or one in a folder not to write in: read-only, or an installed package's sample) into a
temporary folder, which the status line says.

Opened from the Plugins menu, the widget gets napari's ``PublicOnlyProxy`` of the viewer, whose
layers come back as a new proxy object on every access: layers are compared, kept and
remembered by the layer itself (:func:`real_layer`), never by the proxy's ``id``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import weakref
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
    QWidget,
)

import scopeml as sm
from scopeml.errors import (
    Cancelled,
    IncompatibleModelError,
    IncompleteOutputError,
    InvalidRequestError,
    ScopeMLError,
)
from scopeml.napari._layers import (
    SOURCE_KEY,
    labels_layer_data,
    open_levels,
    segmentation_layer_data,
)
from scopeml.napari._preview import PLACEMENT, layer_placement
from scopeml.napari._qt import (
    AxesChoice,
    LayerChoice,
    error_text,
    file_filter,
    fit_special_text,
    row,
    run_in_thread,
    scrolled_layout,
)
from scopeml.napari._reader import REOPEN
from scopeml.napari._source import (
    content_key,
    layer_facts,
    layer_image,
    layer_source,
    memory_axes,
    name_for_file,
    scene_label,
)
from scopeml.objects.instances import InstanceOptions
from scopeml.reuse import why_not_this_run
from scopeml.segmentation import INSTANCES
from scopeml.tiling.scale import LIMITS as SCALE_LIMITS

#: The model of a docked pixel classifier widget, offered first in the model list.
FROM_WIDGET = "(trained in the pixel classifier widget)"
#: The first entry of the channel choice: ``channels=None`` (the model's recorded channels by
#: name where the image has them, else all of the image's).
AUTO_CHANNELS = "(automatic)"
#: The status line before anything is chosen.
READY = "choose an image and a model"
#: A result layer's metadata key: the image layer Apply ran on (weakly), which the Objects
#: widget measures its objects with.
MADE_FROM = "scopeml_made_from"


class ApplyWidget(QWidget):
    """Model, output store, outputs, tile size; Run / Cancel / Resume; a progress bar."""

    progressed = Signal(int, int)  # done, total: emitted from the worker, drawn on the GUI
    said = Signal(str)  # what the worker decided to do, for the status line

    def __init__(self, napari_viewer: Any) -> None:
        import napari

        super().__init__()
        self.viewer = napari_viewer
        self.result: sm.Segmentation | None = None
        self._worker: Any = None
        self._cancel = threading.Event()
        self._axes_note = ""  # the axes the run reads the layer with, for the status line
        self._warnings: list[str] = []  # the run's, said with its result
        self.image_choice = LayerChoice(napari_viewer, napari.layers.Image)
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText(f"a .czann/.czseg file, 'nuclei', or {FROM_WIDGET}")
        self.model_path.editingFinished.connect(self._model_typed)
        self._opened: tuple[Any, Any] | None = None  # (file or name and its time, model)
        browse = QPushButton("…")
        browse.clicked.connect(self._browse_model)
        self.output = QLineEdit()
        self.output.setPlaceholderText("OUT.ome.zarr (default: next to the image)")
        browse_output = QPushButton("…")
        browse_output.clicked.connect(self._browse_output)
        self._temporary: dict[int, tuple[Any, Path]] = {}  # id(layer): (ref, temporary store)
        self._made: dict[str, tuple[Any, Any]] = {}  # store -> (request, record) of our runs
        self.channels = QComboBox()  # segment's channels=: automatic, or chosen by name
        self.channels.setEditable(True)
        self.channels.setToolTip(
            "The image channels the model sees, in its order: automatic (those it was trained "
            "on, by name, else the layer's own for a one-channel model, else all), one "
            "channel, or several names separated by commas"
        )
        self._shown: Any = None  # the layer whose channels are offered
        self._channel_texts: dict[int, str] = {}  # id(layer): its channel choice
        self._make_run_options()
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(lambda: self.run(resume=True))
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.bar = QProgressBar()
        self.status = QLabel(READY)
        self.status.setWordWrap(True)
        self.progressed.connect(self._draw)
        self.said.connect(self._say)

        layout = scrolled_layout(self)
        self.axes_choice = AxesChoice(self.image_choice)
        layout.addWidget(row("image", self.image_choice, self.axes_choice))
        layout.addWidget(row("model", self.model_path, browse))
        layout.addWidget(row("channels", self.channels))
        layout.addWidget(row("output", self.output, browse_output))
        layout.addWidget(row("outputs: labels +", self.confidence))
        layout.addWidget(row("instances of", self.instances))
        layout.addWidget(
            row("tile size", self.tile_size, QLabel("scale"), self.scale, self.scale_auto)
        )
        layout.addWidget(row("", self.run_button, self.cancel_button, self.resume_button))
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch()
        self.image_choice.currentTextChanged.connect(self._image_changed)
        self._image_changed()

    def _make_run_options(self) -> None:
        """The options of a run beyond image, model and output: extra outputs, tiles, scale."""
        self.confidence = QCheckBox("confidence")  # off by default: few users want it
        self.instances = _ClassChoice(self._refresh_classes)  # whose objects to label, or none
        self.instances.addItem("(no instances)")
        self.tile_size = QSpinBox()
        self.tile_size.setRange(0, 8192)
        self.tile_size.setSpecialValueText("model default")
        fit_special_text(self.tile_size)  # not clipped by napari's theme
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
            raise InvalidRequestError("no model: choose a file, or train one in the widget")
        key = (os.path.abspath(text), os.stat(text).st_mtime_ns) if os.path.isfile(text) else text
        if self._opened is None or self._opened[0] != key:  # opened once while unchanged
            self._opened = (key, sm.open_model(text))
        return self._opened[1]

    def set_model(self, text: str) -> None:
        """Choose a model file (or name) and offer its classes for instances."""
        self.model_path.setText(text)
        self._offer_classes(self.model())

    def _model_typed(self) -> None:
        """A model typed (or pasted): offer its classes, or say why it does not open."""
        if self.model_path.text().strip() in ("", FROM_WIDGET):
            self._refresh_classes()
            return
        try:
            self._offer_classes(self.model())
        except Exception as err:  # said, and the run in progress (if any) goes on
            self.status.setText(f"error: {error_text(err)}")
            return
        said = self.status.text()  # an error, or the first line, now stale
        if not self.busy and (said.startswith("error: ") or said == READY):
            self.status.setText(f"model {self.model_path.text().strip()}: Run applies it")

    def _refresh_classes(self) -> None:
        """Offer the chosen model's classes (the list opening: the pixel classifier widget's
        model may have been trained since); a model that does not open changes nothing."""
        with contextlib.suppress(Exception):  # Run says why
            self._offer_classes(self.model())

    def _offer_classes(self, model: Any) -> None:
        """The model's classes that make objects: not one named background, nor the boundary
        class seeds grow into (the built-in ``nuclei``'s ``boundary`` was offered, and chosen
        said only "the object class 'boundary' is the boundary")."""
        from scopeml.objects.instances import BACKGROUND_NAMES, BOUNDARY_NAMES

        current = self.instances.currentText()
        not_objects = (*BACKGROUND_NAMES, *BOUNDARY_NAMES)  # as label_objects leaves them out
        made = [c for c in model.spec.classes if c not in not_objects]
        classes = ["(no instances)", *(made or model.spec.classes)]
        if [self.instances.itemText(i) for i in range(self.instances.count())] == classes:
            return
        self.instances.clear()
        self.instances.addItems(classes)
        self.instances.setCurrentText(current)

    def _browse_model(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Model", "", file_filter("models"))[0]
        if path:
            try:
                self.set_model(path)
            except Exception as err:
                self._fail(err)

    def _browse_output(self) -> None:
        layer = self.image_choice.layer()
        start = self.output.text().strip() or str(self._beside(layer) or "")
        path = QFileDialog.getSaveFileName(self, "Output store", start, "OME-Zarr (*.ome.zarr)")[0]
        if path:
            self.output.setText(path if path.lower().endswith(".zarr") else f"{path}.ome.zarr")

    def _image_changed(self, *_: Any) -> None:
        """A new image: offer its channels and show where its result goes by default. The
        channel choice is kept per layer (the layer list refills the image choice on every
        layer added, passing through other layers)."""
        layer = real_layer(self.image_choice.layer())
        if layer is None or layer is self._shown:
            return
        if self._shown is not None:
            self._channel_texts[id(self._shown)] = self.channels.currentText()
        self._shown = layer
        self._offer_channels(layer, self._channel_texts.get(id(layer), AUTO_CHANNELS))
        beside = self._beside(layer)
        self.output.setPlaceholderText(
            f"default: {beside}"
            if beside is not None
            else "OUT.ome.zarr (default: a temporary folder; choose one to keep the result)"
        )

    def _offer_channels(self, layer: Any, current: str) -> None:
        names: list[str] = []
        if layer is not None:
            try:
                names = layer_facts(layer)[0]  # read once per file while unchanged
            except Exception:  # a layer scopeml cannot take: the run says why
                names = []
        self.channels.clear()
        self.channels.addItems([AUTO_CHANNELS, *names])
        parts = [part.strip() for part in current.split(",")]
        if current in names or (names and all(part in names for part in parts)):
            self.channels.setCurrentText(current)

    def chosen_channels(self) -> list[str] | None:
        """``segment``'s ``channels=``: ``None`` (automatic), or the names chosen (typed
        several, separated by commas)."""
        text = self.channels.currentText().strip()
        if not text or text == AUTO_CHANNELS:
            return None
        if self.channels.findText(text) > 0:  # one of the image's names, commas and all
            return [text]
        return [part.strip() for part in text.split(",") if part.strip()] or None

    @staticmethod
    def _beside(layer: Any) -> Path | None:
        """``<stem>.seg.ome.zarr`` next to the layer's file (the scopeml reader's, or the
        file another reader opened), ``None`` for a layer with no file or a file whose folder
        takes no results (:func:`_keeps_results`). A scene of a file of several, or the file
        read with chosen axes, is named so (``plate_scene1``, ``movie_TYX``): each reading of
        one file has its own store, not the last one's."""
        if layer is None:
            return None
        source = layer_source(layer)
        file = source["path"] if source else getattr(getattr(layer, "source", None), "path", None)
        if not file or not _keeps_results(Path(file).parent):
            return None
        path = Path(file)
        reading = ""
        if source is not None:
            if scene_label(file, source.get("scene"), source.get("file_axes")):
                reading += f"_scene{source['scene']}"
            reading += f"_{source['file_axes']}" if source.get("file_axes") else ""
        return path.with_name(f"{path.name.split('.')[0]}{reading}.seg.ome.zarr")

    def output_path(self) -> Path:
        """The store to write: the one typed, else ``<stem>.seg.ome.zarr`` next to the layer's
        file (:meth:`_beside`), else a temporary folder made once per layer
        (:meth:`is_temporary`)."""
        if self.output.text().strip():  # a bare name gets the suffix, as Browse gives it
            typed = Path(self.output.text().strip()).expanduser()
            zarr = typed.name.lower().endswith(".zarr")
            return typed if zarr else typed.with_name(f"{typed.name}.ome.zarr")
        layer = real_layer(self.image_choice.layer())
        beside = self._beside(layer)
        if beside is not None:
            return beside
        made = self._temporary.get(id(layer))
        if made is None or made[0]() is not layer:  # the id of a layer since removed
            folder = Path(tempfile.mkdtemp(prefix="scopeml-"))
            made = (weakref.ref(layer), folder / f"{name_for_file(layer, 'image')}.seg.ome.zarr")
            self._temporary[id(layer)] = made
        return made[1]

    def is_temporary(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is a temporary store this widget chose for a layer with no file."""
        return any(Path(path) == made[1] for made in self._temporary.values())

    def _request(self, layer: Any, model: Any, options: dict) -> tuple[Any, ...]:
        """What a run's result depends on, but for its outputs and the pixels themselves
        (:func:`content_key`, added in the worker): the image (a file and scene, else the
        layer), the model (a file by its path and time, else the object) and the settings."""
        source = layer_source(layer)
        # an in-memory layer: also the axes it is read with (a T×Y×X run is not a Z×Y×X one)
        if source is None:
            image: Any = (id(real_layer(layer)), memory_axes(layer))
        else:
            image = (source["path"], source.get("scene"))
        text = self.model_path.text().strip()
        if text and text != FROM_WIDGET and os.path.exists(text):
            model_key: Any = (os.path.abspath(text), os.stat(text).st_mtime_ns)
        else:
            model_key = (text, id(model))
        settings = sorted(
            (key, repr(value))
            for key, value in options.items()
            if key not in ("outputs", "resume", "overwrite")
        )
        return image, model_key, tuple(settings)

    def _stores_of(self, layer: Any, output: Path, *, others: bool) -> list[Path]:
        """The ``segment`` stores that may hold the labels of ``layer``'s file: ``output``,
        and with ``others`` (no output typed: where the result goes is left to the widget)
        stores open as layers in the viewer, the latest opened first (however they were made:
        ``scopeml segment``, Python), whose run record names that file
        (:func:`why_not_this_run` decides)."""
        from scopeml.tiling.store import recorded_run

        source = layer_source(layer)
        if source is None:
            return []
        file = str(Path(source["path"]).resolve())
        stores = [output] if recorded_run(output) is not None else []
        for other in reversed(self.viewer.layers) if others else ():
            store = _store_of(layer_source(other))
            if store is None or store in stores or store == output:
                continue
            record = recorded_run(store)
            image = record.get("image") if isinstance(record, dict) else None
            if isinstance(image, dict) and image.get("path") == file:
                stores.append(store)
        return stores

    def _holds(self, output: Path, request: tuple[Any, ...], outputs: tuple[str, ...]) -> bool:
        """Whether ``output`` is the finished store of a run of this widget with ``request``,
        unchanged since (the same run record) and holding ``outputs``."""
        from scopeml.tiling.store import recorded_run

        made = self._made.get(str(output))
        return (
            made is not None
            and made[0] == request
            and recorded_run(output) == made[1]
            and all((output / name).is_dir() for name in outputs)
        )

    # ------------------------------------------------------------------ run
    def run(self, *, resume: bool = False) -> None:
        """Segment the whole file in a worker thread (``resume``: continue a cancelled run).

        With a class chosen under *instances of* and ``output`` holding what an earlier run
        of this widget wrote for the same image, model and settings (not changed since), or a
        ``segment`` store made elsewhere (``output``, or with no output typed one open as
        layers) recording this very run, the model does not run again: the instances are
        labelled from the labels there. Stores looked at and not taken are said with why in
        the status line."""
        if self.busy:
            return
        try:
            layer = self.image_choice.layer()
            if layer is None:
                raise InvalidRequestError("open an image first")
            model = self.model()
            output = self.output_path()
        except Exception as err:
            self._fail(err)
            return
        self._offer_classes(model)
        source = layer_source(layer)
        try:
            image = Path(source["path"]) if source else layer_image(layer)
        except Exception as err:  # a layer whose dimensions cannot be named: said, not raised
            self._fail(err)
            return
        self._axes_note = _axes_note(layer)
        options = self._options(source, resume)
        if options["channels"] is None:  # automatic: the layer's channel, for a one-channel model
            options["channels"] = _layer_channel(layer, model)
            if options["channels"]:
                self._axes_note += f" (channel {options['channels'][0]}, the layer's)"
        instances = self.instances.currentText() if self.instances.currentIndex() > 0 else None
        request = self._request(layer, model, options)
        typed = bool(self.output.text().strip())  # the user's folder: written there, or reused
        looked = source and not resume  # a resume continues its own store
        others = instances is not None and not typed  # reused only for instances
        stores = self._stores_of(layer, output, others=others) if looked else []
        text = self.model_path.text().strip()
        self._cancel.clear()
        self.bar.setValue(0)
        self.status.setText(
            f"checking whether {', '.join(p.name for p in stores) or output.name} holds this "
            "image's labels…"
            if instances is not None and (str(output) in self._made or stores)
            else self._running_text(output, resume)
        )
        self.run_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._warnings.clear()
        ran_on = (weakref.ref(real_layer(layer)), str(layer.name))  # shown on it, if still open
        self._worker = run_in_thread(
            self._segment,
            image,
            model,
            output,
            options,
            instances,
            request=request,
            layer=real_layer(layer),
            stores=stores,
            model_name="" if text == FROM_WIDGET else text,  # a file or built-in: its sha256
            layer_name=str(layer.name),
            on_done=lambda result: self._finished(result, ran_on),
            on_error=self._fail,
            on_warning=self._warnings.append,  # said with the result
        )

    def _options(self, source: dict[str, Any] | None, resume: bool) -> dict[str, Any]:
        """``segment``'s options from the controls (and the layer's file, if any)."""
        return {
            "outputs": ("labels", "confidence") if self.confidence.isChecked() else ("labels",),
            "tile_size": self.tile_size.value() or None,
            "scene": source.get("scene") if source else None,
            "axes": source.get("file_axes") if source else None,  # as chosen when opened
            "channels": self.chosen_channels(),
            "scale": "auto"
            if self.scale_auto.isChecked()
            else (self.scale.value() if self.scale.value() != 1.0 else None),
            "resume": resume,
            "overwrite": not resume,
        }

    def _running_text(self, output: Path, resume: bool) -> str:
        where = " into a temporary folder" if self.is_temporary(output) else ""
        return ("resuming" if resume else f"segmenting{where}") + f"{self._axes_note}…"

    def _say(self, text: str) -> None:
        if self.busy and not self._cancel.is_set():
            self.status.setText(text)

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
        self,
        image: Any,
        model: Any,
        output: Path,
        options: dict,
        instances: str | None,
        *,
        request: tuple[Any, ...] = (),
        layer: Any = None,
        layer_name: str = "",
        stores: list[Path] | None = None,
        model_name: str = "",
    ) -> tuple[sm.Segmentation, sm.Image | None, bool, str]:
        """The worker: the run (unless a store holds this very run: one this widget wrote,
        :meth:`_holds`, with the pixels as they are now, or one of ``stores`` that records
        it, :func:`why_not_this_run`), then the instances. The last item says why the
        ``stores`` were not taken ("" when none were looked at or one was)."""
        from scopeml.tiling.store import recorded_run

        if layer is not None:  # the pixels now: an array edited in place is another image
            request = (*request, content_key(layer))
        reuse = instances is not None and self._holds(output, request, options["outputs"])
        notes: list[str] = []
        for store in [] if reuse or not (model_name or instances) else stores or []:
            made = self._made.get(str(store))
            own = made is not None and made[1] == recorded_run(store)  # the user knows it
            if own and instances is None:
                continue
            why = (
                why_not_this_run(image, model_name, store, options)
                if model_name
                else "cannot be told from the widget's model (not a file: save it to compare)"
            )
            if why is None and instances is not None:
                output, reuse = store, True
                self._made[str(store)] = (request, recorded_run(store), model)
                notes = []
                break
            if why is None or own:
                continue  # the same run, or its own earlier run
            if store == output:  # the user's output, made by another run: replaced
                notes.append(f"it replaced the earlier result there, which {why}")
            else:
                notes.append(f"the model ran: {store.name} {why}")
        self.said.emit(
            f"labelling the {instances} instances from the labels in {output.name}…"
            if reuse
            else self._running_text(output, options.get("resume", False))
        )
        if reuse:
            seg = sm.Segmentation(output)
        else:  # with instances: segment's own (split at a boundary class, grown), in the store
            made = (
                {
                    "outputs": (*options["outputs"], INSTANCES),
                    "instances": InstanceOptions(class_=instances),
                }
                if instances
                else {}
            )
            try:
                seg = sm.segment(
                    image,
                    model,
                    output,
                    progress=self._report,
                    log_stop=False,
                    **{**options, **made},
                )  # fmt: skip (the status says: Resume)
            except IncompatibleModelError as err:
                raise _in_gui_words(err, image, model, options, layer_name) from err
            # before the instances; the model is kept so that its id is not another's
            self._made[str(output)] = (request, recorded_run(output), model)
        objects = None
        if instances is not None and not _holds_instances_of(seg, instances):
            objects = _instances_from_labels(seg, instances, _objects_path(output),
                                             options.get("tile_size"), self._report)  # fmt: skip
        return seg, objects, reuse, "; ".join(notes)

    def _draw(self, done: int, total: int) -> None:
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(done)

    def _finished(
        self, result: tuple[sm.Segmentation, sm.Image | None, bool, str], ran_on: Any
    ) -> None:
        """Show the run's outputs on the image layer ``ran_on`` (a weak reference and its name)
        and say what was written; none are shown for a layer removed while it ran."""
        self._worker = None
        seg, objects, reused, notes = result
        self.result = seg
        self._draw(1, 1)  # done: also a run that found its results already made
        self._idle(resumable=False)
        image = ran_on[0]()
        if image is None or not any(real_layer(one) is image for one in self.viewer.layers):
            self.status.setText(f"wrote {seg.path}; not shown: {ran_on[1]} was removed")
            return
        try:
            self.show_results(seg, objects, placed_on=image)
        except Exception as err:  # a slot's exception: Qt's log only, the status stuck
            self.status.setText(f"wrote {seg.path}; not shown: {type(err).__name__}: {err}")
            return
        if reused and objects is not None:
            seeded = "" if "probabilities" in seg.outputs else (
                ", seeded from them: the run kept no probabilities, so touching objects may be "
                "split otherwise than by a run made with instances"
            )  # fmt: skip
            text = (
                f"wrote {objects.path}: {self.instances.currentText()} instances from the "
                f"labels in {seg.path} (the model did not run again{seeded})"
            )
        elif reused:
            text = (
                f"{seg.path} holds these {self.instances.currentText()} instances already "
                "(nothing run again)"
            )
        else:
            text = f"wrote {seg.path}{self._axes_note}{_scale_note(seg.path)}"
        if self.is_temporary(seg.path):
            text += " (a temporary folder: choose an output to keep the result)"
        if notes:
            text += f"; {notes}"
        for warning in dict.fromkeys(self._warnings):  # the run's own (another intensity range…)
            text += f"; warning: {warning}"
        self.status.setText(text)

    def show_results(
        self, seg: sm.Segmentation, objects: sm.Image | None = None, *, placed_on: Any = None
    ) -> list[Any]:
        """Open the store's outputs (and instances) as lazy multiscale layers, as the reader
        opens the store (labels with their class names), laid where the image layer
        ``placed_on`` lies (its scale, translate, rotation …: the store's pixel sizes alone
        put a moved or rescaled layer's results beside it). Layers this store made before
        are updated, not added again; those of outputs it no longer holds are removed."""
        stem = seg.path.name.replace(".ome.zarr", "")
        made = self._made.get(str(seg.path))  # the model this widget ran: its class colours
        colors = [c.color for c in getattr(made[2], "classes", ())] if made else None
        layer_data = segmentation_layer_data(seg.path, colors=colors or None)
        if objects is not None:
            layer_data.append(
                labels_layer_data(open_levels(objects.path), name=f"{stem} instances")
            )
        layers = []
        for data, kwargs, kind in layer_data:
            if placed_on is not None:
                kwargs.update(layer_placement(placed_on, kwargs["metadata"][SOURCE_KEY]["axes"]))
                kwargs["metadata"][MADE_FROM] = weakref.ref(real_layer(placed_on))
            shown = self._put_layer(data, kwargs, kind, seg.path)
            layers.extend(shown if isinstance(shown, list) else [shown])
        kept = {id(real_layer(layer)) for layer in layers}
        for layer in list(self.viewer.layers):
            if id(real_layer(layer)) not in kept and _made_by(layer, seg.path):
                self.viewer.layers.remove(layer)
        return layers

    def _put_layer(self, data: Any, kwargs: dict[str, Any], kind: str, store: Path) -> Any:
        """The layer of the same output (its file), or of the same name from ``store`` (its
        instances, now in the store rather than beside it), updated with ``data``, else a new
        one."""
        import napari

        path = os.path.abspath(kwargs["metadata"][SOURCE_KEY]["path"])
        add = getattr(self.viewer, f"add_{kind}")
        if "channel_axis" in kwargs:  # several layers from one output: shown anew
            return add(data, **kwargs)
        ndim = len((data[0] if kwargs.get("multiscale") else data).shape)
        for index, layer in enumerate(self.viewer.layers):
            source = layer_source(layer)
            if source is None:
                continue
            named = layer.name == kwargs.get("name") and _made_by(layer, store)
            if os.path.abspath(source["path"]) != path and not named:
                continue
            if not isinstance(layer, getattr(napari.layers, kind.capitalize())):
                continue
            if layer.multiscale != kwargs["multiscale"] or layer.ndim != ndim:
                self.viewer.layers.remove(layer)  # napari cannot change these: a new layer
                new = add(data, **kwargs)
                self.viewer.layers.move(len(self.viewer.layers) - 1, index)
                return new
            layer.data = data
            layer.metadata = kwargs["metadata"]
            for key in (*PLACEMENT, "units", "features", "contrast_limits"):
                if key in kwargs:
                    setattr(layer, key, kwargs[key])
            return layer
        return add(data, **kwargs)

    def _idle(self, *, resumable: bool) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(resumable)

    def _fail(self, err: BaseException) -> None:
        self._worker = None
        cancelled, refused = isinstance(err, Cancelled), _resume_refused(err)
        self._idle(resumable=cancelled or refused is not None)  # the partial store is kept
        self.status.setText(
            "cancelled: Resume continues from the tiles written"
            if cancelled
            else f"error: {refused or _scenes_in_gui_words(error_text(err))}"
        )


def _scenes_in_gui_words(text: str) -> str:
    """A file of several scenes shown as one layer (its S slider): ``segment`` runs one scene,
    which this widget takes from the layer, so the way is to open one."""
    many = re.search(r"image has (\d+) scenes", text)
    if many is None or "--scene" not in text:
        return text
    return (
        f"{text.split(': image has')[0]}: the layer shows its {many.group(1)} scenes; the model "
        f"runs on one: open it in {REOPEN} and apply the model to that layer"
    )


def _resume_refused(err: BaseException) -> str | None:
    """A Resume refused because a setting changed since the cancelled run, in the widget's
    words (its store is not one the user named: ``OUT.ome.zarr.partial``), else ``None``.

    >>> _resume_refused(IncompleteOutputError("cannot resume: the partial output comes from a "
    ...     "different run: options.scale: None (recorded) vs 0.5 (now); scale_auto: "
    ...     "{'scale': 1.0} (recorded) vs None (now); pass --overwrite "
    ...     "(overwrite=True) to start again", path="o.ome.zarr.partial")).split(": set")[0]
    'cannot resume: scale None then, 0.5 now, since the cancelled run'
    """
    problem = str(getattr(err, "problem", "") or "")
    if not isinstance(err, IncompleteOutputError) or "different run: " not in problem:
        return None
    detail = problem.split("different run: ", 1)[1].rsplit("; pass --overwrite", 1)[0]
    parts = [part for part in detail.split("; ") if not part.startswith("scale_auto")]
    detail = re.sub(r"\b(?:options|image_view)\.(\w+): ", r"\1 ", "; ".join(parts))
    detail = detail.replace(" (recorded) vs ", " then, ").replace(" (now)", " now")
    return (
        f"cannot resume: {detail}, since the cancelled run: set it back to resume, or press "
        "Run to start again"
    )


class _ClassChoice(QComboBox):
    """The *instances of* list, refreshed from the model each time it opens."""

    def __init__(self, refresh: Any) -> None:
        super().__init__()
        self._refresh = refresh

    def showPopup(self) -> None:  # Qt's name
        self._refresh()
        super().showPopup()


def real_layer(layer: Any) -> Any:
    """The layer behind napari's ``PublicOnlyProxy`` (what a plugin widget's viewer gives: a
    new proxy on every access), or ``layer`` itself; ``id`` and ``weakref`` hold on to it."""
    return getattr(layer, "__wrapped__", layer)


def _scale_note(store: Path) -> str:
    """`` at scale 0.5 (auto: objects ~48 px, model 20 px)`` where ``scale`` auto chose it
    (asked for, or the model's default: the shipped ``nuclei``), as ``segment`` ends: the
    *scale* box does not show what auto chose."""
    from scopeml.tiling.size import recorded_auto_scale

    auto = recorded_auto_scale(store)
    return "" if auto is None else f" at scale {auto.scale:g} ({auto.text()})"


def _keeps_results(folder: Path) -> bool:
    """Whether a result may go next to an image in ``folder``: one we may write, and not of
    an installed package (a sample image a package ships: results there would be lost with
    the environment, or land in it)."""
    import sysconfig

    if not os.access(folder, os.W_OK):
        return False
    real = os.path.realpath(folder)
    installed = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    return not any(real.startswith(os.path.realpath(p) + os.sep) for p in installed)


def _layer_channel(layer: Any, model: Any) -> list[str] | None:
    """``[name]`` of the channel a layer shows, when it is one channel's layer of a file of
    several and the model takes one channel it was not trained on by a name the file has:
    the channel the user chose is the one they mean (``segment`` would take every channel,
    and refuse). ``None`` otherwise: automatic stays ``segment``'s own choice."""
    from scopeml.napari._reader import layer_names
    from scopeml.tiling.model_inputs import recorded_channels

    source = layer_source(layer)
    if source is None or getattr(getattr(model, "spec", None), "in_channels", None) != 1:
        return None
    try:
        names = layer_facts(layer)[0]
    except Exception:  # a file scopeml cannot take: the run says why
        return None
    trained = recorded_channels(model) or ()
    if len(names) < 2 or (trained and set(trained) <= set(names)):
        return None
    shown = layer_names(source["path"], names)
    name = re.sub(r" \[\d+\]$", "", str(layer.name))  # napari's suffix for a repeated name
    return [names[shown.index(name)]] if name in shown else None


def _axes_note(layer: Any) -> str:
    """`` (layer read as T×Z×Y×X, by its 4 dimensions)``: the axes a run reads a layer with,
    an in-memory layer's from its axis labels or by its number of dimensions
    (:func:`~scopeml.napari._source.memory_axes`), a file's as the reader recorded them;
    nothing for a grey plane (Y×X: no other reading)."""
    from scopeml.napari._source import labelled_axes, memory_axes

    source = layer_source(layer)
    if source is not None:
        axes = source.get("axes")
        return (
            f" (layer read as {'×'.join(axes)})" if isinstance(axes, str) and axes != "YX" else ""
        )
    axes = memory_axes(layer)
    if axes == "YX" and not getattr(layer, "rgb", False):
        return ""
    if getattr(layer, "rgb", False):  # napari's own colour axis: no count to explain
        return f" (layer read as {'×'.join(axes)}×C, an RGB picture)"
    how = "its axis labels" if labelled_axes(layer) else f"its {len(axes)} dimensions"
    return f" (layer read as {'×'.join(axes)}, by {how})"


def _store_of(source: dict[str, Any] | None) -> Path | None:
    """The ``segment`` store a layer shows (an output of it, ``OUT.ome.zarr/labels``, or the
    store itself), else ``None``."""
    from scopeml.tiling.store import recorded_run

    if source is None:
        return None
    path = Path(source["path"]).resolve()
    for store in (path.parent, path):
        if store.name.lower().endswith(".zarr") and recorded_run(store) is not None:
            return store
    return None


def _holds_instances_of(seg: sm.Segmentation, class_: str) -> bool:
    """Whether a store's own instances are those of ``class_`` (its run record says so)."""
    from scopeml.tiling.store import recorded_run

    record = recorded_run(seg.path)
    made = record.get("instances") if isinstance(record, dict) else None
    if INSTANCES not in seg.outputs or not isinstance(made, dict):
        return False
    try:
        chosen = InstanceOptions(class_=class_).resolve(seg.classes)[0]
        return InstanceOptions.from_fields(made).resolve(seg.classes)[0] == chosen
    except ScopeMLError:
        return False


def _instances_from_labels(
    seg: sm.Segmentation, class_: str, output: Path, tile_size: Any, progress: Any
) -> sm.Image:
    """The instances of ``class_`` made as ``segment`` makes them, from a finished store's
    labels without running the model: seeds from its probabilities where it kept them, else
    from the labels (``--seed-threshold none``), grown over a boundary class."""
    from scopeml.segment_steps import write_instances

    kept = "probabilities" in seg.outputs
    options = InstanceOptions(class_=class_, seed_threshold=0.6 if kept else None)
    write_instances(seg, options, tile_size, progress, output=output)
    return sm.open_image(output)


def _objects_path(output: Path) -> Path:
    """The instances store written beside ``output``: ``OUT.objects.ome.zarr``."""
    return output.with_name(output.name.replace(".ome.zarr", "") + ".objects.ome.zarr")


def _made_by(layer: Any, store: Path) -> bool:
    """Whether ``layer`` shows an output of ``store`` or the instances made from it."""
    source = layer_source(layer)
    if source is None:
        return False
    path, store_path = os.path.abspath(source["path"]), os.path.abspath(store)
    return path.startswith(store_path + os.sep) or path == os.path.abspath(_objects_path(store))


def _in_gui_words(
    err: IncompatibleModelError, image: Any, model: Any, options: dict, layer_name: str
) -> Exception:
    """A channel-count mismatch said for the widget (its *channels* choice, not the command
    line's ``--channels``); any other incompatibility as it is."""
    from scopeml.tiling.model_inputs import recorded_channels

    want = model.spec.in_channels
    try:
        if isinstance(image, sm.Image):
            names = [str(name) for name in image.channel_names]
        else:
            with sm.open_image(image, scene=options.get("scene")) as opened:
                names = [str(name) for name in opened.channel_names]
    except Exception:
        return err
    chosen = options.get("channels")
    have = len(chosen) if chosen else len(names)
    if have == want:
        return err
    trained = recorded_channels(model)
    takes = f"the model {model.spec.name!r} takes {_count(want)}" + (
        f" (trained on {', '.join(trained)})" if trained else ""
    )
    several = "names separated by commas"
    if chosen:
        message = f"{_count(have)} chosen ({', '.join(chosen)}); {takes}: choose {want} under "
        message += "channels" + (f", {several}" if want > 1 else "")
    elif have > want:
        which = "one" if want == 1 else f"{want}, {several},"
        message = f"the image has {_count(have)} ({', '.join(names)}); {takes}: choose {which} "
        message += "under channels in this widget"
    else:
        message = f"the image has {_count(have)} ({', '.join(names)}); {takes}: apply it to an "
        message += f"image with {_count(want)}"
    where = err.path if err.path else f"layer {layer_name!r}"
    return IncompatibleModelError(f"{where}: {message}")


def _count(n: int) -> str:
    return f"{n} channel{'' if n == 1 else 's'}"
