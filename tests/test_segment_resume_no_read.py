"""``segment --resume`` on a store already complete from the same run decides so before the
statistics pass of the normalisation: the record holds the image file's fingerprint, the
model's hash and the settings, so a 100 GB image is not read to do nothing. An in-memory
image has no fingerprint: its statistics are still compared. A changed image is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import scopeml as sm
import scopeml.tiling.engine as engine
from scopeml.cli import main
from scopeml.synthetic import realistic_nuclei


@pytest.fixture
def finished(tmp_path) -> tuple[Path, Path]:
    """A nuclei TIFF and the complete store of one run on it."""
    image = tmp_path / "nuclei.tif"
    pixels = (np.clip(realistic_nuclei((160, 150), seed=3)[0][0], 0, None) * 1000).astype(np.uint16)
    tifffile.imwrite(image, pixels, photometric="minisblack")
    out = tmp_path / "o.ome.zarr"
    main(_command(image, out)[:-1])
    assert (out / "zarr.json").is_file()
    return image, out


def _command(image: Path, out: Path) -> list[str]:
    return ["segment", str(image), "-m", "nuclei", "-o", str(out), "-q", "--outputs",
            "labels", "--tile-size", "128", "--workers", "1", "--scale", "1",
            "--resume"]  # fmt: skip


@pytest.fixture
def passes(monkeypatch) -> list[object]:
    """Every statistics pass over an image, counted."""
    calls: list[object] = []
    real = engine.compute_normalization

    def spy(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "compute_normalization", spy)
    return calls


def test_a_complete_store_is_not_read_again(finished, passes, capsys):
    image, out = finished
    capsys.readouterr()
    assert main(_command(image, out)) == 0
    assert capsys.readouterr().out.startswith("already complete; nothing to do: labels")
    assert passes == []


def test_a_changed_image_is_still_refused(finished, passes, capsys):
    image, out = finished
    pixels = tifffile.imread(image)
    tifffile.imwrite(image, pixels[::-1].copy(), photometric="minisblack")
    capsys.readouterr()
    assert main(_command(image, out)) == 2
    err = capsys.readouterr().err
    assert "cannot resume: the output comes from a different run: " in err, err
    assert passes == []  # the fingerprint differs: no pass needed to say so


def test_an_array_image_still_compares_its_statistics(tmp_path, passes):
    pixels = (np.clip(realistic_nuclei((160, 150), seed=3)[0][0], 0, None) * 1000).astype(np.uint16)
    run = {"outputs": ("labels",), "tile_size": 128, "workers": 1, "scale": 1}
    out = sm.segment(pixels, "nuclei", tmp_path / "o.ome.zarr", **run)
    passes.clear()
    again = sm.segment(pixels, "nuclei", tmp_path / "o.ome.zarr", resume=True, **run)
    assert again.already_complete and again == out
    assert len(passes) == 1


@pytest.fixture
def two_channels(tmp_path) -> Path:
    """An OME-TIFF of nuclei in channel 0 and the same nuclei 5× brighter, flipped, in 1."""
    nuclei = np.clip(realistic_nuclei((160, 150), seed=3)[0][0], 0, None) * 1000
    pixels = np.stack([nuclei, 5 * nuclei[::-1]]).astype(np.uint16)
    path = tmp_path / "two.ome.tif"
    tifffile.imwrite(path, pixels, ome=True, metadata={"axes": "CYX"})
    return path


def test_another_channel_view_of_the_file_is_refused(two_channels, tmp_path, passes):
    """A view made by the caller keeps the file's path and shape; the record names its
    channels, so channel 1 is refused and channel 0 accepted without a pass."""
    from scopeml.errors import IncompleteOutputError

    run = {"outputs": ("labels",), "tile_size": 128, "workers": 1, "scale": 1}
    out = tmp_path / "o.ome.zarr"
    with sm.open_image(two_channels) as image:
        first = sm.segment(image.select_channels([0]), "nuclei", out, **run)
        passes.clear()
        again = sm.segment(image.select_channels([0]), "nuclei", out, resume=True, **run)
        assert again.already_complete and again == first and passes == []
        with pytest.raises(IncompleteOutputError, match=r"image_view\.channels"):
            sm.segment(image.select_channels([1]), "nuclei", out, resume=True, **run)


def test_channels_chosen_by_name_are_not_read_again(two_channels, tmp_path, passes):
    """``channels=`` is in the record: the file's fingerprint still decides."""
    run = {"outputs": ("labels",), "tile_size": 128, "workers": 1, "scale": 1}
    out = tmp_path / "o.ome.zarr"
    first = sm.segment(two_channels, "nuclei", out, channels=["C1"], **run)
    passes.clear()
    again = sm.segment(two_channels, "nuclei", out, channels=["C1"], resume=True, **run)
    assert again.already_complete and again == first and passes == []


def test_another_scene_opened_from_the_file_is_refused(tmp_path, passes):
    """``open_image(path, scene=1)`` is an image of one scene, like scene 0's: the record
    names the scene, so no pass is needed to tell them apart."""
    from scopeml.errors import IncompleteOutputError

    nuclei = np.clip(realistic_nuclei((160, 150), seed=3)[0][0], 0, None) * 1000
    path = tmp_path / "scenes.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tiff:
        for scene in (nuclei, 5 * nuclei[::-1]):
            tiff.write(scene.astype(np.uint16), metadata={"axes": "YX"})
    run = {"outputs": ("labels",), "tile_size": 128, "workers": 1, "scale": 1}
    out = tmp_path / "o.ome.zarr"
    with sm.open_image(path, scene=0) as first, sm.open_image(path, scene=1) as second:
        sm.segment(first, "nuclei", out, **run)
        passes.clear()
        with pytest.raises(IncompleteOutputError, match=r"image_view\.scene: 0"):
            sm.segment(second, "nuclei", out, resume=True, **run)
        assert passes == []
