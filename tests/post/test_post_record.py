"""A post-processed store says what it is: ``post`` records its source, steps and the input's
outputs it did not carry over (and says so on stderr, with how to make the objects again);
``scopeml info`` describes it as post-processed, not as the segment store it came from; a
mistyped step gets a suggestion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.model.spec import ModelSpec
from scopeml.post import PostStep, post_process_file
from scopeml.synthetic import synthetic_nuclei


class Threshold:
    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "nucleus"), halo=(0, 0))
    name = "threshold"

    def predict(self, batch):
        fg = (batch > np.median(batch)).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("seg")
    pixels, _ = synthetic_nuclei((64, 80), density=0.004, seed=3)
    image = folder / "n.tif"
    tifffile.imwrite(image, pixels[0])
    out = folder / "n.ome.zarr"
    sm.segment(image, Threshold(), out, outputs=("labels", "probabilities", "instances"))
    return image, out


def test_post_says_and_records_what_it_did_not_carry_over(store, tmp_path, monkeypatch, capsys):
    image, source = store
    monkeypatch.chdir(source.parent)  # the source given relative: recorded absolute
    out = tmp_path / "p.ome.zarr"
    assert main(["post", source.name, "-o", str(out), "-s", "opening:1", "-q"]) == 0
    printed, err = capsys.readouterr()
    assert printed.count("\n") == 1 and printed.startswith(f"labels → {out}; opening:1: ")
    command = f"scopeml objects label {out} --class nucleus -o OBJECTS.ome.zarr"
    assert err == (
        f"note: not carried over from {source}: probabilities, instances (post writes labels "
        "only; the instances were made from the labels and probabilities before it: label the "
        f"objects of these with {command})\n"
    )
    post = zarr.open_group(str(out), mode="r").attrs["scopeml"]["post"]
    assert post["source"] == str(source / "labels") and post["steps"] == ["opening:1"]
    assert post["not_carried"] == ["probabilities", "instances"]
    objects = tmp_path / "o.ome.zarr"  # the note's advice works
    assert main(["objects", "label", str(out), "--class", "nucleus", "-o", str(objects)]) == 0
    assert sm.open_image(objects).read().max() > 1
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    changed = post["changed_pixels"]
    assert (
        lines[1]
        == f"  post-processed store of {source / 'labels'}: opening:1, {changed:,} pixels changed"
    )
    assert lines[2].startswith(f"  from a segment run of {image}: model (unnamed) (classes bg,")
    assert lines[3].startswith("  labels: Y=64 X=80, uint8, classes bg, nucleus")
    assert lines[-1] == f"  {err.removeprefix('note: ').strip()}"
    assert not any("missing" in line for line in lines)  # not a segment run stopped early
    assert main(["info", str(out), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["kind"] == "post-processed store" and said["missing"] == []
    assert said["post"]["not_carried"] == ["probabilities", "instances"]
    assert main(["info", str(source)]) == 0  # the segment store is still one
    assert capsys.readouterr().out.splitlines()[1].startswith(f"  segment store of {image}: ")


def test_a_plain_label_image_has_nothing_left_behind(tmp_path, capsys):
    labels = (synthetic_nuclei((64, 80), density=0.004, seed=4)[1] > 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    out = tmp_path / "p.ome.zarr"
    assert main(["post", str(tmp_path / "l.tif"), "-o", str(out), "-s", "closing:1", "-q"]) == 0
    assert capsys.readouterr().err == ""
    record = zarr.open_group(str(out), mode="r").attrs["scopeml"]
    assert record["post"]["not_carried"] == []
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"  post-processed store of {tmp_path / 'l.tif'}: closing:1, ")
    assert lines[2].startswith("  labels: Y=64 X=80, uint8")  # no segment run to name


def test_a_mistyped_step_gets_a_suggestion(store, tmp_path, capsys):
    with pytest.raises(
        InvalidRequestError, match=r"'remove_smal' \(did you mean 'remove_small'\?\); known: "
    ):
        PostStep.parse("remove_smal:50")
    _, source = store
    assert main(["post", str(source), "-o", str(tmp_path / "x.ome.zarr"), "-s", "crff"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "unknown post-processing step 'crff' (did you mean 'crf'?)" in err
    )
    with pytest.raises(InvalidRequestError, match=r"step 'grow'; known"):  # nothing near it
        post_process_file(source, tmp_path / "y.ome.zarr", ["grow:3"])


def test_instances_split_at_a_boundary_are_filtered_where_they_are_not_labelled_again():
    """Labelling post's labels of the nuclei model's nucleus class joins touching nuclei and
    leaves the ring out (the README warns of it): the note said to do just that."""
    from scopeml.cli.post import not_carried

    record = {"post": {"source": "/d/s.ome.zarr/labels", "not_carried": ["instances"]},
              "instances": {"class_": "nucleus", "boundary_class": "boundary"}}  # fmt: skip
    said = not_carried(record, "p.ome.zarr")
    assert "split at the boundary class, which labelling these labels loses" in said
    assert "scopeml objects filter /d/s.ome.zarr -o OBJECTS.ome.zarr" in said
    assert "objects label" not in said
