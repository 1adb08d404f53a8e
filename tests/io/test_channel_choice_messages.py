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
        close = " (did you mean 'DAPI'?)" if wrong == "dapi" else ""  # the name in other case
        assert caught.value.problem == f"no channel {wrong!r}{close}; the image has {listed}"
        assert caught.value.path == "img.tif"
    with pytest.raises(InvalidRequestError) as caught:  # no Python-style -1: refused
        image.select_channels([-1])
    assert caught.value.problem == f"no channel -1; the image has {listed}"
    assert image.select_channels([len(names) - 1]).channel_names == (names[-1],)


def test_names_for_every_channel_of_a_file_naming_none_read_it_in_order(tmp_path) -> None:
    """``segment --channels DAPI`` of a plain TIFF was refused ("no channel 'DAPI'; the image
    has C0") where an analysis naming its channel DAPI reads the same file, with a warning."""
    import tifffile

    from scopeml.cli import main

    pixels = np.arange(2 * 5 * 6, dtype=np.uint16).reshape(2, 5, 6)
    image = Image(pixels[None, None, :, None], path="img.tif")  # C0, C1: the file names none
    with pytest.warns(UserWarning, match=r"img.tif: the file names no channels: read C0 as "
                      r"DNA, C1 as GFP \(in order\)"):  # fmt: skip
        view = image.select_channels(["DNA", "GFP"])
    assert view.channel_names == ("DNA", "GFP")
    np.testing.assert_array_equal(view.read()[0, 0, :, 0], pixels)
    for refused in (["DNA"], ["DNA", 1], ["DNA", "DNA"]):  # not every channel, or not names
        with pytest.raises(InvalidRequestError):
            image.select_channels(refused)
    named = Image(pixels[None, None, :, None], channel_names=["A", "B"], path="named.tif")
    with pytest.raises(InvalidRequestError, match="no channel 'DNA'"):
        named.select_channels(["DNA", "GFP"])
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, pixels[0])
    args = ["segment", str(path), "-m", "nuclei", "-o", str(tmp_path / "o.ome.zarr"), "-q"]
    assert main([*args, "--channels", "DAPI"]) == 0
