"""``export-bioimageio --sample IMAGE``: a real image's centre crop is the package's test input,
cover and sample tensors (bioimage.io's FAIR checks ask for them); a sample that does not fit
the model is one line."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import tifffile

pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")

from scopeml.cli import main


def test_a_sample_image_becomes_the_test_input_and_the_sample_tensors(tmp_path, capsys):
    from bioimageio.spec import load_description

    pixels = np.random.default_rng(0).integers(0, 3000, (300, 320), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "cells.tif", pixels)
    package = tmp_path / "nuclei.zip"
    args = ["model", "export-bioimageio", "nuclei", "-o", str(package), "--author", "A"]
    assert main([*args, "--sample", str(tmp_path / "cells.tif")]) == 0
    with zipfile.ZipFile(package) as archive:
        test_input = np.load(io.BytesIO(archive.read("test_input.npy")))
        sample = tifffile.imread(io.BytesIO(archive.read("sample_input.tif")))
        assert "sample_output.tif" in archive.namelist()
    size = test_input.shape[1]  # the model's test size: its halo on both sides, and a step
    top, left = (300 - size) // 2, (320 - size) // 2
    crop = pixels[top : top + size, left : left + size]
    np.testing.assert_array_equal(test_input[0, ..., 0], crop)
    np.testing.assert_array_equal(sample, test_input)
    description = load_description(package, perform_io_checks=True)
    assert description.validation_summary.status == "valid-format"
    warned = [w.msg for d in description.validation_summary.details for w in d.warnings]
    assert not any("sample_tensor" in message for message in warned)


def test_a_sample_too_small_or_of_other_channels_is_one_line(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "small.tif", np.ones((100, 100), np.uint16))
    tifffile.imwrite(tmp_path / "two.ome.tif", np.ones((2, 300, 300), np.uint16),
                     metadata={"axes": "CYX"})  # fmt: skip
    for name in ("small.tif", "two.ome.tif"):
        args = ["model", "export-bioimageio", "nuclei", "-o", str(tmp_path / "p.zip")]
        assert main([*args, "--sample", str(tmp_path / name)]) == 2
    small, two = capsys.readouterr().err.strip().splitlines()
    assert "small.tif" in small and "the sample is 100 px along Y; the test input needs" in small
    assert "two.ome.tif" in two and "the sample has 2 channels; the model takes 1" in two
    assert not (tmp_path / "p.zip").exists()
