"""``segment(measure=)`` takes the table's path; ``measure=True`` (as a server job spells it) is
refused in one clear line before anything is written, not a raw TypeError (t6 report N7)."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.errors import InvalidRequestError
from scopeml.synthetic import synthetic_nuclei


@pytest.mark.parametrize("measure", [True, 1, ["t.csv"]])
def test_measure_that_is_not_a_path_is_refused_before_the_run(tmp_path, measure):
    image, _ = synthetic_nuclei((64, 64), density=0.004, seed=2)
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(InvalidRequestError) as err:
        sm.segment(image[0], "nuclei", out, measure=measure, tile_size=64)
    assert str(err.value) == (f"measure= takes the table's path (.csv/.parquet), not {measure!r}")
    assert not out.exists()  # refused before the engine wrote anything


def test_measure_as_a_path_still_measures(tmp_path):
    image, _ = synthetic_nuclei((64, 64), density=0.004, seed=2)
    table = tmp_path / "t.csv"
    seg = sm.segment(image[0], "nuclei", tmp_path / "o.ome.zarr", measure=table, tile_size=64)
    rows = len(table.read_text().splitlines()) - 1
    assert rows == len(np.unique(seg.instances.read())) - 1 > 0
