"""Fixtures for the model container tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model.model_builders import write_czann


@pytest.fixture
def czann(tmp_path: Path) -> Path:
    """A valid 2-D czann: tiny U-Net, 1 channel in, 2 classes out, MinOverlap 24."""
    return write_czann(tmp_path)
