"""An in-memory layer edited in place (``layer.data[...] = v``, then ``refresh``) is another
image: the apply widget runs the model again instead of taking the labels of the store it wrote
before, and the preview computes the normalisation anew; unchanged pixels still reuse both."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from tests.napari.conftest import sample_classifier

WAIT_MS = 180_000


class HalfBright:
    """A model that normalises (1st and 99.8th percentiles of the whole image): class ``on``
    where the normalised value is above one half."""

    from scopeml.model.spec import ModelSpec

    spec = ModelSpec(2, 1, ("off", "on"), (0, 0), normalize="percentile:1,99.8")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        on = (batch > 0.5).astype(np.float32)
        return np.concatenate([1 - on, on], axis=1)


@pytest.fixture(scope="module")
def plane_model(tmp_path_factory):
    """A 192² DAPI plane (uint16) and a 1-channel pixel classifier saved as ``.czseg``."""
    import zarr

    folder = tmp_path_factory.mktemp("edits")
    image, _ = sample_classifier(
        folder / "s.ome.zarr", size=192, block=192, seed=8, every=6, n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    with sm.open_image(image) as pixels:
        dapi = np.ascontiguousarray(pixels.read()[0, 0, 0, 0])
    truth = np.asarray(zarr.open_array(str(image).replace(".ome.zarr", "_truth.zarr"))[:])
    labels = np.zeros(truth.shape, np.uint8)
    labels[::6, ::6] = (truth[::6, ::6] > 0) + 1
    model = sm.train_pixel_classifier(
        dapi, labels, classes=["background", "nucleus"], n_estimators=5,
        features="gaussian_smoothing:1;laplacian_of_gaussian:2",
    )  # fmt: skip
    return dapi, model.save(folder / "plane.czseg")


def test_instances_after_an_in_place_edit_run_the_model_again(
    viewer, qtbot, plane_model, tmp_path, monkeypatch
):
    from scopeml.napari.apply_widget import ApplyWidget

    dapi, model = plane_model
    runs = []
    segment = sm.segment
    monkeypatch.setattr(sm, "segment", lambda *a, **k: runs.append(k) or segment(*a, **k))
    layer = viewer.add_image(dapi.copy(), name="cells")
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText("cells")
    widget.set_model(str(model))
    out = tmp_path / "cells.ome.zarr"
    widget.output.setText(str(out))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert len(runs) == 1 and widget.status.text().startswith("wrote"), widget.status.text()

    layer.data[:, :96] = 0  # the left half erased in place: the same array object
    layer.refresh()
    widget.instances.setCurrentText("nucleus")
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    text = widget.status.text()
    assert len(runs) == 2, f"the labels of the image before the edit were reused: {text}"
    assert "did not run again" not in text, text
    edited = dapi.copy()
    edited[:, :96] = 0
    expected = segment(edited, model, tmp_path / "python.ome.zarr", outputs=("instances",),
                       instances=sm.InstanceOptions(class_="nucleus")).instances  # fmt: skip
    instances = viewer.layers["cells instances"]
    shown = np.asarray(instances.data[0] if instances.multiscale else instances.data)
    np.testing.assert_array_equal(shown, expected.read()[0, 0, 0, 0])
    assert shown[:, :90].max() == 0 and shown[:, 100:].max() > 3

    widget.run()  # unchanged since: the store's instances are taken, no run
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert len(runs) == 2 and "instances already" in widget.status.text()


def test_the_preview_normalises_an_edited_layer_anew(viewer, qtbot, plane_model, monkeypatch):
    from scopeml.napari import pixel_widget
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    dapi, _ = plane_model
    model = HalfBright()
    computed = []
    normalization = pixel_widget.region_normalization
    monkeypatch.setattr(
        pixel_widget, "region_normalization",
        lambda image, m, **kw: computed.append(1) or normalization(image, m, **kw),
    )  # fmt: skip
    layer = viewer.add_image(dapi.copy(), name="cells")
    widget = PixelClassifierWidget(viewer)
    widget.set_model(model)
    region = {"Y": (0, 192), "X": (0, 192)}

    def preview() -> np.ndarray:
        widget.update_preview(region)
        qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
        assert widget.status.text().startswith("preview"), widget.status.text()
        return np.asarray(viewer.layers[pixel_widget.PREVIEW].data).copy()

    first = preview()
    assert preview().tolist() == first.tolist() and len(computed) == 1  # cached: unchanged

    layer.data[:, :96] *= 4  # in place: the high percentile rises
    layer.refresh()
    after = preview()
    assert len(computed) == 2, "the normalisation of the image before the edit was reused"
    edited = dapi.copy()
    edited[:, :96] *= 4
    image = sm.Image(edited[None, None, None, None])
    expected = sm.predict_region(image, model, region, normalization=normalization(image, model))
    np.testing.assert_array_equal(after, expected.reshape(after.shape))
    assert (after[:, 96:] != first[:, 96:]).sum() > 100  # the unedited half too
