"""Label objects on the pixel classifier's preview of one plane of a Z stack or one frame of
a time series (a ``1×Y×X`` layer): the objects lie at that plane, over the preview; an error
after the labelling is one status line, and its temporary folder goes."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.synthetic import synthetic_nuclei

WAIT_MS = 180_000


@pytest.fixture(scope="module")
def stack():
    """Four 96² planes of nuclei and their true foreground."""
    planes = [synthetic_nuclei((96, 96), density=0.002, seed=seed) for seed in range(4)]
    return np.stack([p[0] for p, _ in planes]), np.stack([i > 0 for _, i in planes])


def wait_idle(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)


def previewed(viewer, qtbot, stack, axes: str):
    """The preview of plane 2 of ``stack`` read with ``axes`` (``zyx``: a Z stack, moved and
    scaled; ``tyx``: a time series), by a classifier trained on strokes there."""
    from scopeml.napari.pixel_widget import PREVIEW, SCRIBBLES, PixelClassifierWidget

    pixels, truth = stack
    placement = {"scale": (2, 0.5, 0.5), "translate": (1, 30, 40)} if axes == "zyx" else {}
    viewer.add_image(pixels, name="cells", axis_labels=tuple(axes), **placement)
    widget = PixelClassifierWidget(viewer)
    strokes = np.zeros(truth.shape, np.uint8)
    strokes[2, ::5, ::5] = truth[2, ::5, ::5] + 1
    viewer.layers[SCRIBBLES].data = strokes
    viewer.dims.set_current_step(0, 2)
    widget.trees.setValue(10)
    widget.train()
    wait_idle(qtbot, widget)
    widget.update_preview()
    wait_idle(qtbot, widget)
    preview = viewer.layers[PREVIEW]
    assert preview.data.shape == (1, 96, 96), widget.status.text()
    return preview


@pytest.mark.parametrize("axes", ["zyx", "tyx"])
def test_objects_of_a_planes_preview_lie_at_that_plane(viewer, qtbot, stack, axes):
    """The objects of a ``1×Y×X`` preview are ``1×Y×X`` where the preview lies (napari refused
    a 2-D layer with its 3 scales, in the slot: the status stayed "labelling…")."""
    from scopeml.napari.objects_widget import ObjectsWidget
    from scopeml.napari.pixel_widget import PREVIEW

    preview = previewed(viewer, qtbot, stack, axes)
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText(PREVIEW)
    widget.class_value.setText("foreground")
    widget.label_objects()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("labelled"), widget.status.text()
    objects = viewer.layers[f"{PREVIEW} objects"]
    data = np.asarray(objects.data[0] if objects.multiscale else objects.data)
    assert data.shape == (1, 96, 96) and data.max() > 3
    assert ((data > 0) <= (np.asarray(preview.data) == 2)).all()
    np.testing.assert_allclose(objects.scale, preview.scale)
    np.testing.assert_allclose(objects.translate, preview.translate)
    assert tuple(objects.axis_labels) == tuple(axes)


def test_an_error_after_labelling_is_a_status_line(viewer, qtbot, stack, monkeypatch):
    """An error in the slot that shows the objects ends in the status line, not a stuck
    "labelling…", and the run's temporary folder is removed."""
    import os
    import tempfile

    from scopeml.napari import objects_widget
    from scopeml.napari.objects_widget import ObjectsWidget

    made, real_mkdtemp = [], tempfile.mkdtemp

    def mkdtemp(**kwargs):
        made.append(real_mkdtemp(**kwargs))
        return made[-1]

    def broken(*args, **kwargs):
        raise RuntimeError("no layer today")

    truth = stack[1]
    viewer.add_labels(truth[2].astype(np.uint8), name="classes")
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(objects_widget, "labels_layer_data", broken)
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText("classes")
    widget.class_value.setText("1")
    widget.label_objects()
    wait_idle(qtbot, widget)
    assert widget.status.text() == "error: RuntimeError: no layer today"
    assert len(made) == 1 and not os.path.exists(made[0])


def test_a_previews_class_is_chosen_as_a_stores_and_a_wrong_name_is_told(viewer, qtbot, stack):
    """With the class box empty, a preview's objects are its one class that is neither
    background nor boundary (everything non-zero made the whole image one object), and a
    name it lacks is told with the names it has."""
    from scopeml.napari.objects_widget import ObjectsWidget
    from scopeml.napari.pixel_widget import PREVIEW

    preview = previewed(viewer, qtbot, stack, "tyx")
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText(PREVIEW)
    widget.class_value.setText("nucleus")
    widget.label_objects()
    assert widget.status.text() == (
        "error: no class 'nucleus' in these labels: their classes are background, foreground"
    )
    widget.class_value.setText("")
    widget.label_objects()
    wait_idle(qtbot, widget)
    assert widget.status.text().startswith("labelled"), widget.status.text()
    objects = viewer.layers[f"{PREVIEW} objects"]
    data = np.asarray(objects.data[0] if objects.multiscale else objects.data)
    assert data.max() > 3 and ((data > 0) == (np.asarray(preview.data) == 2)).all()
