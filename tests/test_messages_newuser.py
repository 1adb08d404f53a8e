"""Messages and small command-line gaps a new user met (newuser20 findings 4, 5, 8-11): each
message says what is wrong in the user's words, and a missing file reads the same everywhere."""

from __future__ import annotations

import errno
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import (
    ImageNotFoundError,
    IncompatibleModelError,
    InvalidImageError,
    ModelNotFoundError,
)
from scopeml.io.image import Image
from scopeml.model.spec import ModelSpec
from scopeml.tiling.model_inputs import channel_mismatch, warn_intensity_range
from scopeml.tiling.options import SegmentOptions
from scopeml.tiling.scale import ScaledModel


class _Trained:
    """A model trained on 1 or 2 channels of intensities 4..216 (a pixel classifier's record)."""

    def __init__(self, channels: int = 1) -> None:
        self.spec = ModelSpec(spatial_dims=2, in_channels=channels, classes=("bg", "fg"),
                              halo=(0, 0), name="pixel classifier")  # fmt: skip
        self.info = {"intensity_range": {"percentiles": [0.1, 99.9], "low": [4] * channels,
                                         "high": [216] * channels}}  # fmt: skip


def _range_warning(pixels: np.ndarray, names: list[str] | None = None) -> str:
    image = Image(pixels, channel_names=names, path="nan.tif")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_intensity_range(image, _Trained(pixels.shape[2]), SegmentOptions())
    assert len(caught) == 1
    return str(caught[0].message)


# ------------------------------------------------------- 1. the range warning on a NaN image


def test_the_range_warning_says_an_all_nan_image_has_no_finite_pixel() -> None:
    message = _range_warning(np.full((1, 1, 1, 1, 32, 32), np.nan, np.float32))
    assert "0..0" not in message  # was: "this image has 0..0: its classes may be wrong"
    assert "sampled pixels are all NaN or infinite" in message
    assert "another bit depth" not in message  # no advice that does not apply
    pixels = np.full((1, 1, 2, 1, 32, 32), np.nan, np.float32)
    pixels[0, 0, 1] = np.arange(1024).reshape(32, 32) * 1000.0  # GFP finite, far brighter
    message = _range_warning(pixels, ["DAPI", "GFP"])
    assert "this image has DAPI no finite pixel, GFP " in message and "0..0" not in message


# ------------------------------------------------------- 2. exporting a pixel classifier


@pytest.mark.parametrize("extra", ["installed", "missing"])
def test_exporting_a_pixel_classifier_says_why_it_cannot(
    tmp_path: Path, capsys, monkeypatch, extra: str
) -> None:
    """Also without the bioimageio extra: installing it would not help a classifier."""
    if extra == "installed":
        pytest.importorskip("bioimageio.spec")
    else:
        from scopeml.model.bioimageio import package

        def missing() -> None:
            raise AssertionError("asked for the extra before refusing the classifier")

        monkeypatch.setattr(package, "require_spec", missing)
    image = np.zeros((32, 32), np.uint16)
    image[8:20, 8:20] = 1000
    labels = np.zeros((32, 32), np.uint8)
    labels[0:4, :] = 1
    labels[10:14, 10:14] = 2
    classifier = sm.train_pixel_classifier(image, labels, n_estimators=2)
    czseg = classifier.save(tmp_path / "px.czseg")
    with pytest.raises(IncompatibleModelError, match="random forest, not an ONNX graph"):
        sm.export_bioimageio(czseg, tmp_path / "px.zip")
    assert main(["model", "export-bioimageio", str(czseg), "-o", str(tmp_path / "px.zip")]) == 2
    err = capsys.readouterr().err
    assert "bioimage.io package holds a graph, so it cannot be exported" in err
    assert "loader" not in err and not (tmp_path / "px.zip").exists()


def test_exporting_a_package_says_it_is_one(tmp_path: Path, capsys) -> None:
    """Not "no model.json … in the archive": the package is named as one, with the way on."""
    pytest.importorskip("bioimageio.spec")
    package = sm.export_bioimageio("nuclei", tmp_path / "nuclei.zip")
    args = ["model", "export-bioimageio", str(package), "-o", str(tmp_path / "again.zip")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {package}: is a bioimage.io package already: export the czann it "
        "came from, or make one with scopeml model convert PACKAGE -o MODEL.czann"
    )
    assert not (tmp_path / "again.zip").exists()


# ------------------------------------------------------- 3. a missing file, one wording


def test_a_missing_image_is_a_file_not_found_error_as_a_missing_model_is(tmp_path: Path) -> None:
    missing = tmp_path / "nosuch.tif"
    with pytest.raises(FileNotFoundError) as caught:  # was InvalidImageError only
        sm.open_image(missing)
    error = caught.value
    assert isinstance(error, ImageNotFoundError) and isinstance(error, InvalidImageError)
    assert isinstance(error, ValueError)  # as every InvalidImageError
    assert error.errno == errno.ENOENT and error.filename == str(missing)
    assert str(error) == f"{missing}: no such file or folder"  # not OSError's "[Errno 2] …"
    with pytest.raises(ModelNotFoundError) as model:
        sm.open_model(tmp_path / "nosuch.czann")
    assert isinstance(model.value, FileNotFoundError) and model.value.errno == errno.ENOENT
    from scopeml.objects.images import open_labels

    with pytest.raises(ImageNotFoundError, match="no such file or folder"):
        open_labels(tmp_path / "nosuch_labels.tif")  # was "No such file or directory"


def test_every_missing_file_reads_the_same_on_the_command_line(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nosuch.onnx"
    out = str(tmp_path / "m.czann")
    assert main(["model", "convert", str(missing), "-o", out]) == 2  # Python's own OSError
    assert capsys.readouterr().err == f"error: {missing}: no such file or folder\n"
    settings = tmp_path / "a.yaml"
    settings.write_text(
        "version: 1\nchannels: [C0]\nclasses:\n  - name: blob\n    segmenter:\n"
        "      kind: threshold\n      channel: C0\n      method: otsu\n"
    )
    folder = tmp_path / "nosuch_folder"
    assert main(["analyze", str(settings), str(folder), "-o", str(tmp_path / "r")]) == 2
    assert f"error: {folder}: no such file or folder" in capsys.readouterr().err
    from scopeml.objects.table import read_table
    from scopeml.train.files import read_array

    for read, name in ((read_table, "t.csv"), (read_array, "a.npy")):
        with pytest.raises(FileNotFoundError) as caught:
            read(tmp_path / name)
        assert caught.value.strerror == "no such file"  # was "No such file"


def test_a_missing_model_lists_the_built_in_ones_without_a_stray_semicolon(
    tmp_path: Path, capsys
) -> None:
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, np.zeros((16, 16), np.uint8))
    args = ["segment", str(image), "-o", str(tmp_path / "a.ome.zarr"), "-m"]
    assert main([*args, "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.endswith("nosuch: no such model file or built-in model (built-in models: nuclei)\n")
    assert main([*args, "nucleii"]) == 2
    assert capsys.readouterr().err.endswith("(built-in models: nuclei); did you mean 'nuclei'?\n")


# ------------------------------------------------------- 4. truncated TIFFs


def _cut(tmp_path: Path, pixels: np.ndarray, cut: int) -> str:
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, pixels)
    data = whole.read_bytes()
    part = tmp_path / "cut.tif"
    part.write_bytes(data[:-cut])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pages of unknown kind read as Z
        with pytest.raises(InvalidImageError) as caught:
            sm.open_image(part)
    return caught.value.problem


def test_a_tiff_cut_by_a_few_bytes_gives_both_sizes_in_bytes(tmp_path: Path) -> None:
    problem = _cut(tmp_path, np.ones((512, 512), np.uint16), 10)
    # was "file is 0.5 MB, pixel data reaches 0.5 MB"
    assert problem == (
        "truncated or corrupt TIFF (file is 524,534 bytes, pixel data reaches 524,544 bytes)"
    )


def test_a_tiff_cut_before_its_last_page_says_truncated_with_its_size(tmp_path: Path) -> None:
    problem = _cut(tmp_path, np.ones((5, 256, 256), np.uint16), 1000)
    # was "corrupt TIFF structure: invalid page offset 655616"
    assert (
        problem
        == "truncated or corrupt TIFF (file is 655,280 bytes, a page starts at 655,616 bytes)"
    )
    problem = _cut(tmp_path, np.ones((5, 256, 256), np.uint16), 400_000)
    assert problem == "truncated or corrupt TIFF (file is 0.3 MB, a page starts at 0.7 MB)"


def test_a_tiff_cut_inside_its_header_says_truncated_with_its_size(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "whole.tif", np.ones((8, 8), np.uint8))
    head = tmp_path / "head.tif"
    head.write_bytes((tmp_path / "whole.tif").read_bytes()[:16])
    with pytest.raises(InvalidImageError) as caught:
        sm.open_image(head)
    assert caught.value.problem.startswith("truncated or corrupt TIFF (file is 16 bytes): ")
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty file \\(0 bytes\\), not a TIFF"):
        sm.open_image(empty)


# ------------------------------------------------------- 5. the channel error's model name


def test_the_channel_error_names_the_model_not_its_scale_wrapper(tmp_path: Path, capsys) -> None:
    class Nuclei:
        spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0),
                         name="scopeml nuclei")  # fmt: skip

    image = Image(np.zeros((1, 1, 3, 1, 8, 8)), channel_names=["R", "G", "B"], path="skin.tif")
    message = channel_mismatch(image, ScaledModel(Nuclei(), 0.125))
    assert message.startswith("image has 3 channels; model 'scopeml nuclei' expects 1")
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((64, 64, 3), np.uint8), photometric="rgb")
    out = str(tmp_path / "rgb.ome.zarr")
    assert main(["segment", str(rgb), "-m", "nuclei", "-o", out, "--scale", "0.5", "-q"]) == 2
    err = capsys.readouterr().err
    assert "model 'scopeml nuclei' expects 1" in err and "at scale" not in err


# ------------------------------------------------------- 6. --version, analyze --axes


def test_version_prints_the_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"scopeml {sm.__version__}\n"


def test_analyze_takes_axes_over_the_settings_key(tmp_path: Path, capsys) -> None:
    from tests.analysis.conftest import cell_image

    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, cell_image(seed=5))  # two pages: channels, read as Z unless told
    settings = tmp_path / "cells.yaml"
    settings.write_text(
        "version: 1\nchannels: [C0, C1]\naxes: ZYX\nclasses:\n  - name: cell\n"
        "    segmenter:\n      kind: threshold\n      channel: C1\n      method: otsu\n"
    )
    args = ["analyze", str(settings), str(image), "-q", "-o"]
    assert main([*args, str(tmp_path / "as_z")]) == 2  # the key's ZYX: one channel
    assert "has 1 and names none (C0): too few" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "r"), "--axes", "CYX"]) == 0  # was: No such option
    assert "1 of 1 images analysed" in capsys.readouterr().out
    assert "axes: CYX" in (tmp_path / "r" / "settings.yaml").read_text()


# ------------------------------------------------------- 7. validate without bioimageio.core


def test_validate_says_how_to_install_bioimageio_core(monkeypatch) -> None:
    from scopeml.model.bioimageio.run import _core_test

    monkeypatch.setitem(sys.modules, "bioimageio.core", None)  # as if not installed
    (line,) = _core_test(Path("unused.zip"))
    assert "its own model test was not run" in line
    assert "pip install --no-deps bioimageio.core==0.11.0" in line


# ------------------------------------------------------- 8. 2-D scribbles for a Z stack


def test_two_d_scribbles_for_a_z_stack_are_told_how_to_stack_them(tmp_path: Path, capsys) -> None:
    image = tmp_path / "stack.tif"
    tifffile.imwrite(image, np.zeros((5, 16, 24), np.uint16))
    labels = tmp_path / "scribbles.tif"
    tifffile.imwrite(labels, np.repeat(np.array([1, 2], np.uint8), 8)[:, None].repeat(24, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["pixel", "train", str(image), str(labels), "-o", str(tmp_path / "m.czseg")])
    assert code == 2
    assert capsys.readouterr().err.endswith(
        "labels are Z×Y×X 1×16×24; the image is 5×16×24: give a label stack of the image's 5 "
        "planes, your labels on the planes you painted and 0 on the others\n"
    )


def test_movie_scribbles_for_a_movie_read_as_planes_name_the_axes(tmp_path: Path, capsys) -> None:
    """The napari widget's scribbles of a plain multi-page TIFF movie are TYX; the movie is
    read as Z unless told: the line named a label stack of 1 plane (there were 5 frames)."""
    image = tmp_path / "movie.tif"
    tifffile.imwrite(image, np.zeros((5, 16, 24), np.uint16))
    labels = tmp_path / "scribbles.ome.tif"
    strokes = np.zeros((5, 16, 24), np.uint8)
    strokes[:, :4], strokes[:, -4:] = 1, 2
    tifffile.imwrite(labels, strokes, metadata={"axes": "TYX"})
    args = ["pixel", "train", str(image), str(labels), "-o", str(tmp_path / "m.czseg")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 2
        assert capsys.readouterr().err.endswith(
            "labels have 5 time points; the image is read as 5 Z planes: pass --axes TYX if they "
            "are time points\n"
        )
        assert main([*args, "--axes", "TYX"]) == 0  # the fix it names


@pytest.mark.parametrize(
    ("cut", "said"),
    [
        (lambda data: data[:8], "truncated TIFF: a header and no image (file is 8 bytes)"),
        (lambda data: data[:4], "truncated TIFF header (file is 4 bytes; a TIFF header has 8)"),
        (lambda data: data[:8] + b"\xff" * 64, "truncated or corrupt TIFF (file is 72 bytes)"),
    ],
    ids=["header only", "half a header", "garbage tag table"],
)
def test_a_tiff_cut_at_its_header_says_so(tmp_path: Path, cut, said: str) -> None:
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, np.zeros((2, 16, 16), np.uint16))
    broken = tmp_path / "broken.tif"
    broken.write_bytes(cut(whole.read_bytes()))
    with pytest.raises(InvalidImageError) as err:
        sm.open_image(broken)
    assert said in str(err.value) and "broken.tif" in str(err.value)


def test_a_tiff_whose_directory_comes_last_cut_in_half_says_truncated(tmp_path: Path) -> None:
    """Writers that put the image directory after the pixels (BBBC007's) lose it first when a
    file is cut: it said 'the TIFF holds no images'."""
    pixels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    head = b"II*\x00" + (8 + pixels.nbytes).to_bytes(4, "little")  # the IFD after the pixels
    entries = [(256, 3, 1, 64), (257, 3, 1, 64), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (278, 3, 1, 64), (279, 4, 1, pixels.nbytes)]  # fmt: skip
    ifd = len(entries).to_bytes(2, "little") + b"".join(
        tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + count.to_bytes(4, "little")
        + value.to_bytes(4, "little") for tag, kind, count, value in entries
    ) + bytes(4)  # fmt: skip
    whole = tmp_path / "last.tif"
    whole.write_bytes(head + pixels.tobytes() + ifd)
    np.testing.assert_array_equal(tifffile.imread(whole), pixels)  # a valid TIFF
    broken = tmp_path / "half.tif"
    broken.write_bytes(whole.read_bytes()[: len(head) + pixels.nbytes // 2])
    said = r"half\.tif: truncated or corrupt TIFF \(file is 4,104 bytes, its first image "
    with pytest.raises(InvalidImageError, match=said + r"directory lies at 8,200 bytes\)"):
        sm.open_image(broken)


def test_a_store_that_is_not_there_is_said_so_by_every_objects_call(tmp_path: Path) -> None:
    """``Segmentation("typo.ome.zarr")`` is built lazily; labelling or measuring it raised
    ``[Errno 2]`` and zarr's own "does not exist", and ``None`` was "an array of shape ()"."""
    missing = sm.Segmentation(tmp_path / "typo.ome.zarr")
    for call in (
        lambda: sm.label_objects(missing, tmp_path / "o.ome.zarr", class_=2),
        lambda: sm.measure_objects(missing),
        lambda: sm.label_objects(tmp_path / "typo.tif", tmp_path / "o.ome.zarr", class_=2),
    ):
        with pytest.raises(ImageNotFoundError, match=r"typo\.(ome\.zarr: no such store|tif: no)"):
            call()
    for call in (
        lambda: sm.measure_objects(None),
        lambda: sm.label_objects(None, tmp_path / "o.ome.zarr"),
    ):
        with pytest.raises(sm.ScopeMLError, match=r"no objects given \(None\): give labels"):
            call()


def test_an_image_takes_nested_lists_as_segment_does_and_refuses_other_things() -> None:
    assert Image([[1, 2], [3, 4]]).read()[0, 0, 0, 0].tolist() == [[1, 2], [3, 4]]
    with pytest.raises(sm.ScopeMLError, match=r"must be an array .*, not int"):
        Image(5)  # was AttributeError: 'int' object has no attribute 'shape'


def test_a_region_takes_slices_as_image_read_does() -> None:
    pixels = np.random.default_rng(0).integers(0, 900, (64, 80)).astype(np.uint16)
    by_slice = sm.predict_region(pixels, "nuclei", {"y": slice(0, 32), "X": slice(None, 40)})
    by_pair = sm.predict_region(pixels, "nuclei", {"y": (0, 32), "X": (0, 40)})
    np.testing.assert_array_equal(by_slice, by_pair)
    tail = sm.predict_region(pixels, "nuclei", {"y": slice(-10, None)})  # from the end
    np.testing.assert_array_equal(tail, sm.predict_region(pixels, "nuclei", {"y": (54, 64)}))
    for bad in (slice(0, 32, 2), slice("a", 3)):
        with pytest.raises(sm.ScopeMLError, match="give \\(start, stop\\) as two integers"):
            sm.predict_region(pixels, "nuclei", {"y": bad})


def test_the_array_layout_hint_names_axes_and_is_left_out_when_they_were_given(tmp_path) -> None:
    """A 3-channel array for a 1-channel model: the hint said "a Z stack is Z[None]" (no word of
    axes='ZYX') and was given also to an RGB picture read with axes='YXC'."""
    rgb = np.zeros((32, 40, 3), np.uint8)
    with pytest.raises(sm.ScopeMLError) as read_as_is:
        sm.segment(np.moveaxis(rgb, -1, 0), "nuclei", tmp_path / "a.ome.zarr")
    assert (
        "a Z stack is axes='ZYX' or Z[None], an RGB picture axes='YXC'" in read_as_is.value.problem
    )
    with pytest.raises(sm.ScopeMLError) as told:
        sm.segment(rgb, "nuclei", tmp_path / "b.ome.zarr", axes="YXC")
    assert "expects 1: choose it with" in told.value.problem
    assert "axes=" not in told.value.problem


def test_a_resume_on_another_images_store_names_the_array_as_such(tmp_path) -> None:
    """An array has no path: the refusal said "(…/img.tif, not None)"."""
    pixels = np.random.default_rng(0).integers(0, 900, (48, 40)).astype(np.uint16)
    file = tmp_path / "img.tif"
    tifffile.imwrite(file, pixels)
    out = tmp_path / "o.ome.zarr"
    sm.segment(file, "nuclei", out, scale=1)
    with pytest.raises(sm.ScopeMLError) as refused:
        sm.segment(pixels[::-1].copy(), "nuclei", out, scale=1, resume=True)
    assert f"another image ({file.resolve()}, not an array in memory)" in refused.value.problem
