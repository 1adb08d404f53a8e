"""The analysis fingerprints its model files by their whole content (stop 19 task L item 1: files
over 16 MB were hashed by samples, so a byte changed between them passed the resume check), and
a worker hashes them once per run, then only ``stat``s them before each image (item 2: it read
them again per image), while a file replaced mid-run still fails the images after it."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scopeml.analysis import model_files, run_analysis
from scopeml.analysis.runner import _job
from scopeml.analysis.settings import load_settings
from scopeml.errors import InvalidRequestError
from scopeml.tiling import identity
from scopeml.tiling.identity import FULL_HASH_BYTES, SAMPLE_BYTES, SAMPLES
from tests.analysis.conftest import nuclei_tiffs
from tests.analysis.test_worker_models import SETTINGS
from tests.files import replace_file
from tests.tiling.engine_doubles import write_model_file


def big_model(path: Path) -> None:
    """A working ``.czann`` over 16 MB: a tiny model and 20 MB of seeded bytes beside it."""
    write_model_file(path, n_classes=3, seed=0)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo("padding.bin"), np.random.default_rng(1).bytes(20 << 20))


def unsampled_middle(size: int) -> int:
    """An offset in the middle of a file of ``size`` that no sample of the sampled hash reads."""
    starts = [k * (size - SAMPLE_BYTES) // (SAMPLES - 1) for k in range(SAMPLES)]
    middle = SAMPLES // 2
    offset = (starts[middle - 1] + SAMPLE_BYTES + starts[middle]) // 2
    assert all(not start <= offset < start + SAMPLE_BYTES for start in starts)
    return offset


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([value ^ 0xFF]))


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, list[Path]]:
    settings = tmp_path / "s.yaml"
    settings.write_text(SETTINGS)
    return settings, nuclei_tiffs(tmp_path)


def test_a_byte_changed_in_the_middle_of_a_large_model_refuses_the_resume(batch, tmp_path):
    settings, images = batch
    model = tmp_path / "m.czann"
    big_model(model)
    size = model.stat().st_size
    assert size > FULL_HASH_BYTES
    out = tmp_path / "out"
    assert [r["status"] for r in run_analysis(settings, images[:1], out).records] == ["done"]
    sampled = identity.fingerprint(model)["sha256"]
    flip_byte(model, unsampled_middle(size))
    assert identity.fingerprint(model)["sha256"] == sampled  # what the check used to miss
    with pytest.raises(InvalidRequestError, match=r"m\.czann.*changed since the run began"):
        run_analysis(settings, images, out, resume=True)
    flip_byte(model, unsampled_middle(size))  # the run's bytes back: it resumes
    result = run_analysis(settings, images, out, resume=True)
    assert result.resumed == 1 and [r["status"] for r in result.records] == ["done", "done"]


def test_results_recorded_with_the_sampled_fingerprint_still_resume(batch, tmp_path):
    # record.json of an earlier scopeml: tiling's source_fingerprint (samples over 16 MB)
    from scopeml.tiling.execute import source_fingerprint

    settings, images = batch
    model = tmp_path / "m.czann"
    big_model(model)
    out = tmp_path / "out"
    run_analysis(settings, images[:1], out)
    path = out / "images" / "cells5" / "record.json"
    record = json.loads(path.read_text())
    assert record["model_files"]["models"]["blob"]["hashed"] == "whole"
    record["model_files"]["models"]["blob"] = source_fingerprint(model)
    path.write_text(json.dumps(record))
    assert run_analysis(settings, images, out, resume=True).resumed == 1
    replace_file(model, model)  # the same bytes, a new file: still the same model
    assert run_analysis(settings, images, out, resume=True).resumed == 2
    write_model_file(tmp_path / "other.czann", n_classes=2, seed=4)
    replace_file(tmp_path / "other.czann", model)
    with pytest.raises(InvalidRequestError, match="changed since the run began"):
        run_analysis(settings, images, out, resume=True)


def test_a_worker_hashes_the_models_once_per_run_and_notices_a_replaced_file(
    batch, tmp_path, monkeypatch
):
    settings, images = batch
    model = tmp_path / "m.czann"
    big_model(model)
    write_model_file(tmp_path / "second.czann", n_classes=2, seed=4)
    hashed: list[Path] = []

    def counting(path):
        hashed.append(Path(path))
        return identity.model_sha256(path)

    monkeypatch.setattr(model_files, "model_sha256", counting)
    began = {"models": {"blob": model_files.model_fingerprint(model)}, "classifiers": {}}
    assert began["models"]["blob"]["sha256"] == identity.file_sha256(model)  # every byte
    hashed.clear()
    data = load_settings(settings).model_dump(mode="json", by_alias=True)

    def job(image: Path, folder: str, run: str) -> dict:
        args = (data, str(image), str(tmp_path / "out" / folder), "d-once", str(settings), None)
        return _job(*args, None, None, began, run)

    for n in range(3):
        assert job(images[n % 2], f"a{n}", "run-1")["status"] == "done"
    assert hashed == [model]  # once for the run, three images
    flip_byte(model, unsampled_middle(model.stat().st_size))  # mid-run, in place
    record = job(images[0], "b", "run-1")
    assert record["status"] == "failed", record
    assert "model file m.czann (class 'blob') changed since the run began" in record["reason"]
    assert not (tmp_path / "out" / "b").exists() and hashed == [model, model]
    flip_byte(model, unsampled_middle(model.stat().st_size))
    assert job(images[0], "c", "run-1")["status"] == "done"
    replace_file(tmp_path / "second.czann", model)  # replaced whole, stat and all
    assert job(images[0], "d", "run-1")["status"] == "failed"
    # a long-lived (dask) worker's next run hashes again even where the stat stayed the same
    began["models"]["blob"] = model_files.model_fingerprint(model)
    hashed.clear()
    assert job(images[0], "e", "run-2")["status"] == "done"
    assert job(images[1], "f", "run-2")["status"] == "done"
    assert len(hashed) == 1


def test_a_package_folder_is_restatted_and_hashed_whole(tmp_path):
    folder = tmp_path / "package"
    folder.mkdir()
    (folder / "rdf.yaml").write_text("weights: {onnx: {source: weights.onnx}}")
    (folder / "weights.onnx").write_bytes(b"graph")
    first = model_files.model_fingerprint(folder / "rdf.yaml", run="r")
    assert first["sha256"] == identity.model_sha256(folder / "rdf.yaml")
    (folder / "weights.onnx").write_bytes(b"grapH")  # same size
    os.utime(folder / "weights.onnx", ns=(1, 1))
    second = model_files.model_fingerprint(folder / "rdf.yaml", run="r")
    assert second["sha256"] != first["sha256"]
    assert not model_files.same_content(first, second, folder / "rdf.yaml")


def test_results_say_which_scopeml_made_them(batch, tmp_path):
    import scopeml

    settings, images = batch
    big_model(tmp_path / "m.czann")
    out = tmp_path / "out"
    run_analysis(settings, images[:1], out)
    record = json.loads((out / "images" / "cells5" / "record.json").read_text())
    assert record["written_by"] == f"scopeml {scopeml.__version__}"
    assert f"(this report by scopeml {scopeml.__version__};" in (out / "index.html").read_text()
