"""``scopeml.analyze(..., axes=)``: the image files' axes, as ``segment``'s ``axes=``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import scopeml as sm
from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter
from scopeml.analysis.settings import FillHoles, Measurements, RemoveSmall
from scopeml.errors import InvalidImageError, InvalidRequestError
from tests.analysis.conftest import cell_image


def _settings() -> AnalysisSettings:
    """Cells by Otsu on C1, nuclei by Li on C0 inside them (a plain TIFF's channel names)."""
    return AnalysisSettings(
        channels=["C0", "C1"],
        tile_size=64,
        classes=[
            ClassSettings(
                name="cell",
                segmenter=ThresholdSegmenter(channel="C1", method="otsu", sigma=1.0),
                post=[FillHoles(), RemoveSmall(min_size=100)],
            ),
            ClassSettings(
                name="nucleus",
                parent="cell",
                segmenter=ThresholdSegmenter(channel="C0", method="li"),
                measurements=Measurements(intensity=["C0", "C1"]),
            ),
        ],
    )


def test_a_two_page_tiff_is_analysed_as_channels_with_axes_cyx(tmp_path: Path) -> None:
    pixels = cell_image(seed=5)  # 2×Y×X: nuclei, cytoplasm
    (tmp_path / "plain").mkdir()
    (tmp_path / "ome").mkdir()
    plain = tmp_path / "plain" / "cells.tif"
    tifffile.imwrite(plain, pixels)  # two pages, no axes recorded: read as Z by default
    ome = tmp_path / "ome" / "cells.tif"
    tifffile.imwrite(ome, pixels, ome=True,
                     metadata={"axes": "CYX", "Channel": {"Name": ["C0", "C1"]}})  # fmt: skip
    expected = sm.analyze(_settings(), [ome], tmp_path / "want")
    found = sm.analyze(_settings(), [plain], tmp_path / "got", axes="cyx")
    assert found.failures == [] and found.counts == expected.counts
    assert expected.counts["cells"]["cell"] == 6 and expected.counts["cells"]["nucleus"] == 6
    for name in ("cell", "nucleus"):  # the same objects, measured on the same channels
        want_table = pd.read_csv(tmp_path / "want" / "images" / "cells" / f"{name}.csv")
        got_table = pd.read_csv(tmp_path / "got" / "images" / "cells" / f"{name}.csv")
        pd.testing.assert_frame_equal(got_table, want_table)
    assert "axes: CYX" in (tmp_path / "got" / "settings.yaml").read_text()
    # without axes= the pages are Z planes of one channel: C1 is not there
    with pytest.raises(InvalidRequestError, match=r"has 1 and names none \(C0\): too few"):
        sm.analyze(_settings(), [plain], tmp_path / "as_z")


@pytest.mark.parametrize(
    ("axes", "problem"),
    [("CQX", "unknown letter Q"), ("YYX", "Y given twice"), ("CY", "must include Y and X"),
     (3, "axes must be letters")],
)  # fmt: skip
def test_bad_axes_are_refused_as_segment_refuses_them(tmp_path: Path, axes, problem) -> None:
    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, cell_image(seed=1))
    with pytest.raises(InvalidRequestError, match=problem) as analysed:
        sm.analyze(_settings(), [image], tmp_path / "out", axes=axes)
    with pytest.raises(InvalidRequestError) as segmented:
        sm.segment(image, "nuclei", tmp_path / "seg.zarr", axes=axes)
    assert str(analysed.value) == str(segmented.value)
    assert not (tmp_path / "out").exists()


def test_a_snapshot_among_time_lapses_is_one_time_point(tmp_path: Path) -> None:
    """``axes: TYX`` for a batch of plain multi-page time-lapses reads a one-page TIFF in it
    as one time point (not "axes 'TYX' name 3 axes; the file has 2"), the same objects as
    without ``axes``; a movie told ``TYX`` is its frames."""
    frame = cell_image(seed=4)[0]  # Y×X nuclei
    settings = AnalysisSettings(
        channels=["C0"],
        classes=[ClassSettings(name="nucleus",
                               segmenter=ThresholdSegmenter(channel="C0", method="otsu"))],
    )  # fmt: skip
    (tmp_path / "in").mkdir()
    snapshot, movie = tmp_path / "in" / "snapshot.tif", tmp_path / "in" / "movie.tif"
    tifffile.imwrite(snapshot, frame)
    tifffile.imwrite(movie, np.stack([frame, frame[::-1]] * 3))  # 6 pages: read as Z
    found = sm.analyze(settings, [snapshot, movie], tmp_path / "tyx", axes="TYX")
    alone = sm.analyze(settings, [snapshot], tmp_path / "plain")
    assert found.failures == [] and found.counts["snapshot"] == alone.counts["snapshot"]
    table = pd.read_csv(tmp_path / "tyx" / "images" / "movie" / "nucleus.csv")
    assert sorted(table["t"].unique()) == list(range(6))
    with pytest.raises(InvalidImageError, match="name 4 axes; the file has 3"):
        sm.segment(movie, "nuclei", tmp_path / "seg.ome.zarr", axes="TZYX")  # still refused
