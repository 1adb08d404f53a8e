"""What an ilastik user's trial found: a classifier written as ``model.png``, class names
given twice, a blank image trained on without a word, and unnamed classes that ``segment
--outputs instances`` could not tell apart."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture
def pair(tmp_path):
    image, truth = synthetic_nuclei((96, 96), density=0.004, seed=5)
    labels = np.zeros((96, 96), np.uint8)
    labels[truth == 0] = 1  # background strokes (every background pixel: a dense hint)
    labels[truth > 0] = 2
    labels[::2] = 0  # sparse
    tifffile.imwrite(tmp_path / "image.tif", image[0])
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    return tmp_path / "image.tif", tmp_path / "labels.tif"


def test_a_classifier_named_as_an_image_or_with_a_class_twice_is_refused(pair, capsys):
    image, labels = pair
    out = image.with_name("model.png")
    assert main(["pixel", "train", str(image), str(labels), "-o", str(out)]) == 2
    assert ".png names an image; a pixel classifier is saved as .czseg" in capsys.readouterr().err
    assert not out.exists()
    twice = image.with_name("twice.czseg")
    args = ["pixel", "train", str(image), str(labels), "-o", str(twice), "--classes", "bg,bg"]
    assert main(args) == 2
    assert "class names repeat (bg): name each once" in capsys.readouterr().err


def test_training_on_a_blank_image_says_the_classes_cannot_be_told_apart(pair, tmp_path):
    _, labels = pair
    tifffile.imwrite(tmp_path / "blank.tif", np.full((96, 96), 7, np.uint16))
    with pytest.warns(UserWarning, match="every feature has one value over the labelled pixels"):
        sm.train_pixel_classifier(tmp_path / "blank.tif", labels)


def test_unnamed_classes_give_instances_of_the_second(pair, tmp_path, capsys):
    """``class 1, class 2`` (no --classes): the first is the background, as in ZEN."""
    image, labels = pair
    model = tmp_path / "unnamed.czseg"
    assert main(["pixel", "train", str(image), str(labels), "-o", str(model)]) == 0
    out = tmp_path / "o.ome.zarr"
    assert main(["segment", str(image), "-m", str(model), "-o", str(out),
                 "--outputs", "labels,instances"]) == 0  # fmt: skip
    found = sm.open_image(out / "instances").read()
    classes = sm.open_image(out / "labels").read()
    assert found.max() >= 1 and ((found > 0) == (classes == 2)).all()  # class 2's objects
