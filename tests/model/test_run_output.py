"""``scopeml model run``: a TIFF result carries its axes and class names, so scopeml reads it
back as written; an image of the wrong channel count is refused before the auto scale runs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.io import open_image
from scopeml.model import convert_onnx
from scopeml.model.testing import tiny_unet_onnx


def _run(czann, image, out, *extra) -> list[str]:
    return ["model", "run", str(czann), str(image), "-o", str(out), *extra]


@pytest.mark.parametrize(
    ("axes", "shape", "extra", "sizes"),
    [
        ("TYX", (3, 16, 24), [], {"T": 3, "C": 2, "Z": 1}),  # probabilities T×K×Y×X
        ("TYX", (3, 16, 24), ["--labels"], {"T": 3, "C": 1, "Z": 1}),  # labels T×Y×X
        ("ZYX", (4, 16, 24), [], {"T": 1, "C": 2, "Z": 4}),  # probabilities K×Z×Y×X
    ],
)
def test_a_tiff_result_is_read_back_with_its_axes_and_class_names(
    czann, tmp_path, capsys, axes, shape, extra, sizes
):
    """Written bare, T×K×Y×X read back as T×Z (K as planes) and T×Y×X as RGB."""
    pixels = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    image = tmp_path / "small.tif"
    tifffile.imwrite(image, pixels, imagej=True, metadata={"axes": axes})
    assert main(_run(czann, image, tmp_path / "out.npy", *extra)) == 0
    assert main(_run(czann, image, tmp_path / "out.tif", *extra)) == 0, capsys.readouterr().err
    written = open_image(tmp_path / "out.tif")
    assert {axis: written.sizes[axis] for axis in "TCZ"} == sizes
    assert (written.sizes["Y"], written.sizes["X"]) == shape[1:]
    if "--labels" not in extra:
        assert written.channel_names == ("c0", "c1")
    expected = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(np.squeeze(written.read()), expected)


def test_an_image_of_other_channels_is_refused_before_the_auto_scale_warns(tmp_path, capsys):
    """A 3-channel image and a 1-channel model of scale auto: the scale warning ("found no
    objects") came first, then the channel error."""
    model = convert_onnx(
        tiny_unet_onnx(), tmp_path / "auto.czann", classes=["bg", "fg"], min_overlap=8,
        scopeml_keys={"ScopeMLObjectDiameter": 12.0, "ScopeMLDefaultScale": "auto"},
    )  # fmt: skip
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    assert main(_run(model, rgb, tmp_path / "out.tif")) == 2
    err = capsys.readouterr().err  # the command line prints each warning there
    assert err.startswith(f"error: {rgb}: image has 3 channels; model") and "--channels" in err
    assert err.count("\n") == 1 and not (tmp_path / "out.tif").exists(), err
    assert main(_run(model, rgb, tmp_path / "out.tif", "--channels", "0")) == 0
    assert "scale auto found no objects" in capsys.readouterr().err  # the auto scale ran then


def test_an_existing_output_is_kept_unless_overwrite(czann, tmp_path, capsys):
    """It was replaced without a word, against every other command's rule."""
    image = tmp_path / "small.tif"
    tifffile.imwrite(image, np.zeros((16, 24), np.uint8))
    precious = tmp_path / "precious.tif"
    precious.write_bytes(b"mine")
    assert main(_run(czann, image, precious)) == 2
    assert "output exists; pass --overwrite" in capsys.readouterr().err
    assert precious.read_bytes() == b"mine"
    assert main(_run(czann, image, precious, "--overwrite")) == 0
    assert open_image(precious).sizes["Y"] == 16
