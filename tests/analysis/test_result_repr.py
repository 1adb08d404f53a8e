"""``print(sm.analyze(...))`` is one short line, however many images: it printed every record
(9,000 characters for the 14 BBBC007 images; new-user trial)."""

from __future__ import annotations

from pathlib import Path

from scopeml.analysis import AnalysisResult, run_analysis
from tests.analysis.conftest import three_level_settings


def test_the_result_prints_as_one_line_of_counts(tmp_path, images):
    settings = three_level_settings()
    result = run_analysis(settings, images, tmp_path / "res")
    totals = {c: sum(r["counts"][c] for r in result.records) for c in ("cell", "nucleus", "spot")}
    assert repr(result) == (
        f"AnalysisResult('{tmp_path / 'res'}': 2 images, 2 done; objects: cell {totals['cell']}, "
        f"nucleus {totals['nucleus']}, spot {totals['spot']})"
    )
    again = run_analysis(settings, images, tmp_path / "res", resume=True)
    assert "2 images, 2 done, 2 resumed;" in repr(again)


def test_a_large_batch_stays_short():
    records = [
        {"status": "done", "name": f"img{i}", "counts": {"nucleus": 1000}} for i in range(400)
    ]
    records += [{"status": "failed", "name": "bad", "counts": {}, "reason": "truncated TIFF"}]
    shown = repr(AnalysisResult(Path("r"), records))
    assert shown == "AnalysisResult('r': 401 images, 400 done, 1 failed; objects: nucleus 400,000)"
