"""Apply widget: the whole file in a worker; the same store as ``scopeml segment``; Cancel
keeps a partial store and Resume finishes it; outputs open as multiscale layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scopeml as sm
from scopeml.io import write_pyramid
from tests.napari.conftest import sample_classifier, save_screenshot

WAIT_MS = 180_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2-channel 1024² OME-Zarr (with a pyramid level) and a small pixel classifier."""

    folder = tmp_path_factory.mktemp("apply")
    image, model = sample_classifier(
        folder / "cells.ome.zarr", size=1024, block=512, seed=5, every=15, n_estimators=10,
        features="gaussian_smoothing:1,3.5;hessian_of_gaussian_eigenvalues:1.6",
    )  # fmt: skip
    assert write_pyramid(image, levels=3) == 3
    return image, model.save(folder / "nuclei.czseg")


def cli_segment(image, model, out, *extra):
    scopeml = Path(sys.executable).with_name("scopeml")
    command = [str(scopeml), "segment", str(image), "-m", str(model)]
    subprocess.run([*command, "-o", str(out), "--quiet", *extra], check=True)
    return sm.Segmentation(out)


def wait_idle(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def test_apply_writes_the_store_scopeml_segment_writes(viewer, qtbot, files, tmp_path):
    from scopeml.napari.apply_widget import ApplyWidget

    image, model = files
    dapi, _ = viewer.open(str(image), plugin="scopeml")
    assert dapi.multiscale and len(dapi.data) == 3  # lazy pyramid levels
    widget = ApplyWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_choice.setCurrentText("DAPI")
    widget.set_model(str(model))
    widget.output.setText(str(tmp_path / "napari.ome.zarr"))
    widget.confidence.setChecked(True)  # off by default
    widget.instances.setCurrentText("nucleus")
    widget.tile_size.setValue(256)
    seen = []
    widget.progressed.connect(lambda done, total: seen.append((done, total)))
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    assert (16, 16) in seen  # 1024² in tiles of 256²
    assert widget.bar.value() == widget.bar.maximum()

    expected = cli_segment(image, model, tmp_path / "cli.ome.zarr", "--outputs",
                           "labels,confidence", "--tile-size", "256")  # fmt: skip
    for name in ("labels", "confidence"):
        np.testing.assert_array_equal(
            widget.result.output(name).read(), expected.output(name).read()
        )
    names = [layer.name for layer in viewer.layers]
    assert {"napari labels", "napari confidence", "napari instances"} <= set(names)
    instances = viewer.layers["napari instances"]
    level0 = np.asarray(instances.data[0] if instances.multiscale else instances.data)
    assert level0.shape == (1024, 1024) and level0.max() > 20  # many nuclei, one id each
    save_screenshot(widget, "apply_widget")
    save_screenshot(viewer, "apply_viewer")


def test_cancel_then_resume_equals_an_uninterrupted_run(viewer, qtbot, files, tmp_path):
    from scopeml.napari.apply_widget import ApplyWidget

    image, model = files
    viewer.open(str(image), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("DAPI")
    widget.set_model(str(model))
    widget.confidence.setChecked(False)
    widget.output.setText(str(tmp_path / "resumed.ome.zarr"))
    widget.tile_size.setValue(128)  # 64 tiles
    widget.progressed.connect(lambda done, total: widget.cancel() if done >= 2 else None)
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("cancelled"), widget.status.text()
    assert widget.resume_button.isEnabled() and widget.result is None
    assert not (tmp_path / "resumed.ome.zarr").exists()  # nothing half-written in place
    widget.progressed.disconnect()
    widget.progressed.connect(widget._draw)
    widget.scale.setValue(0.5)  # changed since: said in the widget's words, not resumed
    widget.resume_button.click()
    wait_idle(qtbot, widget)
    assert widget.status.text() == (
        "error: cannot resume: scale None then, 0.5 now, since the cancelled run: set it back "
        "to resume, or press Run to start again"
    ), widget.status.text()
    widget.scale.setValue(1.0)
    seen = []
    widget.progressed.connect(lambda done, total: seen.append(total))
    widget.resume_button.click()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    assert seen and seen[0] < 64  # only the tiles not yet written
    expected = cli_segment(image, model, tmp_path / "whole.ome.zarr", "--tile-size", "128")
    np.testing.assert_array_equal(widget.result.labels.read(), expected.labels.read())


def test_a_bad_model_is_a_one_line_error(viewer, files, tmp_path):
    from scopeml.napari.apply_widget import ApplyWidget

    viewer.open(str(files[0]), plugin="scopeml")
    widget = ApplyWidget(viewer)
    bad = tmp_path / "broken.czann"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    widget.model_path.setText(str(bad))
    widget.run()
    text = widget.status.text()
    assert text.startswith("error: ") and "broken.czann" in text and "\n" not in text


def test_scale_reaches_the_run(viewer, qtbot, tmp_path):
    """The *scale* spin box (segment's ``scale``, 0.125–8, default 1) is passed to the run:
    the store records it and holds what ``sm.segment(..., scale=)`` writes, which differs from
    the unscaled run."""
    import zarr

    from scopeml.napari.apply_widget import ApplyWidget

    image, model = sample_classifier(
        tmp_path / "small.ome.zarr", size=192, block=192, seed=8, every=6, n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    viewer.open(str(image), plugin="scopeml")
    widget = ApplyWidget(viewer)
    assert widget.scale.value() == 1.0
    assert (widget.scale.minimum(), widget.scale.maximum()) == (0.125, 8.0)
    widget.image_choice.setCurrentText("DAPI")
    widget.model_path.setText(str(model.save(tmp_path / "small.czseg")))
    widget.confidence.setChecked(False)
    widget.output.setText(str(tmp_path / "scaled.ome.zarr"))
    widget.scale.setValue(0.5)
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    record = zarr.open_group(str(widget.result.path), mode="r").attrs["scopeml"]
    assert record["options"]["scale"] == 0.5
    scaled = sm.segment(image, model, tmp_path / "python.ome.zarr", scale=0.5)
    plain = sm.segment(image, model, tmp_path / "plain.ome.zarr")
    np.testing.assert_array_equal(widget.result.labels.read(), scaled.labels.read())
    assert (plain.labels.read() != scaled.labels.read()).sum() > 100


def applied(viewer, qtbot, image, model, output):
    """The Apply widget run on the first channel of the file ``image``, ended."""
    from scopeml.napari.apply_widget import ApplyWidget

    first, *_ = viewer.open(str(image), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText(first.name)
    widget.set_model(str(model))
    widget.output.setText(str(output))
    widget.run()
    wait_idle(qtbot, widget)
    return widget


def test_a_warning_of_the_run_is_said_with_its_result(viewer, qtbot, files, tmp_path):
    """The worker catches the run's warnings; a model trained on other intensities was applied
    with nothing said (the command line warns of it)."""
    from scopeml.io import write_ome_tiff

    _, model = files
    dim = np.random.default_rng(0).integers(0, 4, (2, 128, 128)).astype(np.uint16)  # 0..3
    write_ome_tiff(tmp_path / "dim.ome.tif", dim, axes="CYX", channel_names=["DAPI", "GFP"])
    widget = applied(viewer, qtbot, tmp_path / "dim.ome.tif", model, tmp_path / "dim.ome.zarr")
    said = widget.status.text()
    assert said.startswith("wrote") and "; warning: " in said, said
    assert "was trained on intensities" in said, said


def test_applied_labels_keep_the_models_class_colours(viewer, qtbot, files, tmp_path):
    """As the preview showed them (a store's labels took the default palette)."""
    import dataclasses

    image, model_file = files
    model = sm.open_model(model_file)
    model.classes = [dataclasses.replace(c, color="#ffd400") for c in model.classes]
    yellow = model.save(tmp_path / "yellow.czseg")
    applied(viewer, qtbot, image, yellow, tmp_path / "yellow.ome.zarr")
    colours = viewer.layers["yellow labels"].colormap.color_dict
    named = [c.name for c in model.classes]
    for value, name in enumerate(named, 1):
        want = (0, 0, 0, 0) if name == "background" else (1.0, 0xD4 / 255, 0.0, 1.0)
        np.testing.assert_allclose(colours[value], want, atol=1e-3)


def test_a_model_typed_after_an_error_clears_it(viewer, files):
    from scopeml.napari.apply_widget import ApplyWidget

    viewer.open(str(files[0]), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.run()  # no model yet
    assert widget.status.text().startswith("error: no model")
    widget.model_path.setText("nuclei")
    widget._model_typed()  # as editingFinished calls it
    assert widget.status.text() == "model nuclei: Run applies it"
    assert widget.instances.findText("nucleus") >= 0  # its classes offered


def test_a_model_typed_before_any_run_replaces_the_first_line(viewer, files):
    """ "choose an image and a model" stayed with both chosen."""
    from scopeml.napari.apply_widget import ApplyWidget

    viewer.open(str(files[0]), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.model_path.setText("nuclei")
    widget._model_typed()
    assert widget.status.text() == "model nuclei: Run applies it"


def test_a_failure_to_show_the_results_ends_in_the_status(
    viewer, qtbot, files, tmp_path, monkeypatch
):
    """An exception in the done slot reached Qt's log only; the status kept the last step."""
    from scopeml.napari.apply_widget import ApplyWidget

    image, model = files
    viewer.open(str(image), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("DAPI")
    widget.set_model(str(model))
    widget.output.setText(str(tmp_path / "shown.ome.zarr"))

    def cannot_show(*args, **kwargs):
        raise ValueError("axis_labels=('y', 'x') must have length ndim=3")

    monkeypatch.setattr(widget, "show_results", cannot_show)
    widget.run()
    wait_idle(qtbot, widget)
    said = widget.status.text()
    assert said.startswith(f"wrote {tmp_path / 'shown.ome.zarr'}; not shown: ValueError: ax"), said
    assert sm.Segmentation(tmp_path / "shown.ome.zarr").labels.sizes["Y"] == 1024
