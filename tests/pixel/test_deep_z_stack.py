"""Deep features are 2-D: a Z stack is refused before any work, in the image's terms (its real
planes and size, not a block's shape) with the way out, which works: its planes as time points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.pixel import train_classifier
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _stack() -> tuple[np.ndarray, np.ndarray]:
    image, truth = synthetic_nuclei((40, 48), density=0.004, seed=2)
    stack = np.stack([np.roll(image[0], 3 * i, 1) for i in range(5)])
    truths = np.stack([np.roll(truth, 3 * i, 1) for i in range(5)])
    labels = np.zeros(truths.shape, np.uint8)
    labels[::2, ::4, ::4] = (truths[::2, ::4, ::4] > 0) + 1
    return stack, labels


def test_a_z_stack_is_refused_with_its_size_and_the_way_out():
    stack, labels = _stack()
    with pytest.raises(InvalidRequestError) as caught:
        train_classifier(stack[None], labels, features="vgg19-random-64+basic25")
    text = str(caught.value)
    assert "Z stack of 5 planes of 40×48" in text
    assert "--axes TYX" in text and 'axes="TYX"' in text
    assert "shape" not in text  # no block shape


def test_the_cli_names_the_file_and_its_planes_as_time_points_work(tmp_path: Path, capsys):
    stack, labels = _stack()
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    args = [
        "pixel", "train", str(tmp_path / "stack.tif"), str(tmp_path / "labels.tif"),
        "-o", str(tmp_path / "m.czseg"), "--features", "vgg19-random-64+basic25",
        "--n-estimators", "3", "-q",
    ]  # fmt: skip
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'stack.tif'}: deep features")
    assert "Z stack of 5 planes of 40×48" in err[0] and "--axes TYX" in err[0]
    assert main([*args, "--axes", "TYX"]) == 0, capsys.readouterr().err
