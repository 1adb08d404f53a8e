"""One settings file for files that call a channel by different names (``DAPI`` on one
microscope, ``Hoechst`` on another): ``aliases:`` lists a channel's other names, a file is read
by the first name it has, and the results use the settings' names, whatever the file said."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tifffile

from scopeml.analysis import InvalidSettingsError, parse_settings, run_analysis, save_settings
from scopeml.cli import main
from tests.analysis.conftest import cell_image, three_level_settings, write_image


def named(path: Path, pixels, names: list[str]) -> Path:
    tifffile.imwrite(path, pixels, ome=True, metadata={"axes": "CYX", "Channel": {"Name": names}})
    return path


@pytest.fixture
def batch(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = cell_image((160, 160), seed=3, n_cells=4)
    settings = three_level_settings().model_copy(
        update={"aliases": {"DAPI": ["Hoechst 33342", "H33342"], "GFP": ["FITC"]}}
    )
    save_settings(settings, tmp_path / "s.yaml")
    return {
        "settings": tmp_path / "s.yaml",
        "dapi": write_image(folder / "a_dapi.ome.tif", pixels),
        "hoechst": named(folder / "b_hoechst.ome.tif", pixels[::-1], ["FITC", "H33342"]),
        "other": named(folder / "c_other.ome.tif", pixels, ["DRAQ5", "GFP"]),
    }


def test_a_channel_is_read_by_its_alias_under_its_own_name(batch, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["analyze", str(batch["settings"]), str(batch["hoechst"]), str(batch["dapi"])]
    assert main([*args, "-o", str(out)]) == 0
    assert "names no channels" not in capsys.readouterr().err  # chosen, not guessed
    tables = [pd.read_csv(out / "images" / name / "cell.csv").drop(columns="image")
              for name in ("a_dapi", "b_hoechst")]  # fmt: skip
    pd.testing.assert_frame_equal(*tables)  # the channels found in either order
    assert len(tables[0]) == 4
    columns = pd.read_csv(out / "summary" / "nucleus_per_image.csv").columns
    assert any("DAPI" in c for c in columns) and not any("H33342" in c for c in columns)


def test_a_file_without_any_name_of_a_channel_says_where_its_other_names_go(batch, tmp_path):
    settings, images = batch["settings"], [batch["dapi"], batch["other"]]
    result = run_analysis(settings, images, tmp_path / "out")
    (failure,) = result.failures
    assert "channel 'DAPI' is not in the image (it has DRAQ5, GFP)" in str(failure)
    assert "aliases:" in str(failure)
    with pytest.raises(InvalidSettingsError, match=r"'DAPI' is not in .*c_other.*aliases:"):
        run_analysis(settings, images[::-1], tmp_path / "first")


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ({"DAPl": ["x"]}, r"aliases\.DAPl: 'DAPl' is not an input channel .*did you mean 'DAPI'"),
        ({"DAPI": ["GFP"]}, r"aliases\.DAPI\[0\]: 'GFP' is already an input channel"),
        ({"DAPI": ["x"], "GFP": ["x"]}, r"aliases\.GFP\[0\]: 'x' is already an alias of 'DAPI'"),
    ],
)
def test_an_alias_that_would_make_a_file_channel_ambiguous_is_refused(aliases, message):
    blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "DAPI"}}
    with pytest.raises(InvalidSettingsError, match=message):
        parse_settings({"version": 1, "channels": ["DAPI", "GFP"], "aliases": aliases,
                        "classes": [blob]})  # fmt: skip


def test_an_alias_added_on_resume_analyses_the_failed_file_and_keeps_the_rest(batch, tmp_path):
    plain = three_level_settings()
    save_settings(plain, tmp_path / "plain.yaml")
    out, images = tmp_path / "out", [batch["dapi"], batch["hoechst"]]
    first = run_analysis(tmp_path / "plain.yaml", images, out)
    assert len(first.failures) == 1  # b_hoechst: no DAPI by that name
    assert "add aliases: {DAPI: [ITS NAME]} to the settings" in str(first.failures[0])
    again = run_analysis(batch["settings"], images, out, resume=True)  # with aliases now
    assert again.resumed == 1 and not again.failures
    assert again.counts["b_hoechst"] == again.counts["a_dapi"]
    narrowed = batch["settings"].with_name("narrowed.yaml")  # H33342 no longer an alias
    aliases = {"DAPI": ["Hoechst 33342"], "GFP": ["FITC"]}
    save_settings(plain.model_copy(update={"aliases": aliases}), narrowed)
    third = run_analysis(narrowed, images, out, resume=True)
    assert third.resumed == 1 and len(third.failures) == 1  # read by a gone alias: again


def test_a_channel_found_by_alias_is_never_read_by_position_instead():
    blob = {"name": "b", "segmenter": {"kind": "threshold", "channel": "DAPI"}}
    settings = parse_settings({"version": 1, "channels": ["DAPI", "GFP"], "classes": [blob],
                               "aliases": {"DAPI": "C1"}})  # fmt: skip
    assert settings.aliases == {"DAPI": ["C1"]}  # one name given as it is
    assert settings.channels_of(["C0", "C1"]) is None  # not C0 as DAPI
    assert settings.missing_channel(["C0", "C1"]) == "GFP"


def test_a_file_read_in_order_is_analysed_again_when_aliases_now_read_it_otherwise(tmp_path):
    pixels = cell_image((160, 160), seed=3, n_cells=4)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, pixels, metadata={"axes": "CYX"})  # channels C0, C1: in order
    settings = three_level_settings()
    save_settings(settings, tmp_path / "s.yaml")
    out = tmp_path / "out"
    first = run_analysis(tmp_path / "s.yaml", [plain], out)
    swapped = settings.model_copy(update={"aliases": {"DAPI": ["C1"], "GFP": ["C0"]}})
    save_settings(swapped, tmp_path / "swapped.yaml")
    again = run_analysis(tmp_path / "swapped.yaml", [plain], out, resume=True)
    assert again.resumed == 0  # read otherwise now: not kept
    assert again.counts["plain"] != first.counts["plain"]  # DAPI and GFP swapped
