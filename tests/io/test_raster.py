"""PNG/JPEG specifics: alpha, palettes, truncated files and decompression bombs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from scopeml.errors import InvalidImageError
from scopeml.io import open_image


def test_alpha_is_dropped_and_palette_indices_are_kept(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 255, (10, 12, 4), dtype=np.uint8)
    PILImage.fromarray(rgba).save(tmp_path / "rgba.png")
    with open_image(tmp_path / "rgba.png") as image:
        assert image.shape == (1, 1, 3, 1, 10, 12)
        np.testing.assert_array_equal(image.read()[0, 0, :, 0], rgba[..., :3].transpose(2, 0, 1))
    labels = np.random.default_rng(1).integers(0, 5, (10, 12), dtype=np.uint8)
    palette = PILImage.fromarray(labels)  # L; putpalette makes it P
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    palette.save(tmp_path / "labels.png")
    with open_image(tmp_path / "labels.png") as image:
        np.testing.assert_array_equal(image.read()[0, 0, 0, 0], labels)


def test_a_truncated_png_is_an_invalid_image_naming_the_file(tmp_path):
    data = np.random.default_rng(2).integers(0, 255, (64, 64), dtype=np.uint8)
    PILImage.fromarray(data).save(tmp_path / "whole.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes((tmp_path / "whole.png").read_bytes()[:300])
    with pytest.raises(InvalidImageError, match=r"cut\.png: not a readable PNG") as info:
        open_image(cut)
    assert info.value.path == str(cut)


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    PILImage.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels is 10× the limit
    with pytest.raises(InvalidImageError, match=r"big\.png"):
        open_image(tmp_path / "big.png")
