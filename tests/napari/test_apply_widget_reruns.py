"""Apply widget, run again: a rerun into the same store updates its layers (no ``[1]``
copies); instances after a run come from its labels without running the model again; the
channels are chosen in the widget and a mismatch is said in its words; a layer with no file
writes to a temporary folder that the status line calls temporary."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

import scopeml as sm
from tests.napari.conftest import sample_classifier

WAIT_MS = 180_000


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 2-channel 192² OME-Zarr and a small pixel classifier saved as ``.czseg``."""
    folder = tmp_path_factory.mktemp("reruns")
    image, model = sample_classifier(
        folder / "small.ome.zarr", size=192, block=192, seed=8, every=6, n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    return image, model.save(folder / "small.czseg")


def wait_idle(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def level0(layer) -> np.ndarray:
    return np.asarray(layer.data[0] if layer.multiscale else layer.data)


def file_widget(viewer, image, model, output):
    from scopeml.napari.apply_widget import ApplyWidget

    viewer.open(str(image), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("DAPI")
    widget.set_model(str(model))
    widget.output.setText(str(output))
    return widget


def test_a_rerun_updates_the_layers_of_its_store(viewer, qtbot, small, tmp_path):
    image, model = small
    widget = file_widget(viewer, image, model, tmp_path / "rerun.ome.zarr")
    widget.confidence.setChecked(True)
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    labels, confidence = viewer.layers["rerun labels"], viewer.layers["rerun confidence"]
    first = level0(labels).copy()

    widget.confidence.setChecked(False)
    widget.scale.setValue(0.5)  # another result into the same store
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    names = [layer.name for layer in viewer.layers]
    assert names.count("rerun labels") == 1 and not any("[" in n for n in names), names
    assert "rerun confidence" not in names  # the store no longer holds it
    assert confidence not in viewer.layers
    assert viewer.layers["rerun labels"] is labels  # the same layer, its data updated
    now = level0(labels)
    expected = sm.segment(image, model, tmp_path / "python.ome.zarr", scale=0.5)
    np.testing.assert_array_equal(now, expected.labels.read()[0, 0, 0, 0])
    assert (now != first).sum() > 100


def test_instances_after_a_run_reuse_its_labels(viewer, qtbot, small, tmp_path, monkeypatch):
    image, model = small
    runs = []
    segment = sm.segment
    monkeypatch.setattr(sm, "segment", lambda *a, **k: runs.append(k) or segment(*a, **k))
    out = tmp_path / "cells.ome.zarr"
    widget = file_widget(viewer, image, model, out)
    widget.run()
    wait_idle(qtbot, widget)
    assert len(runs) == 1 and widget.status.text().startswith("wrote")

    widget.instances.setCurrentText("nucleus")
    widget.run()
    wait_idle(qtbot, widget)
    text = widget.status.text()
    assert len(runs) == 1, "the model ran again"
    assert "did not run again" in text and "cells.objects.ome.zarr" in text, text
    assert "seeded from them: the run kept no probabilities" in text, text
    assert widget.bar.value() == widget.bar.maximum() > 0  # done, not a bar left at 0 %
    expected = sm.label_objects(sm.Segmentation(out), tmp_path / "o.ome.zarr", class_="nucleus")
    shown = level0(viewer.layers["cells instances"])
    np.testing.assert_array_equal(shown, expected.read()[0, 0, 0, 0])
    assert shown.max() > 3

    widget.tile_size.setValue(64)  # another setting: a new run
    widget.run()
    wait_idle(qtbot, widget)
    assert len(runs) == 2 and widget.status.text().startswith("wrote")
    assert [layer.name for layer in viewer.layers].count("cells instances") == 1

    segment(image, model, out, overwrite=True, scale=2.0)  # the store changed under us
    widget.run()
    wait_idle(qtbot, widget)
    assert len(runs) == 3, "a store changed since is not taken as this run's"


@pytest.fixture(scope="module")
def gray_model(small):
    """A 1-channel classifier: trained on the DAPI plane only (its record says C0)."""
    import zarr

    image, _ = small
    with sm.open_image(image) as pixels:
        dapi = pixels.read()[0, 0, 0, 0]
    truth = np.asarray(zarr.open_array(str(image).replace(".ome.zarr", "_truth.zarr"))[:])
    labels = np.zeros(truth.shape, np.uint8)
    labels[::6, ::6] = (truth[::6, ::6] > 0) + 1
    model = sm.train_pixel_classifier(
        dapi, labels, classes=["background", "nucleus"], n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    return dapi, model


def test_channels_are_chosen_in_the_widget(viewer, qtbot, gray_model, tmp_path):
    from scopeml.napari.apply_widget import AUTO_CHANNELS, ApplyWidget

    dapi, model = gray_model
    rgb = np.stack([dapi // 3, dapi, dapi // 2], axis=-1)  # Y×X×3
    viewer.add_image(rgb, rgb=True, name="photo")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("photo")
    items = [widget.channels.itemText(i) for i in range(widget.channels.count())]
    assert items == [AUTO_CHANNELS, "R", "G", "B"]
    assert "temporary" in widget.output.placeholderText()
    model_path = model.save(tmp_path / "gray.czseg")
    widget.set_model(str(model_path))
    widget.run()
    wait_idle(qtbot, widget)
    text = widget.status.text()
    assert text.startswith("error: layer 'photo': the image has 3 channels (R, G, B)"), text
    assert "under channels" in text and "--channels" not in text and "\n" not in text

    widget.channels.setCurrentText("G")
    widget.run()
    wait_idle(qtbot, widget)
    text = widget.status.text()
    assert text.startswith("wrote") and "temporary" in text, text
    out = widget.result.path
    assert str(out).startswith(tempfile.gettempdir()) and out.name == "photo.seg.ome.zarr"
    expected = sm.segment(rgb.transpose(2, 0, 1), model, tmp_path / "g.ome.zarr", channels=[1])
    np.testing.assert_array_equal(widget.result.labels.read(), expected.labels.read())
    assert widget.output_path() == out  # the same temporary store for this layer again

    widget.channels.setCurrentText("R, B")  # two for a 1-channel model
    widget.run()
    wait_idle(qtbot, widget)
    text = widget.status.text()
    assert "2 channels chosen (R, B)" in text and "takes 1 channel" in text, text


def test_a_file_opened_by_another_reader_writes_beside_it(viewer, tmp_path):
    import tifffile

    from scopeml.napari.apply_widget import ApplyWidget

    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((32, 32), np.uint8))
    viewer.open(str(path), plugin="napari")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("plain")
    assert widget.output_path() == Path(tmp_path / "plain.seg.ome.zarr")
    assert str(tmp_path) in widget.output.placeholderText()


def test_confidence_is_off_by_default(viewer):
    """Few users want the confidence output: it is asked for, not given."""
    from scopeml.napari.apply_widget import ApplyWidget

    assert not ApplyWidget(viewer).confidence.isChecked()


def test_nuclei_instances_are_segments_split_at_the_boundary(viewer, qtbot, tmp_path):
    """*instances of* nucleus with the built-in ``nuclei``: the run makes ``segment
    --outputs instances``'s nuclei (seeds split at the boundary class, grown over it), not the
    connected components of the nucleus class, which lack that ring; a rerun with the same
    settings makes nothing; asked after a run without them, they are seeded from the labels."""
    import tifffile

    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.synthetic import realistic_nuclei

    pixels = realistic_nuclei((192, 192), seed=3)[0][0]
    path = tmp_path / "nuclei.tif"
    tifffile.imwrite(path, np.clip(pixels / pixels.max() * 4000 + 100, 0, 65535).astype(np.uint16))
    cli = sm.segment(path, "nuclei", tmp_path / "cli.ome.zarr", outputs=("labels", "instances"))
    expected = cli.instances.read()[0, 0, 0, 0]
    (layer,) = viewer.open(str(path), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText(layer.name)
    widget.set_model("nuclei")
    widget.output.setText(str(tmp_path / "gui.ome.zarr"))
    widget.instances.setCurrentText("nucleus")
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    shown = level0(viewer.layers["gui instances"])
    np.testing.assert_array_equal(shown, expected)
    plain = sm.label_objects(cli, tmp_path / "plain.ome.zarr", class_="nucleus").read()
    assert (shown > 0).sum() > (plain > 0).sum() * 1.1  # the boundary ring is theirs
    widget.run()  # the same again: nothing to make
    wait_idle(qtbot, widget)
    assert "holds these nucleus instances already" in widget.status.text()
    assert not (tmp_path / "gui.objects.ome.zarr").exists()

    widget.instances.setCurrentIndex(0)  # no instances, then asked for after the run
    widget.output.setText(str(tmp_path / "later.ome.zarr"))
    widget.run()
    wait_idle(qtbot, widget)
    widget.instances.setCurrentText("nucleus")
    widget.run()
    wait_idle(qtbot, widget)
    assert "did not run again" in widget.status.text(), widget.status.text()
    later = level0(viewer.layers["later instances"])
    seeded = sm.segment(path, "nuclei", tmp_path / "none.ome.zarr", outputs=("instances",),
                        instances=sm.InstanceOptions(seed_threshold=None))  # fmt: skip
    np.testing.assert_array_equal(later, seeded.instances.read()[0, 0, 0, 0])
