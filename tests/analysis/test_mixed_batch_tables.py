"""A batch mixing a plain TIFF (no scene names) with a plate's OME-TIFF (named scenes): the
combined tables hold both, ``scene_name`` empty for the plain file (the Parquet table's
writer took the first image's missing column for a number and stopped the whole report)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tifffile

from scopeml.analysis import run_analysis


def blobs(n: int) -> np.ndarray:
    pixels = np.full((40, 40), 10, np.uint8)
    for i in range(n):
        pixels[4 + 12 * (i // 3) : 10 + 12 * (i // 3), 4 + 12 * (i % 3) : 10 + 12 * (i % 3)] = 200
    return pixels


def test_plain_and_named_scene_files_make_one_table(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", blobs(2))  # first: no scene_name column
    with tifffile.TiffWriter(folder / "b.ome.tif", ome=True) as tif:
        for name, n in (("well1", 3), ("well2", 4)):
            tif.write(blobs(n), metadata={"axes": "YX", "Name": name})
    blob = {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0"}}
    settings = {"version": 1, "channels": ["C0"], "classes": [blob], "outputs": {"parquet": True}}
    result = run_analysis(settings, [folder], tmp_path / "out")
    assert result.counts == {"a": {"blob": 2}, "b": {"blob": 7}}
    for table in (result.table("blob"), pd.read_parquet(tmp_path / "out/tables/blob.parquet")):
        names = table.groupby("image")["scene_name"].apply(lambda s: sorted(s.dropna().unique()))
        assert names.to_dict() == {"a": [], "b": ["well1", "well2"]}
    assert (tmp_path / "out" / "index.html").is_file()
