"""``scopeml model run|inspect|list``: every kind opened by the registry; run equals the engine."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from scopeml.api import segment
from scopeml.cli import main
from scopeml.io import write_ome_tiff
from scopeml.model import convert_onnx
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from scopeml.objects import ObjectClassifier
from scopeml.pixel import train_classifier


def test_model_run_pads_as_the_engine_does(tmp_path):
    model = convert_onnx(
        tiny_unet_onnx(n_classes=3, depth=2, seed=2),
        tmp_path / "m.czann",
        classes=["a", "b", "c"],
        min_overlap=unet_receptive_halo(2),
    )
    pixels = np.random.default_rng(0).uniform(0, 500, (61, 71)).astype(np.float32)
    np.save(tmp_path / "image.npy", pixels)
    out = tmp_path / "p.npy"
    assert main(["model", "run", str(model), str(tmp_path / "image.npy"), "-o", str(out)]) == 0
    write_ome_tiff(tmp_path / "image.ome.tif", pixels[None], axes="CYX", tile=(16, 16))
    seg = segment(tmp_path / "image.ome.tif", model, tmp_path / "s.ome.zarr",
                  outputs=["probabilities"], tile_size=24)  # fmt: skip
    engine = seg.probabilities.read()[0, 0, :, 0]
    np.testing.assert_allclose(np.load(out), engine, rtol=1e-5, atol=1e-6)  # far edges too


def test_inspect_and_list_cover_every_kind(tmp_path, capsys):
    image = np.random.default_rng(1).uniform(0, 1, (1, 24, 24)).astype(np.float32)
    labels = np.zeros((24, 24), np.uint8)
    labels[:3], labels[-3:] = 1, 2
    pixel = train_classifier(image, labels, features="gaussian_smoothing:1", n_estimators=2)
    pixel_path = pixel.save(tmp_path / "p.czseg")
    table = pd.DataFrame({"area": [1, 2, 8, 9], "kind": list("aabb")})
    object_path = ObjectClassifier.train(table, "kind", n_estimators=2).save(tmp_path / "o.zip")

    assert main(["model", "inspect", str(pixel_path), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["format"] == "pixel-classifier"
    assert described["engine"]["classes"] == ["class 1", "class 2"]
    assert main(["model", "inspect", str(object_path)]) == 0
    text = capsys.readouterr().out
    assert "object-classifier" in text and "features: ['area']" in text
    assert main(["model", "inspect", "nuclei"]) == 0
    assert "nucleus" in capsys.readouterr().out

    assert main(["model", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "nuclei" in listed["builtin"] and "pixel-classifier" in listed["formats"]

    np.save(tmp_path / "image.npy", image[0])
    out = tmp_path / "o.npy"
    assert main(["model", "run", str(pixel_path), str(tmp_path / "image.npy"), "-o", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), pixel.predict(image[None])[0])
    assert (
        main(["model", "run", str(object_path), str(tmp_path / "image.npy"), "-o", str(out)]) == 2
    )
    assert "objects classify" in capsys.readouterr().err

    junk = tmp_path / "junk.czann"
    junk.write_bytes(b"no model here")
    assert main(["model", "inspect", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "junk.czann" in err and "known kinds: bioimageio, czann, czmodel" in err


def test_model_run_normalises_as_the_model_records(tmp_path):
    """``model run nuclei`` gives segment's labels on an image far from the model's
    intensities (it fed the raw values to the graph, which found other nuclei)."""
    from scopeml.synthetic import realistic_nuclei

    image, _ = realistic_nuclei((128, 128), seed=3)
    dim = image.astype(np.float32) * 1e-3  # the same nuclei, a thousandth of the intensity
    np.save(tmp_path / "dim.npy", dim)
    out = tmp_path / "labels.npy"
    assert main(["model", "run", "nuclei", str(tmp_path / "dim.npy"), "-o", str(out),
                 "--labels"]) == 0  # fmt: skip
    seg = segment(dim, "nuclei", tmp_path / "s.ome.zarr")
    expected = seg.labels.read()[0, 0, 0, 0]
    assert (expected == 2).sum() > 500  # nuclei found
    np.testing.assert_array_equal(np.load(out), expected)


def test_model_run_runs_at_segments_scale_and_takes_scale(tmp_path):
    """Nuclei twice the model's size: ``model run nuclei`` runs at the scale ``segment``
    chooses (auto: 0.5), and ``--scale 1`` at 1, each equal to that run of ``segment``."""
    from scopeml.synthetic import synthetic_nuclei

    image, _ = synthetic_nuclei((192, 192), density=0.0004, radius=(16, 20), seed=5)
    np.save(tmp_path / "big.npy", image[0])
    args = ["model", "run", "nuclei", str(tmp_path / "big.npy"), "--labels", "-o"]
    assert main([*args, str(tmp_path / "auto.npy")]) == 0
    assert main([*args, str(tmp_path / "one.npy"), "--scale", "1"]) == 0
    auto = segment(image[0], "nuclei", tmp_path / "auto.ome.zarr")
    assert auto.scale == 0.5
    one = segment(image[0], "nuclei", tmp_path / "one.ome.zarr", scale=1)
    np.testing.assert_array_equal(np.load(tmp_path / "auto.npy"), auto.labels.read()[0, 0, 0, 0])
    np.testing.assert_array_equal(np.load(tmp_path / "one.npy"), one.labels.read()[0, 0, 0, 0])
    assert not np.array_equal(np.load(tmp_path / "auto.npy"), np.load(tmp_path / "one.npy"))


def test_model_run_takes_a_stack_plane_by_plane_and_channels_as_segment(tmp_path, capsys):
    """A 2-D model on a Z stack (TIFF or ``.npy``) gives ``segment``'s labels of every plane
    (it refused the stack); ``--channels`` picks the model's channel by name or index."""
    import tifffile

    from scopeml.synthetic import realistic_nuclei

    planes = np.stack([realistic_nuclei((96, 96), seed=s)[0][0] for s in (1, 2, 3)])
    tifffile.imwrite(tmp_path / "z.tif", planes, metadata={"axes": "ZYX"}, imagej=True)
    np.save(tmp_path / "z.npy", planes)
    seg = segment(tmp_path / "z.tif", "nuclei", tmp_path / "z.ome.zarr")
    expected = seg.labels.read()[0, 0, 0]  # Z×Y×X
    assert (expected == 2).sum() > 1000
    for name, told in (
        ("z.tif", []),
        ("z.npy", []),
        ("z.npy", ["--axes", "ZYX", "--channels", "0"]),
    ):
        out = tmp_path / f"{name}.labels.npy"
        assert main(["model", "run", "nuclei", str(tmp_path / name), "--labels",
                     "-o", str(out), "--overwrite", *told]) == 0  # fmt: skip
        np.testing.assert_array_equal(np.load(out), expected)  # a stack, not 3 channels
    assert main(["model", "run", "nuclei", str(tmp_path / "z.npy"), "--axes", "YX",
                 "-o", str(tmp_path / "x.npy")]) == 2  # fmt: skip
    assert "z.npy: axes 'YX' name 2 axes" in capsys.readouterr().err

    noise = np.random.default_rng(0).uniform(0, 50, planes[0].shape).astype(planes.dtype)
    two = np.stack([noise, planes[1]])  # C×Y×X, the nuclei in the second channel
    tifffile.imwrite(tmp_path / "c.ome.tif", two, metadata={"axes": "CYX",
                     "Channel": {"Name": ["GFP", "DAPI"]}})  # fmt: skip
    np.save(tmp_path / "c.npy", two)
    seg = segment(tmp_path / "c.ome.tif", "nuclei", tmp_path / "c.ome.zarr", channels=["DAPI"])
    expected = seg.labels.read()[0, 0, 0, 0]
    assert (expected == 2).sum() > 300
    for name, channel in (("c.ome.tif", "DAPI"), ("c.ome.tif", "1"), ("c.npy", "1")):
        out = tmp_path / "c.labels.npy"
        assert main(["model", "run", "nuclei", str(tmp_path / name), "--labels",
                     "--channels", channel, "-o", str(out), "--overwrite"]) == 0  # fmt: skip
        np.testing.assert_array_equal(np.load(out), expected)
    assert main(["model", "run", "nuclei", str(tmp_path / "c.ome.tif"), "-o",
                 str(tmp_path / "x.npy")]) == 2  # fmt: skip
    assert "--channels" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()


def test_model_run_refuses_a_tiff_lying_about_its_size_before_reading(tmp_path, capsys):
    """A 400-byte file claiming 10^12 pixels: one line naming it, nothing written."""
    import tifffile

    path = tmp_path / "liar.tif"
    tifffile.imwrite(path, np.full((16, 16), 3, np.uint8), metadata=None)
    with tifffile.TiffFile(path, mode="r+") as tf:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tf.pages.first.tags[tag].overwrite(10**6)
    assert main(["model", "run", "nuclei", str(path), "-o", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "liar.tif" in err
    assert not (tmp_path / "o.npy").exists()
