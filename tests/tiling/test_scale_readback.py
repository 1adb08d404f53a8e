"""The scale a store ran at reads back (nu5 #4): ``Segmentation.scale`` and ``.auto_scale``
from its record, and ``info`` says what auto chose it from (``scale 0.5 (auto: objects ~43
px, model 20 px)``)."""

from __future__ import annotations

import numpy as np
from skimage.transform import rescale

from scopeml.api import segment
from scopeml.cli import main
from scopeml.io import Image
from scopeml.synthetic import realistic_nuclei
from scopeml.tiling.size import write_model_diameter
from tests.tiling.engine_doubles import write_model_file


def test_scale_and_auto_read_back(tmp_path, capsys):
    plain = write_model_file(tmp_path / "plain.czann", depth=2)
    model = write_model_diameter(plain, 40.0, (30.0, 50.0), output=tmp_path / "d.czann")
    pixels, _ = realistic_nuclei((128, 128), seed=3)
    plane = rescale(pixels.reshape(128, 128), 1.5, order=1, preserve_range=True)
    image = Image(plane.astype(np.float32).reshape(1, 1, 1, 1, *plane.shape))
    auto = segment(image, model, tmp_path / "a.ome.zarr", tile_size=32, scale="auto")
    chosen = auto.auto_scale
    assert chosen is not None and chosen.scale != 1 and chosen.diameter is not None
    assert auto.scale == chosen.scale  # the factor the engine ran at is the one auto chose
    assert main(["info", str(auto)]) == 0
    said = capsys.readouterr().out
    assert f"scale {chosen.scale:g} (auto: objects ~{chosen.diameter:.0f} px, model 40 px)" in said
    fixed = segment(image, model, tmp_path / "f.ome.zarr", tile_size=32, scale=0.5)
    assert fixed.scale == 0.5 and fixed.auto_scale is None
    assert main(["info", str(fixed)]) == 0
    said = capsys.readouterr().out
    assert "scale 0.5\n" in said and "auto:" not in said
    plain_run = segment(image, plain, tmp_path / "p.ome.zarr", tile_size=32)
    assert plain_run.scale == 1.0 and plain_run.auto_scale is None
