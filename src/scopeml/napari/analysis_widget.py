"""Run an analysis settings file (``sm.analyze``) on the file behind the open image.

The settings are checked when loaded (errors name the file and line); the run goes to a results
folder in napari's worker thread with a progress bar and Cancel; each class's label store opens
as a layer and the object counts are listed.

Run again into the same results folder (the default after a first run): *continue it* keeps the
images it finished and analyses the others (``resume=True``; its settings must be the same
but for rules and object classifiers, applied to the finished tables);
*replace it* deletes the earlier results first, and only in a folder that holds a scopeml
analysis's results (its ``settings.yaml`` and ``images/``), never any other folder.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

import scopeml as sm
from scopeml.analysis.runner import is_results_folder
from scopeml.errors import Cancelled, InvalidRequestError
from scopeml.napari._layers import labels_layer_data, open_levels
from scopeml.napari._qt import LayerChoice, error_text, row, run_in_thread, scrolled_layout
from scopeml.napari._reader import REOPEN
from scopeml.napari._source import layer_source, scene_label

#: What Run does with a results folder that holds an earlier run's results.
CONTINUE = "continue it (keep the images it finished)"
REPLACE = "replace it (delete its results first)"


class AnalysisWidget(QWidget):
    """Settings file → Run on the layer's file → class layers and counts."""

    progressed = Signal(int, int)

    def __init__(self, napari_viewer: Any) -> None:
        import napari

        super().__init__()
        self.viewer = napari_viewer
        self.settings: Any = None
        self.settings_path: Path | None = None
        self.result: Any = None
        self._worker: Any = None
        self._image = ""  # the file being analysed, its scene and axes
        self._source: dict[str, Any] = {}
        self._scene: int | None = None
        self._axes: str | None = None
        self._cancel = threading.Event()
        self.image_choice = LayerChoice(napari_viewer, napari.layers.Image)
        self.path = QLineEdit()
        self.path.setPlaceholderText("analysis settings (.yaml)")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.output = QLineEdit()
        self.output.setPlaceholderText("results folder (default: a new temporary folder)")
        self.existing = QComboBox()
        self.existing.addItems([CONTINUE, REPLACE])
        self.existing.setToolTip(
            "when the results folder holds an earlier run: continue it (the same settings but "
            "for rules and object classifiers; images it finished are kept) or replace it "
            "(only a scopeml results folder)"
        )
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self._cancel.set)
        self.bar = QProgressBar()
        self.status = QLabel("load a settings file")
        self.status.setWordWrap(True)
        self.progressed.connect(self._draw)
        layout = scrolled_layout(self)
        layout.addWidget(row("image", self.image_choice))
        layout.addWidget(row("settings", self.path, browse))
        layout.addWidget(row("results", self.output))
        layout.addWidget(row("if it exists", self.existing))
        layout.addWidget(row("", self.run_button, self.cancel_button))
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch()

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def load_settings(self, path: str | Path) -> None:
        """Load and check a settings file; list its classes."""
        from scopeml.analysis import load_settings

        self.path.setText(str(path))  # the file said, also when it fails to load
        try:
            self.settings = load_settings(path)
        except Exception as err:
            self.settings, self.settings_path = None, None  # Run never runs an earlier file
            self._fail(err)
            return
        self.settings_path = Path(path)
        self.path.setText(str(path))
        names = ", ".join(c.name for c in self.settings.classes)
        self.status.setText(f"classes: {names}")

    def _browse(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Settings", "", "settings (*.yaml *.yml)")[0]
        if path:
            self.load_settings(path)

    def run(self) -> None:
        """Analyse the file behind the chosen layer in a worker thread."""
        if self.busy:
            return
        try:
            typed = self.path.text().strip()
            if not typed:
                raise InvalidRequestError("load a settings file first")
            self.load_settings(typed)  # as the file is now: the run reads it so too
            if self.settings is None:
                return
            source = layer_source(self.image_choice.layer())
            if source is None:
                raise InvalidRequestError(
                    "the analysis runs on files: open the image with the scopeml reader"
                )
        except Exception as err:
            self._fail(err)
            return
        self._source, self._image = source, source["path"]
        self._scene, self._axes = source.get("scene"), source.get("file_axes")
        output = Path(self.output.text().strip() or tempfile.mkdtemp(prefix="scopeml-") + "/r")
        self.output.setText(str(output))
        earlier = output.is_dir() and any(output.iterdir())
        replace = earlier and self.existing.currentText() == REPLACE
        if earlier and not is_results_folder(output):
            self.status.setText(
                f"error: {output} holds other files, not a scopeml analysis's results: "
                "choose another results folder"
            )
            return
        if replace:
            self._remove_layers_of(output)  # their files are about to go
        self._cancel.clear()
        self.status.setText(("replacing the earlier results; " if replace else "") + "analysing…")
        self._worker = run_in_thread(
            _analyze,
            self.settings_path,
            source,
            output,
            replace=replace,
            progress=self._report,
            on_done=self._finished,
            on_error=self._fail,
        )

    def _remove_layers_of(self, folder: Path) -> None:
        """Remove the layers that show stores inside ``folder`` (a results folder, or one
        image's folder in it: an earlier run's classes of that image)."""
        inside = str(folder.resolve()) + "/"
        for layer in list(self.viewer.layers):
            source = layer_source(layer)
            if source and str(Path(source["path"]).resolve()).startswith(inside):
                self.viewer.layers.remove(layer.name)

    def _name_by_image(self, output: Path) -> None:
        """Name the class layers of ``output``'s earlier images by their image too, now that
        the folder holds several (``nucleus`` → ``nucleus (hela)``)."""
        images = (output / "images").resolve()
        for layer in list(self.viewer.layers):
            source = layer_source(layer)
            store = Path(source["path"]).resolve() if source else None
            if store is not None and store.parent.parent == images:
                class_name = store.name.removesuffix(".ome.zarr")
                if layer.name == class_name:
                    layer.name = f"{class_name} ({store.parent.name})"

    def _report(self, event: sm.ProgressEvent) -> None:
        """The run's progress, in the worker thread; a Cancel stops it at the next step, but
        not at the report that the last image finished: nothing is left to stop (it stopped
        the summary instead and said "cancelled" of a finished run)."""
        self.progressed.emit(event.done, event.total or 0)
        last = event.stage == "analyze" and event.total is not None and event.done >= event.total
        if self._cancel.is_set() and not last:
            raise Cancelled("cancelled in napari")

    def _draw(self, done: int, total: int) -> None:
        self.bar.setMaximum(max(total, 1))
        self.bar.setValue(done)

    def _finished(self, result: Any) -> None:
        self._worker = None
        self.result = result
        self._draw(1, 1)  # done: also a run that kept every image's earlier results
        notes = _overrides(self.settings, self._source)
        image = Path(self._image).resolve()
        for index, record in enumerate(result.records):  # this layer's image (the others
            if Path(record["image"]).resolve() != image:  # were kept as they were)
                continue
            if record["status"] != "done":
                self.status.setText(f"error: {record.get('reason', 'failed')}")
                return
            self._show_classes(result, record)
            whose = [record["name"], scene_label(self._image, self._scene, self._axes),
                     *_planes(record.get("sizes", {}))]  # fmt: skip
            kept = index < result.resumed  # finished by an earlier run: not analysed again
            late = "; Cancel came after its last step: it finished" if self._cancel.is_set() else ""
            self.status.setText(
                f"done ({', '.join(w for w in whose if w)}: {_counts_text(result, record)})"
                + (", kept from the earlier run" if kept else "") + _summed(result, mine=kept)
                + "".join(f"; {note}" for note in notes) + f"; results in {result.output}{late}"
            )  # fmt: skip
            return
        self.status.setText(f"error: {self._image} was not analysed{_summed(result)}")

    def _show_classes(self, result: Any, record: dict[str, Any]) -> None:
        """Open the image's class stores as layers, in place of an earlier run's; named by the
        image too where the folder holds several, or another folder's layer of the class is
        open."""
        folder = Path(result.output) / "images" / record["name"]
        self._remove_layers_of(folder)  # a rerun's layers replace the earlier
        several = len(result.records) > 1  # the folder's images: a layer says whose
        if several:
            self._name_by_image(Path(result.output))
        taken = {layer.name for layer in self.viewer.layers}
        for cls in self.settings.classes:
            store = folder / f"{cls.name}.ome.zarr"
            whose = several or any(n.split(" (")[0] == cls.name for n in taken)  # others
            name = f"{cls.name} ({record['name']})" if whose else cls.name
            if store.is_dir():
                data, kwargs, _ = labels_layer_data(open_levels(store), name=name, path=str(store))
                layer = self.viewer.add_labels(data, **kwargs)
                seg = cls.segmenter
                if getattr(seg, "kind", "") == "grow" and not seg.exclude_seeds:
                    layer.contour = 2  # outlines: a filled cell hid its nucleus

    def _fail(self, err: BaseException) -> None:
        self._worker = None
        if isinstance(err, Cancelled):
            self.status.setText(
                f"cancelled: Run with '{CONTINUE.split(' (')[0]}' goes on from the images finished"
            )
            return
        text = error_text(err)
        if "resuming with other settings" in text or "--resume" in text:
            text = _other_settings(self.output.text(), text)
        self.status.setText(f"error: {text}")


def _analyze(settings: Path, source: dict, output: Path, *, replace: bool, progress: Any) -> Any:
    """The analysis run, in the worker thread: of the file behind the layer, read as the layer
    shows it (the scene and axes chosen in *Open image scene*); an earlier run's results in
    ``output`` are continued (its images in the summary too), or replaced (only a results
    folder, checked again there)."""
    from scopeml.analysis.settings import load_settings

    images = [source["path"]] if replace else _with_earlier(output, source["path"])
    parsed, base = load_settings(settings), None
    if parsed.inputs.channel_files:  # the layer is one image already: no fields to group
        inputs = parsed.inputs.model_copy(update={"channel_files": {}})
        parsed, base = parsed.model_copy(update={"inputs": inputs}), settings.parent
    return sm.analyze(parsed if base else settings, images, output, resume=not replace,
                      overwrite=replace, axes=source.get("file_axes"), scene=source.get("scene"),
                      progress=progress, base=base)  # fmt: skip


def _overrides(settings: Any, source: dict) -> list[str]:
    """Where the layer's scene or axes replace the settings' own (``sm.analyze`` warns of it,
    but a worker thread's warnings reach no one, and catching them there is not thread-safe):
    said in the status line, with where to choose the settings' instead."""
    said = []
    for key, given in (("scene", source.get("scene")), ("axes", source.get("file_axes"))):
        own = getattr(settings, key, None)
        if given is not None and own is not None and str(own).upper() != str(given).upper():
            done = "was analysed" if key == "scene" else "were read"
            said.append(f"the layer's {key} {given} {done}, not the settings' {key} {own} (open "
                        f"{key} {own} in {REOPEN} to analyse it so)")  # fmt: skip
    return said


def _other_settings(folder: str, text: str) -> str:
    """A continued run refused for other settings, said with what differs. Where it is only
    the scene or axes the layers were opened with, another results folder is the way (replacing
    would delete the earlier images' results)."""
    from scopeml.analysis.runner import WAY_ON

    change = text.split("settings.yaml)", 1)[1].lstrip(": ") if "settings.yaml)" in text else ""
    change = change.removesuffix(WAY_ON)  # the widget says its own way on
    key, _, values = change.partition(": ")
    was, _, now = values.partition(" → ")
    now = now.split(" (give ", 1)[0]  # the command line's hint: --axes TYX
    if key in ("scene", "axes"):
        return (
            f"{folder} holds images analysed {_view(key, was)}; this layer's image is analysed "
            f"{_view(key, now)}: choose another results folder for it"
        )
    return (
        f"{folder} holds results made with other settings" + (f" ({change})" if change else "")
        + f": choose '{REPLACE.split(' (')[0]}' above (deletes them), or another results folder"
    )  # fmt: skip


def _view(key: str, value: str) -> str:
    """How an image was read, from a settings value (``(not set)``: the file as it is)."""
    if value in ("", "(not set)", "null", "None"):
        return "whole (every scene)" if key == "scene" else "with the file's own axes"
    return f"as scene {value}" if key == "scene" else f"with axes {value}"


def _with_earlier(output: Path, image: str) -> list[str]:
    """``image`` after the files of the images earlier runs finished in ``output`` that keep
    their names when listed with it: the continued run finds them done (it does not analyse
    them again) and its summary and tables hold them with this image. An image a folder named
    otherwise (``A9__p10d``) is left out, as a resume says."""
    from scopeml.analysis.inputs import find_images
    from scopeml.analysis.resume import left_out_images

    mine = Path(image).resolve()
    earlier = {name: Path(record["image"]) for name, record in left_out_images(output, []).items()
               if isinstance(record.get("image"), str) and Path(record["image"]).exists()
               and Path(record["image"]).resolve() != mine}  # fmt: skip
    if not earlier:
        return [image]
    found = find_images([*earlier.values(), image], warn=False)
    named = {path.resolve(): name for path, name in zip(found.paths, found.names, strict=True)}
    kept = [str(path) for name, path in earlier.items() if named.get(path.resolve()) == name]
    return [*kept, image]


def _planes(sizes: dict[str, int]) -> list[str]:
    """What an image's counts are summed over: ``["3 scenes", "5 time points"]``, or none."""
    n_scenes, n_times = sizes.get("S", 1), sizes.get("T", 1)
    return [f"{n} {word}" for n, word in ((n_scenes, "scenes"), (n_times, "time points")) if n > 1]


def _counts_text(result: Any, record: dict[str, Any]) -> str:
    """``nucleus 61 (big 6, small 55)``: an image's objects per class, with the classes its
    rules or object classifier gave them, as ``summary/counts.csv`` has them."""
    from scopeml.analysis.report import predicted_text

    try:
        table = result.counts_table()
    except (InvalidRequestError, OSError, ValueError):  # no summary: the counts alone
        table = None
    return ", ".join(
        f"{name} {n}" + ("" if table is None else predicted_text(table, record, name))
        for name, n in record["counts"].items()
    )


def _summed(result: Any, *, mine: bool = False) -> str:
    """For the status line: the images kept from earlier runs (``mine``: the layer's image
    among them, said apart: it was counted as done and as kept), what the summary holds, and
    the earlier images that failed when analysed again (their files changed)."""
    kept, n, left = result.resumed - mine, len(result.records), len(result.outside_summary)
    other, plural = " other" if mine else "", "s" if kept != 1 else ""
    said = f"; {kept}{other} image{plural} kept from the earlier run" if kept else ""
    said += f"; the summary has {n} images" if n > 1 else ""
    said += f"; {result.reclassified}" if result.reclassified else ""  # its warning reaches no one
    if result.failures:
        first = result.failures[0]
        said += f"; {len(result.failures)} failed ({first['name']}: {first.get('reason')})"
    if left:
        said += (f"; {left} finished image{'s are' if left > 1 else ' is'} not in it (named by "
                 "the folder an earlier run was given: resume that run to include it)")  # fmt: skip
    return said
