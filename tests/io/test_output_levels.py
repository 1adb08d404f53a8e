"""Written outputs carry the lower resolutions a viewer needs to show a huge one whole: segment's
outputs, the objects of ``label_objects``, post-processed labels and an analysis's label stores,
each level the block mode (classes, ids) or mean (probabilities) of the one before."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile
import zarr

import scopeml as sm
from scopeml.analysis.outputs import LabelStores
from scopeml.cli.info import describe_segment_store, format_store
from scopeml.errors import Cancelled
from scopeml.io.pyramid import _mode, _mode_of_four, downsample
from scopeml.model.spec import ModelSpec
from scopeml.napari._layers import open_levels
from scopeml.post.tiled import post_process_file
from scopeml.progress import ProgressEvent

SHAPE = (1100, 1300)  # above the 1024 px a viewer shows whole: one level more


class Bands:
    """Three classes by intensity: a model with no runtime, quick on a large image."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "dim", "bright"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        dim, bright = (batch > 80) & (batch <= 160), batch > 160
        classes = np.concatenate([~(dim | bright), dim, bright], axis=1).astype(np.float32)
        return 0.1 + 0.8 * classes


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    rng = np.random.default_rng(3)
    smooth = rng.random((SHAPE[0] // 10 + 1, SHAPE[1] // 10 + 1)) * 255
    return np.kron(smooth, np.ones((10, 10)))[: SHAPE[0], : SHAPE[1]].astype(np.uint8)


def _levels(group) -> list[np.ndarray]:
    root = zarr.open_group(str(group), mode="r")
    paths = [d["path"] for d in root.attrs["ome"]["multiscales"][0]["datasets"]]
    return [root[p][...] for p in paths]


def _check_levels(group, method: str) -> None:
    levels = _levels(group)
    assert len(levels) == 2 and levels[1].shape[-2:] == (550, 650)
    assert np.array_equal(levels[1], downsample(levels[0], (-2, -1), 2, method))


def test_the_quick_mode_of_four_is_the_first_most_frequent_value():
    values = np.array(list(itertools.product(range(4), repeat=4)), np.uint8)  # every block
    assert np.array_equal(_mode_of_four(values), _mode(values))


def test_segment_outputs_get_levels_and_a_stop_among_them_resumes(pixels, tmp_path):
    image = sm.Image(pixels[None, None, None, None], pixel_sizes={"Y": 0.5, "X": 0.5})
    out = tmp_path / "o.ome.zarr"
    run = {"outputs": ["labels", "probabilities"], "tile_size": 256, "ome_tiff": True}

    def stop_in_levels(event: ProgressEvent) -> None:
        if event.stage == "pyramid" and event.done:
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        sm.segment(image, Bands(), out, progress=stop_in_levels, **run)
    assert not out.exists() and (tmp_path / "o.ome.zarr.partial").is_dir()
    events: list[ProgressEvent] = []
    seg = sm.segment(image, Bands(), out, resume=True, progress=events.append, **run)
    assert {e.total for e in events if e.stage == "segment"} <= {0}  # no tile again
    _check_levels(out / "labels", "mode")
    _check_levels(out / "probabilities", "mean")
    assert np.array_equal(seg.labels.read()[0, 0, 0, 0], _levels(out / "labels")[0])
    low = sm.open_image(out / "labels", level=1)
    assert low.pixel_sizes["Y"] == pytest.approx(1.0)  # twice the full resolution's
    assert [level.sizes["X"] for level in open_levels(out / "labels")] == [1300, 650]
    for name in ("labels", "probabilities"):  # the OME-TIFF copies: pyramidal too
        with tifffile.TiffFile(tmp_path / f"o.{name}.ome.tiff") as tiff:
            copies = [level.asarray() for level in tiff.series[0].levels]
        levels = _levels(out / name)
        assert len(copies) == len(levels) == 2 and all(map(np.array_equal, copies, levels))
    lines = format_store(describe_segment_store(out))  # scopeml info
    assert any(line.startswith("  labels: Y=1100 X=1300") and line.endswith("; 2 resolution levels")
               for line in lines)  # fmt: skip


def test_objects_post_and_analysis_label_stores_get_levels(pixels, tmp_path):
    classes = (pixels > 120).astype(np.uint8)
    objects = sm.label_objects(classes, tmp_path / "objects.ome.zarr", tile_size=256)
    assert objects.read().max() > 10
    _check_levels(tmp_path / "objects.ome.zarr", "mode")
    post = post_process_file(sm.Image(classes[None, None, None, None]),
                             tmp_path / "post.ome.zarr", ["opening:1"], tile_size=256)  # fmt: skip
    _check_levels(post, "mode")
    stores = LabelStores(tmp_path, ["nucleus"], scenes=[sm.Image(classes)], tile_size=256)
    stores.write("nucleus", 0, 0, objects.read()[0, 0, 0, 0].astype(np.int32))
    stores.finish(ome_tiff=True)
    _check_levels(tmp_path / "nucleus.ome.zarr", "mode")
    with tifffile.TiffFile(tmp_path / "nucleus.ome.tif") as tiff:  # the copy: pyramidal too
        copies = [level.asarray() for level in tiff.series[0].levels]
    levels = _levels(tmp_path / "nucleus.ome.zarr")
    assert len(copies) == len(levels) > 1 and all(map(np.array_equal, copies, levels))


def test_a_small_output_has_one_level(tmp_path):
    seg = sm.segment(np.full((64, 80), 200, np.uint8), Bands(), tmp_path / "s.ome.zarr")
    assert len(_levels(seg.path / "labels")) == 1


def test_no_levels_for_the_probabilities_made_only_to_seed_instances(pixels, tmp_path):
    events: list[ProgressEvent] = []
    seg = sm.segment(pixels, "nuclei", tmp_path / "n.ome.zarr", outputs=["labels", "instances"],
                     scale=1, progress=events.append)  # fmt: skip
    built = [e.total for e in events if e.stage == "pyramid" and e.done == 0]
    assert seg.outputs == ("labels", "instances") and len(built) == 2  # not the seeds' too
    _check_levels(seg.path / "instances", "mode")
