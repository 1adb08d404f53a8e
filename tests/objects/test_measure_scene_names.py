"""A plate's tables name each row's well: ``scene_name`` beside ``scene`` where the file names
its scenes, in ``segment --measure`` and ``objects measure`` as in an analysis's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tifffile

import scopeml as sm
from scopeml.cli import main


def _plate(path):
    """Two named scenes (wells A1, B2) of a few bright squares each."""
    with tifffile.TiffWriter(path, ome=True) as writer:
        for count, name in ((2, "A1"), (3, "B2")):
            pixels = np.full((64, 64), 10, np.uint16)
            for i in range(count):
                pixels[8 + 18 * i : 20 + 18 * i, 10:22] = 1000
            writer.write(pixels, metadata={"axes": "YX", "Name": name})
    return path


def test_the_rows_of_a_named_scene_carry_its_name(tmp_path, capsys) -> None:
    plate = _plate(tmp_path / "plate.ome.tif")
    labels = sm.label_objects(sm.open_image(plate, scene=1).read()[0, 0, 0, 0] > 500,
                              tmp_path / "b2.ome.zarr")  # fmt: skip
    table = sm.measure_objects(labels, sm.open_image(plate, scene=1))
    assert table.columns[:3].tolist() == ["scene", "scene_name", "t"]
    assert table[["scene", "scene_name"]].drop_duplicates().values.tolist() == [[1, "B2"]]
    assert len(table) == 3
    both = np.stack([sm.open_image(plate, scene=s).read()[0, 0, 0, 0] > 500 for s in (0, 1)])
    stacked = sm.label_objects(both[:, None, None, None], tmp_path / "plate_objects.ome.zarr")
    table = sm.measure_objects(stacked, sm.open_image(plate))
    assert table.groupby("scene_name").size().to_dict() == {"A1": 2, "B2": 3}
    out = tmp_path / "t.csv"  # streamed to a file: the same column
    sm.measure_objects(stacked, sm.open_image(plate), output=out)
    assert pd.read_csv(out)["scene_name"].tolist() == ["A1"] * 2 + ["B2"] * 3
    unnamed = tmp_path / "unnamed.tif"
    tifffile.imwrite(unnamed, sm.open_image(plate, scene=1).read()[0, 0, 0, 0])
    assert "scene_name" not in sm.measure_objects(labels, sm.open_image(unnamed)).columns
    table = tmp_path / "b2.csv"
    args = ["segment", str(plate), "--scene", "B2", "-m", "nuclei", "--outputs", "instances",
            "--measure", str(table), "-o", str(tmp_path / "seg.ome.zarr"), "-q"]  # fmt: skip
    assert main(args) == 0
    said = pd.read_csv(table)
    assert len(said) > 0 and set(said["scene_name"]) == {"B2"} and set(said["scene"]) == {1}
