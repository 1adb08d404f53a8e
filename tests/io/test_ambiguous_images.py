"""Images that are ambiguous or lie about themselves: a plain page sequence (Z or T?), OME-XML
declaring planes the file lacks, a sparse OME-Zarr, the time step, channels chosen twice, a
truncated TIFF, pixel sizes that are no sizes, and the order sizes are listed in."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import tifffile
import zarr

from scopeml.cli import main
from scopeml.errors import InvalidImageError, InvalidRequestError
from scopeml.io import create_ome_zarr, open_image
from scopeml.io.image import Image
from scopeml.io.omezarr import sparse_note


def _frames(n: int = 5) -> np.ndarray:
    """``n`` frames that differ: frame t holds value t+1 in a square that moves with t."""
    frames = np.zeros((n, 16, 24), np.uint16)
    for t in range(n):
        frames[t, 2 + t : 6 + t, 3 * t : 3 * t + 4] = t + 1
    return frames


def _said(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


# ---------------------------------------------------------------- a plain page sequence


def test_a_plain_page_sequence_is_read_as_z_with_one_warning_naming_the_way_out(tmp_path):
    file = tmp_path / "timelapse.tif"
    tifffile.imwrite(file, _frames())  # tifffile's axes: QYX (pages of unknown kind)
    with tifffile.TiffFile(file) as tf:
        assert tf.series[0].axes == "QYX"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(file) as image:
            assert image.sizes["Z"] == 5 and image.sizes["T"] == 1
        with open_image(file):  # opened again (as engine workers do): said once
            pass
    said = [m for m in _said(caught) if "pages of unknown kind" in m]
    assert said == [
        f"{file}: 5 pages of unknown kind read as Z (planes); if they are time points or "
        "channels, pass --axes TYX or --axes CYX (Python: sm.open_image(path, axes='TYX') or "
        "axes='CYX', or segment/analyze(path, ..., axes='TYX'))"
    ]


def test_the_warning_silenced_by_a_caller_is_still_given_when_read_again(tmp_path):
    """A server's pre-check opened the file under ``"ignore"``, which spent the warning's one
    showing: the analysis job then read the file and said nothing of its axes."""
    file = tmp_path / "stack.tif"
    tifffile.imwrite(file, _frames())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        open_image(file).close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_image(file).close()
        open_image(file).close()
    assert len([m for m in _said(caught) if "pages of unknown kind" in m]) == 1


def test_a_short_stack_stored_as_colours_is_read_as_channels_with_a_warning(tmp_path):
    file = tmp_path / "short.tif"
    tifffile.imwrite(file, _frames(3))  # tifffile: SYX, planar RGB
    with tifffile.TiffFile(file) as tf:
        assert tf.series[0].axes == "SYX"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(file) as image:
            assert image.sizes["C"] == 3
    assert [m for m in _said(caught) if "short.tif" in m] == [
        f"{file}: 3 pages stored as colours read as C (channels); if they are time points or "
        "planes, pass --axes TYX or --axes ZYX (Python: sm.open_image(path, axes='TYX') or "
        "axes='ZYX', or segment/analyze(path, ..., axes='TYX'))"
    ]
    with open_image(file, axes="ZYX") as image:
        np.testing.assert_array_equal(image.read()[0, 0, 0, :], _frames(3))


def test_every_way_out_of_two_page_sequences_names_each_axis_once(tmp_path):
    """20 × 5 pages of unknown kind (a Z stack per time point, as CTC's files): each way the
    warnings name opens the file, none names a letter twice (it said TTYX and ZZYX)."""
    import re

    file = tmp_path / "stacks.tif"
    tifffile.imwrite(file, np.stack([_frames()] * 6))  # 6 × 5 pages of 16 × 24: QQYX
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(file) as image:  # time points of planes, as ImageJ orders them
            assert (image.sizes["T"], image.sizes["Z"]) == (6, 5)  # it read 6 planes of 5
    ways = {w for m in _said(caught) for w in re.findall(r"--axes (\w+)", m)}
    assert ways == {"ZTYX", "CZYX", "TCYX"}
    for axes in ways:
        with open_image(file, axes=axes) as image:
            assert [image.sizes[a] for a in axes[:2]] == [6, 5]


def test_axes_tyx_reads_the_pages_as_time_points_without_a_warning(tmp_path):
    file = tmp_path / "timelapse.tif"
    frames = _frames()
    tifffile.imwrite(file, frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(file, axes="tyx") as image:
            assert image.sizes["T"] == 5 and image.sizes["Z"] == 1
            np.testing.assert_array_equal(image.read(T=3)[0, 0, 0, 0], frames[3])
            np.testing.assert_array_equal(image.read()[0, :, 0, 0], frames)
    assert not [m for m in _said(caught) if "unknown kind" in m]


@pytest.mark.parametrize(
    ("axes", "error", "problem"),
    [
        (
            "TZYX",
            InvalidImageError,
            "axes 'TZYX' name 4 axes; the file has 3 (5 pages, Y=16, X=24)",
        ),
        ("YX", InvalidImageError, "axes 'YX' name 2 axes; the file has 3 (5 pages, Y=16, X=24)"),
        ("TQX", InvalidRequestError, "unknown letter Q"),
        ("TTX", InvalidRequestError, "T given twice"),
        ("TZY", InvalidRequestError, "must include Y and X"),
    ],
)
def test_axes_that_do_not_fit_the_file_are_refused(tmp_path, axes, error, problem):
    file = tmp_path / "timelapse.tif"
    tifffile.imwrite(file, _frames())
    with pytest.raises(error) as caught:
        open_image(file, axes=axes)
    assert problem in caught.value.problem


def test_axes_cannot_move_the_rows_columns_or_samples_of_the_pages(tmp_path, capsys):
    """An RGB TIFF told CYX read 960 channels of 1280 × 3 pixels, and segment wrote that."""
    file = tmp_path / "rgb.tif"
    tifffile.imwrite(file, np.zeros((12, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(InvalidImageError) as caught:
        open_image(file, axes="CYX")
    assert caught.value.problem.startswith("axes 'CYX' would read the file's Y=12 as C, X=16 as Y")
    assert main(["info", str(file), "--axes", "CYX"]) == 2
    assert "name only its other axes (Y=12, X=16, 3 samples)" in capsys.readouterr().err
    with open_image(file, axes="YXC") as image:  # what the file says: fine
        assert (image.sizes["C"], image.sizes["Y"], image.sizes["X"]) == (3, 12, 16)


def test_axes_renaming_what_the_metadata_names_is_warned_about(tmp_path):
    file = tmp_path / "two.ome.tif"
    tifffile.imwrite(file, np.zeros((2, 8, 8), np.uint16), metadata={"axes": "CYX"})
    said = r"axes 'TYX' read the file's C=2 as T, though its metadata names them"
    with pytest.warns(UserWarning, match=said), open_image(file, axes="TYX") as image:
        assert (image.sizes["T"], image.sizes["C"]) == (2, 1)


def test_axes_are_refused_for_a_format_that_names_its_own(tmp_path):
    store = tmp_path / "a.ome.zarr"
    create_ome_zarr(store, shape=(4, 4), dtype="uint8", axes="YX", chunks=(4, 4))
    with pytest.raises(InvalidImageError, match="applies to TIFF files"):
        open_image(store, axes="YX")


def test_an_imagej_hyperstack_is_read_as_its_metadata_says_with_its_frame_interval(tmp_path):
    file = tmp_path / "hyper.tif"
    data = np.arange(3 * 2 * 4 * 5, dtype=np.uint8).reshape(3, 2, 4, 5)  # T Z Y X
    tifffile.imwrite(file, data, imagej=True, metadata={"axes": "TZYX", "finterval": 2.5})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(file) as image:
            assert (image.sizes["T"], image.sizes["Z"]) == (3, 2)
            np.testing.assert_array_equal(image.read()[0, :, 0], data)
            assert image.pixel_sizes["T"] == 2.5
    assert not [m for m in _said(caught) if "unknown kind" in m]


def test_the_cli_takes_axes_for_segment_and_refuses_bad_ones_with_exit_2(tmp_path, capsys):
    file = tmp_path / "timelapse.tif"
    tifffile.imwrite(file, _frames())
    out = tmp_path / "out.ome.zarr"
    code = main(["segment", str(file), "-m", "nuclei", "-o", str(out), "--axes", "TZYX", "-q"])
    assert code == 2
    assert "axes 'TZYX' name 4 axes; the file has 3" in capsys.readouterr().err
    assert not out.exists()
    # --axes with --scheduler: tests/test_axes_kept.py (the workers reopen the file with them)


# ---------------------------------------------------------------- OME-XML that lies


def _ome_with(tmp_path, name: str, **replace: str):
    file = tmp_path / name
    plane = np.full((32, 32), 7, np.uint8)
    tifffile.imwrite(file, plane, ome=True, metadata={"axes": "YX"})
    with tifffile.TiffFile(file) as tf:
        xml = tf.ome_metadata
    for old, new in replace.items():
        assert old in xml
        xml = xml.replace(old, new)
    tifffile.imwrite(file, plane, description=xml.encode(), metadata=None)
    return file


def test_ome_xml_declaring_more_planes_than_the_file_holds_is_refused(tmp_path):
    file = _ome_with(tmp_path, "lying.ome.tif", **{'SizeZ="1"': 'SizeZ="50"'})
    with pytest.raises(InvalidImageError) as caught:
        open_image(file)
    assert caught.value.problem == "OME-XML declares 50 planes, the file holds 1"
    assert main(["info", str(file)]) == 2


def test_ome_xml_declaring_other_plane_sizes_than_the_pages_is_flagged(tmp_path):
    """tifffile reads the pages as they are (its generic series): read without a word."""
    file = _ome_with(tmp_path, "sized.ome.tif", **{'SizeX="32"': 'SizeX="9096"',
                                                    'SizeY="32"': 'SizeY="9096"'})  # fmt: skip
    said = r"sized.ome.tif: its OME-XML declares 9096×9096 pixels, its pages hold 32×32: read"
    with pytest.warns(UserWarning, match=said), open_image(file) as image:
        assert image.sizes["Y"] == image.sizes["X"] == 32
    honest = _ome_with(tmp_path, "honest.ome.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_image(honest).close()


def test_a_lying_time_series_says_its_pages_are_read_as_z(tmp_path):
    """Three time points under an OME-XML of other plane sizes were read as a Z stack, and
    segment joined objects across frames; the warning named only the sizes."""
    file = tmp_path / "movie.ome.tif"
    frames = np.full((3, 32, 32), 7, np.uint8)
    tifffile.imwrite(file, frames, ome=True, metadata={"axes": "TYX"})
    with tifffile.TiffFile(file) as tf:
        xml = tf.ome_metadata.replace('SizeX="32"', 'SizeX="2000"')
    tifffile.imwrite(
        file, frames, description=xml.encode(), metadata=None, photometric="minisblack"
    )
    said = (
        "its OME-XML declares T=3 of 32×2000 pixels, its pages hold 3 planes of 32×32: "
        "read as the pages say (the 3 planes as Z: --axes TYX or CYX says otherwise)"
    )
    with pytest.warns(UserWarning, match=re.escape(said)), open_image(file) as image:
        assert image.sizes["Z"] == 3
    with open_image(file, axes="TYX") as image:
        assert image.sizes["T"] == 3


def test_an_honest_ome_tiff_with_all_its_planes_opens(tmp_path):
    file = tmp_path / "z.ome.tif"
    tifffile.imwrite(file, np.ones((4, 8, 8), np.uint8), ome=True, metadata={"axes": "ZYX"})
    with open_image(file) as image:
        assert image.sizes["Z"] == 4


# ---------------------------------------------------------------- sparse OME-Zarr


def test_a_sparse_ome_zarr_is_opened_with_a_warning_counting_its_chunks(tmp_path, capsys):
    from scopeml.io.omezarr import chunk_presence

    store = tmp_path / "huge.ome.zarr"
    array = create_ome_zarr(
        store, shape=(1, 100_000, 100_000), dtype="uint16", axes="CYX", chunks=(1, 512, 512)
    )
    array[0, :512, :1536] = 9  # 3 chunks of 196² = 38 416
    total = 196 * 196
    assert chunk_presence(array) == (3, total, False)
    assert chunk_presence(array, limit=2) == (2, total, True)
    expected = f"3 of {total:,} chunks present; absent chunks read as fill value (0)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(store) as image:
            assert image.shape[-2:] == (100_000, 100_000)  # legal: not refused
            assert int(image.read(Y=slice(0, 2), X=slice(0, 2)).max()) == 9
    assert f"{store}: {expected}" in _said(caught)
    assert main(["info", str(store)]) == 0
    assert f"warning: {store}: {expected}" in capsys.readouterr().err


def test_a_sparse_label_image_opens_without_a_chunk_warning(tmp_path):
    """Objects leave most of a label image empty and zarr stores no chunk of zeros: a run's
    own instances were said to be "985 of 2,400 chunks present" (after a correct run)."""
    from scopeml.io.omezarr import mark_label_image

    said = {}
    for name in ("image", "objects"):  # each warned of once a process: two stores
        store = tmp_path / f"{name}.ome.zarr"
        array = create_ome_zarr(store, shape=(4096, 4096), dtype="uint32", axes="YX",
                                chunks=(64, 64))  # fmt: skip
        array[:64, :128] = 7  # 2 of 4096 chunks
        if name == "objects":
            mark_label_image(zarr.open_group(str(store), mode="r+"), ())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            open_image(store).close()
        said[name] = [m for m in _said(caught) if "2 of 4,096 chunks present" in m]
    assert said["image"] and not said["objects"]  # an image's absent chunks are noted


def test_an_image_missing_a_few_chunks_says_how_many(tmp_path, capsys):
    """An interrupted copy left one chunk of 256 out: it read as a black square (12,565
    objects of 12,702) without a word; only fewer than half present was said."""
    store = tmp_path / "copied.ome.zarr"
    array = create_ome_zarr(store, shape=(256, 256), dtype="uint16", axes="YX", chunks=(16, 16))
    array[:] = 500
    (store / "0" / "c" / "3" / "3").unlink()  # the copy cut short
    expected = (f"{store}: 1 of 256 chunks absent inside the image, each among stored ones "
                "(read as 0): a copy cut short, or a lost file?")  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(store) as image:
            assert int(image.read(Y=slice(48, 64), X=slice(48, 64)).max()) == 0
    assert any(m.startswith(expected) for m in _said(caught)), _said(caught)
    assert main(["info", str(store)]) == 0
    assert f"warning: {expected}" in capsys.readouterr().err


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_blank_regions_zarr_did_not_store_are_no_alarm(tmp_path, zarr_format):
    """zarr stores no chunk of the fill value: an image whose lower half is 0, or a mosaic's
    empty border, has absent chunks next to each other or at its edge; a lost one inside is
    among stored ones (in zarr 2's key layout too)."""
    import zarr

    array = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(128, 128),
                            chunks=(16, 16), dtype="uint16", zarr_format=zarr_format)  # fmt: skip
    array[:64] = 7  # the lower half blank: 32 chunks never written
    array[64:80, 112:] = 7  # one chunk at the edge, among blank ones
    assert sparse_note(array, "half.zarr") is None
    array[80:96, 48:64] = 7
    array[64:80, 32:80] = 7
    array[96:112, 48:64] = 7  # a chunk at (5, 3) enclosed by stored ones
    array[80:96, 32:48] = array[80:96, 64:80] = 7
    assert sparse_note(array, "half.zarr") is None  # it is stored
    chunk = "c/5/3" if zarr_format == 3 else "5.3"
    (tmp_path / "a.zarr" / chunk).unlink()  # now lost
    assert "1 of 64 chunks absent inside the image" in sparse_note(array, "half.zarr")


def test_a_dense_ome_zarr_opens_without_a_chunk_warning(tmp_path):
    store = tmp_path / "dense.ome.zarr"
    array = create_ome_zarr(store, shape=(64, 64), dtype="uint8", axes="YX", chunks=(16, 16))
    array[:] = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_image(store).close()
    assert not [m for m in _said(caught) if "chunks present" in m]


# ---------------------------------------------------------------- the time step


def test_ome_time_increment_is_the_time_step_shown_by_info_and_written_to_ngff(tmp_path, capsys):
    file = tmp_path / "t.ome.tif"
    metadata = {"axes": "TYX", "TimeIncrement": 0.5, "TimeIncrementUnit": "min",
                "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}  # fmt: skip
    tifffile.imwrite(file, _frames(3), ome=True, metadata=metadata)
    with open_image(file) as image:
        assert image.pixel_sizes == {"T": 30.0, "Y": 0.25, "X": 0.25}
        sizes = dict(image.pixel_sizes)
    assert main(["info", str(file)]) == 0
    text = capsys.readouterr().out
    assert "  time step: 30 s" in text and "pixel sizes (µm): Y=0.25 X=0.25" in text
    store = tmp_path / "t.ome.zarr"
    create_ome_zarr(store, shape=(3, 16, 24), dtype="uint8", axes="TYX", chunks=(1, 16, 24),
                    pixel_sizes=sizes)  # fmt: skip
    axes = zarr.open_group(str(store), mode="r").attrs["ome"]["multiscales"][0]
    assert axes["axes"][0] == {"name": "t", "type": "time", "unit": "second"}
    assert axes["datasets"][0]["coordinateTransformations"][0]["scale"] == [30.0, 0.25, 0.25]
    with open_image(store) as image:
        assert image.pixel_sizes == {"T": 30.0, "Y": 0.25, "X": 0.25}


def test_a_time_scale_without_a_unit_of_time_is_no_time_step(tmp_path):
    store = tmp_path / "t.ome.zarr"
    create_ome_zarr(store, shape=(3, 4, 4), dtype="uint8", axes="TYX", chunks=(1, 4, 4))
    group = zarr.open_group(str(store), mode="a")
    ome = group.attrs["ome"]
    ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [5, 1, 1]
    group.attrs["ome"] = ome
    with open_image(store) as image:
        assert "T" not in image.pixel_sizes


# ---------------------------------------------------------------- channels


def test_a_channel_given_twice_is_refused_as_a_duplicate():
    image = Image(np.zeros((1, 1, 2, 1, 2, 2)), channel_names=["Hoechst", "GFP"], path="a.tif")
    with pytest.raises(InvalidRequestError) as caught:
        image.select_channels(["Hoechst", "Hoechst"])
    assert caught.value.problem == "duplicate channel 'Hoechst'"
    with pytest.raises(InvalidRequestError) as caught:
        image.select_channels(["GFP", "1"])
    assert caught.value.problem == "duplicate channel 'GFP' (given as 'GFP' and '1')"
    assert image.select_channels(["GFP", 0]).channel_names == ("GFP", "Hoechst")


def test_a_negative_channel_index_is_refused():
    image = Image(np.zeros((1, 1, 2, 1, 2, 2)), channel_names=["Hoechst", "GFP"], path="a.tif")
    for wrong in (-1, "-1", -2):
        with pytest.raises(InvalidRequestError) as caught:
            image.select_channels([wrong])
        number = int(wrong)
        expected = f"no channel {number!r}; the image has Hoechst, GFP (or indices 0..1)"
        assert caught.value.problem == expected


# ---------------------------------------------------------------- a truncated TIFF


def test_a_truncated_tiff_says_so_in_megabytes(tmp_path):
    whole = tmp_path / "whole.ome.tif"
    tifffile.imwrite(whole, np.ones((3, 600, 600), np.uint16), ome=True,
                     metadata={"axes": "ZYX"})  # fmt: skip
    data = whole.read_bytes()
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError) as caught:
        open_image(cut)
    problem = caught.value.problem
    assert problem.startswith(f"truncated or corrupt TIFF (file is {len(data) / 2e6:.1f} MB, ")
    assert "TiffFileError" not in problem and "<tifffile" not in problem


# ---------------------------------------------------------------- pixel sizes


def test_a_pixel_size_of_zero_or_negative_is_warned_about_naming_the_axis(tmp_path):
    file = _ome_with(tmp_path, "zero.ome.tif", **{"<Pixels ": '<Pixels PhysicalSizeX="0" '
                                                  'PhysicalSizeY="-0.5" '})  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(file) as image:
            assert image.pixel_sizes == {}
    said = _said(caught)
    assert any(m.startswith(f"{file}: X pixel size 0 is not a size") for m in said)
    assert any(m.startswith(f"{file}: Y pixel size -0.5 is not a size") for m in said)


def test_a_nonfinite_ngff_scale_is_warned_about_then_unknown(tmp_path):
    store = tmp_path / "nan.ome.zarr"
    create_ome_zarr(store, shape=(4, 4), dtype="uint8", axes="YX", chunks=(4, 4),
                    pixel_sizes={"Y": 0.5, "X": 0.5})  # fmt: skip
    meta = store / "zarr.json"
    attrs = json.loads(meta.read_text())
    level = attrs["attributes"]["ome"]["multiscales"][0]["datasets"][0]
    level["coordinateTransformations"][0]["scale"] = [0.5, float("nan")]
    meta.write_text(json.dumps(attrs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(store) as image:
            assert image.pixel_sizes == {"Y": 0.5}
    assert any(m.startswith(f"{store}: X scale nan is not a size") for m in _said(caught))


def test_info_lists_sizes_z_y_x_for_tiff_and_zarr_alike(tmp_path, capsys):
    tif = tmp_path / "a.ome.tif"
    sizes = {"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0}
    tifffile.imwrite(tif, np.ones((2, 6, 8), np.uint8), ome=True,
                     metadata={"axes": "ZYX", **sizes})  # fmt: skip
    store = tmp_path / "a.ome.zarr"
    create_ome_zarr(store, shape=(2, 6, 8), dtype="uint8", axes="ZYX", chunks=(2, 6, 8),
                    pixel_sizes={"Z": 2.0, "Y": 0.5, "X": 0.5})  # fmt: skip
    lines = []
    for path in (tif, store):
        assert main(["info", str(path), "--json"]) == 0
        described = json.loads(capsys.readouterr().out)
        assert list(described["pixel_sizes"]) == ["Z", "Y", "X"]
        assert main(["info", str(path)]) == 0
        lines += [x for x in capsys.readouterr().out.splitlines() if "pixel sizes" in x]
    assert lines == ["  pixel sizes (µm): Z=2 Y=0.5 X=0.5"] * 2


def test_a_czi_scaling_of_zero_is_warned_about_and_sizes_come_z_y_x():
    from scopeml.io.czi import _metadata

    xml = (
        "<ImageDocument><Metadata><Scaling><Items>"
        '<Distance Id="X"><Value>0</Value></Distance>'
        '<Distance Id="Y"><Value>2e-7</Value></Distance>'
        '<Distance Id="Z"><Value>1e-6</Value></Distance>'
        "</Items></Scaling></Metadata></ImageDocument>"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sizes, _ = _metadata(xml, "a.czi")
    assert list(sizes) == ["Z", "Y"] and sizes["Z"] == pytest.approx(1.0)
    assert sizes["Y"] == pytest.approx(0.2)
    assert _said(caught) == ["a.czi: X pixel size 0 is not a size (≤ 0 or not finite); X pixel "
                             "size unknown"]  # fmt: skip


def test_a_zero_z_step_of_a_one_plane_czi_is_not_warned_about_but_of_a_stack_it_is():
    from scopeml.io.czi import _metadata

    xml = (
        "<ImageDocument><Metadata><Scaling><Items>"
        '<Distance Id="X"><Value>2e-7</Value></Distance>'
        '<Distance Id="Z"><Value>0</Value></Distance>'
        "</Items></Scaling></Metadata></ImageDocument>"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        one_plane, _ = _metadata(xml, "a.czi", z_planes=1)
    assert one_plane == {"X": pytest.approx(0.2)} and _said(caught) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stack, _ = _metadata(xml, "a.czi", z_planes=5)
    assert stack == one_plane
    assert _said(caught) == ["a.czi: Z pixel size 0 is not a size (≤ 0 or not finite); Z pixel "
                             "size unknown"]  # fmt: skip


def test_an_ome_tiff_that_names_its_channels_is_not_said_to_be_a_guess(tmp_path):
    file = tmp_path / "named.ome.tif"
    tifffile.imwrite(file, _frames(3), metadata={"axes": "CYX"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_image(file) as image:
            assert image.sizes["C"] == 3
    assert not [m for m in _said(caught) if "named.ome.tif" in m]


def test_an_edited_width_says_so_not_tifffile_s_words(tmp_path):
    """tifffile's shape JSON against a rewritten ImageWidth tag: its "shaped series shape does
    not match page shape" was passed on as it is."""
    path = tmp_path / "edited.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16))
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(5000)
    with pytest.raises(InvalidImageError) as caught:
        open_image(path)
    assert caught.value.problem.endswith(
        "the size its description records differs from its pages' (an edited header?)"
    ), caught.value.problem
