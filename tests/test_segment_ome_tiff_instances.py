"""``segment(..., ome_tiff=True)`` with instances: one OME-TIFF per output asked for (the
instances included, the probabilities made only to seed them not), each equal to its array;
the store's run record says what it holds and how its instances were made; a resumed call
ends with the same copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import Cancelled, IncompleteOutputError, InvalidRequestError
from scopeml.objects.instances import InstanceOptions
from scopeml.progress import ProgressEvent

RUN = {"outputs": ("labels", "instances"), "tile_size": 128, "workers": 1, "ome_tiff": True}


@pytest.fixture(scope="module")
def image(crowded_nuclei: Path) -> Path:
    """Crowded nuclei over four 128-px tiles (``tests/conftest.py``)."""
    return crowded_nuclei


@pytest.fixture(scope="module")
def uninterrupted(image, tmp_path_factory) -> np.ndarray:
    """The instances of an uninterrupted run (``RUN``)."""
    seg = sm.segment(image, "nuclei", tmp_path_factory.mktemp("whole") / "o.ome.zarr", **RUN)
    return seg.instances.read()[0, 0, 0, 0]


def tiffs(folder: Path) -> list[str]:
    """The outputs with an OME-TIFF copy in ``folder``."""
    return sorted(p.name.split(".")[1] for p in folder.glob("*.ome.tiff"))


def assert_copies_equal(seg: sm.Segmentation, names: list[str]) -> None:
    """Each named output's OME-TIFF holds its array (axes YX or CYX), pixel size included."""
    for name in names:
        path = seg.path.with_name(f"o.{name}.ome.tiff")
        array = zarr.open_array(str(seg.path / name / "0"), mode="r")[...]
        np.testing.assert_array_equal(tifffile.imread(path), array)
        copy = sm.open_image(path)
        assert copy.pixel_sizes["X"] == pytest.approx(0.5), name


def record(seg: sm.Segmentation) -> dict:
    return zarr.open_group(str(seg.path), mode="r").attrs["scopeml"]


def test_one_copy_per_output_asked_for_and_the_record(image, uninterrupted, tmp_path):
    seg = sm.segment(image, "nuclei", tmp_path / "o.ome.zarr",
                     **{**RUN, "outputs": ("labels", "confidence", "instances")})  # fmt: skip
    assert seg.outputs == ("labels", "confidence", "instances")
    assert tiffs(tmp_path) == ["confidence", "instances", "labels"]  # no probabilities
    assert_copies_equal(seg, ["labels", "confidence", "instances"])
    np.testing.assert_array_equal(seg.instances.read()[0, 0, 0, 0], uninterrupted)
    run = record(seg)
    assert run["options"]["outputs"] == ["labels", "confidence", "instances"]
    assert run["instances"] == {"class_": "nucleus", "boundary_class": "boundary",
                                "grow": 4.0, "min_size": 8, "connectivity": 1,
                                "seed_threshold": 0.6}  # fmt: skip
    # the display window spans the ids written, not the uint32 range
    n = int(uninterrupted.max())
    assert n > 10
    omero = zarr.open_group(str(seg.path / "instances"), mode="r").attrs["ome"]["omero"]
    assert omero["channels"][0]["window"]["end"] == n
    assert omero["channels"][0]["window"]["start"] == 0


def test_instances_alone_and_probabilities_asked_for(image, tmp_path):
    alone = tmp_path / "a"
    seg = sm.segment(image, "nuclei", alone / "o.ome.zarr", **{**RUN, "outputs": ("instances",)})
    assert seg.outputs == ("labels", "instances")  # the labels they are made from stay
    assert tiffs(alone) == ["instances"]
    assert record(seg)["options"]["outputs"] == ["labels", "instances"]
    measured = tmp_path / "m"  # instances made only to measure: in the store, not copied
    seg = sm.segment(image, "nuclei", measured / "o.ome.zarr", measure=measured / "t.csv",
                     **{**RUN, "outputs": ("labels",)})  # fmt: skip
    assert seg.outputs == ("labels", "instances") and tiffs(measured) == ["labels"]
    asked = tmp_path / "p"
    options = InstanceOptions(grow=2, min_size=20, seed_threshold=0.8)
    seg = sm.segment(image, "nuclei", asked / "o.ome.zarr", instances=options,
                     **{**RUN, "outputs": ("labels", "probabilities", "instances")})  # fmt: skip
    assert tiffs(asked) == ["instances", "labels", "probabilities"]
    assert_copies_equal(seg, ["labels", "probabilities", "instances"])
    run = record(seg)
    assert run["options"]["outputs"] == ["labels", "probabilities", "instances"]
    assert InstanceOptions(**run["instances"]) == InstanceOptions(
        class_="nucleus", boundary_class="boundary", grow=2.0, min_size=20, seed_threshold=0.8
    )


def _stop_at(stage: str):
    def report(event: ProgressEvent) -> None:
        if event.stage == stage:
            raise Cancelled(f"stopped at {stage}")

    return report


def test_resume_after_the_engine_ends_with_the_copies_asked_for(image, uninterrupted, tmp_path):
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, progress=_stop_at("label"), **RUN)
    assert tiffs(tmp_path) == [] and not out.exists()  # published whole, copies after it
    events: list[ProgressEvent] = []
    seg = sm.segment(image, "nuclei", out, resume=True, progress=events.append, **RUN)
    assert not [e for e in events if e.stage == "segment" and e.total]  # no tile ran again
    assert seg.outputs == ("labels", "instances") and tiffs(tmp_path) == ["instances", "labels"]
    assert_copies_equal(seg, ["labels", "instances"])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.instances.ome.tiff"), uninterrupted)
    assert sm.segment(image, "nuclei", out, resume=True, **RUN).already_complete


def test_a_missing_copy_alone_is_written_on_resume(image, tmp_path):
    out = tmp_path / "o.ome.zarr"
    sm.segment(image, "nuclei", out, **RUN)
    (tmp_path / "o.instances.ome.tiff").unlink()
    events: list[ProgressEvent] = []
    seg = sm.segment(image, "nuclei", out, resume=True, progress=events.append, **RUN)
    assert events == [] and tiffs(tmp_path) == ["instances", "labels"]  # nothing run again
    assert_copies_equal(seg, ["instances"])
    plain = tmp_path / "plain"
    labels_only = {**RUN, "outputs": ("labels",)}
    sm.segment(image, "nuclei", plain / "o.ome.zarr", **labels_only)
    (plain / "o.labels.ome.tiff").unlink()
    seg = sm.segment(image, "nuclei", plain / "o.ome.zarr", resume=True, **labels_only)
    assert tiffs(plain) == ["labels"]
    assert_copies_equal(seg, ["labels"])


def test_other_instance_options_are_another_run(image, tmp_path):
    out = tmp_path / "o.ome.zarr"
    with pytest.raises(Cancelled):
        sm.segment(image, "nuclei", out, progress=_stop_at("label"), **RUN)
    with pytest.raises(IncompleteOutputError, match=r"different run: instances\.grow: 4\.0"):
        sm.segment(image, "nuclei", out, resume=True, instances=InstanceOptions(grow=1), **RUN)
    staged = out.with_name(out.name + ".partial")
    assert sm.Segmentation(staged).outputs == ("labels", "probabilities")  # left as it was
    # the same options, spelt out, are the same run
    same = InstanceOptions(
        class_=2, boundary_class="boundary", grow=4, min_size=8, seed_threshold=0.6
    )
    seg = sm.segment(image, "nuclei", out, resume=True, instances=same, **RUN)
    assert seg.outputs == ("labels", "instances") and tiffs(tmp_path) == ["instances", "labels"]


def test_existing_copies_are_refused_first_and_overwrite_replaces_them(image, tmp_path):
    out = tmp_path / "o.ome.zarr"
    (tmp_path / "o.instances.ome.tiff").write_bytes(b"mine")
    with pytest.raises(InvalidRequestError, match=r"o\.instances\.ome\.tiff"):
        sm.segment(image, "nuclei", out, **RUN)
    assert not out.exists() and tiffs(tmp_path) == ["instances"]
    seg = sm.segment(image, "nuclei", out, overwrite=True, **RUN)
    assert_copies_equal(seg, ["labels", "instances"])
    first = tifffile.imread(tmp_path / "o.instances.ome.tiff")
    seg = sm.segment(image, "nuclei", out, overwrite=True, instances=InstanceOptions(min_size=400),
                     **RUN)  # fmt: skip
    assert_copies_equal(seg, ["labels", "instances"])
    assert tifffile.imread(tmp_path / "o.instances.ome.tiff").max() < first.max()
    assert record(seg)["instances"]["min_size"] == 400


def test_cli_writes_the_instances_copy(image, uninterrupted, tmp_path):
    out = tmp_path / "o.ome.zarr"
    assert main(["segment", str(image), "-m", "nuclei", "-o", str(out), "--quiet",
                 "--outputs", "labels,instances", "--tile-size", "128", "--workers", "1",
                 "--ome-tiff"]) == 0  # fmt: skip
    assert tiffs(tmp_path) == ["instances", "labels"]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.instances.ome.tiff"), uninterrupted)


def test_overwriting_a_store_removes_its_copies(image, tmp_path):
    """A store replaced by a run without ``ome_tiff`` takes its OME-TIFF copies with it: they
    would pass for the new run's; a file of another name beside it stays."""
    sm.segment(image, "nuclei", tmp_path / "o.ome.zarr", **RUN)
    (tmp_path / "o.notes.txt").write_text("mine")
    assert tiffs(tmp_path) == ["instances", "labels"]
    seg = sm.segment(image, "nuclei", tmp_path / "o.ome.zarr", overwrite=True,
                     **{**RUN, "ome_tiff": False, "outputs": ("labels",)})  # fmt: skip
    assert tiffs(tmp_path) == [] and seg.outputs == ("labels",)
    assert (tmp_path / "o.notes.txt").read_text() == "mine"
    sm.segment(image, "nuclei", tmp_path / "o.ome.zarr", overwrite=True, **RUN)
    assert tiffs(tmp_path) == ["instances", "labels"]
