"""``scopeml pixel …`` end to end on small TIFF files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.pixel import load_classifier
from scopeml.synthetic import synthetic_nuclei

from .conftest import sparse_labels


def _files(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    image, instances = synthetic_nuclei((64, 72), density=0.003, seed=5)
    labels = sparse_labels((instances > 0).astype(np.uint8) + 1, 0.05, seed=5)
    tifffile.imwrite(tmp_path / "image.tif", image[0])
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    return tmp_path / "image.tif", tmp_path / "labels.tif", image, labels


def test_train_writes_a_loadable_model(tmp_path: Path, capsys) -> None:
    image_file, labels_file, image, _ = _files(tmp_path)
    out = tmp_path / "model.czseg"
    code = main(
        [
            "pixel", "train", str(image_file), str(labels_file), "-o", str(out),
            "--features", "gaussian_smoothing:1;laplacian_of_gaussian:1.6",
            "--classes", "background,nucleus", "--n-estimators", "5", "--max-depth", "6",
            "--jobs", "1",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "2 classes (background" in capsys.readouterr().out
    clf = load_classifier(out)
    assert clf.spec.classes == ("background", "nucleus")
    assert clf.forest.n_trees == 5 and int(clf.forest.arrays()["depth"].max()) <= 6
    assert clf.predict(image[None].astype(np.float32)).shape == (1, 2, 64, 72)
    assert main(["pixel", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "class 2: nucleus" in info
    # the forest's feature importances, largest first: both features, summing to 100 %
    shares = [float(line.split("%")[0]) for line in info.splitlines() if "%  " in line]
    assert len(shares) == 2 and shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(100, abs=0.2)


def test_bad_labels_exit_2_with_the_file_named(tmp_path: Path, capsys) -> None:
    image_file, _, _, labels = _files(tmp_path)
    wrong = tmp_path / "wrong.tif"
    tifffile.imwrite(wrong, labels[:10])
    code = main(["pixel", "train", str(image_file), str(wrong), "-o", str(tmp_path / "m.czseg")])
    assert code == 2
    assert f"error: {wrong}: labels are Z×Y×X 1×10×72" in capsys.readouterr().err
    empty = tmp_path / "empty.tif"
    tifffile.imwrite(empty, np.zeros_like(labels))
    code = main(["pixel", "train", str(image_file), str(empty), "-o", str(tmp_path / "m.czseg")])
    assert code == 2 and f"error: {empty}: no pixel is labelled" in capsys.readouterr().err
    assert not (tmp_path / "m.czseg").exists()


def test_train_never_writes_over_its_inputs(tmp_path: Path, capsys) -> None:
    image_file, labels_file, _, _ = _files(tmp_path)
    before = image_file.read_bytes()
    assert main(["pixel", "train", str(image_file), str(labels_file), "-o", str(image_file)]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert image_file.read_bytes() == before
    assert main(["pixel", "train", str(image_file), str(labels_file), "-o", str(tmp_path)]) == 2
    assert f"error: {tmp_path}: is a folder" in capsys.readouterr().err


def test_train_on_several_pairs_a_scene_and_chosen_channels(tmp_path: Path, capsys) -> None:
    image_file, labels_file, image, labels = _files(tmp_path)
    out = tmp_path / "two.czseg"
    fs = "gaussian_smoothing:1;laplacian_of_gaussian:1.6"
    args = ["--features", fs, "--n-estimators", "5", "--jobs", "1", "-o"]
    code = main(["pixel", "train"] + [str(image_file), str(labels_file)] * 2 + args + [str(out)])
    assert code == 0, capsys.readouterr().err
    assert load_classifier(out).info["n_samples"] == 2 * int((labels > 0).sum())
    capsys.readouterr()
    assert main(["pixel", "train", str(image_file), "-o", str(out)]) == 2
    assert "in pairs (IMAGE LABELS …); got 1 files" in capsys.readouterr().err

    # scene 1 of a two-series TIFF holds the nuclei in channel 1; scene 0 and channel 0 are blank
    stack = tmp_path / "scenes.tif"
    blank = np.zeros_like(image[0])
    tifffile.imwrite(stack, np.stack([blank, blank]), metadata={"axes": "CYX"})
    tifffile.imwrite(stack, np.stack([blank, image[0]]), metadata={"axes": "CYX"}, append=True)
    chosen = tmp_path / "chosen.czseg"
    extra = ["--scene", "1", "--channels", "1"]
    code = main(["pixel", "train", str(stack), str(labels_file), *extra, *args, str(chosen)])
    assert code == 0, capsys.readouterr().err
    clf = load_classifier(chosen)
    assert clf.spec.in_channels == 1 and clf.info["channels"] == ["C1"]
    labelled = labels > 0  # trained on the nuclei, it predicts its training pixels
    assert (clf.predict_labels(image)[labelled] == labels[labelled]).mean() > 0.9
    assert main(["pixel", "info", str(chosen)]) == 0
    assert "trained on channels: C1" in capsys.readouterr().out


def test_features_list_and_names(capsys) -> None:
    assert main(["pixel", "features", "--list"]) == 0
    text = capsys.readouterr().out
    assert "structure_tensor_eigenvalues  2 / 3" in text
    assert "basic33: 33 / 40 per channel, halo 41" in text
    assert main(["pixel", "features", "--features", "basic25", "--channels", "2"]) == 0
    names = capsys.readouterr().out.split()
    assert len(names) == 50 and names[0] == "gaussian_smoothing(sigma=0.7)[C0]"
    assert main(["pixel", "features", "--features", "sobel:1"]) == 2


def _instance_labels(shape: tuple[int, int], n: int) -> np.ndarray:
    """An instance label image: ``n`` distinct object values, as a segmentation would give."""
    return np.resize(np.arange(1, n + 1, dtype=np.uint16), shape)


def test_instance_labels_are_refused_early_in_one_short_line(tmp_path: Path, capsys) -> None:
    import tracemalloc

    image_file, _, _, _ = _files(tmp_path)
    instances = tmp_path / "instances.tif"
    tifffile.imwrite(instances, _instance_labels((64, 72), 4600))
    tracemalloc.start()
    try:
        code = main(
            ["pixel", "train", str(image_file), str(instances), "-o", str(tmp_path / "m.czseg")]
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and len(err) < 400, err
    assert f"error: {instances}: labels go up to 4600" in err
    assert "1, 2, 3, 4, 5, … (4600 in all)" in err and "instance labels" in err
    assert peak < 20 * 2**20  # refused before any feature is computed
    assert not (tmp_path / "m.czseg").exists()


def test_the_class_limit_follows_named_classes() -> None:
    from scopeml.errors import InvalidLabelsError
    from scopeml.pixel._sources import MAX_CLASSES, check_labels

    labels = _instance_labels((40, 40), MAX_CLASSES + 45)
    with pytest.raises(InvalidLabelsError, match=f"more than the {MAX_CLASSES} classes"):
        check_labels(labels, (40, 40))
    names = [f"c{k}" for k in range(1, MAX_CLASSES + 46)]
    assert check_labels(labels, (40, 40), classes=names).dtype == np.uint16
    assert check_labels(labels, (40, 40), max_classes=1000).max() == MAX_CLASSES + 45


def test_the_label_scan_stops_at_the_first_region_beyond_the_limit(monkeypatch) -> None:
    from scopeml.errors import InvalidLabelsError
    from scopeml.pixel import _sources

    monkeypatch.setattr(_sources, "SCAN_PIXELS", 64 * 64)  # many regions on a small image
    labels = np.zeros((512, 512), np.uint16)
    labels[:64, :64] = _instance_labels((64, 64), 1000)  # the first region: instances

    class Counting(np.ndarray):
        reads = 0

        def __getitem__(self, key):
            if isinstance(key, tuple) and all(isinstance(k, slice) for k in key):
                Counting.reads += 1
            return super().__getitem__(key)

    source = _sources.LabelSource(labels.view(Counting), spatial_dims=2)
    with pytest.raises(InvalidLabelsError, match="labels go up to 1000"):
        _sources.scan_labels(source, (512, 512), None, block=64, halo=0)
    assert Counting.reads == 1  # of 64 regions
