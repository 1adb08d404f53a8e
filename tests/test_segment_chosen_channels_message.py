"""Channels chosen with ``--channels`` (``channels=``) that the model cannot take as many of
are refused naming the choice, what it selected and every channel to choose from; the message
told the user to use ``--channels`` as if none had been chosen (user test). Without a choice
the message stays as it was."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import IncompatibleModelError
from scopeml.synthetic import synthetic_nuclei

NOT_CHOSEN = (
    "image has 2 channels; model 'scopeml nuclei' expects 1: choose it with --channels "
    "(channels= in Python) from DAPI, GFP"
)


@pytest.fixture
def two_channels(tmp_path):
    pixels, _ = synthetic_nuclei((64, 64), density=0.004, seed=1)
    plane = pixels.reshape(64, 64)
    path = tmp_path / "img.ome.tif"
    metadata = {"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    tifffile.imwrite(path, np.stack([plane, plane // 2]), ome=True, metadata=metadata)
    return path


@pytest.mark.parametrize("chosen", ["0,1", "DAPI,GFP"])
def test_the_cli_names_the_channels_chosen(two_channels, tmp_path, capsys, chosen):
    out = tmp_path / "x.ome.zarr"
    command = ["segment", str(two_channels), "--scene", "0", "-m", "nuclei", "-o", str(out)]
    assert main([*command, "--channels", chosen]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {two_channels}: --channels {chosen} (channels= in Python) selects 2 channels "
        "(DAPI, GFP); model 'scopeml nuclei' expects 1: choose 1 of DAPI, GFP"
    )
    assert not out.exists()


def test_python_names_the_channels_chosen(two_channels, tmp_path):
    with pytest.raises(IncompatibleModelError) as err:
        sm.segment(two_channels, "nuclei", tmp_path / "x.ome.zarr", channels=["GFP", 0])
    assert err.value.problem == (
        "--channels GFP,0 (channels= in Python) selects 2 channels (GFP, DAPI); model "
        "'scopeml nuclei' expects 1: choose 1 of DAPI, GFP"
    )
    image = sm.open_image(two_channels)
    try:
        with pytest.raises(IncompatibleModelError, match=r": --channels 1,0 .* of DAPI, GFP$"):
            sm.segment(image, "nuclei", tmp_path / "y.ome.zarr", channels=(1, 0))
    finally:
        image.close()


def test_without_a_choice_the_message_is_as_before(two_channels, tmp_path, capsys):
    out = tmp_path / "x.ome.zarr"
    assert main(["segment", str(two_channels), "-m", "nuclei", "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {two_channels}: {NOT_CHOSEN}"
    with pytest.raises(IncompatibleModelError) as err:
        sm.segment(two_channels, "nuclei", out)
    assert err.value.problem == NOT_CHOSEN


def test_one_channel_chosen_still_runs(two_channels, tmp_path):
    seg = sm.segment(two_channels, "nuclei", tmp_path / "x.ome.zarr", channels=["DAPI"])
    assert seg.labels.sizes["C"] == 1
