"""``objects filter`` refuses label values that are no object ids as ``objects measure`` does
(its check, one implementation): negative ids (an int32 TIFF of -labels) and uint64 ids of
2**63 and more, which a cast to a signed index turned negative (IndexError, exit 1, before)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scopeml.api import filter_objects
from scopeml.cli import main
from scopeml.errors import InvalidLabelsError


def cells() -> np.ndarray:
    labels = np.zeros((32, 32), np.int32)
    labels[2:10, 2:10], labels[20:30, 15:25] = 1, 2
    return labels


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (-cells(), "labels must be non-negative; found -2"),
        (cells().astype(np.uint64) * np.uint64(2**63 + 1), "object ids up to 9223372036854775809"),
    ],
)
def test_the_command_line_refuses_them_naming_the_file(tmp_path, capsys, labels, problem):
    source = tmp_path / "labels.tif"
    tifffile.imwrite(source, labels)
    out = tmp_path / "out.ome.zarr"
    code = main(["objects", "filter", str(source), "--min-size", "5", "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: {source}: {problem}"), err
    assert len(err.strip().splitlines()) == 1


def test_the_same_words_as_measure(tmp_path, capsys):
    source = tmp_path / "labels.tif"
    tifffile.imwrite(source, -cells())
    assert main(["objects", "measure", str(source), "-o", str(tmp_path / "t.csv"), "-q"]) == 2
    measured = capsys.readouterr().err
    out = str(tmp_path / "o.ome.zarr")
    assert main(["objects", "filter", str(source), "--min-size", "5", "-o", out, "-q"]) == 2
    assert capsys.readouterr().err == measured


def test_python_refuses_negative_ids(tmp_path):
    with pytest.raises(InvalidLabelsError, match="non-negative"):
        filter_objects(-cells(), tmp_path / "o.ome.zarr", min_size=5)


def test_valid_ids_are_filtered(tmp_path):
    kept = filter_objects(cells().astype(np.uint64), tmp_path / "o.ome.zarr", min_size=70)
    assert np.unique(kept.read()).tolist() == [0, 1]  # the 8×8 object dropped, 10×10 kept


def test_measure_refuses_ids_its_table_would_write_negative(tmp_path, capsys):
    """uint64 ids of 2**63 and more were measured with a negative ``label`` (-65 for
    18446744073709551551): the table no longer matched the label image."""
    source = tmp_path / "labels.tif"
    tifffile.imwrite(source, cells().astype(np.uint64) * np.uint64(2**63 + 1))
    out = tmp_path / "m.csv"
    assert main(["objects", "measure", str(source), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {source}: object ids up to 9223372036854775809; ids must be "
                          "below 2**63"), err  # fmt: skip
    assert not out.exists()
