"""Fixtures of the engine tests."""

from __future__ import annotations

import pytest

from tests.tiling.engine_doubles import OnnxDouble, unet_double


@pytest.fixture
def unet2d() -> OnnxDouble:
    return unet_double(in_channels=2, n_classes=3, depth=2)


@pytest.fixture
def unet3d() -> OnnxDouble:
    return unet_double(in_channels=1, n_classes=2, depth=1, spatial_dims=3, seed=1)
