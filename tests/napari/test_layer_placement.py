"""Layers the widgets make lie where the image layer lies: scribbles (a stroke labels the
pixel under the brush), Apply's outputs and Label objects' objects, for an image layer moved,
scaled, rotated or sheared; results for an image removed while they ran are not shown."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei

WAIT_MS = 180_000
#: Placements a user gives an image layer (``viewer.add_image(..., **placement)``).
PLACEMENTS = {
    "moved": {"translate": (30, 40)},
    "moved and scaled": {"translate": (200, 300), "scale": (0.5, 0.5)},
    "scaled up": {"scale": (2, 2)},
    "rotated and sheared": {"translate": (5, 7), "rotate": 30, "shear": [0.2]},
    "affine": {"affine": np.array([[0.8, 0.3, 12.0], [-0.3, 0.8, 4.0], [0.0, 0.0, 1.0]])},
}


@pytest.fixture(scope="module")
def nuclei():
    """A 128² image of nuclei (uint16) and its true foreground."""
    pixels, instances = synthetic_nuclei((128, 128), density=0.002, seed=1)
    return pixels[0], instances > 0


def wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def assert_placed_as(layer, image) -> None:
    """``layer`` maps each pixel to where ``image`` maps the same pixel (its last axes)."""
    n = layer.ndim
    np.testing.assert_allclose(layer.scale, image.scale[-n:])
    np.testing.assert_allclose(layer.translate, image.translate[-n:])
    np.testing.assert_allclose(layer.rotate, image.rotate[-n:, -n:], atol=1e-12)
    np.testing.assert_allclose(layer.affine.affine_matrix, image.affine.affine_matrix)
    pixel = np.array([3.0, 5.0, 7.0][-n:])
    np.testing.assert_allclose(layer.data_to_world(pixel), image.data_to_world(pixel)[-n:])


def paint_in_world(scribbles, image, truth: np.ndarray) -> None:
    """Paint as a user does, where the image shows each pixel: nuclei 2, background 1 (with
    a one-pixel brush: a wider one spills over a nucleus' edge)."""
    scribbles.brush_size = 1
    for value, where in ((2, truth), (1, ~truth)):
        ys, xs = np.nonzero(where)
        for y, x in list(zip(ys, xs, strict=True))[::23]:
            world = image.data_to_world(np.array([y, x], float))
            scribbles.paint(scribbles.world_to_data(world), value, refresh=False)
    scribbles.refresh()


@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_strokes_label_the_pixels_under_the_brush(viewer, qtbot, nuclei, placement):
    """Strokes painted where the image shows nuclei label nucleus pixels, whatever its
    placement, and the classifier trained on them finds the nuclei (scribbles at translate 0,
    scale 1 labelled other pixels, or none: a trial's "nucleus" strokes sampled a mean of 6)."""
    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES, PixelClassifierWidget

    pixels, truth = nuclei
    image = viewer.add_image(pixels, name="tile", **PLACEMENTS[placement])
    widget = PixelClassifierWidget(viewer)
    scribbles = viewer.layers[SCRIBBLES]
    assert_placed_as(scribbles, image)
    paint_in_world(scribbles, image, truth)
    painted = np.asarray(scribbles.data)
    assert truth[painted == 2].all() and not truth[painted == 1].any()
    widget.trees.setValue(10)
    widget.train()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("trained"), widget.status.text()
    widget.update_preview({"Y": (0, 128), "X": (0, 128)})
    wait_idle(qtbot, widget)
    preview = viewer.layers[PREVIEW]
    assert_placed_as(preview, image)
    assert ((np.asarray(preview.data) == 2) == truth).mean() > 0.9


def test_scribbles_placed_elsewhere_are_moved_and_said_before_training(viewer, qtbot, nuclei):
    """Painted scribbles that lie elsewhere than their image (it was moved after they were
    made) are moved onto it and Train says so once, rather than train on strokes that may
    have been painted on other pixels; empty scribbles taken over by another image of the
    same size are placed on it."""
    from scopeml.napari.pixel_widget import SCRIBBLES, PixelClassifierWidget

    pixels, truth = nuclei
    image = viewer.add_image(pixels, name="tile")
    widget = PixelClassifierWidget(viewer)
    scribbles = viewer.layers[SCRIBBLES]
    other = viewer.add_image(pixels, name="other", translate=(10, -20), scale=(3, 3))
    widget.image_choice.setCurrentText("other")  # the scribbles are empty: taken over
    qtbot.waitUntil(lambda: np.allclose(scribbles.translate, other.translate), timeout=5000)
    assert_placed_as(scribbles, other)
    widget.image_choice.setCurrentText("tile")
    qtbot.waitUntil(lambda: np.allclose(scribbles.translate, image.translate), timeout=5000)
    assert_placed_as(scribbles, image)
    paint_in_world(scribbles, image, truth)  # placed on tile again: painted there
    image.translate = (50, 60)  # moved after painting
    widget.trees.setValue(5)
    widget.train()
    assert widget.status.text().startswith("error: the scribbles lay elsewhere than tile")
    assert "translate 0, 0, not 50, 60" in widget.status.text()
    assert not widget.busy and widget.model is None
    assert_placed_as(scribbles, image)
    widget.train()  # said once: they lie on the image now
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("trained"), widget.status.text()


def small_model(pixels: np.ndarray, truth: np.ndarray, folder) -> str:
    """A small pixel classifier of the nuclei, saved: Apply's model."""
    labels = np.zeros(truth.shape, np.uint8)
    labels[::7, ::7] = truth[::7, ::7] + 1
    model = sm.train_pixel_classifier(
        pixels, labels, classes=["background", "nucleus"], n_estimators=5,
        features="gaussian_smoothing:1,3.5",
    )  # fmt: skip
    return str(model.save(folder / "small.czseg"))


@pytest.mark.parametrize("placement", ["moved", "scaled up", "rotated and sheared", "affine"])
def test_applied_outputs_lie_on_the_image(viewer, qtbot, nuclei, tmp_path, placement):
    """Apply's labels and confidence lie where the image layer lies (they were drawn at
    translate 0 and the store's scale: beside a moved layer, half the size of one scaled 2)."""
    from scopeml.napari.apply_widget import ApplyWidget

    pixels, truth = nuclei
    image = viewer.add_image(pixels, name="tile", **PLACEMENTS[placement])
    widget = ApplyWidget(viewer)
    widget.set_model(small_model(pixels, truth, tmp_path))
    widget.output.setText(str(tmp_path / "tile.seg.ome.zarr"))
    widget.confidence.setChecked(True)
    widget.run()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    outputs = [layer for layer in viewer.layers if layer.name.startswith("tile.seg")]
    assert {layer.name for layer in outputs} == {"tile.seg labels", "tile.seg confidence"}
    for layer in outputs:
        assert_placed_as(layer, image)
    widget.run()  # run again: the layers updated in place keep the placement
    wait_idle(qtbot, widget)
    for layer in viewer.layers:
        if layer.name.startswith("tile.seg"):
            assert_placed_as(layer, image)


def test_applied_outputs_of_a_file_take_the_layers_placement(viewer, qtbot, tmp_path):
    """A file's layer opened by the reader: its outputs have its µm scale (the file's pixel
    sizes), and the layer's own placement once the user moves or rescales it."""
    from scopeml.napari.apply_widget import ApplyWidget
    from tests.napari.conftest import sample_classifier

    path, model = sample_classifier(
        tmp_path / "cells.ome.zarr", size=128, block=128, seed=2, every=8, n_estimators=3,
        features="gaussian_smoothing:1",
    )  # fmt: skip
    dapi = viewer.open(str(path), plugin="scopeml")[0]
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText(dapi.name)
    widget.set_model(str(model.save(tmp_path / "m.czseg")))
    widget.confidence.setChecked(False)
    widget.run()
    wait_idle(qtbot, widget)
    labels = next(layer for layer in viewer.layers if layer.name.endswith(" labels"))
    assert_placed_as(labels, dapi)
    assert tuple(map(str, labels.units)) == tuple(map(str, dapi.units))
    dapi.scale, dapi.translate = (2.0, 2.0), (100.0, -50.0)
    widget.run()
    wait_idle(qtbot, widget)
    assert_placed_as(labels, dapi)


def test_results_for_an_image_removed_meanwhile_are_not_shown(viewer, qtbot, nuclei, tmp_path):
    """An image removed while Apply or the preview ran: no layers are added for it, and the
    status line says why; the pixel widget's "preview of …" line goes with its image."""
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES, PixelClassifierWidget

    pixels, truth = nuclei
    image = viewer.add_image(pixels, name="tile")
    apply = ApplyWidget(viewer)
    apply.set_model(small_model(pixels, truth, tmp_path))
    apply.output.setText(str(tmp_path / "tile.seg.ome.zarr"))
    apply.run()
    viewer.layers.remove(image)  # before its result comes back (on this thread)
    wait_idle(qtbot, apply)
    assert apply.status.text().endswith("not shown: tile was removed"), apply.status.text()
    assert [layer.name for layer in viewer.layers] == []

    image = viewer.add_image(pixels, name="tile")
    pixel = PixelClassifierWidget(viewer)
    pixel.set_model(sm.open_model(tmp_path / "small.czseg"))
    pixel.update_preview()
    viewer.layers.remove(image)
    wait_idle(qtbot, pixel)
    assert pixel.status.text() == "preview discarded: tile was removed"
    assert PREVIEW not in viewer.layers
    viewer.layers.remove(SCRIBBLES)

    image = viewer.add_image(pixels, name="tile")
    pixel.update_preview()
    wait_idle(qtbot, pixel)
    assert pixel.status.text().startswith("preview of")
    viewer.layers.remove(image)
    assert pixel.status.text().startswith("tile was removed: open an image first")
