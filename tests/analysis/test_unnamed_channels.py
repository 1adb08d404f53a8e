"""One settings file for a batch mixing files that name their channels (``DAPI``, ``GFP``) with
files that name none (read as ``C0``, ``C1``): a file naming none, with as many channels as
the settings, is read in order under the settings' names (said in a warning), whatever the
order of the batch; one whose channels cannot be told fails alone, naming what it has."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tifffile

from scopeml.analysis import InvalidSettingsError, run_analysis, save_settings
from scopeml.cli import main
from tests.analysis.conftest import cell_image, three_level_settings, write_image


@pytest.fixture
def batch(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    settings = tmp_path / "s.yaml"
    save_settings(three_level_settings(), settings)
    pixels = cell_image((160, 160), seed=3, n_cells=4)
    plain = folder / "plain.tif"
    tifffile.imwrite(plain, pixels, metadata={"axes": "CYX"})  # no channel names
    extra = folder / "three.tif"
    tifffile.imwrite(extra, pixels[[0, 1, 1]], metadata={"axes": "CYX"})
    named = write_image(folder / "named.ome.tif", pixels)
    return {"settings": settings, "plain": plain, "named": named, "three": extra}


def cells(results: Path, image: str) -> pd.DataFrame:
    return pd.read_csv(results / "images" / image / "cell.csv")


@pytest.mark.parametrize("plain_first", [True, False])
def test_a_file_naming_no_channels_is_read_in_order(batch, tmp_path, plain_first, capsys):
    out = tmp_path / "out"
    images = [batch["plain"], batch["named"]]
    images = images if plain_first else images[::-1]
    args = ["analyze", str(batch["settings"]), *map(str, images), "-o", str(out)]
    assert main(args) == 0
    assert "plain.tif: the file names no channels: read C0 as DAPI, C1 as GFP" in (
        capsys.readouterr().err
    )
    plain, named = (cells(out, name).drop(columns="image") for name in ("plain", "named"))
    pd.testing.assert_frame_equal(plain, named)  # the same pixels, the same columns
    assert len(plain) == 4
    columns = pd.read_csv(out / "summary" / "nucleus_per_image.csv").columns
    assert any("DAPI" in c for c in columns) and not any("C0" in c for c in columns)


def test_a_file_whose_channels_cannot_be_told_fails_alone(batch, tmp_path):
    settings = batch["settings"]
    result = run_analysis(settings, [batch["named"], batch["three"]], tmp_path / "out")
    assert result.counts["named"]["cell"] == 4
    (failure,) = result.failures  # the named file analysed, this one failed alone
    assert (
        "the settings have 2 channels (DAPI, GFP); the image has 3 and names none (C0, C1, C2)"
        in (str(failure))
    )
    with pytest.raises(InvalidSettingsError, match=r"the settings have 2 .*three\.tif has 3 and"):
        run_analysis(settings, [batch["three"], batch["named"]], tmp_path / "first")


def test_a_batch_of_files_naming_no_channels_warns_once(batch, tmp_path):
    """14 plain BBBC TIFFs gave 14 near-identical warnings: one for the batch, counting them
    and naming two; each image's record keeps how it was read."""
    folder = batch["plain"].parent
    for i in range(3):
        (folder / f"plain{i}.tif").write_bytes(batch["plain"].read_bytes())
    images = [batch["plain"], *(folder / f"plain{i}.tif" for i in range(3)), batch["named"]]
    with pytest.warns(UserWarning, match="names? no channels") as caught:
        result = run_analysis(batch["settings"], images, tmp_path / "out")
    said = [str(w.message) for w in caught if "no channels" in str(w.message)]
    assert said == [
        f"4 images name no channels ({images[0]}, {images[1]} and 2 more): read C0 as DAPI, "
        "C1 as GFP (in order)"
    ]
    reads = {r["name"]: r["channels_read"]["read"] for r in result.records}
    assert reads == {"plain": [0, 1], "plain0": [0, 1], "plain1": [0, 1], "plain2": [0, 1],
                     "named": ["DAPI", "GFP"]}  # fmt: skip
    import pandas as pd  # warnings.csv says it of each image (it lacked the batch's line)

    table = pd.read_csv(tmp_path / "out" / "summary" / "warnings.csv")
    guessed = table[table["warning"].str.contains("names no channels")]
    assert sorted(guessed["image"]) == ["plain", "plain0", "plain1", "plain2"]
    assert guessed["warning"].str.endswith("read C0 as DAPI, C1 as GFP (in order)").all()
