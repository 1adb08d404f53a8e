"""Scribbles in the wrong form get one short line naming the mistake (newuser report, finding 7).

An ImageJ binary mask (0/255), an RGB painting, labels with gaps: each is refused with exit 2,
the label file named, a few values at most, and before any feature is computed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from scopeml.cli import main
from scopeml.errors import InvalidLabelsError
from scopeml.pixel import _classifier, train_classifier
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    image, _ = synthetic_nuclei((64, 64), density=0.004, seed=2)
    tifffile.imwrite(tmp_path / "image.tif", image[0])
    return tmp_path / "image.tif"


@pytest.fixture
def no_features(monkeypatch):
    """Fail the test if training computes features: bad labels must be refused first."""

    def refuse(*args, **kwargs):
        raise AssertionError("features were computed for labels that are refused")

    monkeypatch.setattr(_classifier, "_sample_features", refuse)


def _train(image_file: Path, labels_file: Path, capsys) -> tuple[int, str]:
    out = labels_file.with_suffix(".czseg")
    code = main(["pixel", "train", str(image_file), str(labels_file), "-o", str(out)])
    assert not out.exists()
    return code, capsys.readouterr().err.strip()


def test_binary_mask_255_is_named_in_one_short_line(tmp_path, image_file, no_features, capsys):
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 12:40] = 255
    tifffile.imwrite(tmp_path / "mask255.tif", mask)
    code, err = _train(image_file, tmp_path / "mask255.tif", capsys)
    assert code == 2
    assert err.startswith(
        f"error: {tmp_path / 'mask255.tif'}: labels use only the values 0 and 255"
    )
    assert "binary mask" in err and "map 255 to 1" in err
    assert len(err.splitlines()) == 1 and len(err) < 300
    assert "254" not in err.replace(str(tmp_path), "")  # no list of the values 1..254


def test_one_named_class_alone_is_told_to_label_the_others(tmp_path, image_file, capsys):
    """Only the nucleus (2) painted of --classes background,nucleus: the advice was "map 2 to
    1 and label a second class (e.g. the background) as 2", against the order just given."""
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[10:14, 10:30] = 2
    tifffile.imwrite(tmp_path / "only2.tif", scribbles)
    out = tmp_path / "only2.czseg"
    args = ["pixel", "train", str(image_file), str(tmp_path / "only2.tif"), "-o", str(out)]
    assert main([*args, "--classes", "background,nucleus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {tmp_path / 'only2.tif'}: labels use only class 2: 0 is unlabelled, classes are "
        "1..2 and at least two must be labelled — label class 1 too"
    )
    assert not out.exists()


def test_rgb_scribbles_are_told_to_be_one_channel(tmp_path, image_file, capsys):
    painting = np.zeros((64, 64, 3), np.uint8)
    painting[5:10, 5:20, 0] = 255
    painting[40:50, 30:50, 1] = 255
    PILImage.fromarray(painting).save(tmp_path / "scribbles.png")
    code, err = _train(image_file, tmp_path / "scribbles.png", capsys)
    assert code == 2
    assert f"{tmp_path / 'scribbles.png'}: labels have 3 channels" in err
    assert "one channel of class values" in err


def test_many_missing_classes_show_a_handful_of_values(tmp_path, image_file, no_features, capsys):
    labels = np.zeros((64, 64), np.uint8)
    labels[2:6, 2:30] = 1
    labels[40:44, 2:30] = 7
    labels[50:54, 2:30] = 200
    tifffile.imwrite(tmp_path / "gaps.tif", labels)
    code, err = _train(image_file, tmp_path / "gaps.tif", capsys)
    assert code == 2 and len(err) < 300
    assert "values 1, 7, 200, none for 2, 3, 4, 5, 6, … (197 in all)" in err


def test_one_class_in_memory_is_refused_before_features(no_features):
    image = np.random.default_rng(1).random((1, 24, 24))
    labels = np.zeros((24, 24), np.uint8)
    labels[3:9, 3:9] = 1
    with pytest.raises(InvalidLabelsError, match=r"only the values 0 and 1: .* second class"):
        train_classifier(image, labels, features="gaussian_smoothing:1")


def test_gaps_across_several_label_images_are_found():
    # each image alone has a gap, together they use 1..3: training goes ahead
    image = np.random.default_rng(2).random((1, 24, 24))
    first, second = np.zeros((24, 24), np.uint8), np.zeros((24, 24), np.uint8)
    first[2:8, 2:8], first[12:18, 12:18] = 1, 3
    second[2:8, 12:18] = 2
    clf = train_classifier(
        [image, image], [first, second], features="gaussian_smoothing:1", n_estimators=3
    )
    assert len(clf.classes) == 3
    with pytest.raises(InvalidLabelsError, match="none for 2 "):
        train_classifier([image, image], [first, first], features="gaussian_smoothing:1")


def test_an_rgb_array_read_channels_first_is_told_its_axes(no_features, monkeypatch):
    """A Y×X×3 array was read as 960 channels of 1280×3: the shapes alone did not say why."""
    import scopeml as sm

    rgb = np.zeros((40, 50, 3), np.uint8)
    labels = np.zeros((40, 50), np.uint8)
    labels[5, 5], labels[30, 30] = 1, 2
    with pytest.raises(InvalidLabelsError, match=r"Y×X×3 is read channels first: give axes='YXC'"):
        sm.train_pixel_classifier(rgb, labels, features="gaussian_smoothing:1")
    monkeypatch.undo()  # features may be computed now
    assert sm.train_pixel_classifier(rgb, labels, axes="YXC", features="gaussian_smoothing:1")


def test_the_image_given_as_labels_and_an_instance_mask_are_named():
    """``train(scribbles, image)``, arguments swapped, said only "every class 1..235 needs
    labelled pixels"; an instance mask as scribbles trained a 40-class classifier silently."""
    import scopeml as sm

    image, _ = synthetic_nuclei((96, 96), density=0.004, seed=2)
    pixels = (image[0] * 200).astype(np.uint8)
    scribbles = np.zeros(pixels.shape, np.uint8)
    scribbles[:4], scribbles[40:44, 40:44] = 1, 2
    with pytest.raises(InvalidLabelsError, match=r"or the image given as the labels \(the image"):
        sm.train_pixel_classifier(scribbles, pixels, n_estimators=2)
    instances = np.zeros(pixels.shape, np.uint16)
    for k in range(40):  # 40 objects, ids without gaps: each a class of its own
        instances[2 * k, : 2 + k % 5] = k + 1
    with pytest.warns(UserWarning, match=r"the labels have 40 classes; an instance mask, or"):
        sm.train_pixel_classifier(pixels, instances, n_estimators=2,
                                  features="gaussian_smoothing:1")  # fmt: skip
