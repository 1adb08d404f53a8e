"""Run pressed again in the analysis widget: the results folder is continued (finished images
kept, the same counts, one layer per class) or replaced, in the GUI's words; a folder that
holds anything but a scopeml analysis's results is never replaced. A Cancel that came after
the image finished says it finished (it said "cancelled", and the run continued afterwards
counted the image as done and as kept); a class's objects are given by the classes its rules
gave them, as ``summary/counts.csv`` has them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
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
    assert (
        again == f"done (cells: nucleus {counts['cells']['nucleus']}), kept from the "
        f"earlier run; results in {output}"
    )  # was: "1 image kept from the earlier run", this one
    assert "--resume" not in again and widget.result.counts == counts
    assert widget.bar.value() == widget.bar.maximum()  # done: not a bar left at 0 %
    assert class_layers(viewer) == ["nucleus"]  # the rerun's layer replaces the earlier

    settings.write_text(SETTINGS.format(method="li"))  # other settings: not continued
    widget.load_settings(settings)
    refused = run(qtbot, widget)
    assert refused == (
        f"error: {output} holds results made with other settings (classes[0].segmenter.method: "
        "otsu → li): choose 'replace it' above (deletes them), or another results folder"
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


def test_a_second_image_joins_the_results_folder(viewer, qtbot, analysis, tmp_path):
    """Continued with another layer's image: the summary and tables hold both images (the
    first kept, not analysed again), as one run over both does, and both images' layers stay."""
    widget, image, settings = analysis
    output = tmp_path / "results"
    widget.output.setText(str(output))
    assert run(qtbot, widget).startswith("done (cells: nucleus ")
    other = _choose_another_image(viewer, widget, tmp_path)
    said = run(qtbot, widget)
    assert said.startswith("done (more: nucleus ") and "; 1 image kept from the earlier run; " \
        "the summary has 2 images; results in" in said, said  # fmt: skip
    both = sm.analyze(settings, [image, other], tmp_path / "together")
    assert widget.result.counts == both.counts
    summary = pd.read_csv(output / "summary" / "counts.csv")
    assert summary["image"].tolist() == ["cells", "more"]
    pd.testing.assert_frame_equal(
        pd.read_csv(output / "tables" / "nucleus.csv"),
        pd.read_csv(tmp_path / "together" / "tables" / "nucleus.csv"),
    )
    sources = sorted(Path(lay.metadata["scopeml"]["path"]).parent.name for lay in viewer.layers
                     if lay.name.startswith("nucleus"))  # fmt: skip
    assert sources == ["cells", "more"]
    assert class_layers(viewer) == ["nucleus (cells)", "nucleus (more)"]  # whose: said

    widget.output.setText(str(tmp_path / "elsewhere"))  # another folder, the same image name
    assert run(qtbot, widget).startswith("done (more: nucleus ")
    assert class_layers(viewer)[-1] == "nucleus (more) [1]"  # not a bare "nucleus" among them


def test_only_earlier_images_that_keep_their_names_are_listed_again(tmp_path):
    """An image an earlier run found in a folder (``A9__cells``) would get another name listed
    on its own, and be analysed again: it is left out (the status says so), not re-listed."""
    from scopeml.napari.analysis_widget import _with_earlier

    settings = tmp_path / "nuclei.yaml"
    settings.write_text(SETTINGS.format(method="otsu"))
    (tmp_path / "plate" / "A9").mkdir(parents=True)
    write_sample_image(tmp_path / "plate/A9/cells.ome.zarr", size=64, block=64)
    alone, _ = write_sample_image(tmp_path / "alone.ome.zarr", size=64, block=64, seed=1)
    sm.analyze(settings, [tmp_path / "plate"], tmp_path / "res")
    sm.analyze(settings, [alone], tmp_path / "res", resume=True)
    new = str(write_sample_image(tmp_path / "new.ome.zarr", size=64, block=64, seed=2)[0])
    assert _with_earlier(tmp_path / "res", new) == [str(alone), new]
    assert sorted(p.name for p in (tmp_path / "res" / "images").iterdir()) == ["A9__cells", "alone"]


def test_cancel_says_how_to_go_on_and_continuing_finishes(viewer, qtbot, analysis, tmp_path):
    widget, image, settings = analysis
    widget.output.setText(str(tmp_path / "stopped"))
    widget.progressed.connect(lambda done, total: widget._cancel.set())
    said = run(qtbot, widget)
    assert said == "cancelled: Run with 'continue it' goes on from the images finished", said
    widget.progressed.disconnect()
    widget.progressed.connect(widget._draw)
    assert run(qtbot, widget).startswith("done (cells: nucleus ")
    assert widget.result.counts == sm.analyze(settings, [image], tmp_path / "whole").counts


def test_settings_grouping_channel_files_run_on_the_layers_own_image(viewer, qtbot, analysis):
    """The layer is one image already: the settings' ``channel_files`` (for a batch of files
    saved one per channel) do not make its file an incomplete field."""
    widget, _, settings = analysis
    text = SETTINGS.format(method="otsu").replace(
        "tile_size: 256", "tile_size: 256\ninputs:\n  channel_files: {DAPI: '*_w1.tif'}"
    )
    settings.write_text(text)
    said = run(qtbot, widget)
    assert said.startswith("done (cells: nucleus "), said


def test_new_rules_continue_the_results_and_the_status_says_so(viewer, qtbot, analysis, tmp_path):
    """New cutoffs in the settings: Run continues the folder (no image segmented again) and
    says so in the status line, where a worker thread's warning would reach no one."""
    widget, image, settings = analysis
    ruled = SETTINGS.format(method="otsu") + "    rules: {big: {area: {min: %d}}}\n"
    settings.write_text(ruled % 100)
    widget.load_settings(settings)
    assert run(qtbot, widget).startswith("done (cells: nucleus ")
    settings.write_text(ruled % 300)
    widget.load_settings(settings)
    said = run(qtbot, widget)
    assert "), kept from the earlier run; new rules (classes[0].rules.big.area.min: " \
        "100.0 → 300.0): applied to the tables of 1 finished image without segmenting" \
        in said, said  # fmt: skip
    expected = sm.analyze(settings, [image], tmp_path / "api-results")
    assert widget.result.table("nucleus")["object_class"].tolist() == expected.table(
        "nucleus")["object_class"].tolist()  # fmt: skip


def cancel_after_the_last_image(widget):
    """Cancel pressed as the last image's step is reported (deterministic: from the run's own
    progress callback, in its thread)."""
    report = widget._report

    def cancelling(event):
        if event.stage == "analyze" and event.total and event.done == event.total:
            widget._cancel.set()
        report(event)

    widget._report = cancelling  # what run() hands to the worker
    return report


def test_a_cancel_after_the_last_step_says_it_finished_and_counts_it_once(
    viewer, qtbot, analysis, tmp_path
):
    widget, _, _ = analysis
    output = tmp_path / "results"
    widget.output.setText(str(output))
    assert run(qtbot, widget).startswith("done (cells: nucleus ")
    _choose_another_image(viewer, widget, tmp_path)
    report = cancel_after_the_last_image(widget)
    said = run(qtbot, widget)
    assert said.startswith("done (more: nucleus "), said  # was: "cancelled: Run with …"
    assert said.endswith("; Cancel came after its last step: it finished"), said
    summary = pd.read_csv(output / "summary" / "counts.csv")
    assert summary["image"].tolist() == ["cells", "more"]  # the summary was written too
    widget._report = report
    again = run(qtbot, widget)  # continued: "more" is kept, with the one image before it
    n = widget.result.counts["more"]["nucleus"]
    assert again == (
        f"done (more: nucleus {n}), kept from the earlier run; 1 other image kept from the "
        f"earlier run; the summary has 2 images; results in {output}"
    )  # was: "2 images kept from the earlier run", "more" counted as done and as kept


def test_the_status_gives_the_classes_the_rules_made(viewer, qtbot, analysis):
    widget, _, settings = analysis
    rules = "    rules: {big: {area: {min: 150}}, small: {area: {max: 150}}}\n"
    settings.write_text(SETTINGS.format(method="otsu") + rules)
    widget.load_settings(settings)
    said = run(qtbot, widget)
    counts = widget.result.counts_table().iloc[0]
    big, small = int(counts["nucleus_class_big"]), int(counts["nucleus_class_small"])
    assert big and small and big + small == int(counts["nucleus"])
    assert said.startswith(f"done (cells: nucleus {big + small} (big {big}, small {small})"), said


def _choose_another_image(viewer, widget, tmp_path):
    """Open a second sample and choose its DAPI layer, to continue the results with it;
    returns its file."""
    other, _ = write_sample_image(tmp_path / "more.ome.zarr", size=256, block=256, seed=4)
    layers = viewer.open(str(other), plugin="scopeml")
    widget.image_choice.setCurrentText(next(lay.name for lay in layers if "DAPI" in lay.name))
    return other
