"""``scopeml model validate`` on scopeml's own classifiers: a pixel classifier ``.czseg`` (a
scopeml zip, not ZEN's ``.czseg``) is named as what it is, run on a probe tile and pointed to
``scopeml pixel info``; an object classifier likewise; a broken one is a one-line exit 2."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.cli import main


@pytest.fixture(scope="module")
def pixel_classifier(tmp_path_factory):
    rng = np.random.default_rng(4)
    image = rng.normal(100, 5, (2, 48, 64)).astype(np.float32)
    image[:, 10:30, 20:40] += 60
    labels = np.zeros((48, 64), np.uint8)
    labels[2:6, 2:60] = 1
    labels[15:25, 25:35] = 2
    model = sm.train_pixel_classifier(
        image, labels, classes=["bg", "spot"],
        features="gaussian_smoothing:1,2", n_estimators=4,
    )  # fmt: skip
    return model.save(tmp_path_factory.mktemp("validate") / "spots.czseg")


def test_a_pixel_classifier_czseg_is_valid_and_named(pixel_classifier, capsys):
    assert main(["model", "validate", str(pixel_classifier)]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith(f"{pixel_classifier}: valid scopeml pixel classifier: 2 classes ")
    assert "(bg, spot), 2 channels, 2-D" in first
    # it ran: a probe tile wider than the filters' halo on each side, one map per class out
    ran = re.search(r"ran on \(2, (\d+), (\d+)\) → \(2, (\d+), (\d+)\)$", first)
    halo = sm.open_model(pixel_classifier).spec.halo
    assert ran and int(ran[1]) > 2 * halo[0] and int(ran[2]) > 2 * halo[1], first
    assert "not a ZEN .czseg" in second and f"scopeml pixel info {pixel_classifier}" in second


def test_a_broken_pixel_classifier_is_one_line_exit_2(pixel_classifier, tmp_path, capsys):
    broken = tmp_path / "broken.czseg"
    with zipfile.ZipFile(pixel_classifier) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "model.json":
                meta = json.loads(data)
                data = json.dumps({**meta, "InChannels": 0}).encode()
            target.writestr(item, data)
    assert main(["model", "validate", str(broken)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {broken}: ")


def test_an_object_classifier_is_valid_and_named(tmp_path, capsys):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"area": rng.uniform(10, 100, 40), "eccentricity": rng.random(40)})
    table["kind"] = np.where(table["area"] > 50, "big", "small")
    path = sm.train_object_classifier(table, "kind", n_estimators=5).save(tmp_path / "kinds.zip")
    assert main(["model", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: valid scopeml object classifier: 2 classes (big, small)")
    assert f"scopeml objects classify {path}" in out
