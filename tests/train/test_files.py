from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from scopeml.errors import InvalidImageError, InvalidLabelsError
from scopeml.train.files import read_pairs


def test_reads_files_and_folders(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, (20, 24), dtype=np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / "a.png")
    PILImage.fromarray(labels).save(tmp_path / "a_labels.png")
    images, label_images = read_pairs(tmp_path / "a.png", tmp_path / "a_labels.png")
    assert images[0].shape == (3, 20, 24) and np.array_equal(images[0][1], rgb[..., 1])
    assert np.array_equal(label_images[0], labels)

    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    tifffile.imwrite(tmp_path / "img" / "x.tif", rng.random((2, 20, 24), dtype=np.float32))
    np.save(tmp_path / "img" / "y.npy", rng.random((20, 24), dtype=np.float32))
    np.save(tmp_path / "lab" / "x.npy", labels)
    tifffile.imwrite(tmp_path / "lab" / "y.tiff", labels)
    images, label_images = read_pairs(tmp_path / "img", tmp_path / "lab")
    assert [i.shape for i in images] == [(2, 20, 24), (1, 20, 24)]


def test_bad_pairs(tmp_path) -> None:
    np.save(tmp_path / "i.npy", np.zeros((20, 24), np.float32))
    np.save(tmp_path / "l.npy", np.zeros((20, 20), np.uint8))
    with pytest.raises(InvalidLabelsError, match=r"l\.npy: labels have shape"):
        read_pairs(tmp_path / "i.npy", tmp_path / "l.npy")
    np.save(tmp_path / "f.npy", np.zeros((20, 24), np.float32))
    with pytest.raises(InvalidLabelsError, match=r"integers"):
        read_pairs(tmp_path / "i.npy", tmp_path / "f.npy")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InvalidImageError, match=r"bad\.npy: cannot read"):
        read_pairs(tmp_path / "bad.npy", tmp_path / "l.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(InvalidImageError, match=r"obj\.npy"):  # no pickle
        read_pairs(tmp_path / "obj.npy", tmp_path / "l.npy")
    with pytest.raises(InvalidImageError, match=r"unknown format '\.jpg'"):
        read_pairs(tmp_path / "x.jpg", tmp_path / "l.npy")
