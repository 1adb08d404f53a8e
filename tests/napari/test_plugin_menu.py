"""The Apply and Objects widgets opened as a user opens them, from the Plugins menu
(``add_plugin_dock_widget``): napari then gives them a ``PublicOnlyProxy`` of the viewer, whose
layers are a new proxy object on every access. Results still show as layers, a layer's
temporary store, its channel choice and its reusable run are kept, and Measure hooks one
click callback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei
from tests.napari.conftest import sample_classifier

WAIT_MS = 180_000


def wait_idle(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def from_menu(viewer, name: str):
    _, widget = viewer.window.add_plugin_dock_widget("scopeml", name)
    assert type(widget.viewer).__name__ == "PublicOnlyProxy"  # what the menu gives
    return widget


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 2-channel classifier (the sample file's channels), a 1-channel one on its DAPI plane,
    and that plane: ``(two.czseg, gray.czseg, dapi)``."""
    import zarr

    folder = tmp_path_factory.mktemp("menu")
    image, two = sample_classifier(
        folder / "small.ome.zarr", size=192, block=192, seed=8, every=6, n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    with sm.open_image(image) as pixels:
        dapi = pixels.read()[0, 0, 0, 0]
    truth = np.asarray(zarr.open_array(str(image).replace(".ome.zarr", "_truth.zarr"))[:])
    labels = np.zeros(truth.shape, np.uint8)
    labels[::6, ::6] = (truth[::6, ::6] > 0) + 1
    gray = sm.train_pixel_classifier(
        dapi, labels, classes=["background", "nucleus"], n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    return two.save(folder / "two.czseg"), gray.save(folder / "gray.czseg"), dapi


def test_apply_from_the_menu_shows_and_keeps_its_layers(viewer, qtbot, models, monkeypatch):
    _, gray, dapi = models
    runs = []
    segment = sm.segment
    monkeypatch.setattr(sm, "segment", lambda *a, **k: runs.append(k) or segment(*a, **k))
    viewer.add_image(dapi, name="dapi")
    widget = from_menu(viewer, "Apply model")
    widget.image_choice.setCurrentText("dapi")

    # a typed model offers its classes for instances before any run
    widget.model_path.setText(str(gray))
    widget.model_path.editingFinished.emit()
    items = [widget.instances.itemText(i) for i in range(widget.instances.count())]
    assert items == ["(no instances)", "nucleus"]  # not the background
    assert not runs

    widget.run()
    wait_idle(qtbot, widget)
    text = widget.status.text()
    assert text.startswith("wrote") and "temporary" in text, text
    store = widget.result.path
    names = [layer.name for layer in viewer.layers]
    assert names.count("dapi.seg labels") == 1, names  # shown, not removed as it was added
    shown = np.asarray(viewer.layers["dapi.seg labels"].data)
    expected = segment(dapi, sm.open_model(gray), store.with_name("python.ome.zarr"))
    np.testing.assert_array_equal(shown, expected.labels.read()[0, 0, 0, 0])
    assert widget.output_path() == store  # the layer's temporary store, kept

    widget.instances.setCurrentText("nucleus")
    widget.run()
    wait_idle(qtbot, widget)
    text = widget.status.text()
    assert len(runs) == 1 and "did not run again" in text, text
    assert widget.result.path == store
    names = [layer.name for layer in viewer.layers]
    assert names.count("dapi.seg labels") == 1 and names.count("dapi.seg instances") == 1, names
    assert np.asarray(viewer.layers["dapi.seg instances"].data).max() > 3


def test_instances_offer_the_pixel_widgets_model_when_the_list_opens(viewer, models):
    _, gray, dapi = models
    viewer.add_image(dapi, name="dapi")
    pixel = from_menu(viewer, "Pixel classifier")
    apply = from_menu(viewer, "Apply model")
    assert apply.instances.count() == 1  # no model yet: nothing to offer
    pixel.model = sm.open_model(gray)  # as Train or Load model leaves it
    apply.instances.showPopup()
    items = [apply.instances.itemText(i) for i in range(apply.instances.count())]
    apply.instances.hidePopup()
    assert items == ["(no instances)", "nucleus"]  # not the background


def test_instances_offer_no_boundary_class(viewer, models):
    """The built-in nuclei's boundary was offered; chosen it said only "the object class
    'boundary' is the boundary"."""
    viewer.add_image(models[2], name="dapi")
    apply = from_menu(viewer, "Apply model")
    apply.model_path.setText("nuclei")
    apply.model_path.editingFinished.emit()
    items = [apply.instances.itemText(i) for i in range(apply.instances.count())]
    assert items == ["(no instances)", "nucleus"]


def test_the_channel_choice_is_kept_per_layer_from_the_menu(viewer, models):
    from scopeml.napari.apply_widget import AUTO_CHANNELS

    _, _, dapi = models
    viewer.add_image(np.stack([dapi, dapi // 2, dapi // 3], axis=-1), rgb=True, name="photo")
    viewer.add_image(dapi, name="dapi")
    widget = from_menu(viewer, "Apply model")
    widget.image_choice.setCurrentText("photo")
    widget.channels.setCurrentText("G")
    widget.image_choice.setCurrentText("dapi")
    assert widget.channels.currentText() == AUTO_CHANNELS
    widget.image_choice.setCurrentText("photo")
    assert widget.channels.currentText() == "G"
    assert widget.chosen_channels() == ["G"]


def test_too_few_channels_are_said_to_the_end(viewer, qtbot, models):
    two, _, dapi = models
    viewer.add_image(dapi, name="dapi")
    widget = from_menu(viewer, "Apply model")
    widget.image_choice.setCurrentText("dapi")
    widget.set_model(str(two))
    widget.run()
    wait_idle(qtbot, widget)
    text = widget.status.text()
    assert text.startswith("error: layer 'dapi': the image has 1 channel (dapi)"), text
    assert text.endswith("apply it to an image with 2 channels"), text


def test_objects_from_the_menu_hook_one_click_and_say_the_export(viewer, qtbot, tmp_path):
    pixels, instances = synthetic_nuclei((256, 256), density=0.0015, seed=11)
    viewer.add_image(pixels, name="nuclei")
    first = viewer.add_labels(instances, name="instances")
    second = viewer.add_labels(instances[:, ::-1].copy(), name="mirrored")
    widget = from_menu(viewer, "Objects")
    widget.labels_choice.setCurrentText("instances")
    widget.image_choice.setCurrentText("nuclei")

    def hooks(layer):
        return sum(callback == widget._on_click for callback in layer.mouse_drag_callbacks)

    for _ in range(2):
        widget.measure()
        wait_idle(qtbot, widget)
        assert widget.status.text().endswith("objects measured"), widget.status.text()
    assert hooks(first) == 1
    widget.labels_choice.setCurrentText("mirrored")
    widget.measure()
    wait_idle(qtbot, widget)
    assert (hooks(first), hooks(second)) == (0, 1)  # only the measured layer answers clicks

    n = len(np.unique(instances)) - 1
    assert len(widget.table) == n
    path = widget.export_csv(tmp_path / "objects.csv")
    assert widget.status.text() == f"exported {n} rows to {path}"
    assert len(pd.read_csv(path)) == n
