"""Open a file with choices napari's File › Open has no place for: the scene of a multi-scene
file, and the axes of a TIFF whose pages are of unknown kind.

A plain multi-page TIFF (no ImageJ or OME metadata) does not say whether its pages are planes,
time points or channels; it opens as Z planes. The axes choice names them (``CYX``: the pages
are channels), as ``sm.open_image(path, axes=)`` and ``--axes`` do; the layers record it, so
the other widgets reopen the file with the same axes.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from scopeml.napari._qt import error_text, file_filter, row, scrolled_layout
from scopeml.napari._reader import ambiguous_pages, read_image
from scopeml.napari._source import scene_label

#: The axes choice that lets the file say (or scopeml guess, for a plain TIFF's pages).
AUTO_AXES = "(automatic)"
#: Offered axes; any other of the letters T, C, Z, Y, X may be typed (``TCYX``).
AXES_CHOICES = (AUTO_AXES, "CYX", "TYX", "ZYX", "TCYX", "ZCYX", "TZYX")


class OpenImageWidget(QWidget):
    """File, scene number, axes, Open: the scene's channels as lazy multiscale layers."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.path = QLineEdit()
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.scene = QSpinBox()
        self.scene.setRange(0, 9999)
        self.axes = QComboBox()
        self.axes.setEditable(True)
        self.axes.addItems(AXES_CHOICES)
        self.axes.setToolTip(
            "what a TIFF's axes are, one letter per axis (T time, C channel, Z plane, Y, X): "
            "CYX opens a plain multi-page TIFF's pages as channels, TYX as time points"
        )
        open_button = QPushButton("Open")
        open_button.clicked.connect(lambda: self.open())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = scrolled_layout(self)
        layout.addWidget(row("file", self.path, browse))
        layout.addWidget(row("scene", self.scene))
        layout.addWidget(row("axes", self.axes, open_button))
        layout.addWidget(self.status)
        layout.addStretch()

    def _browse(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Image", "", file_filter("images"))[0]
        if path:
            self.path.setText(path)

    def chosen_axes(self) -> str | None:
        """The typed or chosen axes (upper case, no spaces), ``None`` for automatic."""
        text = self.axes.currentText().strip()
        if not text or text == AUTO_AXES:
            return None
        return "".join(text.split()).upper()

    def open(self) -> list[Any]:
        """Add the chosen scene's layers, read with the chosen axes, to the viewer."""
        path, scene, axes = self.path.text().strip(), self.scene.value(), self.chosen_axes()
        try:
            layer_data = read_image(path, scene=scene, axes=axes)
        except Exception as err:
            self.status.setText(f"error: {error_text(err)}")
            return []
        layers = []
        # named by what was chosen: the scene (where the file has others) and the axes
        label = scene_label(path, scene, axes)
        chosen = [label] if label else []
        suffix = f" ({', '.join([*chosen, *([axes] if axes else [])])})" if chosen or axes else ""
        for data, kwargs, kind in layer_data:
            kwargs = dict(kwargs)
            if isinstance(kwargs.get("name"), list):
                kwargs["name"] = [f"{n}{suffix}" for n in kwargs["name"]]
            else:
                kwargs["name"] = f"{kwargs['name']}{suffix}"
            added = getattr(self.viewer, f"add_{kind}")(data, **kwargs)
            layers.extend(added if isinstance(added, list) else [added])
        said = f"opened {label + ' of ' if label else ''}{path}" + (
            f" with axes {axes}" if axes else ""
        )
        note = axes is None and ambiguous_pages(path, scene, how="choose axes")
        if note:  # the pages were guessed to be planes: say how to choose
            said += f"; {note.split(': ', 1)[1]} above and Open again"
        self.status.setText(said)
        return layers
