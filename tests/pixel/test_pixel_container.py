"""Saving and loading: identical predictions, metadata, and refusal of malformed containers."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from scopeml.errors import InvalidContainerError
from scopeml.pixel import FORMAT, PixelClassifier, load_classifier, read_metadata


def test_saved_and_loaded_predicts_identically(
    small_classifier: PixelClassifier, nuclei: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    path = small_classifier.save(tmp_path / "nuclei.czseg")
    loaded = load_classifier(path)
    batch = nuclei[0][None].astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(batch), small_classifier.predict(batch))
    assert loaded.spec == small_classifier.spec
    assert loaded.classes == small_classifier.classes
    assert loaded.features == small_classifier.features
    assert [p.name for p in tmp_path.iterdir()] == ["nuclei.czseg"]  # no temporary left


def test_metadata(small_classifier: PixelClassifier, tmp_path: Path) -> None:
    path = small_classifier.save(tmp_path / "m.czseg")
    meta = read_metadata(path)
    assert meta.Format == FORMAT
    assert [(c.Name, c.Color, c.Label) for c in meta.Classes] == [
        ("background", "#000000", 1),
        ("nucleus", "#ff0000", 2),
    ]
    assert meta.Halo == [6, 6] and meta.SpatialDims == 2 and meta.InChannels == 1
    assert meta.FeatureNames[0] == "gaussian_smoothing(sigma=0.7)[C0]"
    assert meta.SklearnVersion and meta.Training["n_estimators"] == 8
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert "model.json" in names and all(n.endswith(".npy") for n in names if n != "model.json")


def _rewrite(src: Path, dst: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    change(members)
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _edit_array(name: str, edit: Callable[[np.ndarray], np.ndarray]):
    def change(members: dict[str, bytes]) -> None:
        key = f"forest/{name}.npy"
        members[key] = _npy(edit(np.load(io.BytesIO(members[key]), allow_pickle=False).copy()))

    return change


def _edit_json(edit: Callable[[dict], None]):
    def change(members: dict[str, bytes]) -> None:
        meta = json.loads(members["model.json"])
        edit(meta)
        members["model.json"] = json.dumps(meta).encode()

    return change


def _first_inner(arr: np.ndarray, value: int) -> np.ndarray:
    arr[0] = value  # node 0 is the root of tree 0, an internal node
    return arr


CORRUPTIONS = {
    "member missing": (lambda m: m.pop("forest/left.npy"), "forest/left.npy is missing"),
    "json broken": (lambda m: m.update({"model.json": b"{"}), "not valid JSON"),
    "wrong format": (_edit_json(lambda j: j.update(Format="czann")), "Format is 'czann'"),
    "unknown field": (_edit_json(lambda j: j.update(Extra=1)), "Extra"),
    # version 1 computed derivative features differently; its models must not run silently
    "old version": (_edit_json(lambda j: j.update(FormatVersion=1)), "FormatVersion"),
    "halo": (_edit_json(lambda j: j.update(Halo=[1, 1])), "Halo"),
    "classes": (_edit_json(lambda j: j["Classes"].pop()), "Classes"),
    "NUL in a class name": (  # cut in tables and files, reversed by a RTL override
        _edit_json(lambda j: j["Classes"][0].update(Name="nucleus\x00")),
        "'nucleus\\\\x00' has a character that is not printable",
    ),
    "feature names": (_edit_json(lambda j: j["FeatureNames"].reverse()), "FeatureNames"),
    "unknown filter": (
        _edit_json(lambda j: j["Features"]["filters"][0].update(family="evil")),
        "unknown feature",
    ),
    "child out of range": (_edit_array("left", lambda a: _first_inner(a, 10**6)), "out of range"),
    "cycle": (_edit_array("right", lambda a: _first_inner(a, 0)), "out of range"),
    "feature index": (_edit_array("feature", lambda a: _first_inner(a, 6)), "feature index"),
    "threshold nan": (
        _edit_array("threshold", lambda a: np.where(np.arange(a.size) == 0, np.nan, a)),
        "finite",
    ),
    "value shape": (_edit_array("value", lambda a: a[:, :1].copy()), "value has shape"),
    "dtype": (_edit_array("left", lambda a: a.astype(np.float64)), "expected int32"),
    "object array": (
        lambda m: m.update({"forest/left.npy": _npy(np.array([1, 2]).astype("<i8"))}),
        "expected int32",
    ),
    "truncated npy": (
        lambda m: m.update({"forest/depth.npy": m["forest/depth.npy"][:-4]}),
        "data bytes",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_malformed_containers_are_refused(
    case: str, small_classifier: PixelClassifier, tmp_path: Path
) -> None:
    good = small_classifier.save(tmp_path / "good.czseg")
    change, match = CORRUPTIONS[case]
    bad = _rewrite(good, tmp_path / "bad.czseg", change)
    with pytest.raises(InvalidContainerError, match=match) as info:
        load_classifier(bad)
    assert str(bad) in str(info.value)


def test_shared_child_is_refused(small_classifier: PixelClassifier, tmp_path: Path) -> None:
    good = small_classifier.save(tmp_path / "good.czseg")

    def change(members: dict[str, bytes]) -> None:
        left = np.load(io.BytesIO(members["forest/left.npy"]))
        right = np.load(io.BytesIO(members["forest/right.npy"])).copy()
        inner = np.flatnonzero(left[: small_classifier.forest.arrays()["offsets"][1]] != -1)
        a, b = inner[-2], inner[-1]  # two internal nodes; b's right child becomes a's
        right[b] = right[a] if right[a] > b else left[b]
        members["forest/right.npy"] = _npy(right)

    with pytest.raises(InvalidContainerError, match="parent"):
        load_classifier(_rewrite(good, tmp_path / "bad.czseg", change))


def test_not_a_zip_and_oversized_members(
    small_classifier: PixelClassifier, tmp_path: Path, monkeypatch
) -> None:
    junk = tmp_path / "junk.czseg"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InvalidContainerError, match="not a readable zip"):
        load_classifier(junk)
    good = small_classifier.save(tmp_path / "good.czseg")
    monkeypatch.setattr("scopeml.pixel._container.MAX_ARRAY_BYTES", 64)
    with pytest.raises(InvalidContainerError, match="larger than 64 bytes"):
        load_classifier(good)


def test_a_class_name_that_is_not_printable_is_refused_before_training() -> None:
    """It would be refused on reading the saved file: said before the forest is fitted."""
    from scopeml import train_pixel_classifier
    from scopeml.errors import InvalidRequestError

    image = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    labels = np.zeros((32, 32), np.uint8)
    labels[:4], labels[-4:] = 1, 2
    with pytest.raises(InvalidRequestError, match="'b\\\\n' has a character that is not printable"):
        train_pixel_classifier(image, labels, classes=["a", "b\n"], n_estimators=2)
