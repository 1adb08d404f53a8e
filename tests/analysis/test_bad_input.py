"""Bad settings stop before any image is read: exit 2 naming the settings file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeml.analysis.example import EXAMPLE_SETTINGS
from scopeml.cli import main
from scopeml.io.image import Image

MODEL_CLASS = """\
  - name: nucleus
    parent: cell
    segmenter:
      kind: instances
      model: {model}
      class: {cls}
      boundary_class: boundary
      channels: {channels}
"""


def settings_text(**model: str) -> str:
    """The example with DAPI/GFP channels; ``model`` puts a model segmenter on the nuclei."""
    text = EXAMPLE_SETTINGS.replace("C0", "DAPI").replace("C1", "GFP")
    if model:
        start = text.index("  - name: nucleus")
        end = text.index("    post:", start)
        values = {"model": "nuclei", "cls": "nucleus", "channels": "[DAPI]", **model}
        text = text[:start] + MODEL_CLASS.format(**values) + text[end:]
    return text


@pytest.fixture
def no_pixel_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Image, *args: object, **kwargs: object) -> None:
        raise AssertionError("pixels were read")

    monkeypatch.setattr(Image, "read", refuse)
    monkeypatch.setattr(Image, "__getitem__", refuse)


def run(tmp_path: Path, text: str, image: Path, capsys: pytest.CaptureFixture[str]) -> tuple:
    settings = tmp_path / "analysis.yaml"
    settings.write_text(text)
    code = main(["analyze", str(settings), str(image), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err.strip()
    return code, err, settings, text.splitlines()


def line_of(lines: list[str], needle: str) -> int:
    return [i for i, line in enumerate(lines, 1) if needle in line][-1]


@pytest.mark.parametrize(
    ("change", "needle", "problem"),
    [
        ({"old": "sigma: 2.0", "new": "sigma: 2.0\n      threads: 2"}, "threads: 2",
         "unknown key 'threads'"),
        ({"old": "    parent: cell\n", "new": "    parent: spot\n"}, "parent: spot", "cycle"),
        ({"old": "name: spot", "new": "name: nucleus"}, "name: nucleus",
         "duplicate class name 'nucleus'"),
        ({"model": "missing.czann"}, "model: missing.czann", "missing.czann"),
        ({"model": "nuclei", "channels": "[DAPI, GFP]"}, "channels: [DAPI, GFP]",
         "expects 1 channel(s); the settings give 2"),
        ({"model": "nuclei", "cls": "nucleolus"}, "class: nucleolus", "no class 'nucleolus'"),
        ({"old": "channels: [DAPI, GFP]", "new": "channels: [DAPI, RFP]"}, "channels: [DAPI, RFP]",
         "channel 'RFP' is not in"),
    ],
)  # fmt: skip
def test_bad_settings_exit_2_before_reading_pixels(
    tmp_path: Path,
    images: list[Path],
    no_pixel_reads: None,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    needle: str,
    problem: str,
) -> None:
    if "old" in change:
        text = settings_text()
        assert change["old"] in text
        text = text.replace(change["old"], change["new"], 1)
        if "RFP" in change["new"]:  # keep the file valid apart from the image's channels
            text = text.replace("channel: GFP", "channel: RFP").replace("[DAPI, GFP]", "[DAPI]")
    else:
        text = settings_text(**change)
    code, err, settings, lines = run(tmp_path, text, images[0], capsys)
    assert code == 2, err
    assert err.startswith(f"error: {settings}: line {line_of(lines, needle)}: "), err
    assert problem in err and "\n" not in err
    assert not (tmp_path / "out" / "images").exists()


def test_a_model_beside_the_settings_is_used_and_a_namesake_here_is_refused(
    tmp_path: Path, images: list[Path], capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """A settings file's relative model path is found beside it from any working folder; a
    same-named file in the working folder is not silently taken instead (it was, first)."""
    import shutil

    from scopeml.model.registry import resolve_model

    shutil.copy(resolve_model("nuclei"), tmp_path / "mine.czann")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = settings_text(model="mine.czann", cls="boundary_typo")
    code, err, _, _ = run(tmp_path, text, images[0], capsys)
    assert code == 2 and "no class 'boundary_typo'" in err, err  # the one beside was opened
    (elsewhere / "mine.czann").write_bytes(b"another project's model")
    code, err, _, lines = run(tmp_path, text, images[0], capsys)
    assert code == 2 and f"line {line_of(lines, 'model: mine.czann')}: " in err, err
    assert "mine.czann names two files" in err and "give the path of the one meant" in err


def test_a_classifier_of_sizes_in_um_needs_a_pixel_size_before_any_work(
    tmp_path: Path, images: list[Path], no_pixel_reads: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every image failed after its segmentation, one by one, where the first says it all."""
    import pandas as pd

    import scopeml as sm

    table = pd.DataFrame({"area_um2": [10.0, 12, 50, 55], "solidity": [0.9, 0.8, 0.9, 0.7],
                          "kind": ["s", "s", "L", "L"]})  # fmt: skip
    sm.train_object_classifier(table, "kind", n_estimators=3).save(tmp_path / "kinds.zip")
    text = settings_text().replace("  - name: nucleus\n", "    classifier: kinds.zip\n\n"
                                   "  - name: nucleus\n", 1)  # fmt: skip
    code, err, settings, lines = run(tmp_path, text, images[0], capsys)
    assert code == 2, err
    assert err.startswith(f"error: {settings}: line {line_of(lines, 'classifier: kinds.zip')}: ")
    assert "kinds.zip was trained on sizes in micrometres (area_um2)" in err
    assert "records no pixel size: give it (pixel_size:, --pixel-size)" in err
    assert not (tmp_path / "out" / "images").exists()


def test_a_folder_given_as_the_settings_says_so(
    tmp_path: Path, images: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The images and the settings swapped: not "no such file" of a folder that is there."""
    code = main(["analyze", str(images[0].parent), str(images[0]), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder, not a settings file" in err and "\n" not in err.strip()


def test_a_model_file_relative_to_the_settings_is_found(
    tmp_path: Path, images: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The error for a missing model is about the model, not a path typed elsewhere."""
    import shutil

    from scopeml.model.registry import resolve_model

    shutil.copy(resolve_model("nuclei"), tmp_path / "mine.czann")
    text = settings_text(model="mine.czann", cls="boundary_typo")
    code, err, _, _ = run(tmp_path, text, images[0], capsys)
    assert code == 2 and "no class 'boundary_typo'" in err  # the file itself was opened


def test_an_unreachable_scheduler_exits_2(
    tmp_path: Path, images: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    settings = tmp_path / "analysis.yaml"
    settings.write_text(settings_text())
    out = tmp_path / "out"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["analyze", str(settings), str(images[0]), "-o", str(out), "-q",
                     "--scheduler", "tcp://127.0.0.1:9"])  # fmt: skip
    assert code == 2 and "cannot reach the dask scheduler" in capsys.readouterr().err
    # nothing was analysed, so the same folder can be used again without --resume
    assert main(["analyze", str(settings), str(images[0]), "-o", str(out), "-q"]) == 0


def test_allowed_roots_confine_images_and_model_files(tmp_path: Path, images: list[Path]) -> None:
    """As a server runs it: images and files named in the settings only below the roots."""
    import shutil

    from scopeml.analysis import InvalidSettingsError, load_settings, run_analysis
    from scopeml.errors import OutsideRootError
    from scopeml.model.registry import resolve_model

    root = images[0].parent
    settings = tmp_path / "analysis.yaml"
    settings.write_text(settings_text())
    result = run_analysis(settings, images, tmp_path / "ok", allowed_roots=[root])
    assert [r["status"] for r in result.records] == ["done", "done"]
    outside = tmp_path / "elsewhere.ome.tif"
    shutil.copy(images[0], outside)
    with pytest.raises(OutsideRootError):
        run_analysis(settings, [images[0], outside], tmp_path / "no", allowed_roots=[root])
    assert not (tmp_path / "no").exists()
    shutil.copy(resolve_model("nuclei"), tmp_path / "mine.czann")  # a model outside the root
    settings.write_text(settings_text(model=str(tmp_path / "mine.czann")))
    with pytest.raises(InvalidSettingsError) as caught:
        run_analysis(settings, images, tmp_path / "no", allowed_roots=[root])
    assert str(caught.value).startswith(f"{settings}: line ")
    assert "mine.czann: an absolute path is not allowed" in str(caught.value)  # as image_path
    load_settings(settings)  # the settings themselves are fine


@pytest.mark.parametrize(("value", "dark", "said"), [(300, False, "above"), (0, True, "below")])
def test_a_fixed_threshold_no_pixel_can_pass_is_warned_of(tmp_path, value, dark, said) -> None:
    """``value: 300`` on 8-bit images counted 0 objects in every image, without a word."""
    import numpy as np
    import tifffile

    from scopeml.analysis import run_analysis
    from scopeml.analysis.settings import parse_settings

    image = tmp_path / "dim.tif"
    tifffile.imwrite(image, np.full((32, 32), 200, np.uint8))
    settings = parse_settings(
        "version: 1\nchannels: [C0]\nclasses:\n  - name: fg\n    segmenter: {kind: threshold, "
        f"channel: C0, method: fixed, value: {value}, dark: {str(dark).lower()}}}\n"
    )
    message = rf"dim\.tif: class 'fg': no pixel of a uint8 channel \(0–255\) is {said} its "
    with pytest.warns(UserWarning, match=message + rf"fixed threshold {value}: it finds no"):
        result = run_analysis(settings, [image], tmp_path / "out")
    assert result.counts["dim"]["fg"] == 0


@pytest.mark.parametrize(("value", "dark", "said"), [(-5, False, "above"), (256, True, "below")])
def test_a_fixed_threshold_every_pixel_passes_is_warned_of(tmp_path, value, dark, said) -> None:
    """``value: -5`` on unsigned images made the whole image one object, without a word (a
    level no pixel reaches was warned of)."""
    import numpy as np
    import tifffile

    from scopeml.analysis import run_analysis
    from scopeml.analysis.settings import parse_settings

    image = tmp_path / "dim.tif"
    tifffile.imwrite(image, (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8))
    settings = parse_settings(
        "version: 1\nchannels: [C0]\nclasses:\n  - name: fg\n    segmenter: {kind: threshold, "
        f"channel: C0, method: fixed, value: {value}, dark: {str(dark).lower()}}}\n"
    )
    message = rf"dim\.tif: class 'fg': every pixel of a uint8 channel \(0–255\) is {said} its "
    with pytest.warns(UserWarning, match=message + rf"fixed threshold {value}: it finds the whole "
                      "image as one object"):  # fmt: skip
        result = run_analysis(settings, [image], tmp_path / "out")
    assert result.counts["dim"]["fg"] == 1
