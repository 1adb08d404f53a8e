"""The Objects widget with Apply's results (a user's trial): Apply's instances chosen, the
image Apply ran on is chosen under *intensities* (another image stayed, and Measure refused
Apply's own output as "a preview"); measured with an image of another size, the status says to
choose the image the objects came from; a click on the background clears the last error."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.synthetic import synthetic_nuclei

WAIT_MS = 180_000


@pytest.fixture(scope="module")
def nuclei_model(tmp_path_factory):
    """Small nuclei and a 3-tree classifier of them: ``(pixels, instances, model path)``."""
    pixels, instances = synthetic_nuclei((96, 96), density=0.002, seed=3)
    labels = np.zeros(instances.shape, np.uint8)
    labels[::4, ::4] = (instances[::4, ::4] > 0) + 1
    model = sm.train_pixel_classifier(
        pixels, labels, classes=["background", "nucleus"], n_estimators=3,
        features="gaussian_smoothing:1",
    )  # fmt: skip
    return pixels, instances, model.save(tmp_path_factory.mktemp("follow") / "nuclei.czseg")


def applied(viewer, qtbot, nuclei_model, tmp_path):
    """Apply's nuclei instances of ``nuclei``, the Objects widget open (on ``other``) before."""
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.napari.objects_widget import ObjectsWidget

    pixels, _, model = nuclei_model
    viewer.add_image(np.ones((128, 160), np.float32), name="other")
    viewer.add_image(pixels, name="nuclei")
    objects = ObjectsWidget(viewer)
    objects.image_choice.setCurrentText("other")  # the image chosen before Apply ran
    qtbot.wait(50)
    apply = ApplyWidget(viewer)
    apply.image_choice.setCurrentText("nuclei")
    apply.set_model(str(model))
    apply.instances.setCurrentText("nucleus")
    apply.output.setText(str(tmp_path / "dna.ome.zarr"))
    apply.run()
    qtbot.waitUntil(lambda: not apply.busy, timeout=WAIT_MS)
    assert apply.status.text().startswith("wrote"), apply.status.text()
    qtbot.waitUntil(lambda: objects.labels_choice.currentText() == "dna instances", timeout=5_000)
    return objects


def test_apply_instances_chosen_bring_their_image_under_intensities(
    viewer, qtbot, nuclei_model, tmp_path
):
    objects = applied(viewer, qtbot, nuclei_model, tmp_path)
    qtbot.waitUntil(lambda: objects.image_choice.currentText() == "nuclei", timeout=5_000)
    objects.measure()
    qtbot.waitUntil(lambda: not objects.busy, timeout=WAIT_MS)
    assert " objects measured" in objects.status.text(), objects.status.text()
    objects.image_choice.setCurrentText("other")  # the user's own choice afterwards is kept
    viewer.add_points(name="marks")
    qtbot.wait(50)
    assert objects.image_choice.currentText() == "other"


def test_objects_measured_with_another_images_size_say_which_image_to_choose(
    viewer, qtbot, nuclei_model, tmp_path
):
    objects = applied(viewer, qtbot, nuclei_model, tmp_path)
    qtbot.wait(50)
    objects.image_choice.setCurrentText("other")
    objects.measure()
    assert objects.status.text() == (
        "error: dna instances covers 96×96 pixels and other 128×160: choose under intensities "
        "nuclei, the image these objects came from"
    )


def test_a_click_on_no_object_replaces_the_error_before(viewer, qtbot, nuclei_model):
    from scopeml.napari.objects_widget import ObjectsWidget

    pixels, instances, _ = nuclei_model
    viewer.add_image(pixels, name="nuclei")
    viewer.add_labels(instances, name="cells")
    widget = ObjectsWidget(viewer)
    widget.labels_choice.setCurrentText("cells")
    widget.measure()
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    widget.train_and_classify()  # nothing clicked yet
    assert widget.status.text().startswith("error: click-label objects of at least two")
    background = np.argwhere(instances == 0)[0]
    widget.click(tuple(float(i) for i in background))
    assert widget.status.text() == "no object there (the background): click an object"
    widget.click_to_label.setChecked(True)
    widget.click((1e6, 1e6))
    assert (
        widget.status.text() == "no object there (outside the objects): click an object; A 0, B 0"
    )
