"""``scopeml train unet --normalize``: the policy trains the network and is recorded."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from scopeml.cli import main
from scopeml.model import load_model
from scopeml.model.metadata import NORMALIZE_KEY
from scopeml.model.spec import recorded_normalize
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture
def pair(tmp_path):
    image, instances = synthetic_nuclei((32, 32), density=0.004, radius=(4, 7), seed=3)
    np.save(tmp_path / "image.npy", image[0].astype(np.float32))
    np.save(tmp_path / "labels.npy", (instances > 0).astype(np.uint8))
    return [str(tmp_path / "image.npy"), str(tmp_path / "labels.npy"), "--epochs", "1",
            "--steps-per-epoch", "1", "--depth", "1", "--width", "2", "--patch-size", "16",
            "--batch-size", "1", "--val-fraction", "0", "-q"]  # fmt: skip


def _recorded(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("model.json")).get(NORMALIZE_KEY)


def test_normalize_is_trained_with_and_recorded(pair, tmp_path):
    out = tmp_path / "m.czann"
    assert main(["train", "unet", *pair, "-o", str(out), "--normalize", "percentile:1,99.8"]) == 0
    assert _recorded(out) == "percentile:1,99.8"
    assert recorded_normalize(load_model(out, providers=["CPUExecutionProvider"])) == (
        "percentile:1,99.8"
    )
    baked = tmp_path / "b.czann"
    assert main(["train", "unet", *pair, "-o", str(baked), "--normalize", "none"]) == 0
    assert _recorded(baked) is None  # the training statistics are in the graph instead


def test_a_bad_normalize_is_one_line_before_training(pair, tmp_path, capsys):
    out = tmp_path / "m.czann"
    assert main(["train", "unet", *pair, "-o", str(out), "--normalize", "zscore"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown normalisation 'zscore'" in err
    assert err.count("\n") == 1 and not out.exists()
