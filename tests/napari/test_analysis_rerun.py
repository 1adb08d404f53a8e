"""Run pressed again in the analysis widget: the results folder is continued (finished images
kept, the same counts, one layer per class) or replaced, in the GUI's words; a folder that
holds anything but a scopeml analysis's results is never replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import scopeml as sm
from scopeml.demo import write_sample_image

pytest.importorskip("napari", reason="napari is not installed (pip install 'scopeml[napari]')")

SETTINGS = """\
version: 1
channels: [DAPI]
tile_size: 256
classes:
  - name: nucleus
    segmenter: {{kind: threshold, channel: DAPI, method: {method}, sigma: 1.0}}
"""
WAIT_MS = 180_000


@pytest.fixture
def analysis(viewer, tmp_path):
    from scopeml.napari.analysis_widget import AnalysisWidget

    image, _ = write_sample_image(tmp_path / "cells.ome.zarr", size=256, block=256, seed=3)
    settings = tmp_path / "nuclei.yaml"
    settings.write_text(SETTINGS.format(method="otsu"))
    viewer.open(str(image), plugin="scopeml")
    widget = AnalysisWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_choice.setCurrentText("DAPI")
    widget.load_settings(settings)
    return widget, image, settings


def run(qtbot, widget) -> str:
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    return widget.status.text()


def class_layers(viewer) -> list[str]:
    return [layer.name for layer in viewer.layers if layer.name.startswith("nucleus")]


def test_run_again_continues_or_replaces_the_results(viewer, qtbot, analysis, tmp_path):
    from scopeml.napari.analysis_widget import CONTINUE, REPLACE

    widget, image, settings = analysis
    first = run(qtbot, widget)  # the default: a new temporary folder, shown in the field
    assert first.startswith("done (cells: nucleus "), first
    output = widget.output.text()
    counts = widget.result.counts
    assert widget.existing.currentText() == CONTINUE
    again = run(qtbot, widget)  # pressed again: continued, the finished image kept
    assert again == f"done (cells: nucleus {counts['cells']['nucleus']}); 1 image kept from " \
        f"the earlier run; results in {output}"  # fmt: skip
    assert "--resume" not in again and widget.result.counts == counts
    assert class_layers(viewer) == ["nucleus"]  # the rerun's layer replaces the earlier

    settings.write_text(SETTINGS.format(method="li"))  # other settings: not continued
    widget.load_settings(settings)
    refused = run(qtbot, widget)
    assert refused == (
        f"error: {output} holds results made with other settings: choose 'replace it' "
        "above, or another results folder"
    )
    widget.existing.setCurrentText(REPLACE)
    replaced = run(qtbot, widget)
    assert replaced.startswith("done") and "kept" not in replaced, replaced
    expected = sm.analyze(settings, [image], tmp_path / "api-results")
    assert widget.result.counts == expected.counts
    assert "method: li" in (tmp_path / "api-results" / "settings.yaml").read_text()
    assert "method: li" in (Path(widget.result.output) / "settings.yaml").read_text()
    assert class_layers(viewer) == ["nucleus"]
    shown = viewer.layers["nucleus"]
    level0 = np.asarray(shown.data[0] if shown.multiscale else shown.data)
    store_path = Path(widget.result.output) / "images" / "cells" / "nucleus.ome.zarr"
    with sm.open_image(store_path) as store:
        np.testing.assert_array_equal(level0, store.read()[0, 0, 0, 0])


def test_a_folder_of_other_files_is_never_replaced(viewer, qtbot, analysis, tmp_path):
    from scopeml.napari.analysis_widget import REPLACE

    widget, _, _ = analysis
    folder = tmp_path / "my data"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    (folder / "settings.yaml").write_text("not an analysis's\n")  # looks like one, is not
    widget.output.setText(str(folder))
    widget.existing.setCurrentText(REPLACE)
    said = run(qtbot, widget)
    assert said == (
        f"error: {folder} holds other files, not a scopeml analysis's results: choose another "
        "results folder"
    )
    assert (folder / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt", "settings.yaml"]
