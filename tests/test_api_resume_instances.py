"""``segment(..., outputs=("labels", "instances"), measure=..., resume=True)`` finishes a call
stopped at its instances (its partial store kept: a store is published only with them), the
removal of the probabilities made for them, or its table: the model does not run again, and the
result equals an uninterrupted run. Another run's store, or one with everything asked for, is
refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import Cancelled, IncompleteOutputError
from scopeml.progress import ProgressEvent

RUN = {"outputs": ("labels", "instances"), "tile_size": 128, "workers": 1}


@pytest.fixture(scope="module")
def image(crowded_nuclei: Path) -> Path:
    """Crowded nuclei over four 128-px tiles (``tests/conftest.py``)."""
    return crowded_nuclei


@pytest.fixture(scope="module")
def uninterrupted(image, tmp_path_factory) -> tuple[np.ndarray, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("whole")
    seg = sm.segment(image, "nuclei", folder / "o.ome.zarr", measure=folder / "t.csv", **RUN)
    return seg.instances.read(), pd.read_csv(folder / "t.csv")


def _stop_at(stage: str):
    """A progress callback that cancels the call when ``stage`` begins; it keeps the stages."""
    seen: list[str] = []

    def report(event: ProgressEvent) -> None:
        seen.append(event.stage)
        if event.stage == stage:
            raise Cancelled(f"stopped at {stage}")

    return report, seen


def _stages(events: list[ProgressEvent]) -> set[str]:
    """The stages that ran (the engine's ``segment`` only where it ran a tile)."""
    return {e.stage for e in events if e.stage != "segment" or e.total}


def _partial(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def test_stopped_at_the_instances_resume_makes_them(image, uninterrupted, tmp_path):
    out, table = tmp_path / "o.ome.zarr", tmp_path / "t.csv"
    stop, seen = _stop_at("label")  # the first stage of the instances, after the engine
    with pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, measure=table, progress=stop, **RUN)
    assert "segment" in seen and not out.exists() and not table.exists()  # published whole
    assert sm.Segmentation(_partial(out)).outputs == ("labels", "probabilities")  # seeds kept
    with pytest.raises(IncompleteOutputError, match=r"interrupted run .*; pass --resume"):
        sm.segment(image, "nuclei", out, measure=table, **RUN)  # without resume: points to it
    events: list[ProgressEvent] = []
    seg = sm.segment(image, "nuclei", out, measure=table, resume=True, progress=events.append,
                     **RUN)  # fmt: skip
    assert "segment" not in _stages(events)  # the model did not run again
    assert {"label", "grow", "measure"} <= _stages(events)
    assert seg.outputs == ("labels", "instances")  # the probabilities removed after them
    objects, rows = uninterrupted
    assert objects.max() > 10
    np.testing.assert_array_equal(seg.instances.read(), objects)
    pd.testing.assert_frame_equal(pd.read_csv(table), rows)


def test_half_written_instances_are_made_again(image, uninterrupted, tmp_path):
    out, table = tmp_path / "o.ome.zarr", tmp_path / "t.csv"
    stop, _ = _stop_at("label")
    with pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, measure=table, progress=stop, **RUN)
    # an instances array stopped while written in place: half its pixels, no object count
    # (written last), and the scratch of a killed attempt beside it
    staged = _partial(out)
    sm.label_objects(sm.Segmentation(staged), staged / "instances", class_="nucleus")
    instances = zarr.open_array(str(staged / "instances" / "0"), mode="r+")
    instances[100:] = 0
    del instances.attrs["n_objects"]
    (staged / ".instances.0123abcd.partial.zarr.0.0.tmp").mkdir()
    events: list[ProgressEvent] = []
    seg = sm.segment(image, "nuclei", out, measure=table, resume=True, progress=events.append,
                     **RUN)  # fmt: skip
    assert "segment" not in _stages(events) and "label" in _stages(events)
    np.testing.assert_array_equal(seg.instances.read(), uninterrupted[0])
    pd.testing.assert_frame_equal(pd.read_csv(table), uninterrupted[1])
    assert [p.name for p in out.iterdir() if p.name.startswith(".instances")] == []


def test_a_missing_table_alone_is_made(image, uninterrupted, tmp_path):
    out, table = tmp_path / "o.ome.zarr", tmp_path / "t.csv"
    stop, _ = _stop_at("find objects")  # the table's first stage: instances are done
    with pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, measure=table, progress=stop, **RUN)
    assert sm.Segmentation(out).outputs == ("labels", "instances") and not table.exists()
    events: list[ProgressEvent] = []
    sm.segment(image, "nuclei", out, measure=table, resume=True, progress=events.append, **RUN)
    assert _stages(events) == {"find objects", "measure"}  # neither the model nor instances
    pd.testing.assert_frame_equal(pd.read_csv(table), uninterrupted[1])


def test_another_run_or_a_finished_one_keeps_the_error(image, tmp_path):
    out, table = tmp_path / "o.ome.zarr", tmp_path / "t.csv"
    stop, _ = _stop_at("label")
    with pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, measure=table, progress=stop, **RUN)
    changes = {"tile_size": 64, "normalize": "none", "min_confidence": 0.6}
    for key, value in changes.items():  # refused naming what differs, not as complete
        with pytest.raises(IncompleteOutputError, match=rf"different run: .*{key}"):
            sm.segment(image, "nuclei", out, resume=True, **{**RUN, key: value})
    with pytest.raises(IncompleteOutputError, match="different run: the run used the model"):
        sm.segment(image, _two_classes(), out, resume=True, **RUN)  # another model
    assert sm.Segmentation(_partial(out)).outputs == ("labels", "probabilities")  # as it was
    sm.segment(image, "nuclei", out, measure=table, resume=True, **RUN)
    again = sm.segment(image, "nuclei", out, measure=table, resume=True, **RUN)
    assert again.already_complete  # finished: nothing to do, not an error
    with pytest.raises(IncompleteOutputError, match=r"different run: .*tile_size"):
        sm.segment(image, "nuclei", out, measure=table, resume=True, **{**RUN, "tile_size": 64})


def test_instances_without_their_probabilities_are_refused(image, tmp_path):
    out = tmp_path / "o.ome.zarr"
    sm.segment(image, "nuclei", out, **RUN)
    shutil.rmtree(out / "instances")  # the probabilities they were seeded from are gone too
    with pytest.raises(IncompleteOutputError, match="probabilities they are made from"):
        sm.segment(image, "nuclei", out, resume=True, **RUN)


def test_cli_resume_finishes_the_instances(image, uninterrupted, tmp_path, capsys):
    out, table = tmp_path / "o.ome.zarr", tmp_path / "t.csv"
    command = ["segment", str(image), "-m", "nuclei", "-o", str(out), "--quiet",
               "--outputs", "labels,instances", "--tile-size", "128", "--workers", "1",
               "--measure", str(table)]  # fmt: skip
    stop, _ = _stop_at("label")
    with pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, measure=table, progress=stop, **RUN)
    assert main(command) == 2  # without --resume: the partial store is there
    assert "an interrupted run left this partial output" in capsys.readouterr().err
    assert main([*command, "--resume"]) == 0
    np.testing.assert_array_equal(sm.open_image(out / "instances").read(), uninterrupted[0])
    pd.testing.assert_frame_equal(pd.read_csv(table), uninterrupted[1])
    assert "already complete" not in capsys.readouterr().out  # it made the instances
    assert main([*command, "--resume"]) == 0  # now everything is there: nothing to do
    assert capsys.readouterr().out.startswith("already complete; nothing to do: labels")


def _two_classes():
    """A model other than nuclei with an object class: bright pixels are ``nucleus``."""
    from scopeml.model.spec import ModelSpec

    class Bright:
        spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("background", "nucleus"),
                         halo=(0, 0))  # fmt: skip

        def predict(self, batch: np.ndarray) -> np.ndarray:
            fg = (batch > batch.mean()).astype(np.float32)
            return np.concatenate([1 - fg, fg], axis=1)

    return Bright()
