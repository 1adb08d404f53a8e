"""``scopeml convert``: any image into OME-Zarr with lower resolutions; labels kept as labels;
bad input in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.cli import main
from scopeml.io import open_image
from scopeml.io.pyramid import downsample


def test_an_image_becomes_a_store_with_levels(tmp_path, capsys) -> None:
    pixels = np.random.default_rng(0).integers(0, 4000, (2, 1300, 1100), dtype=np.uint16)
    source = tmp_path / "a.ome.tif"
    tifffile.imwrite(source, pixels, ome=True, metadata={
        "axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
        "Channel": {"Name": ["DAPI", "GFP"]}})  # fmt: skip
    out = tmp_path / "a.ome.zarr"
    assert main(["convert", str(source), "-o", str(out), "--chunk", "256", "-q"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{source} → {out}: 1 scene, C=2 Y=1300 X=1100, uint16, ")
    assert "2 resolution levels; " in printed
    with open_image(out) as copy, open_image(out, level=1) as low:
        np.testing.assert_array_equal(copy.read()[0, 0, :, 0], pixels)
        assert copy.channel_names == ("DAPI", "GFP") and copy.pixel_sizes["X"] == 0.5
        np.testing.assert_array_equal(low.read()[0, 0, :, 0], downsample(pixels, (1, 2), 2, "mean"))
        assert low.pixel_sizes["X"] == 1.0
    assert zarr.open_array(str(out / "0"), mode="r").chunks == (1, 256, 256)
    assert main(["info", str(out)]) == 0 and "  resolution levels: 2\n" in capsys.readouterr().out
    assert main(["info", str(source)]) == 0 and "resolution levels" not in capsys.readouterr().out
    assert main(["convert", str(source), "-o", str(out)]) == 2  # exists, no --overwrite
    assert "a.ome.zarr: output exists" in capsys.readouterr().err


def test_labels_are_reduced_by_the_mode_and_marked(tmp_path, capsys) -> None:
    labels = np.kron(np.random.default_rng(1).integers(0, 3, (130, 110)), np.ones((10, 10)))
    source = tmp_path / "labels.tif"
    tifffile.imwrite(source, labels.astype(np.uint8))
    out = tmp_path / "labels.ome.zarr"
    assert main(["convert", str(source), "-o", str(out), "--labels", "-q"]) == 0
    group = zarr.open_group(str(out), mode="r")
    assert "image-label" in group.attrs["ome"]  # viewers show it as labels
    assert group["1"].shape == (650, 550)  # no channel axis
    np.testing.assert_array_equal(group["1"][...], downsample(group["0"][...], (0, 1), 2, "mode"))
    assert set(np.unique(group["1"][...])) <= {0, 1, 2}  # no label a mean would invent


def test_a_missing_or_corrupt_image_is_one_line(tmp_path, capsys) -> None:
    out = tmp_path / "o.ome.zarr"
    assert main(["convert", str(tmp_path / "none.tif"), "-o", str(out)]) == 2
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00" + b"\x00" * 20)
    assert main(["convert", str(broken), "-o", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "none.tif" in lines[0] and "broken.tif" in lines[1]
    assert not out.exists() and not list(tmp_path.glob("*.partial*"))


def test_labels_must_be_one_channel_of_integers_and_the_output_a_store(tmp_path, capsys) -> None:
    source = tmp_path / "float.tif"
    tifffile.imwrite(source, np.random.default_rng(2).random((40, 50), np.float32))
    assert main(["convert", str(source), "-o", str(tmp_path / "f.ome.zarr"), "--labels"]) == 2
    assert main(["convert", str(source), "-o", str(tmp_path / "f.tif")]) == 2
    first, second = capsys.readouterr().err.strip().splitlines()
    assert "float.tif" in first and "labels must be integers" in first
    assert "f.tif" in second and "name it f.ome.zarr" in second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.tif"]  # nothing written


def test_scene_names_carry_over(tmp_path, capsys) -> None:
    from scopeml.io import Image, write_ome_zarr

    pixels = np.arange(2 * 30 * 40, dtype=np.uint16).reshape(2, 1, 1, 1, 30, 40)
    plate = Image(pixels)
    plate.scene_names = ("B2", "B3")  # a CZI's wells, as its reader names them
    store = write_ome_zarr(tmp_path / "plate.ome.zarr", plate)
    with open_image(store) as back:
        assert back.scene_names == ("B2", "B3")
    assert main(["info", str(store), "--scene", "B3"]) == 0
    assert "scenes: 1: 1 B3 (T=1 C=1 Z=1 Y=30 X=40)" in capsys.readouterr().out
    source = tmp_path / "plate.ome.tif"  # through the command, also renaming its channel
    with tifffile.TiffWriter(source, ome=True) as writer:
        for scene, name in enumerate(("C7", "D4")):
            writer.write(pixels[scene, 0, 0, 0], metadata={"axes": "YX", "Name": name})
    for extra in ([], ["--channel-names", "DAPI"]):
        out = tmp_path / f"via{len(extra)}.ome.zarr"
        assert main(["convert", str(source), "-o", str(out), "-q", *extra]) == 0
        with open_image(out) as back:
            assert back.scene_names == ("C7", "D4")
            assert back.channel_names == ("DAPI",) if extra else ("C0",)


def test_one_fields_channel_files_are_stacked_in_the_order_given(tmp_path, capsys) -> None:
    """A microscope that saves a file per channel (CellProfiler's ExampleFly: _D, _F, _R):
    one multi-channel store, which analyze and segment then read by channel name."""
    rng = np.random.default_rng(2)
    dapi = rng.integers(0, 255, (60, 70), dtype=np.uint8)
    gfp = rng.integers(0, 4000, (60, 70), dtype=np.uint16)
    two = rng.integers(0, 255, (2, 60, 70), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "f_D.tif", dapi)
    tifffile.imwrite(tmp_path / "f_F.tif", gfp)
    tifffile.imwrite(tmp_path / "f_two.ome.tif", two, ome=True, metadata={
        "axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
        "Channel": {"Name": ["RFP", "Cy5"]}})  # fmt: skip
    files = [str(tmp_path / n) for n in ("f_two.ome.tif", "f_D.tif", "f_F.tif")]
    out = tmp_path / "f.ome.zarr"
    command = ["convert", *files, "-o", str(out), "-q"]
    assert main([*command, "--channel-names", "RFP,Cy5,DAPI,GFP"]) == 0
    assert capsys.readouterr().out.startswith(f"3 files → {out}: 1 scene, C=4 Y=60 X=70, uint16")
    with open_image(out) as copy:
        assert copy.channel_names == ("RFP", "Cy5", "DAPI", "GFP") and copy.dtype == np.uint16
        assert copy.pixel_sizes["X"] == 0.5  # the first file's
        np.testing.assert_array_equal(copy.read()[0, 0, :, 0], np.concatenate(
            [two, dapi[None], gfp[None]]))  # fmt: skip
    windows = [c["window"] for c in zarr.open_group(str(out)).attrs["ome"]["omero"]["channels"]]
    for window, channel in zip(windows, [*two, dapi, gfp], strict=True):  # each its own values
        assert (window["start"], window["end"]) == (channel.min(), channel.max())
        assert (window["min"], window["max"]) == (0, 65535)  # the type's range, as before
    refused = {
        "repeat (C0)": [*command[:-1], "--overwrite"],  # two files named no channels: C0, C0
        "--channel-names gives 2 names for 4 channels": [*command, "--channel-names", "a,b"],
        "--labels takes one image of labels": [*command, "--labels", "--channel-names", "a"],
        "the channel names repeat (a)": [*command, "--channel-names", "a,b,a,c"],
        "the channel names include an empty one": [*command, "--channel-names", "a,b,,c"],
    }
    tifffile.imwrite(tmp_path / "small.tif", dapi[:50])
    refused["small.tif: cannot stack its channels after"] = [
        "convert",
        files[1],
        str(tmp_path / "small.tif"),
        "-o",
        str(tmp_path / "s.ome.zarr"),
    ]
    for said, args in refused.items():
        assert main(args) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
    assert main(["convert", files[1], files[2], "-o", files[1]]) == 2  # an input: never replaced
    assert tifffile.imread(files[1]).shape == (60, 70)


def test_display_windows_are_never_empty_and_hold_a_floats_values(tmp_path) -> None:
    """A constant channel gets a window of width 1 (napari refuses contrast limits 7..7), and
    a float channel's min/max widen to its values."""
    from scopeml.io import Image, write_ome_zarr

    ramp = np.linspace(-3, 4000, 600, dtype=np.float32).reshape(20, 30)
    out = write_ome_zarr(tmp_path / "w.ome.zarr", Image(np.stack([np.full_like(ramp, 7), ramp])))
    windows = [c["window"] for c in zarr.open_group(str(out)).attrs["ome"]["omero"]["channels"]]
    assert (windows[0]["start"], windows[0]["end"]) == (7, 8)
    assert windows[1] == {"min": -3, "max": 4000, "start": -3, "end": 4000}


def test_scenes_of_different_sizes_become_one_image_each(tmp_path, capsys) -> None:
    """As the help says, every scene one image: also where they differ in size (a
    multi-position file), which one stacked image cannot hold."""
    from scopeml.io.registry import open_scenes

    source = tmp_path / "positions.ome.tif"
    fields = [np.arange(30 * 40, dtype=np.uint16).reshape(30, 40), np.ones((20, 24), np.uint16)]
    with tifffile.TiffWriter(source, ome=True) as writer:
        for field, name in zip(fields, ("A1", "B2"), strict=True):
            writer.write(field, metadata={"axes": "YX", "Name": name})
    out = tmp_path / "positions.ome.zarr"
    assert main(["convert", str(source), "-o", str(out), "-q"]) == 0
    assert "2 scenes of different sizes, uint16" in capsys.readouterr().out
    with open_scenes(out) as scenes:
        assert [scene.scene_names[scene.view()["scene"]] for scene in scenes] == ["A1", "B2"]
        for scene, field in zip(scenes, fields, strict=True):
            np.testing.assert_array_equal(scene.read()[0, 0, 0, 0], field)
    assert main(["convert", str(source), "--scene", "B2", "-o", str(tmp_path / "b2.ome.zarr")]) == 0
    with open_image(tmp_path / "b2.ome.zarr") as back:
        np.testing.assert_array_equal(back.read()[0, 0, 0, 0], fields[1])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd (Linux)")
def test_a_file_of_many_positions_is_opened_one_position_at_a_time(tmp_path, monkeypatch):
    """A plate of hundreds of positions of different sizes ran out of file descriptors: every
    position was opened (and each uncompressed one mapped, a descriptor each) at once."""
    import os

    import scopeml.io.convert as convert

    source = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(source, ome=True) as writer:
        for k in range(40):
            writer.write(np.full((8 + k % 3, 10), k, np.uint8), metadata={"axes": "YX"})
    with open_image(source, scene=0) as one:  # the other 39 positions: no map, no descriptor
        one.read()
        held = len(os.listdir("/proc/self/fd"))
    counts = []
    write = convert._write_scene
    monkeypatch.setattr(convert, "_write_scene", lambda *a, **k: (
        write(*a, **k), counts.append(len(os.listdir("/proc/self/fd")))))  # fmt: skip
    assert main(["convert", str(source), "-o", str(tmp_path / "plate.ome.zarr"), "-q"]) == 0
    assert len(counts) == 40 and max(counts) - min(counts) <= 2 and max(counts) < held + 10
    with open_image(tmp_path / "plate.ome.zarr", scene=39) as last:
        assert last.read().max() == 39 and last.shape[-2:] == (8, 10)
