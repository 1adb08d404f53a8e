"""``scopeml info`` reads the first pixel of what a bioio plugin describes: a scene it lists
but cannot read (bioio-lif 2.0.1 on λ and XZ scans) exits 2 after the description, and a
server job refuses it at submit, instead of a later command finding out."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.io.bioio import read_bioio
from scopeml.io.probe import _unreadable
from tests.io.test_bioio import needs_bioio


@needs_bioio
def test_a_plugins_image_whose_first_pixel_does_not_read_is_found(tmp_path):
    path = tmp_path / "tiles.ome.tif"
    pixels = np.random.default_rng(0).integers(0, 60000, (128, 128), dtype=np.uint16)
    tifffile.imwrite(path, pixels, ome=True, compression="zlib", tile=(64, 64))
    with read_bioio(path, plugin="bioio-ome-tiff") as image:
        assert _unreadable(image) is None
        with tifffile.TiffFile(path) as tif:  # the first tile's bytes zeroed after opening
            offset, size = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
        with open(path, "r+b") as file:
            file.seek(offset)
            file.write(b"\0" * size)
        assert "cannot read pixels at S=0:1" in _unreadable(image)


@pytest.mark.parametrize("as_json", [False, True])
def test_info_describes_then_exits_2_on_pixels_the_plugin_cannot_read(
    tmp_path, capsys, monkeypatch, as_json
):
    path = tmp_path / "sweep.lif"
    path.write_bytes(b"LIF")
    described = {
        "path": str(path),
        "reader": "scopeml.io.bioio:read_bioio",
        "plugin": "bioio-lif 2.0.1",
        "axes": "STCZYX",
        "shape": [1, 1, 1, 1, 64, 64],
        "dtype": "uint8",
        "scenes": [
            {"number": 0, "name": "x_y_lambdaEmi", "shape": [1, 1, 1, 64, 64]},
            {"number": 1, "name": "x_y_z_t", "shape": [2, 1, 11, 64, 64]},
        ],
        "channel_names": ["Green"],
        "pixel_sizes": {},
        "region_reads": None,
        "levels": 1,
        "unreadable": "cannot read pixels at S=0:1, …: axes don't match array",
        "warnings": [],
    }  # fmt: skip  (the real file's description; the file itself is not shipped)
    monkeypatch.setattr("scopeml.io.probe.probe_image", lambda *a, **k: described)
    monkeypatch.setattr("scopeml.cli.info.refuse_not_an_image", lambda path: None)
    assert main(["info", str(path), *(["--json"] if as_json else [])]) == 2
    out, err = capsys.readouterr()
    assert "x_y_lambdaEmi" in out  # described first
    assert err.strip() == (
        f"error: {path}: scene 0 (x_y_lambdaEmi): bioio-lif 2.0.1: cannot read pixels at "
        "S=0:1, …: axes don't match array; other scenes may read: --scene N"
    )


def test_a_server_job_on_pixels_the_plugin_cannot_read_is_refused_at_submit(tmp_path, monkeypatch):
    from scopeml.errors import InvalidRequestError
    from scopeml.server.config import ServerConfig
    from scopeml.server.limits import describe_job_image

    problem = "cannot read pixels at S=0:1, …: axes don't match array"
    scenes = [{"shape": [1, 1, 1, 64, 64]}]
    described = {"shape": [1, 1, 1, 1, 64, 64], "scenes": scenes, "unreadable": problem}
    monkeypatch.setattr("scopeml.io.probe.probe_image", lambda *a, **k: described)
    root = tmp_path / "root"
    config = ServerConfig(tmp_path / "data", allowed_root=root)
    with pytest.raises(InvalidRequestError, match=r"^sweep\.lif: cannot read pixels at S=0:1"):
        describe_job_image(root / "sweep.lif", None, [root], "sweep.lif", config)
