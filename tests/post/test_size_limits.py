"""Sizes that set a tile's memory and time whatever the image are refused up front: an
opening or closing radius past :data:`~scopeml.post.steps.MAX_BALL_RADIUS` (``opening:4000``
on a 256² store took 2.7 GB and 18 s before running out of memory; ``opening:99999`` asked for
596 GiB), with a one-line error naming the step and the limit, exit 2."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.post.steps import MAX_BALL_RADIUS, PostStep, size_problem


@pytest.mark.parametrize(
    "text", ["opening:4000", "closing:99999", f"opening:{MAX_BALL_RADIUS + 1}"]
)
def test_a_radius_past_the_limit_is_refused_naming_it(text: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        PostStep.parse(text)
    message = str(caught.value)
    assert message.startswith(f"step {text}: the radius must be at most {MAX_BALL_RADIUS} pixels")
    assert "limit" in message


def test_the_limit_itself_is_taken() -> None:
    assert PostStep.parse(f"opening:{MAX_BALL_RADIUS}").halo == 2 * MAX_BALL_RADIUS


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "big"])
def test_a_size_that_is_no_finite_number_is_a_problem(value: object) -> None:
    assert "grow must be a" in str(size_problem("grow", value, 10))


def test_the_command_line_refuses_a_huge_opening_at_once(tmp_path, capsys) -> None:
    labels = np.zeros((64, 64), np.uint8)
    labels[10:30, 10:30] = 1
    source = tmp_path / "labels.tif"
    tifffile.imwrite(source, labels)
    out = tmp_path / "out.ome.zarr"
    start = time.perf_counter()
    code = main(["post", str(source), "-o", str(out), "-s", "opening:4000", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert time.perf_counter() - start < 10
    assert "opening:4000: the radius must be at most" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
