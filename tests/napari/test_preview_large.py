"""The preview on a large image: zoomed out, it predicts the view's middle, not the whole
image (which cost as much as Apply at every stroke); Cancel stops it between batches of tiles
(a Train clicked after waited for the whole preview, which ran on in its thread); and the
preview of an image removed goes with it."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei

WAIT_MS = 180_000
EDGE = 2560  # over the preview's edge: zoomed out, napari shows all of it


@pytest.fixture(scope="module")
def large():
    """A 2560² image of nuclei (a 256² scene tiled) and a small classifier of them."""
    pixels, instances = synthetic_nuclei((256, 256), density=0.002, seed=3)
    labels = np.zeros(instances.shape, np.uint8)
    labels[::7, ::7] = (instances[::7, ::7] > 0) + 1
    model = sm.train_pixel_classifier(
        pixels[0], labels, classes=["background", "nucleus"], n_estimators=5,
        features="gaussian_smoothing:1",
    )  # fmt: skip
    return np.tile(pixels[0], (EDGE // 256, EDGE // 256)), model


def _widget(viewer, model):
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    widget = PixelClassifierWidget(viewer)
    widget.set_model(model)
    return widget


def test_a_zoomed_out_preview_predicts_the_middle_of_the_view(viewer, qtbot, large):
    from scopeml.napari._preview import PREVIEW_EDGE
    from scopeml.napari.pixel_widget import PREVIEW

    pixels, model = large
    viewer.add_image(pixels, name="big")
    widget = _widget(viewer, model)
    widget.update_preview(region={"Y": (0, EDGE), "X": (0, EDGE)})  # the whole image on screen
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert f"middle {PREVIEW_EDGE}²" in widget.status.text(), widget.status.text()
    preview = viewer.layers[PREVIEW]
    assert preview.data.shape == (PREVIEW_EDGE, PREVIEW_EDGE)
    start = (EDGE - PREVIEW_EDGE) // 2
    np.testing.assert_allclose(preview.translate, (start, start))
    whole = sm.predict_region(pixels, model, {"Y": (start, start + PREVIEW_EDGE),
                                              "X": (start, start + PREVIEW_EDGE)})  # fmt: skip
    np.testing.assert_array_equal(preview.data, whole)  # what segment gives there


def test_cancel_stops_a_preview_between_batches_of_tiles(viewer, qtbot, large):
    pixels, model = large
    viewer.add_image(pixels, name="big")
    widget = _widget(viewer, model)
    stop, events = widget._stop_preview, []

    def cancel_as_tiles_start(event):
        events.append(event)
        if event.stage == "segment":
            widget._cancel = True  # Cancel clicked, as cancel() sets it
        stop(event)

    widget._stop_preview = cancel_as_tiles_start
    widget.update_preview(region={"Y": (0, 2048), "X": (0, 2048)})
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    tiles = [e for e in events if e.stage == "segment"]
    assert [e.done for e in tiles] == [0]  # stopped before its first batch of tiles
    assert widget.status.text().startswith("preview cancelled"), widget.status.text()


def test_the_preview_of_a_removed_image_goes_with_it(viewer, qtbot, large):
    from scopeml.napari.pixel_widget import PREVIEW

    pixels, model = large
    image = viewer.add_image(pixels[:256, :256], name="tile")
    widget = _widget(viewer, model)
    widget.update_preview()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert PREVIEW in viewer.layers
    viewer.layers.remove(image)
    qtbot.waitUntil(lambda: PREVIEW not in viewer.layers, timeout=5_000)  # it lay over nothing


def test_the_preview_of_an_image_removed_while_training_goes_with_it(viewer, qtbot, large):
    """Removed while a training runs, the image takes its preview along (it stayed, over
    nothing, when the widget was busy)."""
    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES

    pixels, model = large
    image = viewer.add_image(pixels[:512, :512], name="tile")
    widget = _widget(viewer, model)
    widget.update_preview()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    strokes = np.zeros((512, 512), np.uint8)
    strokes[::3, ::3] = (pixels[:512:3, :512:3] > pixels.mean()) + 1
    viewer.layers[SCRIBBLES].data = strokes
    widget.trees.setValue(400)
    widget.train()
    assert widget.busy
    viewer.layers.remove(image)
    qtbot.waitUntil(lambda: PREVIEW not in viewer.layers, timeout=5_000)
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    assert PREVIEW not in viewer.layers, widget.status.text()
