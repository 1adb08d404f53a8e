"""A ``segment`` store made outside the widget (``scopeml segment``, Python) and opened as
layers is recognised by its run record: instances of its image, model and settings are
labelled from its labels without running the model; a store of another run is said why not."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from tests.napari.conftest import sample_classifier

WAIT_MS = 180_000


@pytest.fixture
def small(tmp_path):
    """A 2-channel 192² OME-Zarr and a small pixel classifier saved as ``.czseg``."""
    image, model = sample_classifier(
        tmp_path / "small.ome.zarr", size=192, block=192, seed=8, every=6, n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    return image, model.save(tmp_path / "small.czseg")


def level0(layer) -> np.ndarray:
    return np.asarray(layer.data[0] if layer.multiscale else layer.data)


def counted(monkeypatch) -> list:
    runs: list = []
    segment = sm.segment
    monkeypatch.setattr(sm, "segment", lambda *a, **k: runs.append(k) or segment(*a, **k))
    return runs


def widget_for(viewer, image, model):
    from scopeml.napari.apply_widget import ApplyWidget

    viewer.open(str(image), plugin="scopeml")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("DAPI")
    widget.set_model(str(model))
    widget.instances.setCurrentText("nucleus")
    return widget


def test_instances_from_a_store_made_outside_the_widget(
    viewer, qtbot, small, tmp_path, monkeypatch
):
    image, model = small
    store = sm.segment(str(image), str(model), tmp_path / "cli.ome.zarr").path  # as the CLI
    viewer.open(str(store), plugin="scopeml")
    assert "cli labels" in [layer.name for layer in viewer.layers]
    runs = counted(monkeypatch)
    widget = widget_for(viewer, image, model)  # no output typed: the default is elsewhere
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    text = widget.status.text()
    assert runs == [], f"the model ran again: {text}"
    assert "did not run again" in text and "cli.objects.ome.zarr" in text, text
    expected = sm.label_objects(sm.Segmentation(store), tmp_path / "o.ome.zarr", class_="nucleus")
    shown = level0(viewer.layers["cli instances"])
    np.testing.assert_array_equal(shown, expected.read()[0, 0, 0, 0])
    assert shown.max() > 3
    assert not (tmp_path / "small.seg.ome.zarr").exists()  # nothing segmented


def test_a_store_of_another_run_is_said_why_not(viewer, qtbot, small, tmp_path, monkeypatch):
    image, model = small
    store = sm.segment(str(image), str(model), tmp_path / "half.ome.zarr", scale=0.5).path
    viewer.open(str(store), plugin="scopeml")
    runs = counted(monkeypatch)
    widget = widget_for(viewer, image, model)
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    text = widget.status.text()
    assert len(runs) == 1, text
    assert "the model ran: half.ome.zarr records other settings (scale 0.5, not" in text, text
    assert text.startswith(f"wrote {tmp_path / 'small.seg.ome.zarr'}"), text


def test_its_own_earlier_output_is_not_said_why_not(viewer, qtbot, small, tmp_path):
    """The widget's own earlier run, still open, is not a store the user expects reused: a run
    with another scale into another folder says nothing of it."""
    image, model = small
    widget = widget_for(viewer, image, model)
    for name, scale in (("first", 1.0), ("second", 0.5)):
        widget.output.setText(str(tmp_path / f"{name}.ome.zarr"))
        widget.scale.setValue(scale)
        widget.run()
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    text = widget.status.text()
    assert text.startswith(f"wrote {tmp_path / 'second.ome.zarr'}") and "ran:" not in text, text


def test_a_typed_output_is_written_not_an_open_store_reused(
    viewer, qtbot, small, tmp_path, monkeypatch
):
    """The output the user chose is where the instances go, though an open store holds this
    very run's labels (the shortcut is for an output left to the widget)."""
    image, model = small
    store = sm.segment(str(image), str(model), tmp_path / "cli.ome.zarr").path
    viewer.open(str(store), plugin="scopeml")
    runs = counted(monkeypatch)
    widget = widget_for(viewer, image, model)
    widget.output.setText(str(tmp_path / "chosen.ome.zarr"))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    text = widget.status.text()
    assert len(runs) == 1 and text.startswith(f"wrote {tmp_path / 'chosen.ome.zarr'}"), text
    chosen = sm.Segmentation(tmp_path / "chosen.ome.zarr")
    assert "instances" in chosen.outputs
    np.testing.assert_array_equal(chosen.labels.read(), sm.Segmentation(store).labels.read())
    assert not (tmp_path / "cli.objects.ome.zarr").exists()


def test_a_typed_store_of_another_run_is_said_to_be_replaced(
    viewer, qtbot, small, tmp_path, monkeypatch
):
    image, model = small
    store = sm.segment(str(image), str(model), tmp_path / "half.ome.zarr", scale=0.5).path
    runs = counted(monkeypatch)
    widget = widget_for(viewer, image, model)
    widget.output.setText(str(store))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    text = widget.status.text()
    replaced = "it replaced the earlier result there, which records other settings (scale 0.5"
    assert len(runs) == 1 and text.startswith(f"wrote {store}; {replaced}"), text

    sm.segment(str(image), str(model), store, scale=0.5, overwrite=True)  # again, elsewhere
    widget.instances.setCurrentIndex(0)  # labels only: said all the same
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text().startswith(f"wrote {store}; {replaced}"), widget.status.text()
    widget.run()  # its own run again: nothing to say
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert widget.status.text() == f"wrote {store}", widget.status.text()
    assert sm.Segmentation(store).labels.read().shape[-1] == 192  # the run at scale 1
