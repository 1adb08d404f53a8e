"""``outputs: {summary: false}`` leaves out the summary's plots, and only them: ``scopeml
info``, ``counts_table()`` and the command line's last line read the tables and
``index.html``. The ``analyze init`` example said ``summary: true  # counts, plots and
index.html`` (new-user trial), and the histograms the plots draw were binned anyway."""

from __future__ import annotations

import pandas as pd

import scopeml.analysis.report as report
from scopeml.analysis import run_analysis
from scopeml.analysis.example import EXAMPLE_SETTINGS
from scopeml.analysis.settings import AnalysisSettings, Outputs, ThresholdSegmenter
from scopeml.analysis.settings import ClassSettings as Class
from tests.analysis.conftest import cell_image, write_image


def _settings(summary: bool) -> AnalysisSettings:
    otsu = ThresholdSegmenter(channel="DAPI", method="otsu")
    return AnalysisSettings(channels=["DAPI", "GFP"], classes=[Class(name="n", segmenter=otsu)],
                            outputs=Outputs(summary=summary, labels=False))  # fmt: skip


def test_summary_false_leaves_out_the_plots_only(tmp_path, monkeypatch) -> None:
    image = write_image(tmp_path / "a.ome.tif", cell_image((160, 160), n_cells=4))

    def binned(*args: object) -> None:
        raise AssertionError("histograms binned for plots that are not drawn")

    monkeypatch.setattr(report, "_histograms", binned)
    result = run_analysis(_settings(False), [image], tmp_path / "res")
    summary = result.output / "summary"
    assert sorted(p.name for p in summary.iterdir()) == [
        "counts.csv", "failures.csv", "left_out.csv", "n_per_image.csv", "warnings.csv",
    ]  # fmt: skip
    assert result.counts_table()["n"].tolist() == [4]
    assert pd.read_csv(result.output / "tables" / "n.csv")["object_id"].size == 4
    assert (result.output / "index.html").is_file()
    monkeypatch.undo()
    plotted = run_analysis(_settings(True), [image], tmp_path / "plotted")
    assert list((plotted.output / "summary").glob("*.png"))  # the default: plots too


def test_the_init_example_says_what_summary_false_leaves_out() -> None:
    line = next(li for li in EXAMPLE_SETTINGS.splitlines() if li.strip().startswith("summary:"))
    assert "plots" in line and "always" in line, line
    assert "counts, plots and index.html" not in EXAMPLE_SETTINGS


def test_the_tables_are_the_same_either_way(tmp_path) -> None:
    image = write_image(tmp_path / "a.ome.tif", cell_image((160, 160), n_cells=4))
    for summary in (True, False):
        run_analysis(_settings(summary), [image], tmp_path / str(summary))
    for table in ("summary/counts.csv", "summary/n_per_image.csv", "tables/n.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "True" / table),
                                      pd.read_csv(tmp_path / "False" / table))  # fmt: skip
