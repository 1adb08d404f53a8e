"""``Scaling`` is in metres: a value too large for a microscope pixel (micrometres given as
metres) is warned about when a container is written, saying what it would be in µm."""

from __future__ import annotations

import warnings

import pytest

from scopeml.model import read_container
from scopeml.model.convert import convert_container


def test_a_scaling_in_micrometres_given_as_metres_is_warned_about(tmp_path):
    said = (r"big.czann: Scaling \[0.5, 0.5\] is in metres per pixel: that is 500000 µm, "
            r"500000 µm, no microscope's pixel; a pixel of 0.5 µm is 5e-07")  # fmt: skip
    with pytest.warns(UserWarning, match=said):
        convert_container("nuclei", tmp_path / "big.czann", scaling=(0.5, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = convert_container("nuclei", tmp_path / "fine.czann", scaling=(2e-7, 2e-7))
    assert read_container(fine).metadata.scaling == (2e-7, 2e-7)
