"""One rule for a plain label TIFF of a series (:mod:`scopeml.pixel._labels`): its pages, read as
Z planes, or as the channels of one RGB(A) page when there are 3 or 4 of them, are the time
points of an image with time points and one plane. ``scopeml pixel train``, the facade and the
napari scribbles import read the same file the same way."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.errors import InvalidLabelsError
from scopeml.pixel import load_classifier, train_classifier
from scopeml.pixel._labels import open_training_labels
from scopeml.synthetic import synthetic_nuclei

from .conftest import sparse_labels

FEATURES = "gaussian_smoothing:1,2.5"
SIZE = 40


def _movie(tmp_path, frames: int):
    """A ``T×Y×X`` ImageJ movie of nuclei and ``T×Y×X`` uint8 scribbles (frames 0 and last),
    the scribbles as an array and as a plain TIFF written without axes."""
    pixels, labels = [], []
    for t in range(frames):
        image, instances = synthetic_nuclei((SIZE, SIZE), density=0.003, seed=10 + t)
        pixels.append(image[0].astype(np.float32))
        truth = (instances > 0).astype(np.uint8) + 1
        labels.append(sparse_labels(truth, 0.05, seed=t) if t in (0, frames - 1) else 0 * truth)
    movie = tmp_path / f"movie{frames}.tif"
    tifffile.imwrite(movie, np.stack(pixels), imagej=True, metadata={"axes": "TYX"})
    scribbles = np.stack(labels).astype(np.uint8)
    plain = tmp_path / f"scribbles{frames}.tif"
    tifffile.imwrite(plain, scribbles)  # no axes; 3 or 4 pages become one RGB(A) page
    return movie, scribbles, plain


def _same_forest(a, b) -> None:
    for name, array in a.forest.arrays().items():
        np.testing.assert_array_equal(b.forest.arrays()[name], array, err_msg=name)


@pytest.mark.parametrize("frames", [3, 4, 6])
def test_cli_and_facade_train_on_a_plain_label_tiff_as_time_points(tmp_path, frames, capsys):
    sm = pytest.importorskip("scopeml.api")
    movie, scribbles, plain = _movie(tmp_path, frames)
    with tifffile.TiffFile(plain) as tif:  # the case at hand: pages, or one RGB(A) page
        assert tif.series[0].axes == ("SYX" if frames in (3, 4) else "QYX")
    counts = [int(np.count_nonzero(scribbles == k)) for k in (1, 2)]
    reference = sm.train_pixel_classifier(movie, scribbles, features=FEATURES, n_estimators=6)
    assert reference.info["samples_per_class"] == counts
    facade = sm.train_pixel_classifier(movie, plain, features=FEATURES, n_estimators=6)
    model = tmp_path / "cli.czseg"
    args = [str(movie), str(plain), "-o", str(model), "--features", FEATURES]
    assert main(["pixel", "train", *args, "--n-estimators", "6", "--jobs", "1"]) == 0
    assert f"(class 1 {counts[0]}, class 2 {counts[1]} labelled" in capsys.readouterr().out
    cli = load_classifier(model)
    for trained in (facade, cli):
        assert trained.info["samples_per_class"] == counts
        _same_forest(reference, trained)


def test_the_napari_import_reads_the_file_as_the_cli_does(tmp_path):
    pytest.importorskip("qtpy")
    try:
        from scopeml.napari.pixel_widget import _as_scribbles
    except Exception as err:  # no Qt binding or display library here
        pytest.skip(f"napari widget not importable: {err}")
    for frames in (3, 6):
        _, scribbles, plain = _movie(tmp_path, frames)
        np.testing.assert_array_equal(_as_scribbles(plain, "TYX", scribbles.shape), scribbles)
        with open_training_labels(plain, {"T": frames, "Z": 1}) as labels:
            np.testing.assert_array_equal(labels.read()[0, :, 0, 0], scribbles)


def test_pages_stay_planes_for_an_image_with_planes_or_one_time_point(tmp_path):
    _, scribbles, plain = _movie(tmp_path, 6)
    for image in ({"T": 1, "Z": 6}, {"T": 6, "Z": 6}):
        with open_training_labels(plain, image) as labels:
            assert (labels.sizes["T"], labels.sizes["Z"]) == (1, 6)
            np.testing.assert_array_equal(labels.read()[0, 0, 0], scribbles)


def test_labels_of_other_time_points_say_how_many_they_have(tmp_path, capsys):
    movie, _, _ = _movie(tmp_path, 5)
    three = tmp_path / "three.tif"
    scribbles = np.zeros((3, SIZE, SIZE), np.uint8)
    scribbles[0, :4] = 1
    tifffile.imwrite(three, scribbles)  # one RGB page: not "1 time point"
    args = ["pixel", "train", str(movie), str(three), "-o", str(tmp_path / "m.czseg")]
    assert main(args) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {three}: labels have 3 time points; the image has 5: "
    )


def test_colour_labels_are_one_line_saying_what_was_found(tmp_path, capsys):
    movie, _, _ = _movie(tmp_path, 3)
    painted = tmp_path / "painted.tif"
    tifffile.imwrite(painted, np.zeros((SIZE, SIZE, 3), np.uint8), photometric="rgb")
    with pytest.raises(InvalidLabelsError) as caught:
        open_training_labels(painted, {"T": 3, "Z": 1})
    assert str(caught.value) == (
        f"{painted}: labels have 3 channels (C=3 Y={SIZE} X={SIZE}); labels must be one "
        "channel of class values (0 = unlabelled, 1..K = class), e.g. a grey 8-bit TIFF; the "
        "image has 3 time points: a T×Y×X label TIFF of 3 pages, or one naming its axes "
        "(OME-TIFF)"
    )
    args = ["pixel", "train", str(movie), str(painted), "-o", str(tmp_path / "m.czseg")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {painted}: labels have 3 channels") and len(err.splitlines()) == 1
    )


def test_time_points_read_from_the_file_pair_frame_by_frame(tmp_path):
    """The labels read as time points pair frame by frame: the forest equals one trained on
    the frames given as separate images."""
    movie, scribbles, plain = _movie(tmp_path, 3)
    sm = pytest.importorskip("scopeml.api")
    with sm.open_image(movie) as image:
        frames = image.read()[0, :, :, 0]  # T×C×Y×X
    apart = train_classifier(
        [frames[0], frames[2]],
        [scribbles[0], scribbles[2]],
        features=FEATURES,
        n_estimators=6,
        n_jobs=1,
    )
    _same_forest(apart, sm.train_pixel_classifier(movie, plain, features=FEATURES, n_estimators=6))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
def test_the_facade_closes_the_files_it_opens(tmp_path) -> None:
    """``sm.train_pixel_classifier`` given paths closes both files, also when it refuses them."""
    import scopeml as sm

    movie, _, plain = _movie(tmp_path, 3)

    def held() -> set[str]:
        names = (os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd"))
        return {name for name in names if name in (str(movie), str(plain))}

    sm.train_pixel_classifier(movie, plain, features=FEATURES, n_estimators=3)
    assert held() == set()
    tifffile.imwrite(plain, np.zeros((2, SIZE, SIZE), np.uint8))  # 2 time points for 3
    with pytest.raises(InvalidLabelsError):
        sm.train_pixel_classifier(movie, plain, features=FEATURES, n_estimators=3)
    assert held() == set()
