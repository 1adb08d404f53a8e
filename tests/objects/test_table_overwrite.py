"""A table never replaces a file that is already there (t2 finding 2): every table writer
(``measure_objects``, ``segment(measure=)``, ``classify_objects``, ``classify_images``, the
``objects measure``/``objects classify``/``segment --measure``/``classify`` commands) refuses
an existing file, before any work, naming it and ``--overwrite``; with the flag it is replaced.
A resumed ``segment`` whose stopped call wrote its table still finishes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import Cancelled, InvalidRequestError
from scopeml.model.spec import ModelSpec
from scopeml.objects import measure_objects_tiled
from scopeml.objects.table import write_table
from scopeml.progress import ProgressEvent

MINE = "my,own\nnotes,1\n"
REFUSAL = "output exists; pass --overwrite (overwrite=True) to replace it"


class Threshold:
    """Foreground above 5; counts its calls (a refusal must come before any)."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "fg"), halo=(0, 0))

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        fg = (batch > 5).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=1)


def _blobs() -> np.ndarray:
    """A 40×40 plane with three bright squares: three objects."""
    plane = np.zeros((40, 40), np.uint8)
    plane[2:8, 2:8], plane[20:30, 5:12], plane[30:38, 30:38] = 9, 9, 9
    return plane


def _mine(tmp_path: Path, name: str = "mine.csv") -> Path:
    path = tmp_path / name
    path.write_text(MINE)
    return path


def _refused(err: pytest.ExceptionInfo, path: Path) -> None:
    assert Path(err.value.path) == path and REFUSAL in str(err.value)
    assert path.read_text() == MINE  # untouched


def test_write_table_refuses_an_existing_file_unless_overwrite(tmp_path):
    mine = _mine(tmp_path)
    with pytest.raises(InvalidRequestError) as err:
        write_table(pd.DataFrame({"label": [1, 2]}), mine)
    _refused(err, mine)
    write_table(pd.DataFrame({"label": [1, 2]}), mine, overwrite=True)
    assert pd.read_csv(mine)["label"].tolist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.csv"]  # no temporary left


def test_a_folder_is_refused_as_a_table(tmp_path):
    (tmp_path / "t.csv").mkdir()
    with pytest.raises(InvalidRequestError, match="is a folder"):
        write_table(pd.DataFrame({"label": [1]}), tmp_path / "t.csv", overwrite=True)


@pytest.mark.parametrize("name", ["mine.csv", "mine.parquet"])
def test_measure_objects_refuses_before_measuring(tmp_path, name, monkeypatch):
    import scopeml.objects.images as images

    mine = _mine(tmp_path, name)
    labels = np.zeros((40, 40), np.int32)
    labels[2:8, 2:8], labels[20:30, 5:12] = 1, 2
    monkeypatch.setattr(images, "measure_stack", lambda *a, **k: pytest.fail("measured"))
    with pytest.raises(InvalidRequestError) as err:
        sm.measure_objects(labels, _blobs(), output=mine)
    _refused(err, mine)
    with pytest.raises(InvalidRequestError) as err:
        measure_objects_tiled(labels, _blobs(), output=mine)
    _refused(err, mine)
    monkeypatch.undo()
    assert sm.measure_objects(labels, _blobs(), output=mine, overwrite=True) == mine
    table = pd.read_csv(mine) if name.endswith(".csv") else pd.read_parquet(mine)
    assert table["label"].tolist() == [1, 2] and table["area"].tolist() == [36, 70]


def test_classify_objects_refuses_before_classifying(tmp_path):
    table = pd.DataFrame({"area": [1, 2, 8, 9], "kind": ["s", "s", "L", "L"]})
    clf = sm.train_object_classifier(table, "kind", n_estimators=5)
    mine = _mine(tmp_path)
    with pytest.raises(InvalidRequestError) as err:
        sm.classify_objects(table, clf, output=mine)
    _refused(err, mine)
    sm.classify_objects(table, clf, output=mine, overwrite=True)
    assert pd.read_csv(mine)["class"].tolist() == ["s", "s", "L", "L"]


def test_segment_measure_refuses_before_the_model_runs(tmp_path):
    mine, out, model = _mine(tmp_path), tmp_path / "o.ome.zarr", Threshold()
    for resume in (None, True):  # resuming nothing: still a file of the user's
        with pytest.raises(InvalidRequestError) as err:
            sm.segment(_blobs(), model, out, measure=mine, resume=resume)
        _refused(err, mine)
    assert model.calls == 0 and not out.exists()
    sm.segment(_blobs(), model, out, measure=mine, overwrite=True)
    table = pd.read_csv(mine)
    assert model.calls > 0 and sorted(table["area"]) == [36, 64, 70]


def test_a_resumed_segment_finishes_with_its_own_table(tmp_path):
    table, out = tmp_path / "t.csv", tmp_path / "o.ome.zarr"

    def stop_in_table(event: ProgressEvent) -> None:
        if event.stage == "measure":
            raise Cancelled("stopped in the table")

    with pytest.raises(Cancelled):
        sm.segment(_blobs(), Threshold(), out, measure=table, progress=stop_in_table)
    assert not table.exists()
    model = Threshold()
    sm.segment(_blobs(), model, out, measure=table, resume=True)
    assert model.calls == 0 and sorted(pd.read_csv(table)["area"]) == [36, 64, 70]
    # its table is there now, written by the run: a resume finds the run complete, not a
    # file of the user's in the way
    assert sm.segment(_blobs(), model, out, measure=table, resume=True).already_complete
    assert model.calls == 0


def _files(tmp_path: Path) -> tuple[Path, Path]:
    labels = np.zeros((40, 40), np.int32)
    labels[2:8, 2:8], labels[20:30, 5:12] = 1, 2
    np.save(tmp_path / "labels.npy", labels)
    tifffile.imwrite(tmp_path / "image.tif", _blobs())
    return tmp_path / "labels.npy", tmp_path / "image.tif"


def test_the_commands_refuse_an_existing_table_with_exit_2(tmp_path, capsys):
    labels, image = _files(tmp_path)
    mine = _mine(tmp_path)
    table = pd.DataFrame({"area": [36.0, 70.0], "kind": ["s", "L"]})
    clf = sm.train_object_classifier(table, "kind", n_estimators=5)
    clf.save(tmp_path / "kinds.zip")
    write_table(table, tmp_path / "objects.csv")
    commands = [
        ["objects", "measure", str(labels), "--image", str(image), "-q", "-o", str(mine)],
        ["objects", "classify", str(tmp_path / "kinds.zip"), str(tmp_path / "objects.csv"),
         "-o", str(mine)],
        ["segment", str(image), "-m", "nuclei", "-o", str(tmp_path / "o.ome.zarr"), "-q",
         "--outputs", "labels,instances", "--measure", str(mine)],
    ]  # fmt: skip
    for args in commands:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert str(mine) in err and "pass --overwrite" in err, args
        assert mine.read_text() == MINE
    assert not (tmp_path / "o.ome.zarr").exists()
    assert main([*commands[0], "--overwrite"]) == 0
    assert pd.read_csv(mine)["area"].tolist() == [36, 70]
    assert main([*commands[1], "--overwrite"]) == 0
    assert pd.read_csv(mine)["class"].tolist() == ["s", "L"]


def test_classify_images_refuses_before_classifying(tmp_path):
    class Bright:  # an image classifier: input_size, in_channels, labels, normalize, predict
        input_size, in_channels, labels, normalize = (4, 4), 1, ("dim", "bright"), None
        calls = 0

        def predict(self, batch):
            Bright.calls += 1
            p = (batch.mean(axis=(1, 2, 3)) > 5).astype(np.float32)
            return np.stack([1 - p, p], axis=1)

    planes = np.stack([np.zeros((9, 9)), np.full((9, 9), 9.0)]).reshape(1, 2, 1, 1, 9, 9)
    mine = _mine(tmp_path)
    with pytest.raises(InvalidRequestError) as err:
        sm.classify_images([sm.Image(planes)], Bright(), output=mine)
    _refused(err, mine)
    assert Bright.calls == 0
    sm.classify_images([sm.Image(planes)], Bright(), output=mine, overwrite=True)
    assert pd.read_csv(mine)["class"].tolist() == ["dim", "bright"]
