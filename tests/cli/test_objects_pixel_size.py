"""``objects measure --pixel-size`` takes one number, Y,X or Z,Y,X (a Z stack's own Z step)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scopeml.cli import main


@pytest.fixture
def stack(tmp_path):
    labels = np.zeros((4, 16, 16), np.int32)
    labels[0:2, 2:6, 2:5] = 1  # 2 × 4 × 3 = 24 voxels
    labels[1:4, 8:14, 9:15] = 2  # 3 × 6 × 6 = 108 voxels
    np.save(tmp_path / "labels.npy", labels)
    return tmp_path / "labels.npy"


def _measure(labels, out, size):
    return main(["objects", "measure", str(labels), "-o", str(out), "-q", "--pixel-size", size])


def test_a_z_step_of_its_own(stack, tmp_path, capsys):
    assert _measure(stack, tmp_path / "t.csv", "2,0.5,0.25") == 0
    assert "(3-D; area in voxels; shapes only, no --image)" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "t.csv").sort_values("label")
    assert table["area"].tolist() == [24, 108]
    np.testing.assert_allclose(table["volume_um3"], [24 * 0.25, 108 * 0.25])
    assert _measure(stack, tmp_path / "one.csv", "0.5") == 0
    one = pd.read_csv(tmp_path / "one.csv").sort_values("label")
    np.testing.assert_allclose(one["volume_um3"], [24 * 0.125, 108 * 0.125])


@pytest.mark.parametrize(
    ("size", "problem"),
    [("0.5,0.5", "Y,X given for a Z stack"), ("abc", "got 'abc'"), ("1,0,1", "positive")],
)
def test_bad_sizes_are_one_line_errors(stack, tmp_path, capsys, size, problem):
    assert _measure(stack, tmp_path / "t.csv", size) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: Invalid value for --pixel-size: ")
    assert problem in err and not (tmp_path / "t.csv").exists()


def test_y_x_in_2_d(tmp_path):
    labels = np.zeros((16, 16), np.int32)
    labels[2:6, 2:5] = 1
    np.save(tmp_path / "l.npy", labels)
    assert _measure(tmp_path / "l.npy", tmp_path / "t.csv", "0.5,0.25") == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "t.csv")["area_um2"], [12 * 0.125])
