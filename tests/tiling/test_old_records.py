"""A store whose run record an older scopeml wrote (the instances' ``boundary`` and ``threshold``,
since renamed ``boundary_class`` and ``seed_threshold``) still resumes, whether the stop left it
unfinished among the tiles or published without its instances, and the result equals an
uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

import scopeml as sm
from scopeml.errors import Cancelled
from scopeml.progress import ProgressEvent
from scopeml.tiling.store import RENAMED_RECORD_KEYS, partial_path
from tests.tiling.engine_doubles import published_as_before

RUN = {"outputs": ("labels", "instances"), "tile_size": 128, "workers": 1, "batch_size": 1}
OLD = {new: old for old, new in RENAMED_RECORD_KEYS["instances"].items()}


@pytest.fixture(scope="module")
def uninterrupted(crowded_nuclei, tmp_path_factory) -> np.ndarray:
    out = tmp_path_factory.mktemp("whole") / "o.ome.zarr"
    return sm.segment(crowded_nuclei, "nuclei", out, **RUN).instances.read()


def _stop_at(stage: str, after: int = 0):
    """A progress callback that cancels once ``stage`` has reported ``after`` steps done."""

    def report(event: ProgressEvent) -> None:
        if event.stage == stage and event.done >= after:
            raise Cancelled(f"stopped at {stage}")

    return report


def _as_old(record: dict) -> dict:
    """``record`` as the previous release wrote it: the instances under their old key names."""
    instances = {OLD.get(k, k): v for k, v in record["instances"].items()}
    assert instances != record["instances"]  # the record did hold a renamed key
    return {**record, "instances": instances}


def test_an_unfinished_store_recorded_with_old_names_resumes(
    crowded_nuclei, uninterrupted, tmp_path
):
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled):
        sm.segment(crowded_nuclei, "nuclei", out, progress=_stop_at("segment", 1), **RUN)
    run = next(partial_path(out).glob(".scopeml-run.json"))
    run.write_text(json.dumps(_as_old(json.loads(run.read_text()))))
    seg = sm.segment(crowded_nuclei, "nuclei", out, resume=True, **RUN)
    np.testing.assert_array_equal(seg.instances.read(), uninterrupted)


def test_a_published_store_recorded_with_old_names_gets_its_instances(
    crowded_nuclei, uninterrupted, tmp_path
):
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled):
        sm.segment(crowded_nuclei, "nuclei", out, progress=_stop_at("label"), **RUN)
    published_as_before(out)
    group = zarr.open_group(str(out), mode="r+")
    group.attrs["scopeml"] = _as_old(dict(group.attrs["scopeml"]))
    seg = sm.segment(crowded_nuclei, "nuclei", out, resume=True, **RUN)
    np.testing.assert_array_equal(seg.instances.read(), uninterrupted)


@pytest.mark.parametrize("written_by", ["scopeml 0.0.9", None])  # another release, or none said
def test_a_store_says_which_scopeml_wrote_it_and_resumes_after_an_upgrade(
    crowded_nuclei, uninterrupted, tmp_path, written_by
):
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled):
        sm.segment(crowded_nuclei, "nuclei", out, progress=_stop_at("segment", 1), **RUN)
    run = next(partial_path(out).glob(".scopeml-run.json"))
    record = json.loads(run.read_text())
    assert record["written_by"] == f"scopeml {sm.__version__}"
    record = {k: v for k, v in record.items() if k != "written_by"}
    older = record if written_by is None else {**record, "written_by": written_by}
    run.write_text(json.dumps(older))
    seg = sm.segment(crowded_nuclei, "nuclei", out, resume=True, **RUN)
    np.testing.assert_array_equal(seg.instances.read(), uninterrupted)
    group = zarr.open_group(str(out), mode="r")
    assert group.attrs["scopeml"]["written_by"] == f"scopeml {sm.__version__}"  # this run's


@pytest.mark.parametrize("changed", ["tile count", "chunks"])
def test_an_unfinished_store_cut_into_other_tiles_is_refused_not_resumed(
    crowded_nuclei, tmp_path, changed
):
    """Another scopeml may cut the same run into other tiles (a halo past the image is one tile
    now): its done records are tile numbers, so taken for this plan's they left most of the
    output empty, published without a word."""
    from scopeml.errors import IncompleteOutputError

    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled):
        sm.segment(crowded_nuclei, "nuclei", out, progress=_stop_at("segment", 1), **RUN)
    partial = partial_path(out)
    if changed == "tile count":
        (partial / ".scopeml-tiles").write_text("1")
    else:  # the labels array as a plan with 64² cores made it
        labels = zarr.open_array(str(partial / "labels" / "0"), mode="r")
        meta = json.loads((partial / "labels" / "0" / "zarr.json").read_text())
        meta["chunk_grid"]["configuration"]["chunk_shape"][-2:] = [64, 64]
        (partial / "labels" / "0" / "zarr.json").write_text(json.dumps(meta))
        assert list(labels.chunks)[-2:] == [128, 128]
    with pytest.raises(IncompleteOutputError, match="cut into other tiles"):
        sm.segment(crowded_nuclei, "nuclei", out, resume=True, **RUN)
    assert partial.is_dir() and not out.exists()  # nothing published
