"""A run's tables as DataFrames from its result: new users read ``res/tables/*.csv`` themselves
(new-user trial). An image named ``001`` stays ``"001"``: the Parquet table took it for the
number 1, and then failed the whole summary at an image named ``a``."""

from __future__ import annotations

import pandas as pd
import pytest

from scopeml.analysis import run_analysis
from scopeml.analysis.settings import (
    AnalysisSettings,
    ClassSettings,
    Outputs,
    ThresholdSegmenter,
)
from scopeml.errors import InvalidRequestError
from tests.analysis.conftest import cell_image, write_image


@pytest.mark.parametrize("parquet", [True, False])
def test_a_class_table_and_the_counts_as_dataframes(tmp_path, parquet):
    if parquet:
        pytest.importorskip("pyarrow")
    images = tmp_path / "in"
    images.mkdir()
    for seed, name in enumerate(("001", "a")):
        write_image(images / f"{name}.ome.tif", cell_image((160, 160), seed=seed, n_cells=4))
    settings = AnalysisSettings(
        channels=["DAPI"],
        classes=[ClassSettings(name="nucleus",
                               segmenter=ThresholdSegmenter(channel="DAPI", method="otsu"))],
        outputs=Outputs(parquet=parquet, overview=False, summary=False, labels=False),
    )  # fmt: skip
    result = run_analysis(settings, [images], tmp_path / "res")
    assert (result.output / "tables" / "nucleus.parquet").is_file() == parquet
    table = result.table("nucleus")
    written = pd.read_csv(result.output / "tables" / "nucleus.csv", dtype={"image": str})
    assert list(table["image"].unique()) == ["001", "a"]
    assert len(table) == sum(c["nucleus"] for c in result.counts.values()) == 8
    pd.testing.assert_frame_equal(table[["image", "object_id", "area"]],
                                  written[["image", "object_id", "area"]])  # fmt: skip
    counts = result.counts_table()
    assert dict(zip(counts["image"], counts["nucleus"], strict=True)) == {"001": 4, "a": 4}
    with pytest.raises(InvalidRequestError, match=r"no table of class 'cell' \(tables of: nucleus"):
        result.table("cell")
