"""Names are compared as Windows makes them file names: it drops a name's trailing dots and
spaces (``a .tif``'s folder ``a `` is ``a`` there), and spaces before an extension when it
tells a device (``CON .tif`` is ``CON``), also the ports with superscript digits (``COM¹``).
An image's result folder is renamed (``_CON``, ``a-2``), class names are refused at load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.analysis.inputs import find_images
from scopeml.analysis.runner import run_analysis
from scopeml.analysis.settings import (
    InvalidSettingsError,
    is_device_name,
    parse_settings,
    same_file_name,
)
from scopeml.cli import main


def blob(name: str) -> dict:
    return {"name": name, "segmenter": {"kind": "threshold", "channel": "C0"}}


def touch(folder: Path, names: list[str]) -> list[Path]:
    for name in names:
        (folder / name).write_bytes(b"")
    return [folder / name for name in names]


@pytest.mark.parametrize(
    ("file", "name"),
    [("CON .tif", "_CON"), ("nul.tif.", "_nul.tif"), ("Aux  .ome.tif", "_Aux"),
     ("con. .tif", "_con"), ("PRN .x.tif", "_PRN .x"), ("COM\u00b9.tif", "_COM\u00b9"),
     ("lpt\u00b3 .tif", "_lpt\u00b3"), ("conin$.tif", "_conin$")],
)  # fmt: skip
def test_a_device_name_windows_reads_past_trailing_dots_and_spaces_gets_a_leading_underscore(
    tmp_path: Path, file: str, name: str
) -> None:
    found = find_images(touch(tmp_path, [file]), warn=False)
    assert found.names == [name]
    assert not is_device_name(name)
    assert is_device_name(file)


@pytest.mark.parametrize("file", ["com10.tif", "con_.tif", "console .tif", "com\u2074.tif"])
def test_names_that_are_no_device_on_windows_are_kept(tmp_path: Path, file: str) -> None:
    assert not is_device_name(file)
    assert find_images(touch(tmp_path, [file]), warn=False).names == [file[:-4].rstrip()]


def test_a_name_ending_in_a_space_or_dot_is_the_name_without_them(tmp_path: Path) -> None:
    """``a .tif`` would get folder ``a ``: Windows makes it ``a``, the folder of ``a.tif``."""
    found = find_images([tmp_path / f for f in touch(tmp_path, ["a.tif", "a .tif"])], warn=False)
    assert found.names == ["a", "a-2"]
    found = find_images([tmp_path], warn=False)  # in a folder: sorted by file name
    assert [p.name for p in found.paths] == ["a .tif", "a.tif"]
    assert found.names == ["a", "a-2"]
    assert same_file_name(found.names) is None
    named = touch(tmp_path, ["b. .tif", "B.tif", " .tif", "c.. "])
    assert find_images(named, warn=False).names == ["b", "B-2", "image", "c"]


def test_images_a_and_a_space_get_two_result_folders(tmp_path: Path) -> None:
    pixels = np.zeros((48, 48), np.uint16)
    pixels[10:20, 10:20] = 1000
    images = [tmp_path / "a.tif", tmp_path / "a .tif"]
    for image in images:
        tifffile.imwrite(image, pixels)
    settings = parse_settings({"version": 1, "channels": ["C0"],
                               "classes": [blob("blob")]})  # fmt: skip
    result = run_analysis(settings, images, tmp_path / "results")
    assert result.counts == {"a": {"blob": 1}, "a-2": {"blob": 1}}
    folders = sorted(p.name for p in (tmp_path / "results" / "images").iterdir())
    assert folders == ["a", "a-2"]
    record = json.loads((tmp_path / "results" / "images" / "a-2" / "record.json").read_text())
    assert Path(record["image"]).name == "a .tif"


def test_analyze_refuses_class_names_x_and_x_dot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each class gets a folder ``CLASS/`` while an image is analysed: ``x.`` is ``x``."""
    text = (
        "version: 1\nchannels: [C0]\nclasses:\n"
        "  - name: x\n    segmenter: {kind: threshold, channel: C0}\n"
        "  - name: x.\n    segmenter: {kind: threshold, channel: C0}\n"
    )
    settings = tmp_path / "analysis.yaml"
    settings.write_text(text)
    image = tmp_path / "i.tif"
    tifffile.imwrite(image, np.zeros((16, 16), np.uint16))
    code = main(["analyze", str(settings), str(image), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith(f"error: {settings}: line 6: classes[1].name: "), err
    assert "'x'" in err and "'x.'" in err and "one name on Windows" in err
    assert "\n" not in err
    assert not (tmp_path / "out" / "images").exists()


@pytest.mark.parametrize(("a", "b"), [("x", "x."), ("Cells", "cells.."), ("n.", "n..")])
def test_class_names_differing_only_in_trailing_dots_are_refused(a: str, b: str) -> None:
    classes = [blob(a), blob(b)]
    with pytest.raises(InvalidSettingsError, match=r"classes\[1\]\.name: class names"):
        parse_settings({"version": 1, "channels": ["C0"], "classes": classes})


@pytest.mark.parametrize("name", ["con.", "NUL..", "aux.x."])
def test_a_device_name_with_trailing_dots_is_not_a_class_name(name: str) -> None:
    with pytest.raises(InvalidSettingsError, match="is a device name on Windows"):
        parse_settings({"version": 1, "channels": ["C0"], "classes": [blob(name)]})


def test_channels_a_and_a_dot_stay_apart_inside_a_plot_name() -> None:
    """A channel is inside its plot's name (``CLASS_intensity_mean_a..png``): its trailing
    dot is kept there, so ``a`` and ``a.`` are two plots, not refused."""
    data = {"version": 1, "channels": ["a", "a."], "classes": [{"name": "n", "segmenter":
            {"kind": "threshold", "channel": "a"}}]}  # fmt: skip
    assert parse_settings(data).channels == ["a", "a."]
    assert same_file_name(["a", "a."]) == (0, 1)
    assert same_file_name(["a", "a."], part=True) is None
