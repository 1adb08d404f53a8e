"""What ``analyze --resume`` tells: the finished images its summary leaves out (a narrower set
of inputs than the earlier run's) and the first setting that refuses it, with both values."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from scopeml.analysis import AnalysisSettings, ClassSettings, ThresholdSegmenter, run_analysis
from scopeml.analysis.resume import settings_change
from scopeml.analysis.settings import RemoveSmall, save_settings
from scopeml.cli import main
from scopeml.errors import InvalidRequestError

SETTINGS = AnalysisSettings(
    channels=["C0"],
    classes=[
        ClassSettings(
            name="blob",
            segmenter=ThresholdSegmenter(channel="C0", method="otsu"),
            post=[RemoveSmall(min_size=30)],
        )
    ],
)


def blobs(path: Path, n: int) -> Path:
    """A 64×64 image with ``n`` separate 8×8 bright squares."""
    pixels = np.full((64, 64), 10, np.uint8)
    for i in range(n):
        y, x = divmod(i, 4)
        pixels[4 + 15 * y : 12 + 15 * y, 4 + 15 * x : 12 + 15 * x] = 200
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, pixels)
    return path


@pytest.fixture
def plate(tmp_path: Path) -> Path:
    """plate/A9/{p1,p2}.tif and plate/B2/q1.tif."""
    root = tmp_path / "plate"
    blobs(root / "A9" / "p1.tif", 3)
    blobs(root / "A9" / "p2.tif", 5)
    blobs(root / "B2" / "q1.tif", 2)
    return root


def _resume(images, out: Path) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_analysis(SETTINGS, images, out, resume=True)
    return result, [str(w.message) for w in caught]


def test_a_narrower_resume_warns_once_of_the_finished_images_it_leaves_out(plate, tmp_path):
    out = tmp_path / "out"
    first = run_analysis(SETTINGS, [plate / "A9", plate / "B2"], out)
    assert sorted(first.counts) == ["p1", "p2", "q1"] and first.outside_summary == []
    result, said = _resume([plate / "A9"], out)
    assert result.resumed == 2 and sorted(result.counts) == ["p1", "p2"]
    assert result.outside_summary == ["q1"]
    assert len(said) == 1, said
    assert (
        f"the summary and tables hold this run's 2 images; 1 finished image in {out / 'images'} "
        f"is left out (such as q1, from {plate / 'B2' / 'q1.tif'}): to include them, resume "
        "with the earlier run's inputs given as it was given them (an image's name depends on "
        "the folder given), which are then not analysed again"
    ) == said[0]
    # the summary is this run's, as the warning says; the folder keeps the image
    assert pd.read_csv(out / "summary" / "counts.csv")["image"].tolist() == ["p1", "p2"]
    assert (out / "images" / "q1" / "record.json").is_file()
    # the advice, followed: every image back in the summary, none analysed again
    again, said = _resume([plate / "A9", plate / "B2"], out)
    assert again.resumed == 3 and again.outside_summary == [] and said == []
    assert sorted(pd.read_csv(out / "summary" / "counts.csv")["image"]) == ["p1", "p2", "q1"]
    # naming its file again includes it, without analysing it again
    whole, said = _resume([plate / "A9", plate / "B2"], out)
    assert whole.resumed == 3 and whole.outside_summary == [] and said == []
    assert pd.read_csv(out / "summary" / "counts.csv")["image"].tolist() == ["p1", "p2", "q1"]


def test_the_same_files_under_an_earlier_name_are_told_apart(plate, tmp_path):
    out = tmp_path / "out"
    run_analysis(SETTINGS, [plate], out)  # named by their path below plate/: A9__p1 …
    result, said = _resume([plate / "A9"], out)  # named p1, p2 now
    assert result.outside_summary == ["A9__p1", "A9__p2", "B2__q1"]
    assert len(said) == 1, said
    assert "1 finished image in" in said[0] and "(such as B2__q1, from" in said[0]
    assert (
        "2 finished images in " + str(out / "images") + " are this run's files under an earlier "
        "name (such as A9__p1, now p1: an image found in a folder is named by its path below "
        "the folder given); the summary has them once, by this run's names"
    ) in said[0]


def test_the_cli_warns_of_the_left_out_images_in_one_line(plate, tmp_path, capsys):
    settings = save_settings(SETTINGS, tmp_path / "s.yaml")
    out = tmp_path / "out"
    args = ["analyze", str(settings), "-o", str(out), "-q"]
    assert main([*args, str(plate / "A9"), str(plate / "B2")]) == 0
    capsys.readouterr()
    assert main([*args, str(plate / "A9"), "--resume"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "1 finished image in" in lines[0] and "q1" in lines[0]
    assert "0 of 2 images analysed now, 2 already done" in captured.out


def test_a_refused_resume_names_the_first_changed_setting_and_both_values(plate, tmp_path, capsys):
    settings = save_settings(SETTINGS, tmp_path / "s.yaml")
    out = tmp_path / "out"
    args = ["analyze", str(settings), str(plate / "A9"), "-o", str(out), "-q"]
    assert main(args) == 0
    capsys.readouterr()
    settings.write_text(settings.read_text().replace("min_size: 30", "min_size: 40"))
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {out}: resuming with other settings than the earlier run's (its settings.yaml): "
        "classes[0].post[0].min_size: 30 → 40; analyse into a new results folder, or "
        "--overwrite to replace this one\n"
    )
    # a step added, and a value of another kind, in the Python API
    cls = SETTINGS.classes[0]
    more = SETTINGS.model_copy(update={"classes": [cls.model_copy(update={
        "post": [*cls.post, RemoveSmall(min_size=2)]})]})  # fmt: skip
    with pytest.raises(InvalidRequestError, match=r"classes\[0\]\.post\[1\]: \(not set\) → "
                       r"\{step: remove_small, min_size: 2\}; analyse into a new"):  # fmt: skip
        run_analysis(more, [plate / "A9"], out, resume=True)
    li = SETTINGS.model_copy(update={"classes": [cls.model_copy(update={
        "segmenter": cls.segmenter.model_copy(update={"method": "li"})})]})  # fmt: skip
    with pytest.raises(InvalidRequestError, match=r"classes\[0\]\.segmenter\.method: otsu → li; "):
        run_analysis(li, [plate / "A9"], out, resume=True)


def test_a_resume_without_the_axes_given_before_says_to_give_them(tmp_path, capsys):
    """``--axes TYX`` on the first run, none on the resume: refused as "axes: TYX → null";
    now also what to give."""
    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((3, 32, 32), np.uint8))
    settings = save_settings(SETTINGS, tmp_path / "s.yaml")
    args = ["analyze", str(settings), str(tmp_path / "movie.tif"), "-o", str(tmp_path / "r")]
    assert main([*args, "--axes", "TYX", "-q"]) == 0
    capsys.readouterr()
    assert main([*args, "--resume", "-q"]) == 2
    assert "axes: TYX → null (give --axes TYX as the earlier run had it)" in capsys.readouterr().err


def test_settings_change_in_words():
    assert settings_change("a: {b: [1, 2]}\n", "a: {b: [1, 2, 3]}\n") == "a.b[2]: (not set) → 3"
    assert settings_change("a: 1\nb: x\n", "a: 1\n") == "b: x → (not set)"
    assert settings_change("a: null\n", "a: auto\n") == "a: null → auto"
    assert settings_change("a: 1\n", "a: 1\n") is None
    long = settings_change("a: 1\n", "a: '" + "x" * 100 + "'\n")
    assert long is not None and long.endswith("…") and len(long) < 80


def test_a_model_class_scale_is_named_as_it_ran_not_as_unset():
    """A model class's unset scale ran at the model's default (``auto`` for nuclei), and
    ``settings.yaml`` writes that: the change names it so, not as ``null``."""
    from scopeml.analysis.runner import _check_same_settings, _shown_settings
    from scopeml.analysis.settings import dump_settings, parse_settings

    text = "version: 1\nchannels: [C0]\nclasses:\n  - name: nucleus\n    segmenter: {kind: \
instances, model: nuclei, class: nucleus, channels: [C0]}\n"
    given = dump_settings(parse_settings(text))
    previous = _shown_settings(given, {"nucleus": "auto"})
    _check_same_settings(Path("out"), previous, given, {"nucleus": "auto"})  # the same
    scaled = dump_settings(
        parse_settings(text.replace("class: nucleus,", "class: nucleus, scale: 2,"))
    )
    with pytest.raises(InvalidRequestError, match=r"classes\[0\]\.segmenter\.scale: auto → 2\.0; "):
        _check_same_settings(Path("out"), previous, scaled, {"nucleus": "auto"})


def test_a_resume_over_a_damaged_settings_file_says_so(plate, tmp_path):
    """A results folder whose settings.yaml was damaged since: the YAML ScannerError ended
    ``analyze --resume`` as an internal error (exit 1)."""
    out = tmp_path / "res"
    run_analysis(SETTINGS, [plate / "A9" / "p1.tif"], out)
    (out / "settings.yaml").write_text("version: 1\nchannels: [C0\n")
    with pytest.raises(InvalidRequestError, match=r"settings\.yaml is not readable YAML") as caught:
        run_analysis(SETTINGS, [plate / "A9" / "p1.tif"], out, resume=True)
    assert caught.value.path == str(out)
    assert (out / "images" / "p1").is_dir()  # nothing removed
