"""describe_image / probe_image: what a file holds, asked in a child process that a crashing,
hanging or memory-hungry reader cannot take down with the caller."""

from __future__ import annotations

import os
import sys
import textwrap

import numpy as np
import pytest
import tifffile

from scopeml.errors import InvalidImageError
from scopeml.io.probe import describe_image, probe_image
from scopeml.io.testing import nuclei_image
from tests.io import test_readers as native


def test_a_description_names_the_reader_and_the_metadata(tmp_path):
    path, expected = native.TestOmeTiff().make(tmp_path)
    info = probe_image(path)
    assert info == describe_image(path)
    assert info["reader"] == "scopeml.io.tiff:read_tiff" and info["plugin"] is None
    assert info["shape"] == list(expected.shape) and info["dtype"] == "uint16"
    assert info["channel_names"] == ["nuclei", "membrane"]
    assert info["pixel_sizes"] == pytest.approx({"X": 0.325, "Y": 0.325, "Z": 1.5})
    assert info["scenes"] == [{"number": 0, "name": "0", "shape": list(expected.shape[1:])}]


def test_scenes_of_different_sizes_are_each_listed(tmp_path):
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as writer:
        for shape in ((30, 40), (20, 25)):
            writer.write(nuclei_image(shape, seed=1), metadata={"axes": "CYX"})
    info = probe_image(path)
    assert [s["shape"] for s in info["scenes"]] == [[1, 2, 1, 30, 40], [1, 2, 1, 20, 25]]
    assert info["shape"] == [1, 1, 2, 1, 30, 40]  # scene 0
    assert probe_image(path, scene=1)["scenes"] == [
        {"number": 1, "name": "1", "shape": [1, 2, 1, 20, 25]}
    ]


def test_an_error_in_the_child_is_the_same_error_here(tmp_path):
    path = tmp_path / "broken.ome.tif"
    path.write_bytes(b"II*\0" + b"\xff" * 60)
    with pytest.raises(InvalidImageError) as child:
        probe_image(path)
    with pytest.raises(InvalidImageError) as here:
        describe_image(path)
    assert str(child.value) == str(here.value) and child.value.path == str(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_reader_that_hangs_is_stopped_after_the_timeout(tmp_path):
    """A named pipe with an image suffix: opening it blocks until a writer comes, forever."""
    path = tmp_path / "stuck.tif"
    os.mkfifo(path)
    with pytest.raises(InvalidImageError, match=r"stuck\.tif: opening it took longer than 2 s"):
        probe_image(path, timeout=2)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_AS is POSIX")
def test_the_child_cannot_map_more_than_the_memory_limit(tmp_path):
    path, _ = native.TestOmeTiff().make(tmp_path)
    with pytest.raises(InvalidImageError, match=r"image\.ome\.tif: .*(memory|Memory)"):
        probe_image(path, memory_limit=64 << 20)  # too little to even import numpy


def test_a_reader_that_crashes_the_process_is_an_invalid_image(tmp_path, monkeypatch):
    """A reader that kills its process (as pylibCZIrw can on a corrupt CZI), registered in the
    child through ``sitecustomize``: the caller survives and gets an error naming the file."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crashing_reader.py").write_text(
        "import os\n\ndef read(path, **options):\n    os.abort()\n"
    )
    (plugins / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            from scopeml.io.registry import READERS
            READERS[".crash"] = "crashing_reader:read"
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugins), *sys.path]))
    path = tmp_path / "slide.crash"
    path.write_bytes(np.zeros(16, np.uint8).tobytes())
    with pytest.raises(InvalidImageError, match=r"slide\.crash: the reader crashed .*SIGABRT"):
        probe_image(path)


def test_allowed_folders_are_checked_in_the_child_and_the_error_class_kept(tmp_path):
    from scopeml.errors import OutsideRootError

    inside = tmp_path / "inside"
    inside.mkdir()
    path, _ = native.TestOmeTiff().make(tmp_path)  # next to, not inside, the allowed folder
    (inside / "link.ome.tif").symlink_to(path)
    with pytest.raises(OutsideRootError, match=r"link\.ome\.tif: resolves to .*image\.ome\.tif"):
        probe_image(inside / "link.ome.tif", allowed_roots=[inside])
    assert probe_image(path, allowed_roots=[tmp_path])["shape"][2] == 2
