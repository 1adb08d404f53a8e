"""Instance growth and split distances are bounded (:data:`~scopeml.post.steps.MAX_DISTANCE`)
and finite: ``segment --grow 2000`` took 961 MB (270 MB at the default), ``--grow 5000`` over
4 GB, and ``--grow 1e9`` or ``--grow nan`` crashed (exit 1); now each is refused up front,
naming the option, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image
from scopeml.objects.instances import InstanceOptions, grow_seeds, instance_image
from scopeml.objects.split import Split
from scopeml.post.steps import MAX_DISTANCE

CLASSES = ["background", "nucleus", "boundary"]


@pytest.mark.parametrize("grow", [MAX_DISTANCE + 1, 1e9, float("nan"), float("inf")])
def test_options_refuse_a_huge_or_nonfinite_grow(grow: float) -> None:
    with pytest.raises(InvalidRequestError, match=r"grow \(--grow\) must be"):
        InstanceOptions(grow=grow).resolve(CLASSES)


def test_the_limit_itself_is_taken() -> None:
    assert InstanceOptions(grow=MAX_DISTANCE).resolve(CLASSES) == (2, 3)


@pytest.mark.parametrize("grow", [float("nan"), 10**9])
def test_growing_refuses_them_too(tmp_path, grow: float) -> None:
    seeds = np.array([[1, 0, 0, 2]])
    with pytest.raises(InvalidRequestError, match="grow"):
        grow_seeds(seeds, np.ones(seeds.shape, bool), grow)
    labels = Image(np.array([[2, 3, 3, 2]], np.uint8).reshape(1, 1, 1, 1, 1, 4))
    with pytest.raises(InvalidRequestError, match="grow"):
        instance_image(labels, tmp_path / "i.ome.zarr", class_id=2, grow_id=3, grow=grow)


@pytest.mark.parametrize("distance", [MAX_DISTANCE + 1, 100_000])
def test_a_split_distance_past_the_limit_is_refused(distance: int) -> None:
    with pytest.raises(InvalidRequestError, match=f"at most {MAX_DISTANCE} pixels"):
        Split(min_distance=distance)


@pytest.mark.parametrize("grow", ["1e9", "nan", "2000"])
def test_segment_refuses_the_grow_option(tmp_path, capsys, grow: str) -> None:
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.random.default_rng(0).random((64, 64)).astype(np.float32))
    out = tmp_path / "o.ome.zarr"
    args = ["segment", str(image), "-m", "nuclei", "-o", str(out), "--outputs", "instances"]
    assert main([*args, "--grow", grow, "-q"]) == 2
    err = capsys.readouterr().err
    assert "grow (--grow) must be" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
