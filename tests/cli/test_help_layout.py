"""``--help`` for newcomers: flags show no value, text is reflowed and never cut, no
reStructuredText quotes, and segment says what a 2-D model does with a Z stack."""

from __future__ import annotations

import pytest

from scopeml.cli import main


@pytest.fixture
def shown(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")

    def help_of(*command: str) -> str:
        assert main([*command, "--help"]) == 0
        text = capsys.readouterr().out
        assert max(len(line) for line in text.splitlines()) <= 80
        return text

    return help_of


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_top_level_help(shown):
    text = shown()
    assert "``" not in text and "<bool>" not in text
    assert "..." not in text.split("Commands:")[1]  # no entry cut at the terminal's width
    flat = _flat(text)
    assert (
        "info Describe an image, a segment store, an unfinished segment run or analysis "
        "results. demo" in flat
    )
    assert (
        "model Read, validate, convert and run models (.czann, .czseg, .czmodel, bioimage.io)."
        in flat
    )


def test_flags_take_no_value(shown):
    text = shown("segment")
    assert "<bool>" not in text
    assert "-q, --quiet " in text and "--resume / --no-resume " in text
    assert "\n  --help " in text


def test_nothing_is_cut(shown):
    flat = _flat(shown("segment"))
    assert "default $SCOPEML_MODEL_TIME_BUDGET or 300; 0 for none." in flat
    assert "…" not in flat.replace("(.czann, …)", "")
    assert "A 2-D model runs on a Z stack plane by plane" in flat
    assert "the instances are then labelled in 3-D" in flat
    workers = _flat(shown("analyze")).split("--workers")[1]
    assert workers.startswith(" <int> Images analysed side by side in local processes [default: ")


def test_usage_lines_name_arguments_in_capitals(shown):
    assert shown("segment").startswith("Usage: scopeml segment [OPTIONS] IMAGE\n")
    text = shown("analyze")
    assert text.startswith("Usage: scopeml analyze [OPTIONS] SETTINGS [IMAGES]...\n")
    assert "{" not in text and "<list[str]>" not in text and "SETTINGS <str>" not in text
    assert "\n  IMAGES...  Image files" in text
    assert "The results folder. [required, but for 'init']" in _flat(text)
    assert shown("objects", "measure").startswith("Usage: scopeml objects measure [OPTIONS] LABELS")


def test_a_missing_output_is_a_lower_case_error(capsys):
    assert main(["analyze", "s.yaml", "img.tif"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: scopeml analyze [OPTIONS] SETTINGS [IMAGES]...")
    assert err.splitlines()[-1] == "error: Invalid value for -o/--output: give the results folder"
    assert "Error:" not in err
