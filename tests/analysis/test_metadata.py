"""Settings ``metadata``: parts of each image's name (its well, its site) as columns of every
table, as CellProfiler's Metadata module makes them, so a plate's objects group by well."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import run_analysis
from scopeml.analysis.settings import InvalidSettingsError, parse_settings
from scopeml.errors import InvalidRequestError
from scopeml.objects.classifier import default_features


def settings(metadata: str | None = "{well}__p{site}", **more) -> dict:
    blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0"}}
    return {"version": 1, "channels": ["C0"], "classes": [blob], "metadata": metadata, **more}


def blobs(path, n: int) -> None:
    pixels = np.full((48, 48), 10, np.uint8)
    for i in range(n):
        pixels[4 + 14 * (i // 3) : 12 + 14 * (i // 3), 4 + 14 * (i % 3) : 12 + 14 * (i % 3)] = 200
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, pixels)


def test_parts_of_the_image_names_are_columns_of_every_table(tmp_path):
    for well, site, n in (("A01", 1, 2), ("A01", 2, 3), ("B02", 1, 4)):
        blobs(tmp_path / "plate" / well / f"p{site}.tif", n)
    blobs(tmp_path / "plate" / "stray.tif", 1)  # a name the pattern does not take
    with pytest.warns(UserWarning, match="stray: the image's name does not match metadata"):
        result = run_analysis(settings(outputs={"parquet": True}), [tmp_path / "plate"],
                              tmp_path / "out")  # fmt: skip
    table = result.table("blob")
    assert list(table.columns[:3]) == ["image", "metadata_well", "metadata_site"]
    per_well = table.groupby("metadata_well").size().to_dict()
    assert per_well == {"A01": 5, "B02": 4}  # the stray image's row: no well
    assert table[table["image"] == "stray"]["metadata_well"].isna().all()
    counts = pd.read_csv(tmp_path / "out" / "summary" / "counts.csv", dtype=str)
    assert counts.set_index("image")[["metadata_well", "metadata_site"]].fillna("").to_dict(
        "index") == {"A01__p1": {"metadata_well": "A01", "metadata_site": "1"},
                     "A01__p2": {"metadata_well": "A01", "metadata_site": "2"},
                     "B02__p1": {"metadata_well": "B02", "metadata_site": "1"},
                     "stray": {"metadata_well": "", "metadata_site": ""}}  # fmt: skip
    per_image = pd.read_csv(tmp_path / "out" / "summary" / "blob_per_image.csv", dtype=str)
    assert list(per_image.columns[:4]) == ["image", "metadata_well", "metadata_site", "objects"]
    assert per_image.set_index("image").loc["B02__p1", "metadata_well"] == "B02"
    parquet = pd.read_parquet(tmp_path / "out" / "tables" / "blob.parquet")
    assert parquet["metadata_site"].dropna().tolist() == ["1"] * 2 + ["2"] * 3 + ["1"] * 4
    record = json.loads((tmp_path / "out" / "images" / "stray" / "record.json").read_text())
    assert any("does not match metadata" in said for said in record["warnings"])
    # metadata are not object features: a classifier trained on the table leaves them out
    assert not [c for c in default_features(table) if c.startswith("metadata_")]


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("plate_*", "has no {field}"),
        ("{well}_{1st}", "{1st}: a field is a name of letters"),
        ("{well}_{well}", "names a field twice"),
    ],
)
def test_a_pattern_without_fields_or_with_bad_ones_is_refused(pattern, says):
    with pytest.raises(InvalidSettingsError, match=f"metadata: .*{says}"):
        parse_settings(settings(pattern))


def test_a_resume_with_other_metadata_is_refused_as_other_settings(tmp_path):
    blobs(tmp_path / "in" / "A01" / "p1.tif", 2)
    run_analysis(settings(), [tmp_path / "in"], tmp_path / "out")
    with pytest.raises(
        InvalidRequestError,
        match=r"resuming with other settings .*: "
        r"metadata: '\{well\}__p\{site\}' → '\{well\}__\{field\}'",
    ):
        run_analysis(settings("{well}__{field}"), [tmp_path / "in"], tmp_path / "out",
                     resume=True)  # fmt: skip
