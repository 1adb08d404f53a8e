"""``objects paint`` / ``paint_objects``: each object painted by its class in a table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from skimage.measure import label as cc_label

import scopeml as sm
from scopeml.cli import main
from scopeml.io import open_image
from scopeml.io.omezarr import label_classes
from scopeml.synthetic import synthetic_nuclei


def _classified(labels: np.ndarray) -> pd.DataFrame:
    """Every object of ``labels`` with a class by its size, as a classifier's table has it."""
    table = sm.measure_objects(labels)
    table["class"] = np.where(table["area"] > table["area"].median(), "large", "small")
    return table


def _expected(labels: np.ndarray, table: pd.DataFrame, names: list[str]) -> np.ndarray:
    value = dict(zip(table["label"], [names.index(c) + 1 for c in table["class"]], strict=True))
    return np.vectorize(lambda i: value.get(i, 0))(labels)


def test_cli_paints_each_object_by_its_class_and_label_takes_a_class_back(tmp_path, capsys):
    _, labels = synthetic_nuclei((200, 260), density=0.003, channels=1, seed=3)
    tifffile.imwrite(tmp_path / "labels.tif", labels.astype(np.uint16))
    table = _classified(labels)
    table.to_csv(tmp_path / "classes.csv", index=False)
    out = tmp_path / "painted.ome.zarr"
    args = ["objects", "paint", str(tmp_path / "labels.tif"), str(tmp_path / "classes.csv")]
    assert main([*args, "-o", str(out), "--tile-size", "64", "-q"]) == 0
    painted = open_image(out).read()[0, 0, 0, 0]
    assert painted.dtype == np.uint8
    np.testing.assert_array_equal(painted, _expected(labels, table, ["large", "small"]))
    assert label_classes(out) == ["large", "small"]
    window = zarr.open_group(str(out)).attrs["ome"]["omero"]["channels"][0]["window"]
    assert (window["start"], window["end"]) == (0, 2)  # the classes, not uint8's 0–255
    assert "(1 large, 2 small; 0 none)" in capsys.readouterr().out

    assert main([*args, "-o", str(out), "--classes", "small,large", "--overwrite", "-q"]) == 0
    painted = open_image(out).read()[0, 0, 0, 0]
    np.testing.assert_array_equal(painted, _expected(labels, table, ["small", "large"]))
    # the painted image names its classes: objects label takes one back by name
    assert main(["objects", "label", str(out), "--class", "large", "-o",
                 str(tmp_path / "large.ome.zarr"), "-q"]) == 0  # fmt: skip
    large = open_image(tmp_path / "large.ome.zarr").read()[0, 0, 0, 0]
    assert large.max() == cc_label(painted == 2, connectivity=1).max() > 0
    assert main(["objects", "measure", str(out), "-o", str(tmp_path / "m.csv"), "-q"]) == 2
    assert "class labels, not objects" in capsys.readouterr().err


def test_a_time_series_of_masks_numbered_per_frame_is_painted_by_its_t_rows(tmp_path):
    """StarDist-style masks (ids 1.. again in every frame): each frame's ids through the rows
    of its own ``t``, whatever the tiling."""
    frames = [synthetic_nuclei((90, 120), density=0.004, channels=1, seed=s)[1] for s in (1, 2)]
    stack = np.stack(frames).astype(np.uint16)
    rows = []
    for t, frame in enumerate(frames):
        part = _classified(frame)
        part["t"] = t
        rows.append(part)
    table = pd.concat(rows, ignore_index=True)
    out = sm.paint_objects(stack, table, tmp_path / "p.ome.zarr", tile_size=32, axes="TYX")
    got = out.read()[0, :, 0, 0]
    for t, frame in enumerate(frames):
        np.testing.assert_array_equal(
            got[t], _expected(frame, table[table["t"] == t], ["large", "small"])
        )


def test_rows_without_a_class_are_unclassified_and_what_is_left_out_is_said(tmp_path):
    labels = np.array([[1, 1, 0, 2], [3, 3, 0, 2], [0, 0, 0, 4]], np.uint16)
    table = pd.DataFrame({"object_id": [1, 2, 3, 9], "class": ["nucleus"] * 4,
                          "object_class": ["a", None, "b", "a"]})  # fmt: skip
    with pytest.warns(UserWarning) as said:
        out = sm.paint_objects(labels, table, tmp_path / "p.ome.zarr")
    text = " | ".join(str(w.message) for w in said)
    assert "the labels: 1 object not in the table: left as background (0)" in text
    assert "the table: 1 row name objects the image does not have" in text
    np.testing.assert_array_equal(out.read()[0, 0, 0, 0], [[1, 1, 0, 3], [2, 2, 0, 3], [0] * 4])
    assert label_classes(tmp_path / "p.ome.zarr") == ["a", "b", "unclassified"]


@pytest.mark.parametrize(
    ("table", "options", "problem"),
    [
        ({"label": [1, 2]}, {}, "no class column (object_class, class)"),
        ({"label": [1, 2], "kind": ["a", "b"]}, {"column": "type"}, "no column 'type'; its text"),
        ({"label": [1, 1], "class": ["a", "b"]}, {}, "object 1 has two rows"),
        ({"label": [1, 2.5], "class": ["a", "b"]}, {}, "a label is not an object id"),
        ({"label": [1, 2], "class": ["a", "c"]}, {"classes": ["a", "b"]}, "among those given: c"),
        ({"label": [1, 2], "class": ["a", "b"], "t": [0, 1]}, {}, "several t values"),
    ],
)
def test_a_table_that_does_not_fit_is_refused_naming_it(tmp_path, capsys, table, options, problem):
    labels = np.array([[1, 0, 2]], np.uint16)
    np.save(tmp_path / "labels.npy", labels)
    pd.DataFrame(table).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(sm.ScopeMLError, match=r"t\.csv") as err:
        sm.paint_objects(tmp_path / "labels.npy", tmp_path / "t.csv", tmp_path / "p.ome.zarr",
                         **options)  # fmt: skip
    assert problem in str(err.value)
    assert not (tmp_path / "p.ome.zarr").exists()
    args = ["objects", "paint", str(tmp_path / "labels.npy"), str(tmp_path / "t.csv")]
    options_cli = [f"--{k}={v if isinstance(v, str) else ','.join(v)}" for k, v in options.items()]
    assert main([*args, "-o", str(tmp_path / "p.ome.zarr"), *options_cli]) == 2
    err_text = capsys.readouterr().err.strip()
    assert err_text.startswith("error: ") and "t.csv" in err_text and problem in err_text
    assert "Traceback" not in err_text and len(err_text.splitlines()) == 1


def test_class_labels_are_refused_as_objects_and_objects_kinds_are_no_classes(tmp_path):
    """A painted image (or a store's class labels) given back as objects would paint each class
    as one object; an instance store whose properties name each object's kind is objects."""
    labels = np.array([[1, 1, 0, 2], [3, 3, 0, 2]], np.uint16)
    table = pd.DataFrame({"label": [1, 2, 3], "class": ["a", "b", "a"]})
    painted = tmp_path / "p.ome.zarr"
    sm.paint_objects(labels, table, painted)
    with pytest.raises(sm.ScopeMLError, match="these are class labels, not objects"):
        sm.paint_objects(painted, table, tmp_path / "again.ome.zarr")
    import zarr

    from scopeml.io.omezarr import mark_label_image

    kinds = tmp_path / "cells.ome.zarr"  # another tool's objects, each with its kind
    sm.filter_objects(labels, kinds)
    group = zarr.open_group(str(kinds), mode="r+")
    mark_label_image(group, ["cell", "cell", "cell"])
    assert len(sm.measure_objects(kinds)) == 3


def test_big_ids_planes_and_class_names_are_taken_exactly(tmp_path):
    big = 2**53 + 1  # a float would make it 2**53
    labels = np.array([[0, 5], [big, big]], np.uint64)
    table = pd.DataFrame({"label": np.array([5, big], np.uint64), "class": ["10", "2"]})
    out = sm.paint_objects(labels, table, tmp_path / "p.ome.zarr")
    assert out.read()[0, 0, 0, 0].tolist() == [[0, 2], [1, 1]]  # "2" before "10", as numbers
    assert label_classes(tmp_path / "p.ome.zarr") == ["2", "10"]
    frames = np.stack([labels.astype(np.uint16) % 7] * 2)
    with pytest.raises(sm.ScopeMLError, match="a t value is not one of the labels"):
        sm.paint_objects(frames, pd.DataFrame({"label": [5], "class": ["a"], "t": [0.5]}),
                         tmp_path / "t.ome.zarr", axes="TYX")  # fmt: skip
    for classes in ([], ["a", ""]):
        with pytest.raises(sm.ScopeMLError, match="classes: a class without a name"):
            sm.paint_objects(labels, table, tmp_path / "c.ome.zarr", classes=classes)


def test_a_table_without_t_paints_every_time_point_from_one_lookup(tmp_path, monkeypatch):
    """An objects store's ids are unique over its time points: a table without ``t`` serves
    them all, each row once (not a copy per time point), and objects the table lacks are
    counted over the whole series, up to the cap."""
    import scopeml.objects.paint as paint

    movie = np.zeros((3, 4, 6), np.uint16)
    movie[0, :2, :2], movie[1, 2:, :2], movie[2, :2, 3:] = 1, 2, 3
    movie[:, 3, 5] = [7, 8, 9]  # one object per frame that the table lacks
    table = pd.DataFrame({"label": [1, 2, 3], "class": ["x", "y", "x"]})
    made = []
    monkeypatch.setattr(paint, "_Lookup", lambda *a: made.append(a) or _real_lookup(*a))
    with pytest.warns(UserWarning, match=r"the labels: 3 objects not in the table"):
        out = sm.paint_objects(movie, table, tmp_path / "m.ome.zarr", axes="TYX")
    assert len(made) == 1
    expected = np.select([movie == 1, movie == 2, movie == 3], [1, 2, 1], 0)
    np.testing.assert_array_equal(out.read()[0, :, 0, 0], expected)
    monkeypatch.setattr(paint, "MISSING_KEPT", 2)
    with pytest.warns(UserWarning, match=r"the labels: ≥ 2 objects not in the table"):
        sm.paint_objects(movie, table, tmp_path / "n.ome.zarr", axes="TYX")


from scopeml.objects.paint import _Lookup as _real_lookup  # noqa: E402


def test_an_analysis_table_paints_its_own_images_objects_only(tmp_path, capsys):
    """``tables/CLASS.csv`` holds every image's objects (ids restarting in each): the store's
    image's rows are taken (images named by digits too: 003 is not the number 3); another
    image's or class's table, or one without object classes
    (its ``class`` is the class tree's), is refused, not painted onto other objects."""
    from scopeml.analysis import run_analysis
    from tests.analysis.conftest import cell_image, write_image
    from tests.analysis.test_rules import settings

    images = [write_image(tmp_path / f"00{k}.ome.tif", cell_image(seed=k, n_cells=6))
              for k in (3, 4)]  # fmt: skip
    rules = {"large": {"area": {"min": 350}}}
    out = tmp_path / "out"
    assert not run_analysis(settings(rules), images, out).failures
    store, own = out / "images" / "003" / "nucleus.ome.zarr", out / "images" / "003" / "nucleus.csv"
    args = ["objects", "paint", str(store)]
    assert main([*args, str(own), "-o", str(tmp_path / "own.ome.zarr"), "-q"]) == 0
    assert main([*args, str(out / "tables" / "nucleus.csv"), "-o",
                 str(tmp_path / "all.ome.zarr"), "-q"]) == 0  # fmt: skip
    painted = open_image(tmp_path / "own.ome.zarr").read()
    np.testing.assert_array_equal(painted, open_image(tmp_path / "all.ome.zarr").read())
    table = pd.read_csv(own)
    large = table.loc[table["object_class"] == "large", "object_id"]
    ids = open_image(store).read()
    assert (painted[np.isin(ids, large)] == 1).all() and (painted[~np.isin(ids, large)] != 1).all()
    capsys.readouterr()
    refused = {
        "004/nucleus.csv": "objects of image 004; these are 003's nucleus objects: give images/",
        "003/cell.csv": "an analysis table without object classes (its class column is the class",
    }
    for other, said in refused.items():
        assert main([*args, str(out / "images" / other), "-o", str(tmp_path / "no.ome.zarr")]) == 2
        assert said in capsys.readouterr().err
