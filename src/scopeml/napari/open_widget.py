"""Open one scene of a multi-scene file (napari's File › Open has no place for a scene)."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QFileDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from scopeml.napari._qt import error_text, file_filter, row
from scopeml.napari._reader import read_image


class OpenImageWidget(QWidget):
    """File, scene number, Open: the scene's channels as lazy multiscale layers."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.path = QLineEdit()
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.scene = QSpinBox()
        self.scene.setRange(0, 9999)
        open_button = QPushButton("Open")
        open_button.clicked.connect(lambda: self.open())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(row("file", self.path, browse))
        layout.addWidget(row("scene", self.scene, open_button))
        layout.addWidget(self.status)

    def _browse(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Image", "", file_filter("images"))[0]
        if path:
            self.path.setText(path)

    def open(self) -> list[Any]:
        """Add the chosen scene's layers to the viewer."""
        path, scene = self.path.text().strip(), self.scene.value()
        try:
            layer_data = read_image(path, scene=scene)
        except Exception as err:
            self.status.setText(f"error: {error_text(err)}")
            return []
        layers = []
        for data, kwargs, kind in layer_data:
            kwargs = dict(kwargs)
            if "channel_axis" in kwargs or isinstance(kwargs.get("name"), list):
                kwargs["name"] = [f"{n} (scene {scene})" for n in kwargs["name"]]
            else:
                kwargs["name"] = f"{kwargs['name']} (scene {scene})"
            added = getattr(self.viewer, f"add_{kind}")(data, **kwargs)
            layers.extend(added if isinstance(added, list) else [added])
        self.status.setText(f"opened scene {scene} of {path}")
        return layers
