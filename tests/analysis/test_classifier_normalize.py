"""A pixel classifier works on the raw grey values it was trained on: an analysis that
normalises its input is refused with the settings' line, before any image is read (it found
no objects in any image, without a word)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.synthetic import synthetic_nuclei


@pytest.fixture
def classifier(tmp_path):
    image, instances = synthetic_nuclei((64, 64), density=0.004, seed=3)
    labels = np.zeros((64, 64), np.uint8)
    labels[instances[0] > 0] = 2
    labels[:4] = 1
    tifffile.imwrite(tmp_path / "img.tif", image[0])
    model = sm.train_pixel_classifier(image[0], labels, features="gaussian_smoothing:1")
    return model.save(tmp_path / "nuc.czseg")


SETTINGS = """version: 1
channels: [C0]
classes:
  - name: nucleus
    segmenter:
      kind: model
      model: nuc.czseg
      class: 2
{normalize}"""


@pytest.mark.parametrize("normalize", ["", "      normalize: percentile:1,99.8\n"])
def test_a_normalised_classifier_is_refused_at_its_line(classifier, tmp_path, capsys, normalize):
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS.format(normalize=normalize))
    out = tmp_path / "out"
    code = main(["analyze", str(settings), str(tmp_path / "img.tif"), "-o", str(out), "-q"])
    err = capsys.readouterr().err
    if not normalize:
        assert code == 0, err
        return
    assert code == 2 and not out.exists()
    assert "line 9: classes[0].segmenter.normalize" in err and "raw intensities" in err, err
