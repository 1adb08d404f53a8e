"""A classifier on a user's own feature network works when moved or run from another folder:
the network travels inside it (small) or is found by its absolute path, its path relative to
the classifier, or beside it; its hash is checked in every case; ``pixel info`` shows it; and
``pixel features --list NETWORK`` lists the tensors it can tap."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.errors import InvalidContainerError, ScopeMLError
from scopeml.features._network import network_bytes, open_network
from scopeml.pixel import load_classifier, save_classifier, train_classifier
from scopeml.synthetic import synthetic_nuclei

NUCLEI_CZANN = "src/scopeml/data/nuclei.czann"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SCOPEML_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def data():
    image, truth = synthetic_nuclei((64, 64), seed=0)
    labels = np.where(np.random.default_rng(0).random(truth.shape) < 0.05, (truth > 0) + 1, 0)
    return image, labels


def _train(folder, data, monkeypatch, *, seed=3):
    """A classifier trained on ``folder/net.onnx`` given by a *relative* path, run from
    ``folder`` (as a user types it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.onnx").write_bytes(network_bytes("vgg19-random", ("conv1_2",), seed=seed)[0])
    monkeypatch.chdir(folder)
    image, labels = data
    return train_classifier(image, labels, features="net.onnx:conv1_2", n_estimators=3, seed=0)


def test_embedded_network_travels_with_the_classifier(tmp_path, data, monkeypatch):
    clf = _train(tmp_path / "a", data, monkeypatch)
    path = clf.save(tmp_path / "a" / "m.czseg")
    expected = clf.predict_labels(data[0])
    moved = tmp_path / "elsewhere" / "m.czseg"
    moved.parent.mkdir()
    shutil.move(path, moved)
    shutil.rmtree(tmp_path / "a")  # the network file is gone too
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = load_classifier(moved)
    np.testing.assert_array_equal(loaded.predict_labels(data[0]), expected)
    # the embedded copy is still checked against the recorded hash
    other = network_bytes("vgg19-random", ("conv1_2",), seed=4)[0]
    import zipfile

    with zipfile.ZipFile(moved) as src, zipfile.ZipFile(tmp_path / "bad.czseg", "w") as dst:
        for item in src.infolist():
            data_ = other if item.filename == "network.onnx" else src.read(item)
            dst.writestr(item, data_)
    with pytest.raises(InvalidContainerError, match=r"bad\.czseg.*embedded.*trained with"):
        load_classifier(tmp_path / "bad.czseg")


@pytest.mark.parametrize("layout", ["together", "beside", "absolute"])
def test_a_network_file_is_found_from_another_folder(tmp_path, data, monkeypatch, layout):
    clf = _train(tmp_path / "proj", data, monkeypatch)
    (tmp_path / "proj" / "models").mkdir()
    path = save_classifier(clf, tmp_path / "proj" / "models" / "m.czseg", embed_network=False)
    expected = clf.predict_labels(data[0])
    if layout == "together":  # the project folder moved: relative path ../net.onnx holds
        shutil.move(tmp_path / "proj", tmp_path / "moved")
        path = tmp_path / "moved" / "models" / "m.czseg"
    elif layout == "beside":  # only the classifier handed on, its network copied beside it
        (tmp_path / "colleague").mkdir()
        shutil.copy(path, tmp_path / "colleague")
        shutil.move(tmp_path / "proj" / "net.onnx", tmp_path / "colleague")
        path = tmp_path / "colleague" / "m.czseg"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # run from an unrelated folder
    loaded = load_classifier(path)
    np.testing.assert_array_equal(loaded.predict_labels(data[0]), expected)


def test_missing_or_changed_network_is_refused_naming_where_it_looked(tmp_path, data, monkeypatch):
    clf = _train(tmp_path / "p", data, monkeypatch)
    path = save_classifier(clf, tmp_path / "p" / "m.czseg", embed_network=False)
    shutil.move(path, tmp_path / "m.czseg")
    (tmp_path / "p" / "net.onnx").write_bytes(
        network_bytes("vgg19-random", ("conv1_2",), seed=4)[0]
    )
    with pytest.raises(InvalidContainerError, match=r"m\.czseg.*SHA-256.*trained with"):
        load_classifier(tmp_path / "m.czseg")
    (tmp_path / "p" / "net.onnx").unlink()
    with pytest.raises(InvalidContainerError) as err:
        load_classifier(tmp_path / "m.czseg")
    message = str(err.value)
    assert "net.onnx not found" in message
    assert str(tmp_path / "p" / "net.onnx") in message  # the absolute path recorded
    assert str(tmp_path / "net.onnx") in message  # beside the classifier (= p/net.onnx relative)


def test_a_server_finds_a_network_only_below_its_allowed_folders(tmp_path, data, monkeypatch):
    """A classifier below a server's allowed root that names a network outside it is refused
    without the file being opened (every file a server job opens lies below the root)."""
    from scopeml.analysis import AnalysisSettings
    from scopeml.analysis.check import open_resources
    from scopeml.model.registry import open_model

    clf = _train(tmp_path / "outside", data, monkeypatch)
    root = tmp_path / "root"
    root.mkdir()
    path = save_classifier(clf, root / "m.czseg", embed_network=False)
    assert load_classifier(path).spec.classes  # found at its absolute path outside the root
    with pytest.raises(InvalidContainerError, match=r"net\.onnx not found.*outside the allowed"):
        open_model(path, allowed_roots=[root])
    settings = AnalysisSettings.model_validate(
        {
            "channels": ["C0"],
            "classes": [
                {
                    "name": "nucleus",
                    "segmenter": {
                        "kind": "model",
                        "model": path.name,
                        "class": 2,
                        "channels": ["C0"],
                    },
                }
            ],
        }
    )  # fmt: skip (named from the root, as a server's settings name it)
    with pytest.raises(ScopeMLError, match=r"net\.onnx not found"):
        open_resources(settings, allowed_roots=[root], base=root)
    shutil.copy(tmp_path / "outside" / "net.onnx", root)  # beside it, inside the root
    assert open_model(path, allowed_roots=[root]).spec.classes


def test_pixel_info_shows_the_network_path_and_hash(tmp_path, data, monkeypatch, capsys):
    clf = _train(tmp_path / "i", data, monkeypatch)
    sha = hashlib.sha256((tmp_path / "i" / "net.onnx").read_bytes()).hexdigest()
    for embed, where in ((None, "embedded in the classifier"), (False, "not embedded")):
        path = save_classifier(clf, tmp_path / "i" / "m.czseg", embed_network=embed, overwrite=True)
        assert main(["pixel", "info", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"feature network: {tmp_path / 'i' / 'net.onnx'} (conv1_2)" in out
        assert sha in out and where in out


def test_features_list_network_names_tensors_that_can_be_tapped(capsys):
    assert main(["pixel", "features", "--list", NUCLEI_CZANN]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[1:]]
    shapes = {row[0]: row[2] for row in rows if len(row) == 3}
    name = "/net/down.1/down.1.3/Relu_output_0"
    assert name in shapes
    # the listed shape is what the network gives: maps and stride of the real tap
    tap = open_network(NUCLEI_CZANN, (name,)).taps[0]
    maps, h, w = (int(v) for v in shapes[name].split("×"))
    assert (maps, 256 // h, 256 // w) == (tap.channels, tap.stride, tap.stride)
    # the same with --features NETWORK --list, as a user tries it
    assert main(["pixel", "features", "--features", NUCLEI_CZANN, "--list"]) == 0
    assert capsys.readouterr().out == out


def test_list_tensors_of_a_builtin_matches_its_taps():
    from scopeml.features._network import list_tensors

    rows = {name: shape for name, _, shape in list_tensors("vgg19-random", size=64)}
    net = open_network("vgg19-random", ("conv1_2", "conv2_2", "conv3_1"))
    for tap in net.taps:
        assert rows[tap.name] == (tap.channels, 64 // tap.stride, 64 // tap.stride)


def test_cli_model_with_own_network_runs_from_another_folder(tmp_path, monkeypatch, capsys):
    """The new user's steps: train with a relative network path, then segment from `/`."""
    image, truth = synthetic_nuclei((48, 48), seed=1)
    work = tmp_path / "work"
    work.mkdir()
    tifffile.imwrite(work / "im.tif", image[0])
    labels = np.where(np.random.default_rng(1).random(truth.shape) < 0.1, (truth > 0) + 1, 0)
    tifffile.imwrite(work / "lab.tif", labels.astype(np.uint8))
    shutil.copy(NUCLEI_CZANN, work / "nuclei.czann")
    monkeypatch.chdir(work)
    spec = "nuclei.czann:/net/down.0/down.0.3/Relu_output_0"
    args = ["pixel", "train", "im.tif", "lab.tif", "-o", "own.czseg", "--features", spec]
    assert main([*args, "--n-estimators", "3", "--jobs", "1"]) == 0, capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    shutil.move(work, tmp_path / "renamed")
    (tmp_path / "renamed" / "nuclei.czann").unlink()
    code = main(
        ["segment", str(tmp_path / "renamed" / "im.tif"), "-m",
         str(tmp_path / "renamed" / "own.czseg"), "-o", str(tmp_path / "seg.ome.zarr")]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
