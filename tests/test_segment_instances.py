"""``segment --outputs labels,instances --measure``: the shipped nuclei model's instances in one
command, tiled exactly like a whole-image run, every time point kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.io.convert import write_ome_zarr
from scopeml.io.image import Image
from scopeml.objects.instances import InstanceOptions, instance_labels
from scopeml.synthetic import realistic_nuclei
from scopeml.train.metrics import object_scores


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> tuple[object, np.ndarray]:
    """Two time points of crowded nuclei, 300×280 px (bigger than one 128-px tile)."""
    frames = [realistic_nuclei((300, 280), seed=seed) for seed in (11, 12)]
    pixels = np.stack([f[0] for f in frames])[None, :, :, None]  # S T C Z Y X
    path = tmp_path_factory.mktemp("movie") / "movie.ome.zarr"
    write_ome_zarr(path, Image(pixels, pixel_sizes={"Y": 0.3, "X": 0.3}))
    return path, np.stack([f[1] for f in frames])


def test_tiled_instances_equal_a_whole_image_run(movie, tmp_path):
    path, _ = movie
    tiled = sm.segment(path, "nuclei", tmp_path / "tiled.ome.zarr", tile_size=128,
                       outputs=("labels", "probabilities", "instances"))  # fmt: skip
    whole = sm.segment(path, "nuclei", tmp_path / "whole.ome.zarr", tile_size=512,
                       outputs=("labels", "instances"))  # fmt: skip
    assert set(tiled.outputs) == {"labels", "probabilities", "instances"}
    assert set(whole.outputs) == {"labels", "instances"}  # probabilities made, then removed
    objects = tiled.instances.read()
    np.testing.assert_array_equal(objects, whole.instances.read())
    assert tiled.instances.shape == tiled.labels.shape and tiled.instances.sizes["T"] == 2
    assert tiled.instances.pixel_sizes == pytest.approx({"Y": 0.3, "X": 0.3})
    # the in-memory definition on the whole frame: seeds P(nucleus) > seed_threshold, grown 4 px
    # over P(nucleus) + P(boundary) > 0.5
    p = tiled.probabilities.read()[0, 0, :, 0]
    seed = InstanceOptions().seed_threshold
    classes = np.where(p[1] > seed, 2, np.where(p[1] + p[2] > 0.5, 3, 1))
    first = instance_labels(classes, class_id=2, grow_id=3, grow=4, min_size=8)
    np.testing.assert_array_equal(objects[0, 0, 0, 0], first)
    # both time points hold nuclei with ids following on; crossing tile borders
    assert objects[0, 1].min() == 0 and objects[0, 1][objects[0, 1] > 0].min() > first.max()
    crossing = np.intersect1d(objects[0, 0, 0, 0, 127], objects[0, 0, 0, 0, 128])
    assert crossing[crossing > 0].size > 0
    # the result says what it holds: its outputs and how many objects
    assert tiled.n_objects == len(np.unique(objects)) - 1 == whole.n_objects
    shown = repr(whole)
    assert "outputs=('labels', 'instances')" in shown and f"n_objects={whole.n_objects}" in shown
    assert "n_objects" not in repr(sm.segment(path, "nuclei", tmp_path / "l.ome.zarr"))


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_stored_probabilities_of_any_dtype_seed_the_same_way(movie, tmp_path, dtype):
    """uint8 probabilities are stored × 255: the seeds divide them back before the thresholds,
    so the instances are those of the stored values, tiled as whole."""
    path, truth = movie
    seg = sm.segment(path, "nuclei", tmp_path / "q.ome.zarr", tile_size=128,
                     probability_dtype=dtype, outputs=("probabilities", "instances"))  # fmt: skip
    reference = sm.segment(path, "nuclei", tmp_path / "f.ome.zarr", outputs=("instances",))
    p = seg.probabilities.read()[0, 0, :, 0].astype(np.float32) / (255 if dtype == "uint8" else 1)
    classes = np.where(p[1] > 0.6, 2, np.where(p[1] + p[2] > 0.5, 3, 1))
    first = instance_labels(classes, class_id=2, grow_id=3, grow=4, min_size=8)
    objects = seg.instances.read()[0, 0, 0, 0]
    np.testing.assert_array_equal(objects, first)
    found, exact = (
        object_scores(objects, truth[0]),
        object_scores(reference.instances.read()[0, 0, 0, 0], truth[0]),
    )
    assert abs(found["f1"] - exact["f1"]) < 0.02 and found["f1"] > 0.7


def test_touching_nuclei_are_split(movie, tmp_path):
    path, truth = movie
    seg = sm.segment(path, "nuclei", tmp_path / "s.ome.zarr", outputs=("instances",))
    assert "labels" in seg.outputs  # instances are made from the labels
    objects = seg.instances.read()[0, 0, 0, 0]
    plain = instance_labels(seg.labels.read()[0, 0, 0, 0] > 1, class_id=1, min_size=8)
    # the boundary class parts nuclei that the foreground alone merges
    assert objects.max() > plain.max()
    # and they match the true nuclei far better (object F1 at IoU 0.5)
    split, merged = object_scores(objects, truth[0]), object_scores(plain, truth[0])
    assert split["f1"] > 0.7 and split["f1"] > merged["f1"] + 0.1


def test_cli_writes_instances_and_the_objects_table(movie, tmp_path):
    path, _ = movie
    out, table = tmp_path / "o.ome.zarr", tmp_path / "nuclei.csv"
    code = main(["segment", str(path), "-m", "nuclei", "-o", str(out), "--quiet",
                 "--outputs", "labels,instances", "--measure", str(table)])  # fmt: skip
    assert code == 0
    objects = sm.open_image(out / "instances").read()
    rows = pd.read_csv(table)
    for t in (0, 1):
        ids = np.unique(objects[0, t])
        assert sorted(rows.loc[rows["t"] == t, "label"]) == ids[ids > 0].tolist()
    sizes = np.bincount(objects.ravel())
    assert rows["area"].tolist() == sizes[rows["label"]].tolist()
    assert rows["area_um2"].to_numpy() == pytest.approx(rows["area"].to_numpy() * 0.3 * 0.3)
    assert rows["intensity_mean_C0"].gt(0).all()
    assert {"perimeter", "solidity", "feret_diameter_max"} <= set(rows.columns)
    lean = tmp_path / "lean.csv"  # the same table without the shape features
    code = main(["segment", str(path), "-m", "nuclei", "-o", str(out), "--quiet", "--overwrite",
                 "--measure", str(lean), "--no-shape-features"])  # fmt: skip
    without = pd.read_csv(lean)
    assert code == 0 and not {"perimeter", "solidity", "feret_diameter_max"} & set(without)
    pd.testing.assert_frame_equal(without, rows[without.columns])


def test_no_shape_features_without_a_table_is_refused(movie, tmp_path, capsys):
    path, _ = movie
    code = main(["segment", str(path), "-m", "nuclei", "-o", str(tmp_path / "o.ome.zarr"),
                 "--no-shape-features"])  # fmt: skip
    assert code == 2 and "--no-shape-features" in capsys.readouterr().err
    assert not (tmp_path / "o.ome.zarr").exists()


def test_python_measure_and_measure_objects_agree(movie, tmp_path):
    path, _ = movie
    seg = sm.segment(path, "nuclei", tmp_path / "m.ome.zarr", measure=tmp_path / "t.parquet",
                     instances=InstanceOptions(min_size=20))  # fmt: skip
    written = pd.read_parquet(tmp_path / "t.parquet")
    table = sm.measure_objects(seg, path)  # a Segmentation with instances measures those
    pd.testing.assert_frame_equal(written.reset_index(drop=True), table.reset_index(drop=True))
    assert len(table) == int(seg.instances.read().max())
    sm.segment(
        path,
        "nuclei",
        tmp_path / "m.ome.zarr",
        measure=tmp_path / "t.parquet",
        instances=InstanceOptions(min_size=20),
        shape_features=False,
        overwrite=True,
    )
    lean = sm.measure_objects(seg, path, shape_features=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), lean)
    assert "solidity" not in lean.columns


def test_argmax_seeds_need_no_probabilities(movie, tmp_path):
    path, _ = movie
    out = tmp_path / "a.ome.zarr"
    code = main(["segment", str(path), "-m", "nuclei", "-o", str(out), "-q", "--outputs",
                 "instances", "--seed-threshold", "none", "--grow", "2", "--min-size", "3",
                 "--tile-size", "96"])  # fmt: skip
    assert code == 0
    seg = sm.segment(path, "nuclei", tmp_path / "b.ome.zarr", outputs=("labels",))
    labels = seg.labels.read()[0, 1, 0, 0]
    want = instance_labels(labels, class_id=2, grow_id=3, grow=2, min_size=3)
    got = sm.open_image(out / "instances").read()[0, 1, 0, 0]
    first = int(sm.open_image(out / "instances").read()[0, 0].max())
    np.testing.assert_array_equal(got, np.where(want > 0, want + first, 0))
    assert main(["segment", str(path), "-m", "nuclei", "-o", str(tmp_path / "c.ome.zarr"),
                 "--outputs", "instances", "--seed-threshold", "high", "-q"]) == 2  # fmt: skip


def test_a_bad_instance_class_fails_before_the_run(movie, tmp_path):
    path, _ = movie
    with pytest.raises(InvalidRequestError, match="is the boundary"):
        sm.segment(path, "nuclei", tmp_path / "b.ome.zarr", outputs=("instances",),
                   instances=InstanceOptions(class_="boundary"))  # fmt: skip
    assert not (tmp_path / "b.ome.zarr").exists()
    code = main(["segment", str(path), "-m", "nuclei", "-o", str(tmp_path / "c.ome.zarr"),
                 "--outputs", "instances", "--class", "7", "-q"])  # fmt: skip
    assert code == 2


def test_builtin_name_is_a_model_everywhere(tmp_path):
    pixels = realistic_nuclei((64, 64), seed=5)[0]
    assert sm.open_model("nuclei").spec.classes == ("background", "nucleus", "boundary")
    np.save(tmp_path / "small.npy", pixels[0])
    assert main(["model", "run", "nuclei", str(tmp_path / "small.npy"), "-o",
                 str(tmp_path / "p.npy")]) == 0  # fmt: skip
    assert np.load(tmp_path / "p.npy").shape[-2:] == (64, 64)
    assert main(["model", "validate", "nuclei"]) == 0
    assert main(["model", "inspect", "nuclei"]) == 0
    seg = sm.segment(Image(pixels[None, None, :, None]), "nuclei", tmp_path / "n.ome.zarr")
    assert seg.classes == ("background", "nucleus", "boundary")


def test_the_class_flags_are_the_settings_names_and_the_old_flag_still_works(
    movie, tmp_path, capsys
):
    path, _ = movie
    run = ["segment", str(path), "-m", "nuclei", "--outputs", "instances", "-q",
           "--min-size", "20", "--tile-size", "160"]  # fmt: skip
    assert main([*run, "-o", str(tmp_path / "new.ome.zarr"), "--class", "nucleus"]) == 0
    assert "renamed" not in capsys.readouterr().err
    assert main([*run, "-o", str(tmp_path / "old.ome.zarr"), "--instance-class", "2",
                 "--boundary-class", "boundary"]) == 0  # fmt: skip
    assert "--instance-class is renamed --class" in capsys.readouterr().err
    new = sm.open_image(tmp_path / "new.ome.zarr" / "instances").read()
    old = sm.open_image(tmp_path / "old.ome.zarr" / "instances").read()
    assert new.max() > 10
    np.testing.assert_array_equal(old, new)
    assert main([*run, "-o", str(tmp_path / "both.ome.zarr"), "--class", "2",
                 "--instance-class", "2"]) == 2  # fmt: skip
    assert "give --class only" in capsys.readouterr().err
    # --boundary-class reaches the options: the nucleus class cannot be both
    assert main([*run, "-o", str(tmp_path / "b.ome.zarr"), "--class", "2",
                 "--boundary-class", "nucleus"]) == 2  # fmt: skip
    assert "the object class 'nucleus' is the boundary" in capsys.readouterr().err
