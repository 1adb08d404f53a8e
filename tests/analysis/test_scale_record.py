"""``analyze`` says which scale ``auto`` chose: per image and model class in ``record.json``,
``summary/counts.csv``, the index and the console, as the segment store recorded it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import tifffile
import yaml

from scopeml.analysis import run_analysis
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.io import open_image
from scopeml.model import open_model
from scopeml.model.registry import resolve_model
from scopeml.tiling.size import auto_scale
from tests.server.test_job_scale_auto import shrunk_scene


def _settings(scale: object = None) -> dict:
    segmenter = {"kind": "instances", "model": "nuclei", "class": "nucleus", "channels": ["C0"]}
    if scale is not None:
        segmenter["scale"] = scale
    return {"version": 1, "channels": ["C0"],
            "classes": [{"name": "nucleus", "segmenter": segmenter}]}  # fmt: skip


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "small.tif"
    tifffile.imwrite(path, shrunk_scene(128, seed=3))  # nuclei ~7 px: auto magnifies
    return path


def test_the_models_default_auto_is_recorded_per_image(small: Path, tmp_path: Path) -> None:
    with open_image(small) as image:
        expected = auto_scale(image, open_model(resolve_model("nuclei")))
    assert expected.scale > 1 and expected.diameter is not None
    out = tmp_path / "out"
    run_analysis(_settings(), [small], out)  # scale unset: the model's default, auto
    record = json.loads((out / "images" / "small" / "record.json").read_text())
    assert record["scales"] == {"nucleus": [{**expected.to_dict(), "auto": True}]}
    counts = pd.read_csv(out / "summary" / "counts.csv")
    assert counts["nucleus_scale"].tolist() == [expected.scale]
    estimate = f"objects ~{expected.diameter:.0f} px, model {expected.model_diameter:g} px"
    assert counts["nucleus_scale_auto"].tolist() == [estimate]
    assert f"nucleus {expected.scale:g} (auto: {estimate})" in (out / "index.html").read_text()
    # settings.yaml writes what an unset scale runs at, and a resume takes it as the same
    shown = yaml.safe_load((out / "settings.yaml").read_text())
    assert shown["classes"][0]["segmenter"]["scale"] == "auto"
    assert run_analysis(_settings(), [small], out, resume=True).resumed == 1
    assert run_analysis(_settings(scale="auto"), [small], out, resume=True).records[0]["counts"]
    with pytest.raises(InvalidRequestError, match="other settings"):
        run_analysis(_settings(scale=2.0), [small], out, resume=True)


def test_a_given_factor_is_recorded_without_an_estimate(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_analysis(_settings(scale=1.0), [small], out)
    record = json.loads((out / "images" / "small" / "record.json").read_text())
    assert record["scales"] == {"nucleus": [{"scale": 1.0}]}
    counts = pd.read_csv(out / "summary" / "counts.csv")
    assert counts["nucleus_scale"].tolist() == [1.0]
    assert counts["nucleus_scale_auto"].isna().all()
    shown = yaml.safe_load((out / "settings.yaml").read_text())
    assert shown["classes"][0]["segmenter"]["scale"] == 1.0


def test_the_console_says_what_auto_chose(small: Path, tmp_path: Path, capsys) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text(yaml.safe_dump(_settings(scale="auto")))
    assert main(["analyze", str(settings), str(small), "-o", str(tmp_path / "out"), "-q"]) == 0
    scale = json.loads((tmp_path / "out" / "images" / "small" / "record.json").read_text())
    chosen = scale["scales"]["nucleus"][0]
    out = capsys.readouterr().out
    assert f"nucleus: scale auto chose {chosen['scale']:g} for 1 image (objects ~" in out
