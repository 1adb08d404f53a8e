"""Small Qt pieces shared by the widgets: a labelled row, a status line, worker bookkeeping,
file-dialog filters."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)


def row(label: str, *widgets: QWidget) -> QWidget:
    """``label`` followed by ``widgets`` on one line."""
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(QLabel(label))
    for widget in widgets:
        layout.addWidget(widget)
    return box


#: The height a dock's content may be squeezed to (then it scrolls): five docks fit on a
#: 768-px screen.
MIN_DOCK_HEIGHT = 100


def scrolled_layout(widget: QWidget) -> QVBoxLayout:
    """The layout for ``widget``'s controls, inside a vertical scroll area that fills it: the
    docks' minimum heights added up (a trial: Pixel, Apply and Objects docked grew a
    1600×1000 window to 1600×1345 on a 1080-px screen), so each dock now scrolls instead."""
    content = QWidget()
    area = _ScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(content)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    return QVBoxLayout(content)


class _ScrollArea(QScrollArea):
    """A scroll area as wide as its content needs (it scrolls vertically only), a few lines
    tall at least (a dock squeezed to its title bar showed nothing)."""

    def minimumSizeHint(self) -> QSize:  # Qt's name
        inner = self.widget().minimumSizeHint()
        width = inner.width() + self.verticalScrollBar().sizeHint().width()
        return QSize(width, min(inner.height(), MIN_DOCK_HEIGHT))

    def sizeHint(self) -> QSize:  # Qt's: as tall as the content, up to 24 lines of text
        return QSize(self.minimumSizeHint().width(), super().sizeHint().height())


def show_rows(table: Any, rows: int) -> None:
    """Keep at least ``rows`` rows of ``table`` in view: stacked docks squeezed a class table
    to its header and one row, hiding the classes below it."""
    height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
    table.setMinimumHeight(height + rows * table.verticalHeader().defaultSectionSize())


def narrow_combo(combo: QComboBox, characters: int) -> None:
    """Let ``combo`` be as narrow as ``characters`` letters (its list still shows whole
    names): sized to its longest item, one combo set the width of its whole dock."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)


def fit_special_text(spinbox: Any) -> None:
    """Make a spin box wide enough for its special value text ("unlimited", "model default").

    napari's theme gives spin boxes a ``min-width`` (70 px) and puts the "−" button left of
    the text, which Qt's size hint does not count, so such a text was clipped; an explicit
    ``setMinimumWidth`` is overridden by the theme's ``min-width`` when the widget is polished.
    A ``min-width`` of the widget's own wins over the theme's; it is in ``em`` (Qt: the font's
    height) so that it follows the font napari gives the widget, plus 2 em for the buttons."""
    import math

    metrics = spinbox.fontMetrics()
    ems = math.ceil(metrics.horizontalAdvance(spinbox.specialValueText()) / metrics.height())
    spinbox.setStyleSheet(f"QAbstractSpinBox {{ min-width: {ems + 2}em; }}")


def file_filter(kind: str) -> str:
    """A file-dialog filter for ``"models"`` (the container suffixes) or ``"images"`` (the
    image files the readers open; OME-Zarr folders are opened by path or drag and drop).

    Examples
    --------
    >>> file_filter("models")
    'models (*.czann *.czseg *.czmodel)'
    """
    from scopeml.io.registry import IMAGE_SUFFIXES
    from scopeml.model.container import CONTAINER_SUFFIXES

    if kind == "models":
        suffixes: tuple[str, ...] = CONTAINER_SUFFIXES
    else:
        suffixes = tuple(s for s in IMAGE_SUFFIXES if "zarr" not in s)
    return f"{kind} ({' '.join('*' + s for s in suffixes)})"


class LayerChoice(QComboBox):
    """A combo box of the viewer's layers of one kind, kept in sync with the layer list and
    the layers' names: a layer renamed stays chosen, under its new name. With nothing chosen
    yet, the selected layer, else the top one that is not a store's output (the one opened
    last, such as a file opened again with its axes named; not the bottom one, nor the
    scribbles below the labels, nor a confidence map Apply added)."""

    def __init__(self, viewer: Any, kind: type, leave_out: Any = None) -> None:
        super().__init__()
        self.viewer, self.kind = viewer, kind
        self.leave_out = leave_out or (lambda layer: False)  # layers of the kind not offered
        self._shown: list[Any] = []  # the layers listed, in order (behind napari's proxies)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.refresh)
        viewer.layers.events.inserted.connect(lambda event: self._follow(event.value))
        for layer in viewer.layers:
            self._follow(layer)
        self.refresh()

    def _follow(self, layer: Any) -> None:
        layer.events.name.connect(self.refresh)

    def refresh(self, *_: Any) -> None:
        current, index = self.currentText(), self.currentIndex()
        chosen = self._shown[index] if 0 <= index < len(self._shown) else None
        self.clear()
        self._shown = [getattr(layer, "__wrapped__", layer) for layer in self.viewer.layers
                       if isinstance(layer, self.kind) and not self.leave_out(layer)]  # fmt: skip
        names = [layer.name for layer in self._shown]
        self.addItems(names)
        same = [i for i, layer in enumerate(self._shown) if layer is chosen]
        if same:
            self.setCurrentIndex(same[0])
        elif current in names:
            self.setCurrentText(current)
        elif self._shown:  # the selected layer, else the top one not made from another
            active = getattr(self.viewer.layers.selection, "active", None)  # (not scribbles)
            active = getattr(active, "__wrapped__", active)
            made = [_is_result(layer) for layer in self._shown]
            top = max((i for i, m in enumerate(made) if not m), default=len(self._shown) - 1)
            self.setCurrentIndex(self._shown.index(active) if active in self._shown else top)

    def layer(self) -> Any:
        name = self.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401


def _is_result(layer: Any) -> bool:
    """Whether a layer shows a segment store's output (its confidence, probabilities), made
    from an image rather than one to work on: a new widget does not start on it."""
    from scopeml.napari._layers import SOURCE_KEY, STORE_OUTPUTS

    source = (getattr(layer, "metadata", None) or {}).get(SOURCE_KEY) or {}
    path = source.get("path") if isinstance(source, dict) else None
    return bool(path) and os.path.basename(os.path.normpath(str(path))) in STORE_OUTPUTS


class AxesChoice(QComboBox):
    """How an in-memory 3-D layer whose axis labels name nothing is read: planes of a Z stack
    (the default) or the frames of a time series. Shown only for such a layer (a file's axes
    are the reader's, chosen in *Open image scene*); the choice is written into the layer's
    ``axis_labels``, which every widget reads, so a movie is not segmented as one 3-D stack
    with objects joined across its frames."""

    CHOICES: ClassVar[dict[str, str]] = {
        "ZYX": "Z×Y×X: planes of a stack",
        "TYX": "T×Y×X: frames of a time series",
    }

    def __init__(self, choice: LayerChoice) -> None:
        super().__init__()
        self.choice = choice
        self.addItems(list(self.CHOICES.values()))
        narrow_combo(self, 12)  # "Z×Y×X: planes…": the axes lead
        self.setToolTip("how the layer's 3 dimensions are read (its axis labels)")
        choice.currentTextChanged.connect(self.refresh)
        self.currentIndexChanged.connect(self._chosen)
        self.refresh()

    def _layer(self) -> Any:
        from scopeml.napari._source import layer_source

        layer = getattr(self.choice.layer(), "__wrapped__", self.choice.layer())
        if layer is None or layer_source(layer) is not None or getattr(layer, "rgb", False):
            return None
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        return layer if len(data.shape) == 3 else None

    def refresh(self, *_: Any) -> None:
        from scopeml.napari._source import memory_axes

        layer = self._layer()
        axes = memory_axes(layer) if layer is not None else None
        self.setVisible(axes in self.CHOICES)
        if axes in self.CHOICES:
            self.blockSignals(True)
            self.setCurrentIndex(list(self.CHOICES).index(axes))
            self.blockSignals(False)

    def _chosen(self, index: int) -> None:
        layer = self._layer()
        if layer is not None and 0 <= index < len(self.CHOICES):
            layer.axis_labels = tuple(list(self.CHOICES)[index].lower())


def run_in_thread(
    function: Callable[..., Any],
    *args: Any,
    on_done: Callable[[Any], None],
    on_error: Callable[[BaseException], None],
    on_warning: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``function`` in napari's worker thread; its result or error comes back on the GUI
    thread, and each warning it raises (a model trained on other intensities, channels taken
    by name) to ``on_warning``, by default a napari notification: the worker catches them, and
    nothing showed them. A TIFF's pages read by guess are not said again: the reader said so
    in the GUI's words, and the run in the command line's (``pass --axes TYX``). Returns the
    started worker."""
    from napari.qt.threading import create_worker

    from scopeml.napari._source import is_guess

    said = on_warning or _notify

    def warned(warning: Any) -> None:
        if not is_guess(str(warning[0])):
            said(str(warning[0]))

    # errors go to ``on_error`` only (an "errored" handler stops the worker re-raising them)
    connect = {"returned": on_done, "errored": on_error, "warned": warned}
    return create_worker(_own_warnings, function, *args, _connect=connect, **kwargs)


def _own_warnings(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function`` run with the GUI thread's warnings kept out of the worker's: the worker
    takes over ``warnings.showwarning`` for the whole process, so a warning napari raised
    meanwhile on the GUI thread was said as the run's. Those are printed, as Python prints
    them; the run's own, from its thread or its tiles' threads, stay the run's."""
    import sys
    import threading
    import warnings

    gui, worker_said = threading.main_thread(), warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, *rest: Any) -> None:
        if threading.current_thread() is gui:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))
        else:
            worker_said(message, category, filename, lineno, *rest)

    warnings.showwarning = show  # the worker gives back the process's own when it ends
    return function(*args, **kwargs)


def _notify(text: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(text)


def error_text(err: BaseException) -> str:
    """A one-line message: scopeml's own ``FILE: PROBLEM``, the system's as the CLI says it
    (``FILE: a file where a folder is needed``), else the exception's name and text."""
    from scopeml.errors import ScopeMLError, os_problem

    if isinstance(err, ScopeMLError):
        return str(err)
    if isinstance(err, OSError):
        problem = os_problem(err)
        where = os.fsdecode(err.filename) if err.filename is not None else ""
        return problem if not where or problem.startswith(where) else f"{where}: {problem}"
    return f"{type(err).__name__}: {err}"
