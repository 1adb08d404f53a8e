"""Paint scribbles, train a pixel classifier, preview it live, save and load models.

Scribbles live in a napari Labels layer (painted with napari's own brush; label ``k`` is class
``k``), made as soon as there is an image to paint on. Training is
``sm.train_pixel_classifier`` on the lazy image behind the chosen layer; the preview is
``sm.predict_region`` over the visible region (on a ``Z`` stack: the plane on screen), so it
equals what ``sm.segment`` writes there. Both run in napari's worker thread: painting never
waits for them. A stroke made while one runs is picked up by one more run afterwards. Any
error is one line in the status line, never a traceback.

Training reports its stages and can be cancelled: ``train_pixel_classifier`` stops at its
next labelled block or tree (one a thread at a time), keeping the model in use; a
preview cancelled ends in its thread (one visible region) and its result is discarded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
import weakref
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

import scopeml as sm
from scopeml.errors import (
    Cancelled,
    IncompatibleModelError,
    InvalidLabelsError,
    InvalidRequestError,
    os_problem,
    summarize,
)
from scopeml.napari._layers import SOURCE_KEY, class_colormap, class_features
from scopeml.napari._preview import (
    PREVIEW_EDGE,
    capped,
    layer_axes,
    layer_placement,
    placement_differences,
    predict_region,
    preview_request,
    region_normalization,
    region_placement,
    region_text,
    visible_region,
)
from scopeml.napari._qt import (
    AxesChoice,
    LayerChoice,
    error_text,
    file_filter,
    fit_special_text,
    narrow_combo,
    row,
    run_in_thread,
    scrolled_layout,
    show_rows,
)
from scopeml.napari._source import (
    content_key,
    layer_facts,
    layer_image,
    layer_source,
    scene_label,
)
from scopeml.palette import PALETTE
from scopeml.pixel import FeatureCache

SCRIBBLES = "scopeml scribbles"
STATUS = "paint scribbles, then Train"
PREVIEW = "scopeml preview"
#: The status once the user removed the scribbles layer and the widget made an empty one.
SCRIBBLES_REMOVED = (
    "the scribbles layer was removed: a new empty one was made (Import scribbles… brings "
    "back exported ones)"
)
DEFAULT_CLASSES = (("background", PALETTE[0]), ("foreground", PALETTE[1]))
#: Feature importances listed (the largest first).
TOP_FEATURES = 10
#: Memory the features kept between trainings may take (blocks beyond it are computed anew).
FEATURE_CACHE_BYTES = 1 << 30
FEATURES_TIP = (
    "A preset, a deep preset (ImageNet VGG weights must be in the cache; a -random name is the "
    "untrained network, no download) or a spec you type: family:sigma,sigma;… "
    "(gaussian_smoothing:1,3.5) or network:layer (vgg19-random:conv1_2), +basic25 adds the bank"
)


def feature_choices() -> list[str]:
    """The feature sets the combo offers: the filter-bank presets, the untrained deep presets
    (alone and with ``+basic25``), then the ImageNet ones (which need their weights)."""
    from scopeml.features import DEEP_PRESETS, PRESETS

    random = [name.replace("-", "-random-", 1) for name in DEEP_PRESETS]
    return [
        *PRESETS,
        *random,
        *(f"{name}+basic25" for name in random),
        *DEEP_PRESETS,
        *(f"{name}+basic25" for name in DEEP_PRESETS),
    ]


def features_text(features: Any) -> str:
    """The spec that names a model's feature set: its preset name, else the filters written
    as a spec (``gaussian_smoothing:1,3.5; hessian_of_gaussian_eigenvalues:1.6``), or a deep
    set as ``network:layer,…[@scales][+bank]``.

    Examples
    --------
    >>> from scopeml.features import parse_features
    >>> features_text(parse_features("basic33"))
    'basic33'
    >>> features_text(parse_features("gaussian_smoothing:1,3.5; laplacian_of_gaussian:0.7"))
    'gaussian_smoothing:1,3.5; laplacian_of_gaussian:0.7'
    """
    from scopeml.features import PRESETS, FeatureSet

    if isinstance(features, FeatureSet):
        if PRESETS.get(features.name) == features:
            return features.name
        groups: dict[str, list[str]] = {}
        for family, sigma in features.filters:
            groups.setdefault(family, []).append(
                f"{sigma:g}" if float(f"{sigma:g}") == sigma else repr(sigma)
            )
        return "; ".join(f"{family}:{','.join(sigmas)}" for family, sigmas in groups.items())
    if hasattr(features, "network") and hasattr(features, "layers"):  # deep features
        if features.name != "custom":
            return str(features.name)
        text = f"{features.network}:{','.join(features.layers)}"
        if tuple(features.scales) != (1,):
            text += "@" + ",".join(str(s) for s in features.scales)
        if features.filters is not None:
            text += "+" + features_text(features.filters)
        return text
    return str(getattr(features, "name", features))


#: Per viewer, the pixel classifier widget that answers its strokes and sliders: one opened
#: anew (its dock closed, then opened again) takes over from the one before, which stops.
_LISTENING: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
#: Per viewer, the classifier its last pixel classifier widget trained and nobody saved (the
#: viewer, weakly, and the model): a widget opened anew takes it over. Closing the dock had
#: dropped an unsaved classifier without a word.
_UNSAVED: dict[int, tuple[Any, Any]] = {}


def _digest(labels: Any) -> tuple[Any, int]:
    """Shape and checksum of scribbles: tells an undo from a refresh that changed nothing."""
    labels = np.ascontiguousarray(labels)
    return labels.shape, zlib.crc32(labels.view(np.uint8).reshape(-1))


def _history_mark(layer: Any) -> tuple[int, int] | None:
    """The lengths of a labels layer's undo and redo histories, which every stroke, undo and
    redo changes (``None`` where napari has none): a cheap test before a checksum."""
    undo, redo = getattr(layer, "_undo_history", None), getattr(layer, "_redo_history", None)
    return None if undo is None or redo is None else (len(undo), len(redo))


def _below_scribbles(layers: Any, name: str) -> None:
    """Move the layer ``name`` just under the scribbles: over them it hid the strokes."""
    names = [layer.name for layer in layers]
    if names.index(name) > names.index(SCRIBBLES):
        layers.move(names.index(name), names.index(SCRIBBLES))


def _real(viewer: Any) -> Any:
    """The viewer behind napari's ``PublicOnlyProxy`` (a new proxy for each widget the Plugins
    menu opens): the registries above are keyed on it."""
    return getattr(viewer, "__wrapped__", viewer)


class PixelClassifierWidget(QWidget):
    """Classes, features, Train, live preview, importances, save/load, scribbles in/out."""

    #: A stage of the work running in the worker thread (sent from that thread).
    stage = Signal(str)
    counted = Signal(int, int)  # done, total of the stage running: the bar shows them

    def __init__(self, napari_viewer: Any) -> None:
        import napari

        super().__init__()
        self.viewer = napari_viewer
        self.model: Any = None
        self._normalization: Any = None
        self._worker: Any = None
        self._pending = False  # a stroke while busy: train again afterwards
        self._pending_preview = False  # a preview asked for while busy: preview afterwards
        self._cancel = False
        #: the loaded model's feature set, under the text the combo shows for it
        self._loaded_features: tuple[str, Any] | None = None
        self._stage_text = ""
        self._started = 0.0
        self.last_region: dict[str, tuple[int, int]] | None = None
        self._trained_on: tuple[Any, int] | None = None  # the scribbles' _digest at Train
        self._history: tuple[int, int] | None = None  # their _history_mark when last checked
        self._scribbles_removed = False  # by the user: said when made anew

        self.image_choice = LayerChoice(napari_viewer, napari.layers.Image)
        # each stroke retrains: the features of the blocks painted are kept between trainings
        # of one image and feature set (a new cache for another: see _cache_for)
        self._feature_cache = FeatureCache(max_bytes=FEATURE_CACHE_BYTES)
        self._cached_for: tuple[Any, ...] | None = None
        # training sees every channel of the file behind the chosen layer: say which
        self.channels = QLabel()
        self.channels.setWordWrap(True)
        self.image_choice.currentTextChanged.connect(self._show_channels)
        # the combo changes several times while the layer list changes: act once it settles
        self.image_choice.currentTextChanged.connect(
            lambda *_: QTimer.singleShot(0, self._ensure_scribbles)
        )
        self.features = QComboBox()
        self.features.setEditable(True)  # a spec may be typed
        self.features.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.features.addItems(feature_choices())
        self.features.setToolTip(FEATURES_TIP)
        narrow_combo(self.features, 16)  # its longest name made the dock 530 px wide
        self._make_forest_controls()
        self.classes = QTableWidget(0, 2)
        self.classes.setHorizontalHeaderLabels(["class", "colour"])
        show_rows(self.classes, 3)
        # as tall as its rows need, no taller: stretched, it was a big empty grey area
        self.classes.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.classes.cellDoubleClicked.connect(self._pick_color)
        for name, color in DEFAULT_CLASSES:
            self.add_class(name, color)
        self._make_work_controls()
        self._lay_out()
        napari_viewer.dims.events.current_step.connect(self._on_dims)
        self._previewed: Any = None  # a weak reference to the image the status previewed
        napari_viewer.layers.events.removed.connect(self._on_removed)
        real = _real(napari_viewer)  # the Plugins menu gives a new proxy of it each time
        before = _LISTENING.get(id(real))
        if before is not None and _real(before.viewer) is real:  # not a closed viewer's id
            with contextlib.suppress(RuntimeError):  # its Qt side deleted: nothing listens
                before.stop_listening()
        _LISTENING[id(real)] = self
        self._docked = False  # in a dock once: taken out of it (closed), it stops listening
        self._show_channels()
        self._ensure_scribbles()
        self._take_over_unsaved()

    def _take_over_unsaved(self) -> None:
        """Use the classifier a closed dock of this viewer trained and left unsaved."""
        real = _real(self.viewer)
        viewer, model = _UNSAVED.get(id(real), (lambda: None, None))
        if model is None or viewer() is not real or getattr(model, "path", None):
            return
        self._use_model(model)
        self.status.setText(
            f"took over the classifier trained before this dock was closed "
            f"({', '.join(model.spec.classes)}; not saved: Save keeps it)"
        )

    def stop_listening(self) -> None:
        """Answer no more strokes and sliders, and drop the step running: a newer widget of the
        viewer took over (this one's dock was closed)."""
        self.live.setChecked(False)
        self.cancel()
        with contextlib.suppress(Exception):  # napari raises for a callback already gone
            self.viewer.dims.events.current_step.disconnect(self._on_dims)
        with contextlib.suppress(Exception):
            self.viewer.layers.events.removed.disconnect(self._on_removed)
        if SCRIBBLES in self.viewer.layers:
            events = self.viewer.layers[SCRIBBLES].events
            events.paint.disconnect(self._on_paint)
            events.set_data.disconnect(self._on_set_data)

    def event(self, event: Any) -> bool:
        """Taken out of its dock (napari's close button) the widget stops listening: it is
        still alive, and went on retraining on each stroke where nobody saw it."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked:
                self._docked = False
                with contextlib.suppress(Exception):  # a viewer closing; a Qt override must
                    self.stop_listening()  # not raise
        return super().event(event)

    def _make_forest_controls(self) -> None:
        """Trees, max depth and min leaf size: ``train_pixel_classifier``'s forest settings,
        with its defaults (100 trees, depth unlimited, leaves of 1 pixel)."""
        self.trees = QSpinBox()  # fewer trees: faster live retraining, a noisier forest
        self.trees.setRange(1, 1000)
        self.trees.setValue(100)
        self.max_depth = QSpinBox()  # shallower trees: faster, smoother, less detail
        self.max_depth.setRange(0, 1000)
        self.max_depth.setSpecialValueText("unlimited")  # shown for 0: no limit
        fit_special_text(self.max_depth)  # not clipped by napari's theme
        self.max_depth.setValue(0)
        self.max_depth.setToolTip("Tree depth limit (unlimited: grown until leaves are pure)")
        self.min_leaf = QSpinBox()  # larger leaves: less noise learnt from a few pixels
        self.min_leaf.setRange(1, 100_000)
        self.min_leaf.setValue(1)
        self.min_leaf.setToolTip("Fewest labelled pixels a leaf of a tree holds")

    def forest_options(self) -> dict[str, Any]:
        """The forest settings of the controls, as ``train_pixel_classifier`` takes them."""
        depth = self.max_depth.value()
        return {
            "n_estimators": self.trees.value(),
            "max_depth": depth or None,
            "min_samples_leaf": self.min_leaf.value(),
        }

    def _make_work_controls(self) -> None:
        """Train with its busy bar and Cancel, the preview buttons, importances, status."""
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(lambda: self.train())
        self.progress = QProgressBar()  # busy, then the count of the training stage running
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self.live = QCheckBox("Live preview")  # its row set the dock's width: said in the tip
        self.live.setToolTip("Train again after each stroke, then preview the region on screen")
        self.update_button = QPushButton("Update preview")
        self.update_button.clicked.connect(lambda: self.update_preview())
        self.importances = QPlainTextEdit()
        self.importances.setReadOnly(True)
        lines = self.importances.fontMetrics().lineSpacing()  # the top ten fit, five at least
        self.importances.setMinimumHeight(5 * lines + 12)
        self.importances.setMaximumHeight(TOP_FEATURES * lines + 12)
        self.status = QLabel(STATUS)
        self._other_image = ""  # the status's warning that the scribbles are another image's
        self._checked: tuple[Any, str] | None = None  # the image and warning said last
        self.status.setWordWrap(True)
        self._timer = QTimer(self)  # the seconds a step has run, in the status line
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)
        self.stage.connect(self._show_stage)
        self.counted.connect(self._show_count)

    def _lay_out(self) -> None:
        add, remove = QPushButton("Add class"), QPushButton("Remove class")
        add.clicked.connect(lambda: self.add_class(f"class {self.classes.rowCount() + 1}"))
        remove.clicked.connect(self._remove_class)
        layout = scrolled_layout(self)
        self.axes_choice = AxesChoice(self.image_choice)
        self.axes_choice.currentIndexChanged.connect(self._axes_chosen)  # after the image's
        layout.addWidget(row("image", self.image_choice, self.axes_choice))
        layout.addWidget(self.channels)
        layout.addWidget(row("features", self.features))
        layout.addWidget(row("trees", self.trees, QLabel("min leaf size"), self.min_leaf))
        layout.addWidget(row("max depth", self.max_depth))
        layout.addWidget(self.classes)
        layout.addWidget(row("", add, remove))
        layout.addWidget(self.train_button)
        layout.addWidget(row("", self.progress, self.cancel_button))
        layout.addWidget(row("", self.live, self.update_button))
        layout.addWidget(QLabel("feature importances"))
        layout.addWidget(self.importances)
        layout.addWidget(self._file_buttons())
        layout.addWidget(self.status)
        layout.addStretch()

    def _file_buttons(self) -> QWidget:
        """Save/load the model, import/export the scribbles: two rows of buttons (one row
        made the dock 530 px wide)."""
        buttons = {
            "Save model…": self._save_dialog,
            "Load model…": self._load_dialog,
            "Import scribbles…": self._import_dialog,
            "Export scribbles…": self._export_dialog,
        }
        files = QWidget()
        grid = QGridLayout(files)
        grid.setContentsMargins(0, 0, 0, 0)
        for index, (text, slot) in enumerate(buttons.items()):
            button = QPushButton(text)
            button.clicked.connect(slot)
            grid.addWidget(button, index // 2, index % 2)
        return files

    # ------------------------------------------------------------------ classes
    def add_class(self, name: str, color: str | None = None) -> None:
        """Append a class (label value = its row + 1) with a display colour."""
        from scopeml.palette import colour_of

        index = self.classes.rowCount()
        color = color or colour_of(index)
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
        """Remove the selected class (else the last): its strokes are erased and the classes
        after it move down one label value, so every stroke keeps its class. A classifier
        trained before, and its preview, are of the classes as they were: they go (Save and
        Apply would use classes the table no longer shows; the preview, their colours)."""
        count = self.classes.rowCount()
        if count <= 2:
            self.status.setText("error: a classifier needs at least two classes")
            return
        index = self.classes.currentRow()
        index = index if 0 <= index < count else count - 1
        name, value = self.classes.item(index, 0).text(), index + 1
        erased = 0
        if SCRIBBLES in self.viewer.layers:
            layer = self.viewer.layers[SCRIBBLES]
            data = np.asarray(layer.data)
            painted = data == value
            erased = int(painted.sum())
            data[painted] = 0
            data[data > value] -= 1
            layer.data = data
            layer.selected_label = min(layer.selected_label, count - 1)
        self.classes.removeRow(index)
        self._recolor()
        said = f"removed class {name}" + (f" and its {erased} painted pixels" if erased else "")
        if self.model is not None and tuple(self.class_names()) == self.model.spec.classes:
            self.status.setText(said)  # a class added since training: the model still fits
            return
        stale = self.model is not None or PREVIEW in self.viewer.layers
        self.cancel()
        self.model = None
        if PREVIEW in self.viewer.layers:
            self.viewer.layers.remove(PREVIEW)
        self.status.setText(
            said + ("; the classifier and its preview were of the classes before: Train again"
                    if stale else "")
        )  # fmt: skip

    def _pick_color(self, row_: int, column: int) -> None:
        if column != 1:
            return
        from qtpy.QtGui import QColor

        color = QColorDialog.getColor(QColor(self.classes.item(row_, 1).text()), self)
        if color.isValid():
            self.classes.item(row_, 1).setText(color.name())
            self._recolor()

    def _colormap(self, layer: str = SCRIBBLES) -> Any:
        """Every class in its colour on the scribbles; on the preview, the background class
        is left clear, as on an applied store: painted, it laid a tint over the whole image."""
        return class_colormap(
            self.class_names(), self.class_colors(), clear_background=layer == PREVIEW
        )

    def _recolor(self) -> None:
        for name in (SCRIBBLES, PREVIEW):
            if name in self.viewer.layers:
                self.viewer.layers[name].colormap = self._colormap(name)

    # ------------------------------------------------------------------ layers
    def image_layer(self) -> Any:
        layer = self.image_choice.layer()
        if layer is None:
            raise InvalidRequestError("open an image first (File › Open, or the demo sample)")
        return layer

    def training_channels(self) -> list[str]:
        """The channels training and the preview use: every channel of the chosen layer's
        file (not only the layer shown), or the layer's own (an RGB layer's R, G, B)."""
        layer = self.image_choice.layer()
        if layer is None:
            return []
        return layer_facts(layer)[0]  # a file's read once while unchanged

    def _show_channels(self, *_: Any) -> None:
        if self.image_choice.layer() is not None and "open an image first" in self.status.text():
            self.status.setText(STATUS)  # an image is open now: the error is stale
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
        """The scribbles Labels layer, made (empty) when missing: the image's ``[Z×]Y×X``, and
        ``T×[Z×]Y×X`` for a time series, so napari's sliders move the plane painted (each time
        point is scribbled apart); its axes recorded as a reader's layer records them, and the
        image they are for (:func:`_paint_for`)."""
        if SCRIBBLES in self.viewer.layers:  # made by a widget before: its strokes are ours now
            current = self.viewer.layers[SCRIBBLES]
            current.events.paint.connect(self._on_paint)  # once: napari ignores a repeat
            current.events.set_data.connect(self._on_set_data)
            return current
        layer = self.image_layer()
        _, shape, axes = layer_facts(layer)
        labels = self.viewer.add_labels(
            np.zeros(shape, np.uint8), name=SCRIBBLES, axis_labels=tuple(axes.lower()),
            colormap=self._colormap(), metadata={SOURCE_KEY: {"axes": axes}},
            **layer_placement(layer, axes),  # a stroke labels the image's pixel under it
        )  # fmt: skip
        _paint_for(labels, layer)
        labels.brush_size = 5
        labels.selected_label = 1
        labels.mode = "paint"
        labels.events.paint.connect(self._on_paint)
        labels.events.set_data.connect(self._on_set_data)
        self.viewer.layers.selection.active = labels
        if self._scribbles_removed:  # made anew without a word, the old status stayed
            self._scribbles_removed = False
            self.status.setText(SCRIBBLES_REMOVED)
        return labels

    def _axes_chosen(self, *_: Any) -> None:
        """The image's axes chosen anew (Z×Y×X or T×Y×X): its scribbles, made with the axes it
        had, read the same (trained on, exported as a series' time points or a stack's
        planes)."""
        layer = self.image_layer()
        if layer is None or SCRIBBLES not in self.viewer.layers:
            return
        scribbles = self.viewer.layers[SCRIBBLES]
        axes, made = layer_facts(layer)[2], scribbles.metadata.get(SOURCE_KEY) or {}
        if scribbles.ndim == len(axes) and made.get("image") == _image_key(layer):
            scribbles.axis_labels = tuple(axes.lower())
            scribbles.metadata = {**scribbles.metadata, SOURCE_KEY: {**made, "axes": axes}}

    def _ensure_scribbles(self) -> None:
        """Make the scribbles layer once there is an image to paint on; painted scribbles of
        another image are kept, and the status line says so (:meth:`_scribbles_for`) until
        their image is chosen again: once, not again on each change of the layer list (a
        preview added said it over the preview's own line)."""
        try:
            layer = self.image_choice.layer()
            if layer is None:
                return
            other = self._scribbles_for(layer)[1]
            if (_image_key(layer), other) == self._checked:
                return
            another = self._checked is not None and self._checked[0] != _image_key(layer)
            self._checked = (_image_key(layer), other)
            said = self._other_image and self.status.text().endswith(self._other_image)
            failed = another and self.status.text().startswith("error:") and not self.busy
            if other or said or failed:  # said, or an error on the image before: stale now
                self.status.setText(other or STATUS)
            self._other_image = other
        except Exception as err:
            self._fail(err)

    def _scribbles_for(self, layer: Any) -> tuple[Any, str]:
        """The scribbles layer for the image ``layer`` (made when missing; empty ones of another
        image made anew, or taken over where the shape is the same) and ``""``; painted ones of
        another image, whatever its shape, are kept with what to do as the second item: Train
        refuses them, as strokes drawn on one image say nothing of another's pixels (imported,
        they are the chosen image's: :meth:`import_scribbles`)."""
        if SCRIBBLES not in self.viewer.layers:
            return self.scribbles(), ""
        current = self.scribbles()  # there: its strokes now reach this widget
        shape, made = layer_facts(layer)[1], current.metadata.get(SOURCE_KEY) or {}
        same_shape = tuple(current.data.shape) == shape
        if same_shape and made.get("image") in (None, _image_key(layer)):  # None: not ours
            return current, _place_on(current, layer)
        if not np.any(np.asarray(current.data)):
            if same_shape:
                _paint_for(current, layer)
                _place_on(current, layer)
                return current, ""
            self.viewer.layers.remove(current)
            self._scribbles_removed = False  # removed here, for the image chosen: not news
            return self.scribbles(), ""
        if not same_shape:
            return current, (
                f"the scribbles ({'×'.join(map(str, current.data.shape))}) are for another "
                f"image than {layer.name} ({'×'.join(map(str, shape))}): export them, then "
                "delete the layer to paint anew"
            )
        painted_on = made.get("image_name", "another image")
        if made.get("image_name") and painted_on not in self.viewer.layers:
            return current, (
                f"the scribbles were painted on {painted_on}, which is closed: export them, "
                f"then delete the layer to paint anew, or import them to train {layer.name} on "
                "them"
            )
        return current, (
            f"the scribbles were painted on {painted_on}, not {layer.name}: choose {painted_on} "
            "again; or export them, then delete the layer to paint anew, or import them to "
            f"train {layer.name} on them"
        )

    def _on_removed(self, event: Any) -> None:
        """The image the preview is of removed: the preview goes with it (also while a
        training runs: it lay over nothing), and the status line is stale."""
        layer = getattr(event.value, "__wrapped__", event.value)
        with contextlib.suppress(RuntimeError):  # the widget closed; napari still calls it
            if layer.name == SCRIBBLES and SCRIBBLES not in self.viewer.layers:
                self._scribbles_removed = True  # said when they are made anew
            if self._previewed is None or self._previewed() is not layer:
                return
            self._drop_preview(layer)
            self._previewed, self.last_region = None, None
            if self.busy:  # the run's end says what it did
                return
            self.status.setText(
                f"{layer.name} was removed"
                + ("" if self.image_choice.layer() else ": open an image first (File › Open)")
            )

    def _drop_preview(self, layer: Any) -> None:
        """Remove the preview of ``layer``, removed (it lay over nothing), once napari has
        finished removing it."""
        layer = getattr(layer, "__wrapped__", layer)
        preview = self.viewer.layers[PREVIEW] if PREVIEW in self.viewer.layers else None  # noqa: SIM401
        if preview is not None and self._previewed is not None and self._previewed() is layer:
            QTimer.singleShot(0, lambda: self._remove_layer(preview))

    def _remove_layer(self, layer: Any) -> None:
        with contextlib.suppress(ValueError, RuntimeError):  # gone already, or the widget
            self.viewer.layers.remove(layer)

    def _on_paint(self, *_: Any) -> None:
        if self.live.isChecked():
            self.train(then_preview=True)

    def _on_set_data(self, *_: Any) -> None:
        """Live, an undo or redo of a stroke (Ctrl-Z) trains again as a stroke does: napari
        sends no ``paint`` for it, only ``set_data``, which any refresh sends too, so only
        scribbles changed since the last training count."""
        with contextlib.suppress(RuntimeError):  # the widget closed; napari still calls it
            if not self.live.isChecked() or self._trained_on is None:
                return
            if SCRIBBLES not in self.viewer.layers:
                return
            layer = self.viewer.layers[SCRIBBLES]
            mark = _history_mark(layer)  # a slider step sends set_data too: no checksum then
            if mark is not None and mark == self._history:
                return
            self._history = mark
            if _digest(layer.data) != self._trained_on:
                self.train(then_preview=True)

    def _on_dims(self, *_: Any) -> None:
        """Live preview: a plane newly on screen (``Z``/``T`` slider) is predicted."""
        try:
            if not self.live.isChecked() or self.model is None:
                return
            layer = self.image_choice.layer()
            if layer is None or set(layer_axes(layer)) <= set("YX"):
                return
            if self.last_region is not None and visible_region(layer, self.viewer.dims) == (
                self.last_region
            ):
                return
            self.update_preview()
        except RuntimeError:  # the widget was closed; napari still holds this callback
            return
        except Exception as err:
            self._fail(err)

    # ------------------------------------------------------------------ work
    @property
    def busy(self) -> bool:
        return self._worker is not None

    def _run(self, text: str, function: Any, *args: Any, on_done: Any) -> None:
        """Run ``function`` in the worker thread with the busy bar, Cancel and ``text`` (and the
        seconds it has run) in the status line; its result goes to ``on_done``, guarded."""
        self._cancel = False
        self._stage_text, self._started = text, time.monotonic()
        self.status.setText(text)
        self.progress.setRange(0, 0)  # busy until a stage gives its count
        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self._timer.start()
        self._worker = run_in_thread(
            function, *args, on_done=self._guarded(on_done), on_error=self._fail
        )

    def _idle(self) -> None:
        self._worker = None
        self._timer.stop()
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)

    def _guarded(self, slot: Any) -> Any:
        """``slot`` with any error sent to the status line (a Qt slot must not raise)."""

        def call(*args: Any) -> None:
            try:
                slot(*args)
            except Exception as err:
                self._fail(err)

        return call

    def _show_stage(self, text: str) -> None:
        if self.busy and not self._cancel:
            self._stage_text = text
            self._tick()

    def _tick(self) -> None:
        if self.busy and not self._cancel:
            seconds = time.monotonic() - self._started
            self.status.setText(f"{self._stage_text} ({seconds:.0f} s)")

    def _report(self, event: Any) -> None:
        """``train_pixel_classifier``'s progress, in the worker thread: the stage and its
        count to the status line; a Cancel pressed stops the training at the next one."""
        if self._cancel:
            raise Cancelled("training cancelled")
        what = "features of labelled block" if event.stage == "features" else "trees fitted"
        self.stage.emit(f"training: {what} {event.done}/{event.total}")
        if event.total:
            self.counted.emit(event.done, event.total)

    def _show_count(self, done: int, total: int) -> None:
        if self.busy and not self._cancel:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def cancel(self) -> None:
        """Stop what runs: training stops at its next block or round of trees; a preview
        running ends in its thread and its result is discarded (the model in use is kept)."""
        if not self.busy:
            return
        self._cancel = True
        self._pending = self._pending_preview = False
        self.status.setText(
            "cancelling: training stops after the trees it is fitting, a preview after its "
            "batch of tiles"
        )

    def _features_to_train(self) -> Any:
        """The combo's text; for the loaded model's entry, its feature set itself (deep
        features refit to the scribbled image, as training anew does)."""
        text = self.features.currentText().strip()
        if self._loaded_features is not None and text == self._loaded_features[0]:
            features = self._loaded_features[1]
            if getattr(features, "input_range", None) is not None:
                features = dataclasses.replace(features, input_range=None)
            return features
        return text

    def train(self, *, then_preview: bool | None = None) -> None:
        """Train on the scribbles in a worker thread; then preview if live (or asked)."""
        try:
            if then_preview is None:
                then_preview = self.live.isChecked()
            if self.busy:
                self._pending = True
                return
            layer = self.image_layer()
            scribbles, other = self._scribbles_for(layer)
            self._other_image = other  # said as Train's error, else no longer so
            if other:
                raise InvalidLabelsError(other)
            labels = np.asarray(scribbles.data)
            self._trained_on = _digest(labels)
            features = self._features_to_train()
            _check_deep_2d(layer, features)
            self._run(
                "training: reading the image and the scribbles…",
                _train,
                layer_image(layer),
                labels,
                self.class_names(),
                self.class_colors(),
                features,
                self.forest_options(),
                self._report,
                self._cache_for(layer, features),
                on_done=lambda model: self._trained(model, then_preview),
            )
        except Exception as err:
            self._fail(err)

    def _cache_for(self, layer: Any, features: Any) -> FeatureCache:
        """The feature cache for training ``layer`` with ``features``: the last one's while
        both are the same, else a new one (a training still running keeps the old: what it
        adds does not fill the new one's budget)."""
        key = (id(getattr(layer, "__wrapped__", layer)), repr(features))  # pixels checked too
        if key != self._cached_for:
            self._feature_cache = FeatureCache(max_bytes=FEATURE_CACHE_BYTES)
            self._cached_for = key
        return self._feature_cache

    def _trained(self, model: Any, then_preview: bool) -> None:
        self._idle()
        if self._cancel:
            self._after_cancel("training cancelled: its result is discarded")
            return
        self.set_model(model)
        channels = ", ".join(map(str, model.info.get("channels", ())))
        self.status.setText(
            f"trained {len(model.feature_names)} features ({features_text(model.features)}), "
            f"{model.forest.n_trees} trees, on {model.info.get('n_samples', '?')} labelled pixels"
            + (f" of channels {channels}" if channels else "")
            + (f"; {self._other_image}" if self._other_image else "")  # chosen meanwhile
        )
        if self._pending:
            self._pending = False
            self.train(then_preview=then_preview)
        elif then_preview or self._pending_preview:
            self._pending_preview = False
            self.update_preview()

    def set_model(self, model: Any) -> None:
        """Use ``model`` (a pixel classifier or any scopeml model) for the preview; a trained
        one without a file is the viewer's unsaved classifier (:data:`_UNSAVED`)."""
        self.model = model
        if hasattr(model, "forest") and getattr(model, "path", None) is None:
            real = _real(self.viewer)  # not the proxy: a widget opened anew has another
            if id(real) not in _UNSAVED:  # a closed viewer's goes with it
                weakref.finalize(real, _UNSAVED.pop, id(real), None)
            _UNSAVED[id(real)] = (weakref.ref(real), model)
        self._normalization = None
        self.last_region = None
        importances = getattr(model, "info", {}).get("feature_importances")
        if importances:
            names = _channel_named(model.feature_names, model.info.get("channels"))
            order = np.argsort(importances)[::-1][:TOP_FEATURES]
            self.importances.setPlainText(
                "\n".join(f"{importances[i]:.3f}  {names[i]}" for i in order)
            )
        else:
            self.importances.setPlainText("(this model records no feature importances)")

    def update_preview(self, region: dict[str, tuple[int, int]] | None = None) -> None:
        """Re-predict the visible region (or ``region``) in a worker thread: ``Y``/``X`` on
        screen (their middle :data:`PREVIEW_EDGE` pixels, zoomed out on a large image: a
        preview, not Apply) and, on a ``Z`` stack or time series, the plane the sliders are
        at."""
        try:
            if self.model is None:
                self.status.setText("train or load a model first")
                return
            if self.busy:
                self._pending_preview = True
                return
            layer = self.image_layer()
            region = dict(region or visible_region(layer, self.viewer.dims))
            self.last_region = dict(region)
            notes = []
            if capped(region) != region:
                region = capped(region)
                notes.append(f"the view's middle {PREVIEW_EDGE}²: zoom in, or Apply for all")
            if self.viewer.dims.ndisplay == 3 and set(region) & set("TZ"):
                notes.append("3-D display: the preview is this one plane")
            note = f" ({'; '.join(notes)})" if notes else ""
            self._run(
                f"predicting {region_text(region)}{note}…",
                self._predict,
                layer_image(layer),
                self.model,
                region,
                getattr(layer, "__wrapped__", layer),  # the layer behind a plugin proxy
                on_done=lambda labels: self._show_preview(labels, region, layer, note),
            )
        except Exception as err:
            self._fail(err)

    def _predict(
        self, image: sm.Image, model: Any, region: dict[str, tuple[int, int]], layer: Any = None
    ) -> Any:
        """The worker: the region's labels (of the scene its ``S`` names, on a layer of several
        scenes), with the whole-image normalisation of a model that normalises computed once per
        model, pixels and scene (another image, or the same array edited in place, is computed
        anew: :func:`content_key`)."""
        from scopeml.model.spec import recorded_normalize
        from scopeml.tiling.normalize import parse_normalize

        region, options = preview_request(model, region)
        scene, stop = options.scene, self._stop_preview
        with image:
            if parse_normalize(recorded_normalize(model))[0] == "none":
                return predict_region(image, model, region, options=options, normalization=None,
                                      progress=stop)  # fmt: skip
            key = (content_key(layer), scene) if layer is not None else None
            cached = self._normalization
            if cached is None or cached[0] is not model or key is None or cached[1] != key:
                normalization = region_normalization(image, model, scene=scene or 0,
                                                     progress=stop)  # fmt: skip
                cached = (model, key, normalization)
                self._normalization = cached
            return predict_region(image, model, region, options=options,
                                  normalization=cached[2], progress=stop)  # fmt: skip

    def _stop_preview(self, event: Any) -> None:
        """A preview's progress, in the worker thread: Cancel stops it between two batches of
        tiles (a zoomed-out preview ran on for half a minute, a Train clicked after behind it)."""
        if self._cancel:
            raise Cancelled("preview cancelled")

    def _show_preview(
        self, labels: np.ndarray, region: dict[str, tuple[int, int]], layer: Any, note: str = ""
    ) -> None:
        """Show the labels predicted over ``region`` where they lie: a layer of the image's
        dimensions (a ``Z`` stack's preview is the one plane predicted, at that plane)."""
        self._idle()
        if self._cancel:
            self._after_cancel("preview cancelled")
            return
        if not _is_open(self.viewer, layer):  # removed while it ran: nothing to lay it on
            self.status.setText(f"preview discarded: {layer.name} was removed")
            self._pending = self._pending_preview = False
            self._drop_preview(layer)
            return
        shape, placed = region_placement(layer, region)
        if labels.size != int(np.prod(shape)):
            raise InvalidRequestError(
                f"the preview of {region_text(region)} has shape {labels.shape}, not "
                f"{'×'.join(map(str, shape))}"
            )
        labels = labels.reshape(shape)
        preview = self.viewer.layers[PREVIEW] if PREVIEW in self.viewer.layers else None  # noqa: SIM401
        if preview is not None and preview.ndim != labels.ndim:
            self.viewer.layers.remove(preview)  # another image's: made anew below
            preview = None
        classes = class_features(self.model.spec.classes if self.model else self.class_names())
        if preview is not None:
            preview.data = labels
            for key, value in placed.items():
                setattr(preview, key, value)
            preview.features = classes  # the classes' names: what Label objects takes
        else:
            self.viewer.add_labels(
                labels, name=PREVIEW, opacity=0.5, axis_labels=layer.axis_labels[-len(shape) :],
                colormap=self._colormap(PREVIEW), features=classes, **placed,
            )  # fmt: skip
            if SCRIBBLES in self.viewer.layers:  # keep painting on the scribbles, seen
                _below_scribbles(self.viewer.layers, PREVIEW)
                self.viewer.layers.selection.active = self.viewer.layers[SCRIBBLES]
        self.status.setText(f"preview of {_where(layer, region)}{note}")
        self._previewed = weakref.ref(getattr(layer, "__wrapped__", layer))
        if self._pending:
            self._pending = False
            self.train(then_preview=True)
        elif self._pending_preview:
            self._pending_preview = False
            self.update_preview()

    def _fail(self, err: BaseException) -> None:
        self._idle()
        if isinstance(err, Cancelled) or self._cancel:
            self._after_cancel(str(err) if isinstance(err, Cancelled) else "cancelled")
            return
        self._pending = self._pending_preview = False
        self.status.setText(f"error: {self._in_widget_words(err)}")

    def _after_cancel(self, said: str) -> None:
        """Once a cancelled step has ended: say so (and whether a model stays in use), then
        do what was asked while it ended (Train, a preview: those clicks were lost); the
        cancel is over, so a later error is said as one."""
        self._cancel = False
        kept = "the model in use is kept" if self.model is not None else "no model yet"
        self.status.setText(f"{said}; {kept}")
        if self._pending:
            self._pending = self._pending_preview = False
            self.train()
        elif self._pending_preview:
            self._pending_preview = False
            self.update_preview()

    def _in_widget_words(self, err: BaseException) -> str:
        """A model that takes other channels than the image has, said for this widget (train
        on the image, or choose the one it was trained on), not with ``segment``'s
        ``--channels``; any other error as it is."""
        from scopeml.tiling.model_inputs import recorded_channels

        layer = self.image_layer() if isinstance(err, IncompatibleModelError) else None
        if layer is None or self.model is None:
            return error_text(err)
        names = layer_facts(layer)[0]
        want = self.model.spec.in_channels
        if len(names) == want:
            return error_text(err)
        trained = recorded_channels(self.model)
        on = f" ({', '.join(trained)})" if trained else ""
        return (
            f"the classifier takes {want} channel{'s' * (want != 1)}{on}; {layer.name} has "
            f"{len(names)} ({', '.join(names)}): train on this image, or choose the image "
            "it was trained on"
        )

    # ------------------------------------------------------------------ files
    def save_model(self, path: str | Path) -> Path:
        """Save the trained pixel classifier as ``.czseg``: a name without that suffix gets it,
        as napari's reader opens only model suffixes (``.czann`` is a CNN's container, which
        this is not: replaced); a missing folder is made."""
        if self.model is None or not hasattr(self.model, "save"):
            raise InvalidRequestError("no trained pixel classifier to save")
        path = Path(path)
        if path.suffix.lower() == ".czann":
            path = path.with_suffix(".czseg")
        elif path.suffix.lower() != ".czseg":
            path = path.with_name(f"{path.name}.czseg")
        with _writing(path):
            saved = self.model.save(path, overwrite=True)  # the save dialog asked first
        self.status.setText(f"saved {saved}")
        return saved

    def load_model(self, path: str | Path) -> None:
        """Load a ``.czseg`` (its classes and colours, its feature set and number of trees,
        so that training again keeps them) or a ``.czann`` for the preview."""
        try:
            model = sm.open_model(path)
        except Exception as err:
            self._fail(err)
            return
        described = self._use_model(model)
        self.status.setText(f"loaded {Path(path).name}: {', '.join(model.spec.classes)}{described}")

    def _use_model(self, model: Any) -> str:
        """Show ``model``'s classes and colours, and a classifier's feature set and forest (so
        that training again keeps them), and use it; what it holds, for the status."""
        classes = getattr(model, "classes", None)
        if classes and hasattr(classes[0], "color"):
            self.set_classes([c.name for c in classes], [c.color for c in classes])
        else:
            names = list(model.spec.classes)
            self.set_classes(names, [None] * len(names))  # type: ignore[list-item]
        features = getattr(model, "features", None)
        described = ""
        if features is not None and hasattr(model, "forest"):
            text = features_text(features)
            self._loaded_features = (text, features)
            if self.features.findText(text) < 0:
                self.features.addItem(text)
            self.features.setCurrentText(text)
            self.trees.setValue(int(model.info.get("n_estimators") or model.forest.n_trees))
            self.max_depth.setValue(int(model.info.get("max_depth") or 0))  # 0: unlimited
            self.min_leaf.setValue(int(model.info.get("min_samples_leaf") or 1))
            described = f" ({len(model.feature_names)} features {text}, {self.trees.value()} trees)"
        self.set_model(model)
        return described

    def import_scribbles(self, path: str | Path) -> None:
        """Replace the scribbles with a label image file (TIFF, PNG, OME-Zarr …) of their
        axes (a plain TIFF's pages are the time points of a series' scribbles)."""
        layer = self.scribbles()
        data = _as_scribbles(path, layer_axes(layer), layer.data.shape)
        layer.data = data.astype(np.uint8 if data.max() < 256 else np.uint16)
        _paint_for(layer, self.image_layer())  # imported for the image chosen, placed on it
        _place_on(layer, self.image_layer())
        self._other_image = ""  # theirs now: Train no longer warns of another image
        self.status.setText(f"imported {_labelled(layer.data)} from {Path(path).name}")

    def export_scribbles(self, path: str | Path) -> Path:
        """Write the scribbles as a TIFF label image (0 unlabelled, k = class k) that names
        its axes in OME metadata (``YX``, ``ZYX``, a series' ``TYX`` …; several scenes: one
        OME image each), so ``scopeml pixel train`` and ``sm.open_image`` read a series'
        time points as time points, not planes. Written as a model is saved: atomically, a
        missing folder made, ``.tif`` added to a name without a TIFF suffix (as the readers
        know a file by it). Of the smallest unsigned type that holds the classes: napari's
        Labels are int64 by default, which OME-TIFF does not take."""
        import tifffile

        from scopeml.io.dtypes import label_dtype
        from scopeml.io.replace import atomic_write

        path = Path(path)
        if not path.name.lower().endswith((".tif", ".tiff")):
            path = path.with_name(f"{path.name}.tif")
        layer = self.scribbles()
        data, axes = np.asarray(layer.data), layer_axes(layer)
        if data.size and data.min() < 0:
            raise InvalidLabelsError(f"strokes of label {data.min()}: classes are 1 or more")
        data = data.astype(label_dtype(int(data.max()) if data.size else 0), copy=False)
        scenes = data if axes.startswith("S") else data[None]
        with (
            _writing(path),
            atomic_write(path) as temp,
            tifffile.TiffWriter(temp, ome=True) as tiff,
        ):
            for scene in scenes:
                tiff.write(scene, compression="zlib", metadata={"axes": axes.lstrip("S")})
        self.status.setText(f"exported {_labelled(data)} to {path}")
        return path

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


def _as_scribbles(path: str | Path, axes: str, want: tuple[int, ...]) -> np.ndarray:
    """The label image at ``path`` as scribbles of ``axes`` (``"TYX"`` …) and shape ``want``,
    read as ``scopeml pixel train`` reads labels for an image of those sizes (a plain TIFF's
    pages are the time points of a series' scribbles: :mod:`scopeml.pixel._labels`).

    Examples
    --------
    >>> import tifffile
    >>> path = getfixture("tmp_path") / "s.tif"
    >>> tifffile.imwrite(path, np.ones((3, 4, 5), np.uint8))  # 3 pages: written as one RGB page
    >>> _as_scribbles(path, "TYX", (3, 4, 5)).shape
    (3, 4, 5)
    """
    from scopeml.pixel._labels import open_training_labels

    sizes = dict(zip(axes, want, strict=True))
    with open_training_labels(path, sizes) as image:
        data = image.read()
    found = dict(zip("STCZYX", data.shape, strict=True))
    shape = tuple(found.get(a) for a in axes)
    if shape != tuple(want) or any(found[a] != 1 for a in "STCZ" if a not in axes):
        text = " ".join(f"{a}={n}" for a, n in found.items() if n > 1 or a in "YX")
        raise InvalidLabelsError(
            f"labels of sizes {text}; the scribbles are {axes} {'×'.join(map(str, want))}",
            path=path,
        )
    return data.reshape(want)


def _labelled(data: np.ndarray) -> str:
    """``1234 labelled pixels in classes 1, 2``."""
    values, counts = np.unique(np.asarray(data), return_counts=True)
    kept = values > 0
    classes = ", ".join(str(v) for v in values[kept])
    return f"{int(counts[kept].sum())} labelled pixels" + (
        f" in classes {classes}" if classes else ""
    )


def _image_key(layer: Any) -> tuple[Any, ...]:
    """Which image training reads for ``layer``: a file's path, scene and axes (the layers of
    one file's channels are one image), else the layer itself (napari's id: kept on a rename).
    """
    source = layer_source(layer)
    if source is not None:
        path = os.path.abspath(source["path"])
        return ("file", path, source.get("scene"), source.get("file_axes"))
    return ("layer", str(getattr(layer, "unique_id", id(layer))))


def _paint_for(scribbles: Any, layer: Any) -> None:
    """Record in the scribbles layer's metadata the image ``layer`` they are painted for."""
    made = scribbles.metadata.setdefault(SOURCE_KEY, {})
    made["image"], made["image_name"] = _image_key(layer), str(layer.name)


def _is_open(viewer: Any, layer: Any) -> bool:
    """Whether ``layer`` is still one of the viewer's (behind napari's plugin proxies)."""
    real = getattr(layer, "__wrapped__", layer)
    return any(getattr(other, "__wrapped__", other) is real for other in viewer.layers)


def _place_on(scribbles: Any, layer: Any) -> str:
    """Put the scribbles where the image ``layer`` lies (its scale, translate, rotation …),
    so that a stroke labels the pixel under the brush; ``""``, or, where painted scribbles
    lay elsewhere (the image moved, or they were made before it was placed), what Train says
    before it trains on them: strokes painted there may lie on other pixels than meant."""
    axes = layer_axes(scribbles)
    placed, now = layer_placement(layer, axes), layer_placement(scribbles, axes)
    differences = placement_differences(placed, now)
    if not differences:
        return ""
    for key, value in placed.items():
        setattr(scribbles, key, value)
    if not np.any(np.asarray(scribbles.data)):
        return ""
    moved = ", ".join(
        f"{key} {_numbers(now[key])}, not {_numbers(placed[key])}"
        if key in ("scale", "translate")
        else key
        for key in differences
    )
    return (
        f"the scribbles lay elsewhere than {layer.name} ({moved}): they are moved onto it "
        "now; check that each stroke lies where you meant, then Train"
    )


def _numbers(values: Any) -> str:
    """``30, 40``: a placement's numbers as the status line writes them."""
    return ", ".join(f"{float(v):g}" for v in np.ravel(values))


def _where(layer: Any, region: dict[str, tuple[int, int]]) -> str:
    """The region previewed, its scene named as the file names it (the one at the S slider,
    or the one the layer was opened as), as the layers are."""
    source = layer_source(layer)
    scene = region["S"][0] if "S" in region else None if source is None else source.get("scene")
    label = "" if source is None else scene_label(source["path"], scene, source.get("file_axes"))
    rest = region_text({axis: span for axis, span in region.items() if axis != "S" or not label})
    return f"{label}, {rest}" if label else rest


@contextlib.contextmanager
def _writing(path: str | Path) -> Iterator[None]:
    """A file the system will not write (no permission, a file where a folder is needed) as
    one scopeml line naming it, not Python's ``OSError``."""
    try:
        yield
    except OSError as err:
        raise InvalidRequestError(f"cannot write {path}: {os_problem(err)}") from err


def _check_strokes(labels: np.ndarray, classes: list[str]) -> None:
    """Scribbles training would refuse, said in the widget's words (classes, strokes, labels
    painted) before any work, not with the library's label values for the CLI (``map 2 to
    1``, ``class names were given``)."""
    values = [int(v) for v in np.unique(labels) if v > 0]
    k = len(classes)
    if beyond := [v for v in values if v > k]:
        allowed = f"{', '.join(map(str, range(1, k)))} or {k}" if k <= 4 else f"1 to {k}"
        raise InvalidLabelsError(
            f"strokes of label{'s' * (len(beyond) > 1)} {summarize(beyond)}, but the widget has "
            f"{k} classes ({', '.join(classes)}): add a class, or repaint them with label "
            f"{allowed}"
        )
    unpainted = [f"'{name}'" for v, name in enumerate(classes, 1) if v not in values]
    missing = " and ".join(unpainted)
    if len(values) < 2:
        only = f"only '{classes[values[0] - 1]}' has strokes" if values else "no strokes yet"
        also = "also " if values else ""
        raise InvalidLabelsError(f"paint at least two classes: {only} ({also}paint {missing})")
    if len(unpainted) == 1:
        raise InvalidLabelsError(f"every class needs strokes: {missing} has none (paint it, or "
                                 "remove the class)")  # fmt: skip
    if unpainted:
        raise InvalidLabelsError(f"every class needs strokes: {missing} have none (paint them, "
                                 "or remove those classes)")  # fmt: skip


def _check_deep_2d(layer: Any, features: Any) -> None:
    """Deep features on a Z stack, refused in the widget's words before any work (training
    said it with a block's shape, or with ``--axes``): its planes read as time points make a
    2-D classifier that Apply runs plane by plane; a file's axes are chosen when it is opened
    (a TIFF's only: other formats name their axes)."""
    from scopeml.features import parse_features
    from scopeml.napari._reader import REOPEN

    try:
        parsed = parse_features(features) if isinstance(features, str) else features
    except Exception:  # a spec mistyped: training says what is wrong with it
        return
    _, shape, axes = layer_facts(layer)
    if not hasattr(parsed, "network") or "Z" not in axes:  # network: deep features
        return
    source = layer_source(layer)
    if source is None:
        way = "choose T×Y×X beside the image to train on each plane, or "
    elif str(source["path"]).lower().endswith((".tif", ".tiff")):
        way = f"reopen it in {REOPEN} with axes TYX to train on each plane, or "
    else:
        way = ""
    raise InvalidRequestError(
        f"deep features are 2-D; {layer.name} is a Z stack of {shape[axes.index('Z')]} planes: "
        f"{way}choose filter features (basic25 …) for a 3-D classifier"
    )


def _channel_named(names: list[str], channels: Any) -> list[str]:
    """Feature names with ``[Ck]`` written as the channel's name, as the channel line names
    it (``gaussian_smoothing(sigma=1)[DAPI]``), where the model records its channels."""
    if not channels:
        return names
    channels = [str(c) for c in channels]

    def name(match: re.Match[str]) -> str:
        index = int(match[1])
        return f"[{channels[index]}]" if index < len(channels) else match[0]

    return [re.sub(r"\[C(\d+)\]", name, n, count=1) for n in names]


def _train(
    image: sm.Image,
    labels: np.ndarray,
    classes: list[str],
    colors: list[str],
    features: Any,
    forest: dict[str, Any],
    progress: Any = None,
    cache: Any = None,
) -> Any:
    """Train in the worker thread, with the class colours and the channel names kept in the
    model (as ``scopeml pixel train`` keeps them: ``pixel info`` shows them, and a run on an
    image with other channels names them). ``forest``: :meth:`~PixelClassifierWidget.
    forest_options`. A series' scribbles (``T×[Z×]Y×X``) go as they are: every time point
    painted is trained on."""
    _check_strokes(labels, classes)
    with image:
        return sm.train_pixel_classifier(
            image,
            _series_labels(labels, image),
            classes=classes,
            colors=colors,
            features=features,
            progress=progress,
            cache=cache,
            **forest,
        )


def _series_labels(labels: np.ndarray, image: sm.Image) -> np.ndarray:
    """Scribbles as training takes them: of one scene and time point as they are; of a series
    ``T×[Z×]Y×X`` (several scenes: ``S×T×[Z×]Y×X``), from the layer's ``[S×][T×][Z×]Y×X``.

    Examples
    --------
    >>> image = sm.Image(np.zeros((2, 1, 1, 1, 4, 4), np.uint8))
    >>> _series_labels(np.zeros((2, 4, 4), np.uint8), image).shape
    (2, 1, 4, 4)
    """
    s, t, _, z, y, x = image.shape
    if s * t == 1:
        return labels
    from scopeml.napari._source import image_shape, scribble_axes

    want = image_shape(image, scribble_axes(image))
    if tuple(labels.shape) != want:
        raise InvalidLabelsError(
            f"the scribbles are {'×'.join(map(str, labels.shape))}; the image's "
            f"{scribble_axes(image)} are {'×'.join(map(str, want))}: delete the scribbles layer "
            "to paint anew",
            path=image.path,
        )
    spatial = (z, y, x) if z > 1 else (y, x)
    return labels.reshape((s, t, *spatial) if s > 1 else (t, *spatial))
