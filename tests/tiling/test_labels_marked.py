"""A segment store's class labels are an NGFF label image naming the classes (as post's,
objects' and analysis' labels are), so NGFF viewers open them as labels, not intensities."""

from __future__ import annotations

import numpy as np

import scopeml as sm
from scopeml.analysis.inputs import image_label


def test_segment_labels_are_marked_with_their_classes_and_probabilities_are_not(tmp_path):
    image = np.random.default_rng(0).uniform(0, 100, (64, 64)).astype(np.float32)
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[2:8, 2:8], scribbles[40:48, 40:48] = 1, 2
    classifier = sm.train_pixel_classifier(
        image, scribbles, classes=["bg", "cell"], features="basic25", n_estimators=4
    )
    out = tmp_path / "s.ome.zarr"
    sm.segment(image, classifier, out, outputs=["labels", "probabilities"])
    assert image_label(out / "labels") == {
        "version": "0.5",
        "properties": [{"label-value": 1, "class": "bg"}, {"label-value": 2, "class": "cell"}],
    }
    assert image_label(out / "probabilities") is None
