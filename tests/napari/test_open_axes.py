"""A plain multi-page TIFF's pages are of unknown kind: the reader shows them as Z planes and
says where to choose; the open widget's axes choice reads them as channels (or time points),
and the widgets reopen the file so. Layers are named by their file, so files can be told apart."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.pixel import train_classifier

pytest.importorskip("napari", reason="napari is not installed (pip install 'scopeml[napari]')")


@pytest.fixture
def two_pages(tmp_path):
    """A plain TIFF of two different pages (no ImageJ or OME metadata): tifffile says QYX."""
    rng = np.random.default_rng(5)
    pages = np.stack([rng.integers(0, 900, (48, 64)), rng.integers(1000, 4000, (48, 64))])
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, pages.astype(np.uint16))
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == "QYX"
    return path, pages.astype(np.uint16)


def test_the_reader_says_where_to_choose_the_axes(viewer, two_pages):
    path, pages = two_pages
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (layer,) = viewer.open(str(path), plugin="scopeml")
    assert layer.name == "two" and layer.data.shape == (2, 48, 64)  # read as Z, by guess
    np.testing.assert_array_equal(np.asarray(layer.data), pages)
    note = (
        "two.tif: its 2 pages are of unknown kind and are shown as planes (Z); if they are "
        "time points or channels, reopen it in Plugins › scopeml › Open image scene with axes "
        "TYX or CYX"
    )
    assert layer.metadata["scopeml"]["note"] == note
    assert note in [str(w.message) for w in caught]
    said = [str(w.message) for w in caught if "unknown kind" in str(w.message)]
    assert said == [note]  # once, in napari's words (not the CLI's --axes as well)


def test_a_short_stack_stored_as_colours_is_said_to_be_read_as_channels(viewer, tmp_path):
    """tifffile.imwrite stores 3–4 pages as the colour samples of one pixel: read as channels
    by guess, said with the way to read them as time points or planes."""
    path = tmp_path / "four.tif"
    frames = np.random.default_rng(2).integers(0, 999, (4, 32, 40)).astype(np.uint16)
    tifffile.imwrite(path, frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers = viewer.open(str(path), plugin="scopeml")
    assert [layer.name for layer in layers] == ["four C0", "four C1", "four C2", "four C3"]
    note = (
        "four.tif: its 4 pages are stored as colours and are shown as channels (C); if they are "
        "time points or planes, reopen it in Plugins › scopeml › Open image scene with axes "
        "TYX or ZYX"
    )
    assert [str(w.message) for w in caught if "four.tif" in str(w.message)] == [note]
    with sm.open_image(path, axes="TYX") as image:  # the way out it names reads them so
        assert image.sizes["T"] == 4
        np.testing.assert_array_equal(image.read()[0, :, 0, 0], frames)


def test_the_open_widget_reads_the_pages_as_channels(viewer, two_pages):
    from scopeml.napari._source import layer_image
    from scopeml.napari.open_widget import OpenImageWidget
    from scopeml.napari.pixel_widget import PixelClassifierWidget

    path, pages = two_pages
    widget = OpenImageWidget(viewer)
    widget.path.setText(str(path))
    (guessed,) = widget.open()  # automatic: Z, and the status says what to do
    assert guessed.data.shape == (2, 48, 64)
    assert widget.status.text().endswith(
        "if they are time points or channels, choose axes TYX or CYX above and Open again"
    )
    widget.axes.setCurrentText("cyx")  # typed, in lower case
    first, second = widget.open()
    assert [first.name, second.name] == ["two C0 (CYX)", "two C1 (CYX)"]  # one scene: no number
    np.testing.assert_array_equal(np.asarray(first.data), pages[0])
    np.testing.assert_array_equal(np.asarray(second.data), pages[1])
    assert widget.status.text() == f"opened {path} with axes CYX"
    with layer_image(second) as image:  # what the widgets see: the file as opened
        assert image.sizes["C"] == 2 and image.sizes["Z"] == 1
        np.testing.assert_array_equal(image.read()[0, 0, 1, 0], pages[1])
    pixel = PixelClassifierWidget(viewer)
    pixel.image_choice.setCurrentText(second.name)
    assert pixel.channels.text() == "trains on channels C0, C1"

    widget.axes.setCurrentText("TYX")
    (movie,) = widget.open()
    assert movie.data.shape == (2, 48, 64) and movie.metadata["scopeml"]["axes"] == "TYX"
    assert movie.name == "two (TYX)" and movie.axis_labels == ("t", "y", "x")  # slider: t
    with layer_image(movie) as image:
        assert image.sizes["T"] == 2 and image.sizes["Z"] == 1


def test_wrong_axes_are_one_line_in_the_status(viewer, two_pages, tmp_path):
    from scopeml.napari.open_widget import OpenImageWidget

    path, _ = two_pages
    widget = OpenImageWidget(viewer)
    widget.path.setText(str(path))
    widget.axes.setCurrentText("TZYX")
    assert widget.open() == []
    text = widget.status.text()
    assert text.startswith("error: ") and "TZYX" in text and "two.tif" in text
    assert "\n" not in text
    zarr_image = tmp_path / "cells.ome.zarr"
    from scopeml.demo import write_sample_image

    write_sample_image(zarr_image, size=64, block=64, seed=1)
    widget.path.setText(str(zarr_image))
    widget.axes.setCurrentText("CYX")
    assert widget.open() == []
    assert "axes choice is for TIFF files" in widget.status.text()


def test_single_channel_files_are_named_by_their_file(viewer, tmp_path):
    for name in ("a.tif", "b.ome.tif", "plate_A1.v2.tiff"):
        tifffile.imwrite(tmp_path / name, np.zeros((16, 16), np.uint8))
    layers = [viewer.open(str(tmp_path / n), plugin="scopeml")[0] for n in sorted(
        ("a.tif", "b.ome.tif", "plate_A1.v2.tiff"))]  # fmt: skip
    assert [layer.name for layer in layers] == ["a", "b", "plate_A1.v2"]


def test_apply_segments_the_file_with_the_axes_it_was_opened_with(viewer, qtbot, two_pages):
    """A 2-channel model applied to a plain TIFF opened as CYX sees two channels, not one
    channel of two Z planes: the run reopens the file with the chosen axes."""
    from scopeml.napari.apply_widget import ApplyWidget
    from scopeml.napari.open_widget import OpenImageWidget

    path, pages = two_pages
    truth = (pages[1] > 2500).astype(np.uint8) + 1
    model = train_classifier(
        pages.astype(np.float32), truth, features="gaussian_smoothing:1", n_estimators=3, seed=0
    ).save(path.parent / "two.czseg")
    opener = OpenImageWidget(viewer)
    opener.path.setText(str(path))
    opener.axes.setCurrentText("CYX")
    _, second = opener.open()
    widget = ApplyWidget(viewer)
    widget.image_choice.setCurrentText(second.name)
    widget.set_model(str(model))
    widget.output.setText(str(path.parent / "two.seg.ome.zarr"))
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=180_000)
    assert widget.status.text().startswith("wrote"), widget.status.text()
    expected = sm.segment(sm.open_image(path, axes="CYX"), model, path.parent / "py.ome.zarr")
    result = sm.Segmentation(path.parent / "two.seg.ome.zarr").labels.read()
    assert result.shape == expected.labels.read().shape and result.shape[3] == 1  # one Z plane
    np.testing.assert_array_equal(result, expected.labels.read())


def test_both_guesses_of_a_stack_of_stacks_are_said(tmp_path):
    """20 × 5 pages (CTC's CHO: 20 time points of 5 planes): the note named only the first
    guess, and that one was the wrong way round (20 planes of 5 time points)."""
    from scopeml.napari._reader import ambiguous_pages

    path = tmp_path / "cho.tif"
    tifffile.imwrite(path, np.zeros((20, 5, 8, 9), np.uint8))
    assert ambiguous_pages(str(path)) == (
        "cho.tif: its 20 × 5 pages are of unknown kind and are shown as 20 time points (T) of "
        "5 planes (Z); if they are otherwise, reopen it in Plugins › scopeml › Open image scene "
        "with axes ZTYX or CZYX or TCYX"
    )
