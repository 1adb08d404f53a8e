"""Choosing a channel that an image lacks: the message lists the names and the indices."""

from __future__ import annotations

import numpy as np
import pytest

from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image


@pytest.mark.parametrize(
    ("names", "listed"),
    [(["DAPI"], "DAPI (or index 0)"), (["GFP", "DAPI", "BF"], "GFP, DAPI, BF (or indices 0..2)")],
)
def test_a_missing_channel_lists_the_names_and_indices(names, listed) -> None:
    image = Image(np.zeros((1, 1, len(names), 1, 2, 2)), channel_names=names, path="img.tif")
    for wrong in ("dapi", 3, -4):
        with pytest.raises(InvalidRequestError) as caught:
            image.select_channels([wrong])
        assert caught.value.problem == f"no channel {wrong!r}; the image has {listed}"
        assert caught.value.path == "img.tif"
    with pytest.raises(InvalidRequestError) as caught:  # no Python-style -1: refused
        image.select_channels([-1])
    assert caught.value.problem == f"no channel -1; the image has {listed}"
    assert image.select_channels([len(names) - 1]).channel_names == (names[-1],)
