"""``run_analysis(public_name=)``: the results name each image (and a file a failure names) as
given, where they are written; the images are still read, and a resume still finds its finished
ones, by their paths."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from scopeml.analysis import run_analysis
from scopeml.analysis.settings import InvalidSettingsError
from tests.analysis.conftest import three_level_settings

TEXT = (".csv", ".json", ".html", ".yaml")


def public(path: Path) -> str:
    """A server's name for an image: the plate it belongs to, never where it is kept."""
    return f"plate/{Path(path).name}"


def _quoting(folder: Path, text: str) -> list[Path]:
    return [
        p for p in folder.rglob("*") if p.is_file() and p.suffix in TEXT and text in p.read_text()
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_results_record_public_names_only(images, tmp_path, workers):
    broken = images[0].with_name("broken.tif")
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)
    out = tmp_path / "out"
    batch = [images[0], broken, images[1]]
    result = run_analysis(three_level_settings(), batch, out, public_name=public, workers=workers)
    assert [r["status"] for r in result.records] == ["done", "failed", "done"]
    assert [r["image"] for r in result.records] == [public(p) for p in batch]
    assert result.counts["img0"]["cell"] > 0  # a real analysis
    record = json.loads((out / "images" / "img1" / "record.json").read_text())
    assert record["image"] == "plate/img1.ome.tif"
    counts = pd.read_csv(out / "summary" / "counts.csv")
    assert counts["file"].tolist() == ["plate/img0.ome.tif", "plate/img1.ome.tif"]
    failures = pd.read_csv(out / "summary" / "failures.csv")
    assert failures["file"].tolist() == ["plate/broken.tif"] and failures["reason"][0]
    assert _quoting(out, str(images[0].parent)) == []  # nowhere, not even in a reason


def test_a_resume_finds_its_images_by_path_and_keeps_their_public_names(images, tmp_path):
    out = tmp_path / "out"
    settings = three_level_settings()
    run_analysis(settings, images[:1], out, public_name=public)
    first = out / "images" / "img0" / "record.json"
    written = first.stat().st_mtime_ns
    stale = out / "images" / ".img1.0badc0de.partial"  # what a killed run leaves
    (stale / "_engine").mkdir(parents=True)
    (stale / "_engine" / "run.json").write_text(json.dumps({"path": str(images[1])}))
    result = run_analysis(settings, images, out, resume=True, public_name=public)
    assert first.stat().st_mtime_ns == written  # not analysed again
    assert [r["image"] for r in result.records] == [public(p) for p in images]
    assert not stale.exists()
    assert _quoting(out, str(images[0].parent)) == []


def test_a_missing_channel_names_the_image_by_its_public_name(images, tmp_path):
    settings = three_level_settings().model_copy(update={"channels": ["DAPI", "RFP"]})
    with pytest.raises(InvalidSettingsError) as err:
        run_analysis(settings, images, tmp_path / "out", public_name=public)
    assert "channel 'RFP' is not in plate/img0.ome.tif (it has DAPI, GFP)" in str(err.value)
    assert str(images[0].parent) not in str(err.value)
