"""Integer images trained without a normalisation policy by default get one warning: their
mean/std are baked into the model, which fits only that intensity range; a policy, float
images or ``normalize="none"`` (chosen) train unwarned."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from scopeml.train.loop import TrainConfig, train_unet

ONE_EPOCH = {"depth": 1, "width": 4, "patch_size": 32, "batch_size": 4, "epochs": 1,
             "steps_per_epoch": 2, "val_fraction": 0.0}  # fmt: skip


def test_integer_images_without_a_policy_are_warned_about_once(nuclei_pair):
    image, labels = nuclei_pair
    counts = image.astype(np.uint16)
    with pytest.warns(UserWarning) as caught:
        result = train_unet([counts, counts], [labels, labels], TrainConfig(**ONE_EPOCH))
    said = [str(w.message) for w in caught if "baked into the model" in str(w.message)]
    assert len(said) == 1, said
    assert said[0].startswith("the images are uint16 and no normalisation is chosen")
    assert "normalize='percentile:1,99.8'" in said[0]
    assert result.normalize_policy is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = train_unet([counts], [labels], TrainConfig(**ONE_EPOCH, normalize="none"))
        train_unet([counts], [labels], TrainConfig(**ONE_EPOCH, normalize="percentile:1,99.8"))
        train_unet([image], [labels], TrainConfig(**ONE_EPOCH))  # float: no camera counts
    assert chosen.normalize_policy is None  # "none" records nothing, as None does
    with pytest.warns(UserWarning, match="baked into the model"):
        default = train_unet([counts], [labels], TrainConfig(**ONE_EPOCH))
    assert chosen.history == default.history  # the same training, chosen
