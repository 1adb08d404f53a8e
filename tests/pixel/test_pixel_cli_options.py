"""``scopeml pixel train``: a bad ``--features`` is the option's error, not the image's; training
over an existing classifier says so and what changed; another kind of file is not replaced
unless asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from scopeml.cli import main
from scopeml.pixel import read_metadata
from scopeml.synthetic import synthetic_nuclei

from .conftest import sparse_labels

FAST = ["--features", "gaussian_smoothing:1", "--n-estimators", "3", "--workers", "1"]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    image, instances = synthetic_nuclei((48, 56), density=0.004, seed=6)
    truth = (instances > 0).astype(np.uint8) + 1
    tifffile.imwrite(tmp_path / "image.tif", image[0])
    tifffile.imwrite(tmp_path / "few.tif", sparse_labels(truth, 0.03, seed=6))
    tifffile.imwrite(tmp_path / "more.tif", sparse_labels(truth, 0.10, seed=7))
    return tmp_path / "image.tif", tmp_path / "few.tif", tmp_path / "more.tif"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("gauss:3", "unknown feature 'gauss' (did you mean 'gaussian_smoothing'"),
        ("basic25;gaussian_smoothing:20", "preset basic25 cannot be combined with filter"),
        ("vgg19-random", "(did you mean 'vgg19-random-64'"),
    ],
)
def test_bad_features_name_the_option_not_the_image(files, tmp_path, capsys, spec, problem):
    image, labels, _ = files
    out = tmp_path / "m.czseg"
    code = main(["pixel", "train", str(image), str(labels), "-o", str(out), "--features", spec])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.startswith("error: --features: ") and problem in err, err
    assert str(image) not in err and err.count("\n") == 1


def test_retraining_says_what_it_replaced_and_what_changed(files, tmp_path, capsys):
    image, few, more = files
    out = tmp_path / "m.czseg"
    args = ["pixel", "train", str(image)]
    assert main([*args, str(few), "-o", str(out), *FAST]) == 0
    first = capsys.readouterr().out
    assert "replaced" not in first
    before = read_metadata(out).Training["samples_per_class"]
    assert main([*args, str(more), "-o", str(out), *FAST, "--classes", "bg,nucleus"]) == 0
    lines = capsys.readouterr().out.splitlines()
    now = read_metadata(out).Training["samples_per_class"]
    assert before != now
    assert lines[-1] == (
        f"replaced {out}: labelled pixels class 1 → bg {before[0]} → {now[0]}, "
        f"class 2 → nucleus {before[1]} → {now[1]}"
    )
    assert main([*args, str(more), "-o", str(out), *FAST, "--classes", "bg,nucleus"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"replaced {out}: labelled pixels unchanged (bg {now[0]}, nucleus {now[1]})"
    )


def test_retraining_without_classes_keeps_the_names_it_replaces(files, tmp_path, capsys):
    """Retrained with other scribbles and no --classes, a classifier's classes became "class
    1, class 2", and analysis settings naming "nucleus" failed."""
    image, few, more = files
    out = tmp_path / "m.czseg"
    args = ["pixel", "train", str(image)]
    named = ["--classes", "bg,nucleus", "--colors", "#000000,#00ff00"]
    assert main([*args, str(few), "-o", str(out), *FAST, *named]) == 0
    capsys.readouterr()
    assert main([*args, str(more), "-o", str(out), *FAST]) == 0
    said = capsys.readouterr()
    assert "kept the class names of the classifier it replaces: bg, nucleus" in said.err
    kept = [(c.Name, c.Color) for c in read_metadata(out).Classes]
    assert kept == [("bg", "#000000"), ("nucleus", "#00ff00")]
    assert main([*args, str(more), "-o", str(out), *FAST, "--colors", "#0000ff"]) == 0
    kept = [(c.Name, c.Color) for c in read_metadata(out).Classes]
    assert kept == [("bg", "#0000ff"), ("nucleus", "#00ff00")]  # the first given, the rest kept


def test_another_kind_of_file_is_not_replaced_unless_asked(files, tmp_path, capsys):
    image, few, _ = files
    other = tmp_path / "notes.czseg"
    other.write_text("my notes")
    args = ["pixel", "train", str(image), str(few), "-o", str(other), *FAST]
    assert main(args) == 2
    assert "is not a pixel classifier" in capsys.readouterr().err
    assert other.read_text() == "my notes"
    assert main([*args, "--overwrite"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"replaced {other} (it was not a pixel classifier)"
    )
    assert read_metadata(other).Training["samples_per_class"]


def test_retraining_a_stack_as_a_time_series_says_the_dimensions_changed(tmp_path, capsys):
    image, instances = synthetic_nuclei((5, 40, 48), density=0.004, seed=8)
    truth = (instances > 0).astype(np.uint8) + 1
    tifffile.imwrite(tmp_path / "stack.tif", image[0])
    tifffile.imwrite(tmp_path / "labels.tif", sparse_labels(truth, 0.05, seed=8))
    out = tmp_path / "m.czseg"
    args = ["pixel", "train", str(tmp_path / "stack.tif"), str(tmp_path / "labels.tif"), "-o",
            str(out), *FAST]  # fmt: skip
    assert main(args) == 0  # five pages of unknown kind: a Z stack, 3-D features
    assert read_metadata(out).SpatialDims == 3
    capsys.readouterr()
    assert main([*args, "--axes", "TYX"]) == 0  # the same pages as time points: planes
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"replaced {out}: labelled pixels unchanged (") and "; 3-D → 2-D" in last


@pytest.mark.parametrize("suffix", [".czann", ".ONNX", ".czmodel"])
def test_a_graph_file_name_is_refused_before_training(files, tmp_path, capsys, suffix):
    """``-o m.czann`` wrote a random forest under a name ZEN and ONNX tools open as a graph."""
    image, labels, _ = files
    out = tmp_path / f"m{suffix}"
    code = main(["pixel", "train", str(image), str(labels), "-o", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and err.count("\n") == 1, err
    assert "saved as .czseg" in err and "name it m.czseg" in err


def test_saving_a_classifier_under_a_graph_name_is_refused(small_classifier, tmp_path):
    from scopeml.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match=r"name it m\.czseg"):
        small_classifier.save(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_pixel_info_of_a_folder_or_a_built_in_says_what_it_is(tmp_path, capsys):
    """A segment store said "Is a directory"; the built-in ``nuclei`` "no such file"."""
    store = tmp_path / "seg.ome.zarr"
    store.mkdir()
    assert main(["pixel", "info", str(store)]) == 2
    assert (
        capsys.readouterr().err == f"error: {store}: is a folder, not a pixel classifier (.czseg)\n"
    )
    assert main(["pixel", "info", "nuclei"]) == 2
    assert "the built-in nuclei is a segmentation model, not a pixel classifier: scopeml model " \
        "inspect nuclei" in capsys.readouterr().err  # fmt: skip
