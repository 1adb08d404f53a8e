"""A model's training record meets the image: channels taken by name, the intensity range
checked, on a pixel classifier really trained (through the command line, as a user does)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import IncompatibleModelError, InvalidRequestError
from scopeml.io.ometiff import write_ome_tiff
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """``(96×112 uint16 nuclei image, scribbles 1 = background, 2 = nucleus)``."""
    image, instances = synthetic_nuclei((96, 112), density=0.002, seed=4)
    truth = (instances > 0).astype(np.uint8) + 1
    scribbles = np.zeros_like(truth)
    pick = np.random.default_rng(1).random(truth.shape) < 0.05
    scribbles[pick] = truth[pick]
    return image[0], scribbles


@pytest.fixture(scope="module")
def files(scene, tmp_path_factory) -> dict[str, Path]:
    """A 3-channel image with DAPI in channel 1, one with other names, the scribbles, and a
    classifier trained on its DAPI channel by ``scopeml pixel train --channels DAPI``."""
    folder = tmp_path_factory.mktemp("model_inputs")
    image, scribbles = scene
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 3000, image.shape, dtype=np.uint16) for _ in range(2)]
    stack = np.stack([noise[0], image, noise[1]])
    paths = {
        "three": folder / "three.ome.tif",
        "renamed": folder / "renamed.ome.tif",
        "scribbles": folder / "scribbles.tif",
        "model": folder / "dapi.czseg",
    }
    write_ome_tiff(paths["three"], stack, axes="CYX", channel_names=["GFP", "DAPI", "BF"])
    write_ome_tiff(paths["renamed"], stack, axes="CYX", channel_names=["GFP", "Hoechst", "BF"])
    tifffile.imwrite(paths["scribbles"], scribbles)
    args = [str(paths["three"]), str(paths["scribbles"]), "--channels", "DAPI"]
    code = main(["pixel", "train", *args, "--n-estimators", "10", "-o", str(paths["model"])])
    assert code == 0
    return paths


def _channels_recorded(store: Path) -> list:
    return zarr.open_group(str(store), mode="r").attrs["scopeml"]["options"]["channels"]


def test_the_trained_channel_is_taken_by_name(files, tmp_path, capsys) -> None:
    capsys.readouterr()
    auto, chosen = tmp_path / "auto.ome.zarr", tmp_path / "chosen.ome.zarr"
    assert main(["segment", str(files["three"]), "-m", str(files["model"]), "-o", str(auto)]) == 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "trained on channel DAPI" in line]
    assert len(said) == 1 and "the image's DAPI (of its GFP, DAPI, BF)" in said[0], err
    args = ["-m", str(files["model"]), "-o", str(chosen), "--channels", "DAPI", "-q"]
    assert main(["segment", str(files["three"]), *args]) == 0
    assert "trained on channel" not in capsys.readouterr().err  # chosen: nothing to say
    labels = sm.Segmentation(auto).labels.read()
    np.testing.assert_array_equal(labels, sm.Segmentation(chosen).labels.read())
    assert set(np.unique(labels)) == {1, 2}  # both classes found on the DAPI channel
    assert _channels_recorded(auto) == ["DAPI"] == _channels_recorded(chosen)


def test_an_image_without_the_trained_channel_names_them_and_the_fix(files, tmp_path, capsys):
    out = tmp_path / "x.ome.zarr"
    capsys.readouterr()
    assert main(["segment", str(files["renamed"]), "-m", str(files["model"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "renamed.ome.tif" in err
    assert "image has 3 channels; model 'pixel classifier' expects 1, trained on DAPI" in err
    assert "choose it with --channels (channels= in Python) from GFP, Hoechst, BF" in err
    assert not out.exists()
    # given the channel, it runs
    args = ["-m", str(files["model"]), "-o", str(out), "--channels", "Hoechst", "-q"]
    assert main(["segment", str(files["renamed"]), *args]) == 0


def test_a_model_without_channel_names_lists_the_images(files, tmp_path) -> None:
    with pytest.raises(IncompatibleModelError) as caught:
        sm.segment(files["three"], "nuclei", tmp_path / "n.ome.zarr")
    message = caught.value.problem
    assert message.startswith("image has 3 channels; model ")
    assert message.endswith(
        "expects 1: choose it with --channels (channels= in Python) from GFP, DAPI, BF"
    )
    assert "trained on" not in message


def test_an_image_far_from_the_training_range_is_warned_about(scene, tmp_path) -> None:
    image, scribbles = scene
    clf = sm.train_pixel_classifier(image[None], scribbles, n_estimators=10, workers=1)
    recorded = clf.info["intensity_range"]
    assert recorded["percentiles"] == [0.1, 99.9]
    np.testing.assert_allclose(recorded["high"], [np.percentile(image, 99.9)], rtol=0.05)
    model = clf.save(tmp_path / "m16.czseg")
    eight = (image // 256).astype(np.uint8)
    with pytest.warns(UserWarning, match="trained on intensities") as caught:
        sm.segment(eight[None], model, tmp_path / "eight.ome.zarr")
    said = [str(w.message) for w in caught if "intensities" in str(w.message)]
    assert len(said) == 1  # once per run
    low, high = (f"{v:.0f}" for v in (recorded["low"][0], recorded["high"][0]))
    assert f"model 'pixel classifier' was trained on intensities {low}..{high}" in said[0]
    assert f"this image has 0..{np.percentile(eight, 99.9):.3g}" in said[0]
    # what the warning is about: every pixel of the 8-bit image is classed background
    assert set(np.unique(sm.Segmentation(tmp_path / "eight.ome.zarr").labels.read())) == {1}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the training image itself: no warning
        sm.segment(image[None], model, tmp_path / "same.ome.zarr")
    # a normalised run fed the forest 0..1 for raw values: it found nothing; now refused
    with pytest.raises(InvalidRequestError, match="works on the raw intensities"):
        sm.segment(eight[None], model, tmp_path / "n.ome.zarr", normalize="percentile:1,99")


def test_a_classifier_saved_without_a_range_still_loads_and_runs(scene, tmp_path) -> None:
    import warnings

    image, scribbles = scene
    clf = sm.train_pixel_classifier(image[None], scribbles, n_estimators=5, workers=1)
    del clf.info["intensity_range"]  # as every container written before the range was
    model = clf.save(tmp_path / "old.czseg")
    assert "intensity_range" not in json.loads(_member(model, "model.json"))["Training"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sm.segment((image // 256).astype(np.uint8)[None], model, tmp_path / "o.ome.zarr")


def _member(path: Path, name: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def test_a_model_of_a_file_naming_no_channels_does_not_pick_c0_of_another(scene, tmp_path, capsys):
    """Trained on a one-channel file (its channel read as C0), a classifier ran on the first
    channel of a three-channel file that names none, and on the first of an RGB array read as
    960 channels (Y×X×3 taken for C×Y×X), with a warning only: both are refused now."""
    image, scribbles = scene
    fast = {"features": "gaussian_smoothing:1", "n_estimators": 5}
    clf = sm.train_pixel_classifier(image, scribbles, **fast)
    assert clf.info["channels"] == ["C0"]
    rgb = np.stack([image] * 3, axis=-1)  # Y×X×3, no axes=: read as C×Y×X
    refused = r"expects 1, trained on C0: .* an RGB picture axes='YXC'"
    with pytest.raises(IncompatibleModelError, match=refused), pytest.warns(UserWarning):
        sm.predict_region(rgb, clf)
    model = tmp_path / "c.czseg"
    clf.save(model)
    three = tmp_path / "three.tif"
    tifffile.imwrite(three, np.stack([image] * 3), imagej=True, metadata={"axes": "CYX"})
    args = ["segment", str(three), "-m", str(model), "-o", str(tmp_path / "o.ome.zarr"), "-q"]
    assert main(args) == 2
    assert "choose it with --channels" in capsys.readouterr().err
    assert main([*args, "--channels", "1"]) == 0  # chosen: runs


def test_c0_of_a_file_naming_no_channels_is_taken_by_name_from_one_laid_out_alike(
    scene, tmp_path, capsys
):
    """Refused since unnamed C0 of one file is not another's: trained on channel 0 of an
    unnamed two-channel file, a classifier was refused on that very file (the review)."""
    image, scribbles = scene
    two = tmp_path / "two.tif"
    tifffile.imwrite(two, np.stack([image, image[::-1]]), imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "s.tif", scribbles)
    model = tmp_path / "c0.czseg"
    fast = ["--features", "gaussian_smoothing:1", "--n-estimators", "5", "-q"]
    args = ["pixel", "train", str(two), str(tmp_path / "s.tif"), "-o", str(model), *fast]
    assert main([*args, "--channels", "0"]) == 0
    out = tmp_path / "o.ome.zarr"
    assert main(["segment", str(two), "-m", str(model), "-o", str(out), "-q"]) == 0
    assert "trained on channel C0: using the image's C0 (of its C0, C1)" in capsys.readouterr().err
    three = tmp_path / "three.tif"  # laid out otherwise: refused, as before
    tifffile.imwrite(three, np.stack([image] * 3), imagej=True, metadata={"axes": "CYX"})
    assert main(["segment", str(three), "-m", str(model), "-o", str(tmp_path / "t"), "-q"]) == 2
