"""``train_unet`` takes files and ``Image`` objects as the pixel classifier does (the same
reader), and says what is wrong with images given in the wrong form as an image error."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.errors import InvalidImageError, InvalidLabelsError
from scopeml.train.loop import TrainConfig, train_unet

ONE_EPOCH = TrainConfig(depth=1, width=4, patch_size=32, batch_size=4, epochs=1,
                        steps_per_epoch=3, lr=1e-2, val_fraction=0.0)  # fmt: skip


def test_files_and_images_train_as_the_arrays_they_hold(nuclei_pair, tmp_path):
    image, labels = nuclei_pair
    tifffile.imwrite(tmp_path / "a.tif", image[0])
    tifffile.imwrite(tmp_path / "a_labels.tif", labels.astype(np.uint8))
    arrays = train_unet([image], [labels], ONE_EPOCH)
    files = train_unet([tmp_path / "a.tif"], [str(tmp_path / "a_labels.tif")], ONE_EPOCH)
    with sm.open_image(tmp_path / "a.tif") as opened:
        images = train_unet([opened], [tmp_path / "a_labels.tif"], ONE_EPOCH)
    mixed = train_unet([image[0]], [tmp_path / "a_labels.tif"], ONE_EPOCH)
    assert arrays.history and files.history == arrays.history
    assert images.history == arrays.history and mixed.history == arrays.history
    assert files.validation == "none (val_fraction 0)"
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((64, 64), np.uint8))
    with pytest.raises(InvalidLabelsError, match=r"empty.tif: only one class"):
        train_unet([tmp_path / "a.tif"], [tmp_path / "empty.tif"], ONE_EPOCH)


def test_a_stack_file_for_a_2d_unet_is_refused_naming_it(nuclei_pair, tmp_path):
    image, labels = nuclei_pair
    tifffile.imwrite(tmp_path / "z.tif", np.stack([image[0]] * 3), metadata={"axes": "ZYX"})
    said = r"z.tif: has 3 Z planes \(channels\? sm.open_image\(path, axes='CYX'\); a stack: Tr"
    with pytest.raises(InvalidImageError, match=said):
        train_unet([tmp_path / "z.tif"], [labels], ONE_EPOCH)


def test_one_image_where_a_list_belongs_is_an_image_error(nuclei_pair, tmp_path):
    image, labels = nuclei_pair
    with pytest.raises(InvalidImageError, match=r"images must be a list .*got one ndarray of "
                       r"shape \(1, 64, 64\): pass \[image\], \[labels\]"):  # fmt: skip
        train_unet(image, [labels], ONE_EPOCH)
    with pytest.raises(InvalidImageError, match=r"images must be a list .*got one str"):
        train_unet(str(tmp_path / "a.tif"), [labels], ONE_EPOCH)
    with pytest.raises(InvalidLabelsError, match=r"labels must be a list .*got one ndarray"):
        train_unet([image], labels, ONE_EPOCH)
    with pytest.raises(InvalidImageError, match=r"image 0 pixels are <U1; scopeml computes"):
        train_unet([np.full((64, 64), "a")], [labels], ONE_EPOCH)
    with pytest.raises(InvalidImageError, match=r"no images given to train on"):
        train_unet([], [], ONE_EPOCH)
