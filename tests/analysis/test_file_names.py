"""Names that become result file names (class names; each class's measured channels in its
summary plots) are refused at load when two would be one file on a file system that ignores
case (macOS, Windows), or when Windows keeps the name for a device."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter
from scopeml.analysis.example import EXAMPLE_SETTINGS
from scopeml.analysis.settings import (
    InvalidSettingsError,
    Measurements,
    load_settings,
    parse_settings,
    same_file_name,
)
from scopeml.cli import main

SETTINGS = EXAMPLE_SETTINGS.replace("C0", "DAPI").replace("C1", "GFP")


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_analyze_refuses_class_names_that_differ_only_in_case(
    tmp_path: Path, images: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = SETTINGS.replace("name: spot", "name: Nucleus", 1)
    assert "name: nucleus" in text and "name: Nucleus" in text
    settings = tmp_path / "analysis.yaml"
    settings.write_text(text)
    code = main(["analyze", str(settings), str(images[0]), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith(f"error: {settings}: line {line_of(text, 'name: Nucleus')}: "), err
    assert "'nucleus'" in err and "'Nucleus'" in err and "differ only in case" in err
    assert "\n" not in err
    assert not (tmp_path / "out" / "images").exists()
    # the same file with the names apart runs
    settings.write_text(text.replace("name: Nucleus", "name: spot"))
    assert main(["analyze", str(settings), str(images[0]), "-o", str(tmp_path / "ok"), "-q"]) == 0


def test_a_class_measuring_two_channels_that_differ_only_in_case_is_refused(
    tmp_path: Path,
) -> None:
    """All channels measured (the default): the second channel's line; a list: its entry."""
    text = SETTINGS.replace("channels: [DAPI, GFP]", "channels: [DAPI, GFP, gfp]")
    text = text.replace("    measurements:\n      intensity: [DAPI]\n", "", 1)  # nucleus: all
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(InvalidSettingsError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line {line_of(text, 'channels: [DAPI, GFP, gfp]')}: ")
    assert "channels[2]" in message and "'GFP'" in message and "'gfp'" in message
    assert "'nucleus'" in message and "measurements.intensity" in message

    listed = SETTINGS.replace("channels: [DAPI, GFP]", "channels: [DAPI, GFP, gfp]").replace(
        "intensity: [DAPI, GFP]", "intensity: [DAPI, GFP,\n                gfp]"
    )
    path.write_text(listed)
    with pytest.raises(InvalidSettingsError, match=r"line \d+: classes\[0\]\.measurements"):
        load_settings(path)
    with pytest.raises(InvalidSettingsError) as caught:
        load_settings(path)
    assert f"line {line_of(listed, '                gfp]')}:" in str(caught.value)
    assert "class 'cell' measures channels 'GFP' and 'gfp'" in str(caught.value)

    # each class measuring one of the two is fine: its plots are then apart
    fixed = listed.replace("intensity: [DAPI, GFP,\n                gfp]", "intensity: [DAPI, gfp]")
    with pytest.raises(InvalidSettingsError, match="'spot' measures channels 'GFP' and 'gfp'"):
        parse_settings(fixed)  # spot measures all three
    fixed = fixed.replace("      shape: false\n", "      shape: false\n      intensity: [GFP]\n")
    assert parse_settings(fixed).channels == ["DAPI", "GFP", "gfp"]


def test_the_python_api_and_a_dict_are_refused_alike() -> None:
    seg = ThresholdSegmenter(channel="DAPI")
    with pytest.raises(ValidationError, match=r"'Nuclei' .* and 'nuclei' differ only in case"):
        AnalysisSettings(
            channels=["DAPI"],
            classes=[ClassSettings(name="Nuclei", segmenter=seg),
                     ClassSettings(name="nuclei", segmenter=seg)],
        )  # fmt: skip
    data = {"version": 1, "channels": ["DAPI", "Dapi"],
            "classes": [{"name": "n", "segmenter": {"kind": "threshold", "channel": "DAPI"},
                         "measurements": {"intensity": ["DAPI", "Dapi"]}}]}  # fmt: skip
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(data)
    assert str(caught.value).startswith("<settings>: classes[0].measurements.intensity[1]: ")
    # channels apart, or measured one at a time per class, are fine
    ok = AnalysisSettings(
        channels=["DAPI", "Dapi"],
        classes=[
            ClassSettings(name="a", segmenter=seg, measurements=Measurements(intensity=["DAPI"])),
            ClassSettings(name="A_2", segmenter=seg, measurements=Measurements(intensity=["Dapi"])),
        ],
    )
    assert [c.name for c in ok.classes] == ["a", "A_2"]


@pytest.mark.parametrize("name", ["CON", "nul", "Com1", "lpt9.cells", "aux"])
def test_a_windows_device_name_is_not_a_class_name(name: str) -> None:
    text = SETTINGS.replace("name: spot", f"name: {name}", 1)
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(text, path="s.yaml")
    message = str(caught.value)
    assert message.startswith(f"s.yaml: line {line_of(text, f'name: {name}')}: classes[2].name: ")
    assert f"'{name}' is a device name on Windows" in message


@pytest.mark.parametrize("name", ["console", "com10", "nuls", "auxiliary", "con_1"])
def test_names_that_only_begin_like_a_device_are_class_names(name: str) -> None:
    settings = parse_settings(SETTINGS.replace("name: spot", f"name: {name}", 1))
    assert settings.classes[2].name == name


def test_same_file_name_folds_case_and_unicode_forms() -> None:
    assert same_file_name(["cell", "Nucleus", "spot", "NUCLEUS"]) == (1, 3)
    assert same_file_name(["cell", "cell"]) == (0, 1)
    assert same_file_name(["Straße", "STRASSE"]) == (0, 1)  # casefold: ß is ss
    assert same_file_name(["\u00e9", "e\u0301"]) == (0, 1)  # é, e + combining acute
    assert same_file_name(["cell", "cells", "cell_1"]) is None
    assert same_file_name([]) is None


def test_a_channel_name_becomes_a_plot_file_name_inside_summary(tmp_path: Path) -> None:
    """A channel's name comes from the image (untrusted): in a summary plot's file name its
    other characters than letters, digits, _ - . are _, so a name holding ``/`` or ``..``
    writes no file outside ``summary/`` (it wrote ``../../escaped.png`` above the results)."""
    import numpy as np
    import tifffile

    from scopeml.analysis.runner import run_analysis

    pixels = np.zeros((1, 48, 48), np.uint16)
    pixels[0, 10:20, 10:20] = 1000
    channel = "x/../../../escaped"
    image = tmp_path / "a.ome.tif"
    tifffile.imwrite(
        image, pixels, ome=True, metadata={"axes": "CYX", "Channel": {"Name": [channel]}}
    )
    blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": channel}}
    settings = parse_settings({"version": 1, "channels": [channel], "classes": [blob]})
    result = run_analysis(settings, [image], tmp_path / "out" / "results")
    assert result.counts == {"a": {"blob": 1}}
    assert not list(tmp_path.rglob("escaped*.png"))
    summary = tmp_path / "out" / "results" / "summary"
    plots = sorted(p.name for p in summary.iterdir() if "intensity" in p.name)
    assert plots == ["blob_intensity_mean_x_.._.._.._escaped.png",
                     "blob_intensity_mean_x_.._.._.._escaped_per_image.png"]  # fmt: skip
    assert (
        "summary/blob_intensity_mean_x_.._.._.._escaped.png"
        in (summary.parent / "index.html").read_text()
    )


def test_channels_whose_plot_file_names_are_one_are_refused() -> None:
    blob = {"name": "n", "segmenter": {"kind": "threshold", "channel": "GFP_RFP"}}
    data = {"version": 1, "channels": ["GFP/RFP", "GFP_RFP"], "classes": [blob]}
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(data)
    message = str(caught.value)
    assert message.startswith("<settings>: channels[1]: class 'n' measures channels 'GFP/RFP' and")
    assert "would be one file (n_intensity_mean_GFP_RFP.png" in message
    assert same_file_name(["GFP/RFP", "gfp_rfp", "GFP RFP"]) == (0, 1)


def test_images_whose_names_differ_only_in_case_get_two_result_folders(tmp_path: Path) -> None:
    from scopeml.analysis.inputs import find_images

    files = []
    for folder, name in (("one", "Well.tif"), ("two", "well.tif"), ("three", "WELL.ome.tif")):
        (tmp_path / folder).mkdir()
        files.append(tmp_path / folder / name)
        files[-1].write_bytes(b"")
    found = find_images(files, warn=False)
    assert found.names == ["Well", "well-2", "WELL-3"]
    assert same_file_name(found.names) is None
