"""An image's warnings are kept with its results: a plain multi-page TIFF read as Z (30 frames of
a time lapse, 47 "3-D nuclei" where TYX found 536) warned on stderr only, so a batch whose log
was dropped showed the wrong-axes result as normal. Its ``record.json`` lists them, the index
shows them and ``summary/warnings.csv`` has them, while the caller is still warned once."""

from __future__ import annotations

import csv
import json
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.analysis import run_analysis
from scopeml.cli import main

PAGES = "5 pages of unknown kind read as Z"
Z_STEP = "the Z step is taken as 0.5 µm"
SETTINGS = {
    "version": 1,
    "channels": ["C0"],
    "pixel_size": 0.5,
    "classes": [
        {"name": "blob", "segmenter": {"kind": "threshold", "channel": "C0", "method": "otsu"}}
    ],
}


def plain_stack(path: Path) -> Path:
    """A plain 5-page TIFF (no axes said) with two bright blocks through its pages."""
    pixels = np.full((5, 64, 64), 100, np.uint16)
    pixels[:, 8:20, 8:20] = pixels[:, 36:50, 30:44] = 2000
    tifffile.imwrite(path, pixels)
    return path


def given(caught, text: str) -> list[str]:
    return [str(w.message) for w in caught if text in str(w.message)]


def record_of(out: Path, name: str) -> dict:
    return json.loads((out / "images" / name / "record.json").read_text())


def warning_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary" / "warnings.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_record_index_and_summary_keep_an_images_warnings(tmp_path):
    image = plain_stack(tmp_path / "movie.tif")
    with pytest.warns(UserWarning) as caught:
        run_analysis(SETTINGS, [image], tmp_path / "out")
    assert len(given(caught, PAGES)) == len(given(caught, Z_STEP)) == 1  # still said, once
    said = record_of(tmp_path / "out", "movie")["warnings"]
    assert [PAGES in said[0], Z_STEP in said[1], len(said)] == [True, True, 2]
    assert said[0] == given(caught, PAGES)[0]  # the same words
    index = (tmp_path / "out" / "index.html").read_text()
    assert "<th>warnings</th>" in index and PAGES in index and Z_STEP in index
    assert [(r["image"], r["file"], r["warning"]) for r in warning_rows(tmp_path / "out")] == [
        ("movie", str(image), text) for text in said
    ]


def test_warnings_the_caller_silences_are_still_recorded(tmp_path):
    image = plain_stack(tmp_path / "movie.tif")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("ignore")
        run_analysis(SETTINGS, [image], tmp_path / "out")
    assert not shown and len(record_of(tmp_path / "out", "movie")["warnings"]) == 2


def test_worker_processes_record_their_images_warnings(tmp_path):
    images = [plain_stack(tmp_path / f"{name}.tif") for name in ("a", "b")]
    with pytest.warns(UserWarning):
        run_analysis(SETTINGS, images, tmp_path / "out", workers=2)
    for name in ("a", "b"):
        said = record_of(tmp_path / "out", name)["warnings"]
        assert any(PAGES in text for text in said) and any(Z_STEP in text for text in said)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_command_line_says_each_warning_once(tmp_path, capsys, workers):
    images = [plain_stack(tmp_path / f"{name}.tif") for name in ("movie", "other")]
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps(SETTINGS))
    args = ["analyze", str(settings), *map(str, images), "-o", str(tmp_path / "out"), "-q"]
    assert main([*args, "--workers", str(workers)]) == 0
    lines = capsys.readouterr().err.splitlines()
    for image in images:
        assert len([line for line in lines if f"{image}: {PAGES}" in line]) == 1
        assert len([line for line in lines if f"{image}: {Z_STEP}" in line]) == 1
        assert len(record_of(tmp_path / "out", image.stem)["warnings"]) == 2


def test_an_image_without_warnings_records_none_and_the_index_has_no_column(tmp_path):
    image = tmp_path / "flat.tif"
    pixels = np.full((64, 64), 100, np.uint16)
    pixels[8:20, 8:20] = 2000
    tifffile.imwrite(image, pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none given
        run_analysis(SETTINGS, [image], tmp_path / "out")
    assert record_of(tmp_path / "out", "flat")["warnings"] == []
    assert "<th>warnings</th>" not in (tmp_path / "out" / "index.html").read_text()


def test_records_from_before_warnings_were_kept_still_resume_and_report(tmp_path):
    images = [plain_stack(tmp_path / f"{name}.tif") for name in ("a", "b")]
    out = tmp_path / "out"
    with pytest.warns(UserWarning):
        run_analysis(SETTINGS, images[:1], out)
    path = out / "images" / "a" / "record.json"
    old = record_of(out, "a")
    del old["warnings"]  # as an earlier scopeml wrote it
    path.write_text(json.dumps(old))
    with pytest.warns(UserWarning):
        result = run_analysis(SETTINGS, images, out, resume=True)
    assert result.resumed == 1 and len(result.failures) == 0
    index = (out / "index.html").read_text()
    assert "<th>warnings</th>" in index and PAGES in index  # b's
    assert {r["image"] for r in warning_rows(out)} == {"b"}


def test_off_the_main_thread_nothing_is_recorded(tmp_path):
    """``catch_warnings`` is not thread-safe (a dask worker's threads): no ``warnings`` key,
    which says they were not kept (unlike an empty list)."""
    image = plain_stack(tmp_path / "movie.tif")
    done: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thread = threading.Thread(
            target=lambda: done.append(run_analysis(SETTINGS, [image], tmp_path / "out"))
        )
        thread.start()
        thread.join()
    assert done and "warnings" not in record_of(tmp_path / "out", "movie")


def test_a_warning_every_image_gives_is_said_once_a_run_and_kept_for_each(tmp_path, monkeypatch):
    """Kept per image, a warning naming no file was given again after each image (the capture
    resets Python's once-per-place memory): 200 images, 200 lines (found in review)."""
    from scopeml.analysis import image as analysis_image

    calibrate = analysis_image.calibrate

    def noisy(settings, scenes, name):
        warnings.warn("the same for every image", UserWarning, stacklevel=2)
        return calibrate(settings, scenes, name)

    monkeypatch.setattr(analysis_image, "calibrate", noisy)
    images = [plain_stack(tmp_path / f"s{i}.tif") for i in range(3)]
    for run in ("a", "b"):
        with pytest.warns(UserWarning) as caught:
            run_analysis(SETTINGS, images, tmp_path / run)
        assert len(given(caught, "the same for every image")) == 1, run  # once each run
        for i in range(3):
            assert "the same for every image" in record_of(tmp_path / run, f"s{i}")["warnings"]


def test_a_servers_records_name_no_server_path(tmp_path, monkeypatch):
    """With public names (a server's run), a path the image's is not is kept by its file name."""
    from scopeml.analysis import image as analysis_image

    calibrate = analysis_image.calibrate

    def naming(settings, scenes, name):
        warnings.warn("cannot write /srv/data/jobs/7/stage/x.zarr: full", UserWarning, stacklevel=2)
        return calibrate(settings, scenes, name)

    monkeypatch.setattr(analysis_image, "calibrate", naming)
    image = plain_stack(tmp_path / "s.tif")
    with pytest.warns(UserWarning):
        run_analysis(SETTINGS, [image], tmp_path / "out", public_name=lambda path: path.name)
    said = record_of(tmp_path / "out", "s")["warnings"]
    assert "cannot write x.zarr: full" in said and not any("/srv/" in s for s in said), said
