"""A tap after a U-Net's decoder (``nuclei:/net/up.3/…``): the network runs on blocks padded to
its step (16), so any image size works and tiled features stay equal to the whole image's;
an ONNX Runtime failure is a one-line ScopeMLError naming the network and the tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import IncompatibleModelError
from scopeml.features import parse_features
from scopeml.pixel._blocks import iter_blocks
from scopeml.synthetic import synthetic_nuclei

DECODER = "/net/up.3/up.3.3/Relu_output_0"


def test_a_decoder_tap_takes_any_size_and_tiles_exactly():
    # 600×200: neither side a multiple of 16, and 600 > block + 2·halo: five blocks along it
    image = np.random.default_rng(3).gamma(2.0, 300.0, (1, 600, 200)).astype(np.float32)
    fs = parse_features(f"nuclei:{DECODER}").fit([image])
    assert fs.step == 16 and fs.halo % 16 == 0  # the U-Net pools 4 times before the decoder
    whole = fs.compute(image)
    assert whole.shape == (8, 600, 200) and np.isfinite(whole).all()
    tiled = np.full_like(whole, np.nan)
    reads = list(iter_blocks(image.shape[1:], fs.block, fs.halo))
    assert len(reads) > 1
    for read, core in reads:
        assert all(r.start % fs.step == 0 for r in read)
        part = fs.compute(image[(slice(None), *read)])
        target = tuple(
            slice(r.start + c.start, r.start + c.stop) for r, c in zip(read, core, strict=True)
        )
        tiled[(slice(None), *target)] = part[(slice(None), *core)]
    np.testing.assert_array_equal(tiled, whole)


def test_an_onnx_runtime_failure_is_one_line_naming_network_and_tensor():
    net = parse_features(f"nuclei:{DECODER}").net
    with pytest.raises(IncompatibleModelError) as caught:
        net.run(np.zeros((1, 1, 30, 30), np.float32))  # off the network's step: Concat fails
    text = str(caught.value)
    assert len(text.splitlines()) == 1 and "\x1b" not in text
    assert "nuclei.czann" in text and DECODER in text and "30×30" in text
    assert "[ONNXRuntimeError]" not in text and "Concat" in text


def test_pixel_train_on_a_decoder_tap_of_an_image_off_the_step(tmp_path: Path, capsys):
    image, instances = synthetic_nuclei((90, 75), density=0.003, seed=1)
    labels = np.zeros(instances.shape, np.uint8)
    labels[::6, ::6] = (instances[::6, ::6] > 0) + 1
    tifffile.imwrite(tmp_path / "image.tif", image[0])
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    out = tmp_path / "m.czseg"
    code = main(
        [
            "pixel", "train", str(tmp_path / "image.tif"), str(tmp_path / "labels.tif"),
            "-o", str(out), "--features", f"nuclei:{DECODER}", "--n-estimators", "3", "-q",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    clf = sm.train_pixel_classifier(image, labels, features=f"nuclei:{DECODER}", n_estimators=3)
    assert clf.spec.tile_step == (16, 16)
    assert clf.predict_labels(image).shape == (90, 75)
