"""What ``train unet`` makes of its labels and pixels before training: instance masks, images
given as labels, scribbles without ``--sparse``, one class only, NaN pixels — each said in one
line that names the label (or image) file."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scopeml.cli import main
from scopeml.errors import InvalidLabelsError
from scopeml.model import load_model
from scopeml.train.labels import check_training_labels
from scopeml.train.loop import TrainConfig, train_unet

TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--depth", "1", "--width", "2",
        "--patch-size", "16", "--batch-size", "2", "-q"]  # fmt: skip
INSTANCE_HINT = "an instance mask, or the image given as the labels (the image comes first)?"


def _run(tmp_path, image, labels, *extra: str) -> int:
    """``train unet`` on arrays saved as ``image.npy`` and ``labels.npy``, writing m.czann."""
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "labels.npy", labels)
    args = [str(tmp_path / "image.npy"), str(tmp_path / "labels.npy"),
            "-o", str(tmp_path / "m.czann"), "--overwrite", *TINY, *extra]  # fmt: skip
    return main(["train", "unet", *args])


def _one_error_line(capsys, name: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {name}: "), err
    return err


def test_nan_pixels_are_left_out_of_the_loss_with_one_warning(nuclei_pair, tmp_path, capsys):
    image, labels = nuclei_pair
    spoilt = image[0].copy()
    spoilt[5:8, 5:9] = np.nan  # 12 pixels
    spoilt[20, 20] = np.inf
    assert _run(tmp_path, spoilt, labels, "--checkpoint", str(tmp_path / "c.pt")) == 0
    err = capsys.readouterr().err
    assert (
        f"warning: {tmp_path / 'image.npy'}: 13 pixels are NaN or infinite: they are left " in err
    )
    assert err.count("warning:") == 1
    from scopeml.train.checkpoint import load_checkpoint

    record = load_checkpoint(tmp_path / "c.pt")["history"][-1]
    assert np.isfinite(record["loss"]) and np.isfinite(record["val_loss"])
    out = load_model(tmp_path / "m.czann").predict(image[None])
    assert np.isfinite(out).all()


def test_nan_pixels_do_not_change_the_other_pixels_statistics(nuclei_pair):
    """The mean/std baked into the graph come from the finite pixels only (as the engine's
    statistics pass leaves NaN out); with ``normalize`` the NaN pixels are 0 after it."""
    image, labels = nuclei_pair
    spoilt = image.copy()
    spoilt[0, :4, :4] = np.nan
    config = TrainConfig(depth=1, width=2, patch_size=16, batch_size=2, epochs=1,
                         steps_per_epoch=1, val_fraction=0)  # fmt: skip
    with pytest.warns(UserWarning, match=r"image 0: 16 pixels are NaN"):
        result = train_unet([spoilt], [labels], config)
    finite = spoilt[np.isfinite(spoilt)]
    assert float(result.normalize.mean.flatten()[0]) == pytest.approx(finite.mean(), rel=1e-5)
    assert np.isfinite(result.history[0]["loss"])
    percentile = TrainConfig(**{**config.to_dict(), "normalize": "percentile:1,99"})
    with pytest.warns(UserWarning, match="NaN or infinite"):
        assert np.isfinite(train_unet([spoilt], [labels], percentile).history[0]["loss"])


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # an instance mask of 40 objects: one class per object
        (np.arange(64 * 64).reshape(64, 64) // 103, INSTANCE_HINT),
        # a 12-bit intensity image given as the labels
        (np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16), INSTANCE_HINT),
        # a binary mask of 0 and 255
        (np.tri(64, dtype=np.uint8) * 255, "labels use only the values 0 and 255 (a binary mask?)"),
        (np.tri(64, dtype=np.int16) - 1, "labels contain -1; values must be ≥ 0"),
        (np.zeros((64, 64), np.uint8), "only one class (0) in the labels"),
        (np.stack([np.tri(64, dtype=np.uint8)] * 3, -1), "labels have 3 channels"),
    ],
    ids=["instances", "intensities", "binary-mask", "negative", "all-zero", "rgb"],
)
def test_labels_that_are_not_classes_are_refused_naming_the_label_file(
    nuclei_pair, tmp_path, capsys, labels, expected
):
    assert _run(tmp_path, nuclei_pair[0][0], labels) == 2
    err = _one_error_line(capsys, str(tmp_path / "labels.npy"))
    assert expected in err
    assert not (tmp_path / "m.czann").exists()


def test_swapped_folders_name_the_label_file(nuclei_pair, tmp_path, capsys):
    """The label folder given first: the images are read as labels and refused, naming one."""
    image, labels = nuclei_pair
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    for k in range(2):
        intensity = (image[0] * 4000).astype(np.uint16)
        np.save(tmp_path / "images" / f"p{k}.npy", np.roll(intensity, 9 * k, 1))
        np.save(tmp_path / "labels" / f"p{k}.npy", np.roll(labels, 9 * k, 1).astype(np.uint8))
    args = [str(tmp_path / "labels"), str(tmp_path / "images"), "-o", str(tmp_path / "m.czann"),
            *TINY]  # fmt: skip
    assert main(["train", "unet", *args]) == 2
    err = _one_error_line(capsys, str(tmp_path / "images" / "p0.npy"))
    assert INSTANCE_HINT in err


def test_named_classes_allow_more_values_but_labels_must_fit_them() -> None:
    many = np.arange(40).reshape(5, 8)
    names = [f"c{k}" for k in range(40)]
    assert len(check_training_labels([many], names, sparse=False)) == 40
    with pytest.raises(InvalidLabelsError, match=rf"a\.npy: .*{re.escape(INSTANCE_HINT)}"):
        check_training_labels([many], None, sparse=False, names=["a.npy"])
    with pytest.raises(InvalidLabelsError, match=r"a\.npy: labels range 0\.\.39; 39 classes"):
        check_training_labels([many], names[:-1], sparse=False, names=["a.npy"])


def test_scribbles_without_sparse_are_warned_about(nuclei_pair, tmp_path, capsys):
    image, labels = nuclei_pair
    scribbles = np.zeros_like(labels)
    scribbles[10, 10:13] = 1
    scribbles[40, 40] = 2
    assert _run(tmp_path, image[0], scribbles) == 0
    err = capsys.readouterr().err
    assert (f"warning: {tmp_path / 'labels.npy'}: 99.90 % of the labels are 0: scribbles "
            "(0 = unlabelled, k = class k-1)? train with --sparse") in err  # fmt: skip
    # named as two classes, the scribbles' values (0..2) say --sparse is the fix
    assert _run(tmp_path, image[0], scribbles, "--classes", "bg,fg") == 2
    err = _one_error_line(capsys, str(tmp_path / "labels.npy"))
    assert "labels range 0..2; 2 classes allow 0..1" in err and "train with --sparse" in err
    assert _run(tmp_path, image[0], scribbles, "--sparse") == 0
    assert "warning" not in capsys.readouterr().err


def test_a_dense_mask_of_a_few_spots_is_not_taken_for_scribbles(nuclei_pair):
    """Five spots drawn whole in 512² are 99.4 % zeros too, but of two values only: scribbles
    mark their background as well (0, 1 and 2), so only those are warned about."""
    import warnings

    spots = np.zeros((512, 512), np.uint8)
    for k in range(5):
        spots[50 + 80 * k : 56 + 80 * k, 100:130] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_training_labels([spots], None, sparse=False) == ("background", "class 1")


def test_an_image_without_scribbles_is_named_not_its_folder(nuclei_pair, tmp_path, capsys):
    image, labels = nuclei_pair
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    np.save(tmp_path / "images" / "a.npy", image[0])
    np.save(tmp_path / "images" / "b.npy", image[0])
    np.save(tmp_path / "labels" / "a.npy", labels + 1)
    np.save(tmp_path / "labels" / "b.npy", np.zeros_like(labels))
    args = [str(tmp_path / "images"), str(tmp_path / "labels"), "-o", str(tmp_path / "m.czann"),
            "--sparse", *TINY]  # fmt: skip
    assert main(["train", "unet", *args]) == 2
    err = _one_error_line(capsys, str(tmp_path / "labels" / "b.npy"))
    assert "no labelled pixels" in err
