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
from scopeml.cli import main
from scopeml.synthetic import realistic_nuclei
from scopeml.tiling.store import describe_partial, partial_path


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


def test_a_complete_store_is_not_read_again(finished, statistics_passes, capsys):
    image, out = finished
    capsys.readouterr()
    assert main(_command(image, out)) == 0
    assert capsys.readouterr().out.startswith("already complete; nothing to do: labels")
    assert statistics_passes == []


def test_a_changed_image_is_still_refused(finished, statistics_passes, capsys):
    image, out = finished
    pixels = tifffile.imread(image)
    tifffile.imwrite(image, pixels[::-1].copy(), photometric="minisblack")
    capsys.readouterr()
    assert main(_command(image, out)) == 2
    err = capsys.readouterr().err
    assert "cannot resume: the output comes from a different run: " in err, err
    assert statistics_passes == []  # the fingerprint differs: no pass needed to say so


def test_an_array_image_still_compares_its_statistics(tmp_path, statistics_passes):
    pixels = (np.clip(realistic_nuclei((160, 150), seed=3)[0][0], 0, None) * 1000).astype(np.uint16)
    run = {"outputs": ("labels",), "tile_size": 128, "workers": 1, "scale": 1}
    out = sm.segment(pixels, "nuclei", tmp_path / "o.ome.zarr", **run)
    statistics_passes.clear()
    again = sm.segment(pixels, "nuclei", tmp_path / "o.ome.zarr", resume=True, **run)
    assert again.already_complete and again == out
    assert len(statistics_passes) == 1


@pytest.mark.parametrize("older", [False, True])
def test_a_resume_says_how_many_tiles_it_kept(tmp_path, capsys, older):
    image = tmp_path / "nuclei.tif"
    pixels = (np.clip(realistic_nuclei((160, 150), seed=3)[0][0], 0, None) * 1000).astype(np.uint16)
    tifffile.imwrite(image, pixels, photometric="minisblack")
    out = tmp_path / "o.ome.zarr"

    def stop_after_one(event):
        if event.stage == "segment" and event.done >= 1:
            raise sm.Cancelled("stopped by the user")

    with pytest.raises(sm.Cancelled):
        sm.segment(image, "nuclei", out, outputs=["labels"], tile_size=64, workers=1, scale=1,
                   batch_size=1, progress=stop_after_one)  # fmt: skip
    kept = describe_partial(out)["tiles_done"]  # the one finished, and any then in flight
    assert 1 <= kept < 9
    if older:  # a store of an older scopeml: no count of its tiles
        (partial_path(out) / ".scopeml-tiles").unlink()
    capsys.readouterr()
    command = _command(image, out)
    command[command.index("128")] = "64"
    assert main(command) == 0
    of = "" if older else " of 9"  # it said "of None"
    assert capsys.readouterr().out.startswith(f"resumed ({kept}{of} tiles kept): labels → ")
