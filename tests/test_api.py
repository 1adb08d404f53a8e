"""The scripting facade and the command line on files: model containers and OME images."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.api import open_model, segment
from scopeml.cli import main
from scopeml.io import open_image, write_ome_tiff
from scopeml.model import convert_onnx
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from scopeml.synthetic import synthetic_nuclei


def write_image_file(path, data, pixel_sizes=None):
    write_ome_tiff(path, data, axes="CYX", pixel_sizes=pixel_sizes, tile=(16, 16))
    return path


def write_model_file(path, n_classes):
    return convert_onnx(
        tiny_unet_onnx(n_classes=n_classes),
        path,
        classes=[f"class{i}" for i in range(n_classes)],
        min_overlap=unet_receptive_halo(2),
        model_type="MultiClassSemanticSegmentation",
    )


@pytest.fixture
def files(tmp_path):
    image, _ = synthetic_nuclei((60, 70), seed=3)
    path = write_image_file(tmp_path / "nuclei.ome.tif", image, pixel_sizes={"Y": 0.3, "X": 0.3})
    return path, write_model_file(tmp_path / "m.czann", n_classes=3)


def test_segment_files_carries_metadata_and_exports_ome_tiff(files, tmp_path):
    image, model = files
    out = segment(
        image,
        model,
        tmp_path / "out.ome.zarr",
        outputs=["labels", "probabilities"],
        tile_size=32,
        ome_tiff=True,
    )
    labels = open_image(out / "labels")
    probabilities = open_image(out / "probabilities")
    assert labels.shape == (1, 1, 1, 1, 60, 70) and labels.dtype == np.uint8
    assert probabilities.channel_names == ("class0", "class1", "class2")
    assert probabilities.pixel_sizes["X"] == pytest.approx(0.3)
    # equals the model run on the whole image
    pixels = open_image(image).read()[0, 0, :, 0].astype(np.float32)
    whole = open_model(model).predict(np.pad(pixels, ((0, 0), (0, 0), (0, 2)))[None])[0]
    np.testing.assert_array_equal(labels.read()[0, 0, 0, 0], whole[:, :, :70].argmax(axis=0) + 1)
    tiff = tmp_path / "out.labels.ome.tiff"
    np.testing.assert_array_equal(tifffile.imread(tiff), labels.read()[0, 0, 0, 0])


def test_cli_segment_and_its_errors(files, tmp_path, capsys):
    image, model = files
    out = tmp_path / "cli.ome.zarr"
    argv = [
        "segment",
        str(image),
        "--model",
        str(model),
        "-o",
        str(out),
        "--quiet",
        "--outputs",
        "labels,confidence",
        "--tile-size",
        "32",
    ]
    assert main(argv) == 0
    assert zarr.open_array(str(out / "confidence" / "0"), mode="r").shape == (60, 70)
    assert main(argv) == 2  # exists
    assert "overwrite" in capsys.readouterr().err
    two_channels = write_image_file(tmp_path / "two.ome.tif", np.zeros((2, 20, 20), np.uint16))
    assert main(["segment", str(two_channels), "-m", str(model), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "image has 2 channels" in err and "expects 1" in err and "two.ome.tif" in err
    assert main([*argv[:-2], "--tile-size", "a,b", "--overwrite"]) == 2


def test_channels_option_feeds_the_model_the_named_channels(tmp_path):
    image, _ = synthetic_nuclei((48, 40), channels=2, seed=5)
    two = tmp_path / "two.ome.tif"
    write_ome_tiff(two, image, axes="CYX", channel_names=["DAPI", "Ring"], tile=(16, 16))
    one = write_image_file(tmp_path / "one.ome.tif", image[1:2])
    model = write_model_file(tmp_path / "m.czann", n_classes=2)
    options = dict(outputs=["probabilities"], tile_size=16)
    picked = segment(two, model, tmp_path / "picked.ome.zarr", channels=["Ring"], **options)
    alone = segment(one, model, tmp_path / "alone.ome.zarr", **options)
    np.testing.assert_array_equal(
        open_image(picked / "probabilities").read(), open_image(alone / "probabilities").read()
    )
    with pytest.raises(ValueError, match="no channel 'GFP'; the image has DAPI, Ring"):
        segment(two, model, tmp_path / "bad.ome.zarr", channels=["GFP"], **options)


def test_open_model_routes_pixel_classifiers_by_content(tmp_path):
    from scopeml.pixel import PixelClassifier, train_classifier

    image, truth = synthetic_nuclei((64, 64), seed=2)
    sparse = np.zeros_like(truth)
    sparse[::7, ::7] = np.where(truth[::7, ::7] > 0, 2, 1)
    classifier = train_classifier(
        image, sparse, features="gaussian_smoothing:1,3.5", n_estimators=8, seed=0
    )
    path = tmp_path / "pixels.czseg"
    classifier.save(path)
    assert isinstance(open_model(path), PixelClassifier)

    image_path = write_image_file(tmp_path / "n.ome.tif", image)
    out = segment(image_path, path, tmp_path / "out.ome.zarr", tile_size=32)
    labels = open_image(out / "labels").read()[0, 0, 0, 0]
    whole = classifier.predict(image[None].astype(np.float32))[0]
    np.testing.assert_array_equal(labels, whole.argmax(axis=0) + 1)  # = the training labels
    assert ((labels == 2) == (truth > 0)).mean() > 0.9
