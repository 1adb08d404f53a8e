"""Refusals that depend only on the output come before the statistics pass over the image (on a
slide scan that pass takes minutes); a resume refused names what changed in words; a folder
scopeml did not make is said to be one."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import scopeml.tiling.engine as engine
from scopeml.api import open_model, segment
from scopeml.cli import main
from scopeml.errors import IncompleteOutputError, InvalidRequestError
from scopeml.io import open_image
from scopeml.model import convert_onnx
from scopeml.model.testing import tiny_unet_onnx, unet_receptive_halo
from scopeml.tiling.store import partial_path
from tests.tiling.engine_doubles import FailingAfter, write_image_file

RUN = {"tile_size": 16, "batch_size": 1, "workers": 1}


def _model(path, seed: int, name: str = "unet"):
    """A tiny U-Net ``.czann`` named ``name``; another seed is other weights (another sha256)."""
    return convert_onnx(
        tiny_unet_onnx(in_channels=1, n_classes=2, depth=2, seed=seed),
        path,
        classes=["class0", "class1"],
        min_overlap=unet_receptive_halo(2),
        model_type="MultiClassSemanticSegmentation",
        name=name,
        overwrite=True,  # tests replace a model at its path
    )


@pytest.fixture
def interrupted(tmp_path):
    """An image, a model and the partial store of a run that broke down after 3 tiles."""
    rng = np.random.default_rng(0)
    image = write_image_file(
        tmp_path / "img.ome.tif", rng.integers(0, 900, (1, 64, 48)).astype(np.uint16)
    )
    model = _model(tmp_path / "m.czann", seed=0)
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(RuntimeError, match="power cut"):
        segment(image, FailingAfter(open_model(model), 3), out, normalize="percentile:1,99", **RUN)
    assert len(os.listdir(partial_path(out) / ".scopeml-done")) == 3
    return image, model, out


@pytest.fixture
def statistics(monkeypatch):
    """Counts the statistics passes; ``fail=True`` makes one raise (a pass that must not run)."""
    calls = {"n": 0, "fail": False}
    compute = engine.compute_normalization

    def counted(*args, **kwargs):
        calls["n"] += 1
        if calls["fail"]:
            raise AssertionError("the statistics pass ran before the output was checked")
        return compute(*args, **kwargs)

    monkeypatch.setattr(engine, "compute_normalization", counted)
    return calls


def test_partial_without_resume_is_refused_before_the_statistics(interrupted, statistics):
    image, model, out = interrupted
    statistics["fail"] = True
    with pytest.raises(IncompleteOutputError, match="interrupted run left this partial output"):
        segment(image, model, out, normalize="percentile:1,99", **RUN)
    with pytest.raises(IncompleteOutputError, match="interrupted run left this partial output"):
        engine.segment_image(  # the engine alone too (the server and napari call it)
            open_image(image),
            open_model(model),
            out,
            engine.SegmentOptions(normalize="percentile:1,99", **RUN),
        )
    assert statistics["n"] == 0


def test_a_changed_model_is_named_before_the_statistics(interrupted, statistics, tmp_path):
    image, model, out = interrupted
    statistics["fail"] = True
    before = json.loads((partial_path(out) / ".scopeml-run.json").read_text())["model"]["sha256"]
    _model(model, seed=1)  # the same name, other weights: the file changed since the run
    with pytest.raises(IncompleteOutputError) as refused:
        segment(image, model, out, normalize="percentile:1,99", resume=True, **RUN)
    problem = refused.value.problem
    assert f"the model 'unet' changed since this run (sha256 {before[:12]}… → " in problem
    assert before not in problem  # short hashes only
    assert problem.endswith("pass --overwrite (overwrite=True) to start again")
    other = _model(tmp_path / "other.czann", seed=0, name="other")
    with pytest.raises(IncompleteOutputError, match="the run used the model 'unet', not 'other'"):
        segment(image, other, out, normalize="percentile:1,99", resume=True, **RUN)
    with pytest.raises(IncompleteOutputError, match=r"different run: .*tile_size: 16 .* 32"):
        segment(
            image, model, out, normalize="percentile:1,99", resume=True, **{**RUN, "tile_size": 32}
        )
    assert statistics["n"] == 0


def test_a_matching_resume_runs_the_statistics_once_and_finishes(interrupted, statistics):
    image, model, out = interrupted
    assert segment(image, model, out, normalize="percentile:1,99", resume=True, **RUN).path == out
    assert statistics["n"] == 1 and not partial_path(out).exists()


def test_info_describes_an_unfinished_run(interrupted, capsys):
    from scopeml.tiling.store import describe_partial

    image, _, out = interrupted
    run = describe_partial(out)
    assert (run["tiles_done"], run["tiles"], run["model"]) == (3, 12, "unet")  # 4 × 3 tiles
    for path in (out, partial_path(out)):
        assert main(["info", str(path)]) == 0
        text = capsys.readouterr().out
        assert "unfinished segment run: 3 of 12 tiles done, model unet, image " in text
        assert str(image) in text and f"finish with: scopeml segment … -o {out} --resume" in text
    (partial_path(out) / ".scopeml-tiles").unlink()  # as a run of an older scopeml left it
    assert main(["info", str(out)]) == 0
    assert "3 tiles done (the total is not recorded), model unet" in capsys.readouterr().out
    assert main(["info", str(out), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert (described["kind"], described["tiles_done"], described["tiles"]) == (
        "unfinished segment run",
        3,
        None,
    )


def test_info_says_an_unfinished_runs_record_is_damaged(interrupted, capsys):
    """It described "model (unnamed), image (in memory)" and suggested --resume, which then
    failed on the record it could not read."""
    _, _, out = interrupted
    (partial_path(out) / ".scopeml-run.json").write_text('{"model": ')  # cut short
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 of 12 tiles done; its run record (.scopeml-run.json) is damaged" in text
    assert "--resume" not in text and "--overwrite" in text


def test_resume_onto_a_folder_scopeml_did_not_make(tmp_path, capsys):
    import zarr

    image = write_image_file(tmp_path / "img.ome.tif", np.ones((1, 32, 32), np.uint16))
    model = _model(tmp_path / "m.czann", seed=0)
    out = tmp_path / "o.ome.zarr"
    zarr.open_array(str(out / "labels" / "0"), mode="w", shape=(32, 32), dtype="uint8")
    for resume in (True, False):
        with pytest.raises(InvalidRequestError) as refused:
            segment(image, model, out, outputs=("labels",), resume=resume, **RUN)
        problem = refused.value.problem
        assert problem.startswith("output exists and is not a scopeml store: no run record")
        assert "complete" not in problem and "unfinished" not in problem
        assert problem.endswith("remove it yourself or choose another output")
    command = ["segment", str(image), "-m", str(model), "-o", str(out), "--quiet", "--resume"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "not a scopeml store: no run record, so no run of scopeml's to resume" in err
    assert out.is_dir()  # left as it was


def test_a_published_store_of_another_run_is_told_apart_without_the_statistics(
    crowded_nuclei, statistics, tmp_path
):
    """A stopped call of an older scopeml published the store but not its instances: a
    resume with other settings is refused as another run's without a pass over the image."""
    from scopeml.errors import Cancelled
    from scopeml.progress import ProgressEvent
    from tests.tiling.engine_doubles import published_as_before

    out = tmp_path / "o.ome.zarr"
    run = {"outputs": ("labels", "instances"), "tile_size": 128, "workers": 1, "scale": 1}

    def stop(event: ProgressEvent) -> None:
        if event.stage == "label":  # the instances' first stage, after the engine
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        segment(crowded_nuclei, "nuclei", out, progress=stop, **run)
    published_as_before(out)
    statistics.update(n=0, fail=True)
    with pytest.raises(IncompleteOutputError, match=r"different run: options\.tile_size"):
        segment(crowded_nuclei, "nuclei", out, resume=True, **{**run, "tile_size": 64})
    assert statistics["n"] == 0
    statistics["fail"] = False
    assert segment(crowded_nuclei, "nuclei", out, resume=True, **run).outputs == (
        "labels",
        "instances",
    )
    assert statistics["n"] == 0  # the same run of the same file: its fingerprint decides


def test_a_resume_after_every_tile_takes_the_recorded_statistics(crowded_nuclei, statistics,
                                                                 tmp_path):  # fmt: skip
    """A call stopped among its instances keeps its partial store with every tile done: its
    resume runs no tile, so it takes the statistics the store recorded (checked to be this
    run's, the image's fingerprint too) instead of reading the whole image again; a call
    stopped among the tiles takes its pass again."""
    from scopeml.errors import Cancelled
    from scopeml.progress import ProgressEvent

    run = {"outputs": ("labels", "instances"), "tile_size": 128, "workers": 1, "scale": 1}
    whole = segment(crowded_nuclei, "nuclei", tmp_path / "whole.ome.zarr", **run)

    def stop_at(stage: str):
        def stop(event: ProgressEvent) -> None:
            if event.stage == stage and (stage != "segment" or event.done):
                raise Cancelled("stopped")

        return stop

    for stage, passes in (("label", 0), ("segment", 1)):
        out = tmp_path / f"{stage}.ome.zarr"
        with pytest.raises(Cancelled):
            segment(crowded_nuclei, "nuclei", out, progress=stop_at(stage), **run)
        statistics["n"] = 0
        seg = segment(crowded_nuclei, "nuclei", out, resume=True, **run)
        assert statistics["n"] == passes, stage
        np.testing.assert_array_equal(seg.instances.read(), whole.instances.read())
