"""Object-classifier files and tables never clash or overwrite silently: ``objects train`` (and
``ObjectClassifier.save``) refuses an existing file unless ``--overwrite``; a streamed table's
temporary file is its writer's own; ``objects classify`` never replaces a column of the table
(``analyze``'s tables have a ``class`` column)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.objects import load_object_classifier, measure_objects_tiled
from scopeml.objects.measure_tiled import TableSink
from scopeml.objects.table import read_table

REFUSAL = "output exists; pass --overwrite (overwrite=True) to replace it"


def _objects() -> tuple[np.ndarray, np.ndarray]:
    """Instance labels of 8 small (6×6) and 8 large (12×12) squares, and an image to measure."""
    labels = np.zeros((120, 120), np.int32)
    for k in range(16):
        y, x, side = 4 + (k // 4) * 28, 4 + (k % 4) * 28, 6 if k % 2 else 12
        labels[y : y + side, x : x + side] = k + 1
    return labels, (labels > 0) * 100.0 + labels


def _annotated(tmp_path: Path) -> Path:
    """A measured table with a ``kind`` column (s/L by the square's size): real features."""
    labels, image = _objects()
    table = sm.measure_objects(labels, image)
    table["kind"] = np.where(table["area"] > 100, "L", "s")
    path = tmp_path / "annotated.csv"
    table.to_csv(path, index=False)
    return path


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_objects_train_refuses_an_existing_classifier_file(tmp_path, capsys):
    table, kinds = _annotated(tmp_path), tmp_path / "kinds.zip"
    train = ["objects", "train", str(table), "--class-column", "kind", "-o", str(kinds)]
    assert main([*train, "--n-estimators", "3"]) == 0
    first = kinds.read_bytes()
    capsys.readouterr()
    assert main([*train, "--n-estimators", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(kinds) in err and "pass --overwrite" in err
    assert kinds.read_bytes() == first  # untouched
    # refused before the table is even read: a missing table is not what is reported
    assert main([*train[:2], str(tmp_path / "no.csv"), *train[3:]]) == 2
    assert str(kinds) in capsys.readouterr().err
    assert main([*train, "--n-estimators", "7", "--overwrite"]) == 0
    replaced = load_object_classifier(kinds)
    assert replaced.forest.n_trees == 7 and replaced.classes == ("L", "s")
    assert replaced.predict(read_table(table)).tolist() == read_table(table)["kind"].tolist()
    assert _temporaries(tmp_path) == []


def test_objects_train_never_replaces_its_input_table(tmp_path, capsys):
    table = _annotated(tmp_path)
    before = table.read_bytes()
    args = ["objects", "train", str(table), "--class-column", "kind", "-o", str(table)]
    assert main([*args, "--overwrite"]) == 2
    assert "would replace the input table" in capsys.readouterr().err
    assert table.read_bytes() == before


def test_save_refuses_an_existing_file_unless_overwrite(tmp_path):
    table = read_table(_annotated(tmp_path))
    small = sm.train_object_classifier(table, "kind", n_estimators=2)
    large = sm.train_object_classifier(table, "kind", n_estimators=5, seed=1)
    path = small.save(tmp_path / "kinds.zip")
    before = path.read_bytes()
    with pytest.raises(InvalidRequestError) as err:
        large.save(path)
    assert Path(err.value.path) == path and REFUSAL in str(err.value)
    assert path.read_bytes() == before
    assert large.save(path, overwrite=True) == path
    assert load_object_classifier(path).forest.n_trees == 5
    (tmp_path / "folder.zip").mkdir()
    with pytest.raises(InvalidRequestError, match="is a folder"):
        large.save(tmp_path / "folder.zip", overwrite=True)
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("name", ["objects.csv", "objects.parquet"])
def test_two_writers_of_one_table_have_their_own_temporary_files(tmp_path, name):
    """Two streamed writers of one table, interleaved: each ends with exactly its own rows (with
    one shared temporary file, the second found it moved away by the first, or mixed rows)."""
    labels, image = _objects()
    whole = measure_objects_tiled(labels, image, tile_size=64)
    halves = [whole.iloc[:8], whole.iloc[8:]]
    output = tmp_path / name
    first, second = TableSink(output), TableSink(output, overwrite=True)
    for part in halves:
        first.add(part.copy())
        second.add(part.iloc[::-1].copy())
    first.close()
    pd.testing.assert_frame_equal(read_table(output), whole)
    second.close()
    pd.testing.assert_frame_equal(read_table(output), pd.concat([h.iloc[::-1] for h in halves],
                                                                ignore_index=True))  # fmt: skip
    assert _temporaries(tmp_path) == []
    assert first.temp != second.temp
    assert first.temp.parent == second.temp.parent == tmp_path  # one rename into place


def test_a_failed_or_stopped_table_leaves_no_temporary_file(tmp_path):
    labels, image = _objects()
    output = tmp_path / "objects.parquet"
    sink = TableSink(output)
    sink.add(measure_objects_tiled(labels, image, tile_size=64))
    sink.abort()
    assert _temporaries(tmp_path) == [] and not output.exists()
    sink = TableSink(output)  # a file appears at the output while this writer measures
    sink.add(measure_objects_tiled(labels, image, tile_size=64))
    output.write_text("mine")
    with pytest.raises(InvalidRequestError, match="output exists"):
        sink.close()
    assert output.read_text() == "mine" and _temporaries(tmp_path) == []


def test_a_temporary_table_is_made_beside_its_table(tmp_path):
    from scopeml.objects.table import temporary_table

    temp = temporary_table(tmp_path / "new" / "t.csv")  # the folder made, as write_table does
    assert temp.parent == tmp_path / "new" and temp.is_file()


def _analyze_table(tmp_path: Path) -> Path:
    """A nucleus table of a real ``analyze`` run: it has a ``class`` column (the class tree's)."""
    from scopeml.analysis import run_analysis
    from tests.analysis.conftest import cell_image, three_level_settings, write_image

    folder = tmp_path / "images"
    folder.mkdir()
    image = write_image(folder / "cells.ome.tif", cell_image(seed=3))
    result = run_analysis(three_level_settings(), [image], tmp_path / "out")
    return tmp_path / "out" / "images" / result.records[0]["name"] / "nucleus.csv"


def test_objects_classify_never_replaces_a_column_of_the_table(tmp_path, capsys):
    path = _analyze_table(tmp_path)
    table = read_table(path)
    assert (table["class"] == "nucleus").all() and "object_id" in table and len(table) == 6
    table["kind"] = np.where(table["area"] > table["area"].median(), "big", "small")
    annotated = tmp_path / "annotated.csv"
    table.to_csv(annotated, index=False)
    clf = sm.train_object_classifier(table, "kind", n_estimators=5)
    assert not {"object_id", "parent_id", "t"} & set(clf.features)  # ids are no features
    clf.save(tmp_path / "kinds.zip")
    out = tmp_path / "classified.csv"
    args = ["objects", "classify", str(tmp_path / "kinds.zip"), str(annotated), "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(annotated) in err
    assert "'class'" in err and "--column" in err and not out.exists()
    for column in ("kind", "area"):  # the annotation, a feature: never replaced either
        assert main([*args, "--column", column]) == 2
        assert f"{column!r}" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--column", "predicted"]) == 0
    result = read_table(out)
    assert (result["class"] == "nucleus").all()  # the tree's class kept
    assert result["predicted"].tolist() == clf.predict(table).tolist()
    pd.testing.assert_frame_equal(result[table.columns], table)
    # a classified table classified again: its class_probability would be lost too
    with pytest.raises(InvalidRequestError, match="'predicted'"):
        sm.classify_objects(result, clf, column="predicted")
    with pytest.raises(InvalidRequestError, match="'predicted_probability'"):
        clf.classify(result.drop(columns="predicted"), column="predicted")
