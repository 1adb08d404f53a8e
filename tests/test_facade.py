"""The flat facade: ``import scopeml as sm`` is fast, typed, and its steps compose."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import scopeml as sm
from scopeml.errors import InvalidRequestError
from scopeml.model.spec import ModelSpec


class Threshold:
    """A two-class model: foreground where the first channel is above 5."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "cell"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        fg = (batch[:, :1] > 5).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=1)


def _movie() -> np.ndarray:
    """Two time points of a 12×16 image: two cells at t=0, one at t=1 (S T C Z Y X)."""
    pixels = np.zeros((1, 2, 1, 1, 12, 16), np.uint16)
    pixels[0, 0, 0, 0, 1:4, 1:4] = pixels[0, 0, 0, 0, 6:10, 8:14] = 9
    pixels[0, 1, 0, 0, 2:8, 2:8] = 9
    return pixels


def test_import_is_lazy_and_every_name_resolves():
    heavy = "('numpy', 'zarr', 'onnx')"
    code = f"import sys, scopeml; print(sorted(m for m in {heavy} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
    for name in sm.__all__:
        assert getattr(sm, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'segmnt'"):
        sm.segmnt  # noqa: B018


def test_every_public_function_of_the_facade_is_in_the_namespace():
    import scopeml.api as api

    defined = {name for name, value in vars(api).items()
               if inspect.isfunction(value) and value.__module__ == api.__name__}  # fmt: skip
    public = {name for name in defined if not name.startswith("_")}
    assert public <= set(api.__all__) and public <= set(sm.__all__), public - set(sm.__all__)


FLOW = [
    "open_image", "open_model", "train_pixel_classifier", "segment", "label_objects",
    "measure_objects", "train_object_classifier", "classify_objects", "predict_region",
]  # fmt: skip


@pytest.mark.parametrize("name", FLOW)
def test_public_entry_points_are_typed_with_examples(name):
    function = getattr(sm, name)
    parameters = inspect.signature(function).parameters.values()
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters)
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters)
    assert ">>>" in (function.__doc__ or "")
    names = {p.name for p in parameters}
    assert "n_jobs" not in names
    if name in ("open_model", "train_pixel_classifier", "segment", "train_object_classifier"):
        assert "workers" in names
    if name in ("segment", "label_objects", "measure_objects"):
        assert "progress" in names
    assert "quiet" not in names  # progress= does its job


def test_segmentation_keeps_every_axis_and_composes(tmp_path):
    image = sm.Image(_movie(), pixel_sizes={"Y": 0.5, "X": 0.5})
    seg = sm.segment(
        image, Threshold(), tmp_path / "seg.ome.zarr", outputs=("labels", "confidence")
    )
    assert isinstance(seg, sm.Segmentation) and seg == tmp_path / "seg.ome.zarr"
    assert seg.classes == ("bg", "cell") and seg.label_values == {"bg": 1, "cell": 2}
    assert seg.outputs == ("labels", "confidence")
    assert seg.labels.shape == (1, 2, 1, 1, 12, 16) and seg.labels.pixel_sizes["X"] == 0.5
    np.testing.assert_array_equal(seg.labels.read() == 2, _movie() > 5)
    assert seg.confidence.read().min() == 1
    with pytest.raises(InvalidRequestError, match="no 'probabilities' output"):
        seg.probabilities  # noqa: B018
    reopened = sm.Segmentation(tmp_path / "seg.ome.zarr")
    assert reopened.classes == ("bg", "cell")  # read from the run's record in the store

    by_name = sm.label_objects(seg, tmp_path / "a.ome.zarr", class_="cell")
    by_value = sm.label_objects(seg.labels, tmp_path / "b.ome.zarr", class_=2)
    from_array = sm.label_objects(seg.labels.read(), tmp_path / "c.ome.zarr", class_=2)
    np.testing.assert_array_equal(by_name.read(), by_value.read())
    np.testing.assert_array_equal(by_name.read(), from_array.read())
    assert by_name.shape == (1, 2, 1, 1, 12, 16) and by_name.read().max() == 3
    with pytest.raises(InvalidRequestError, match="no class 'nucleus'; classes are bg, cell"):
        sm.label_objects(seg, tmp_path / "d.ome.zarr", class_="nucleus")
    with pytest.raises(InvalidRequestError, match="no label value 3"):
        sm.label_objects(seg, tmp_path / "d.ome.zarr", class_=3)

    table = sm.measure_objects(by_name, image, shape_features=False)
    assert table[["t", "label", "area"]].values.tolist() == [[0, 1, 9], [0, 2, 24], [1, 3, 36]]
    assert table["area_um2"].tolist() == [2.25, 6.0, 9.0]
    assert table["intensity_mean_C0"].tolist() == [9, 9, 9]
    table["size"] = ["small", "big", "big"]
    sizes = sm.train_object_classifier(table, "size", n_estimators=5)
    classified = sm.classify_objects(by_name, sizes, image=image)  # labels: measured first
    assert classified[["t", "label", "class"]].values.tolist() == [
        [0, 1, "small"], [0, 2, "big"], [1, 3, "big"],
    ]  # fmt: skip


def test_object_steps_take_tables_and_files(tmp_path):
    table = pd.DataFrame({"area": [10, 12, 50, 55, 11, 52], "t": [0, 0, 0, 1, 1, 1]})
    table["kind"] = ["s", "s", "L", "L", None, None]  # two objects not annotated
    classifier = sm.train_object_classifier(table, "kind", n_estimators=5)
    assert classifier.features == ("area",)  # the time point is no feature
    table.to_csv(tmp_path / "t.csv", index=False)
    path = classifier.save(tmp_path / "kinds.zip")
    result = sm.classify_objects(tmp_path / "t.csv", path, output=tmp_path / "out.parquet")
    assert result["class"].tolist()[4:] == ["s", "L"]
    assert pd.read_parquet(tmp_path / "out.parquet")["class"].tolist() == result["class"].tolist()
    with pytest.raises(InvalidRequestError, match="not an object classifier"):
        sm.classify_objects(table, "nuclei")
    with pytest.raises(ValueError, match=r"kinds\.zip: an object classifier, not a pixel model"):
        sm.segment(sm.Image(_movie()), path, tmp_path / "s.ome.zarr")


def test_a_model_file_of_another_kind_is_named_by_what_it_is(tmp_path, capsys):
    """Not by the member its loader misses ("missing member 'classifier.json'")."""
    from scopeml.cli import main
    from scopeml.model.registry import resolve_model

    table = pd.DataFrame({"area": [10, 12, 50, 55], "kind": ["s", "s", "L", "L"]})
    table.to_csv(tmp_path / "t.csv", index=False)
    kinds = sm.train_object_classifier(table, "kind", n_estimators=5).save(tmp_path / "k.zip")
    nuclei = resolve_model("nuclei")
    for args, said in (
        (["objects", "classify", str(nuclei), str(tmp_path / "t.csv"), "-o", "x.csv"],
         "a segmentation model (czann), not an object classifier (it goes to scopeml segment)"),
        (["pixel", "info", str(kinds)],
         "an object classifier, not a pixel classifier (it goes to scopeml objects classify)"),
        (["pixel", "info", str(nuclei)], "(a segmentation model (czann)? it goes to scopeml "
         "segment)"),
    ):  # fmt: skip
        assert main(args) == 2
        assert capsys.readouterr().err.strip().endswith(said)


def test_pixel_classifier_trains_on_every_time_point(tmp_path):
    movie = _movie().astype(np.float32)
    scribbles = np.zeros(movie.shape, np.uint8)
    scribbles[0, 0, 0, 0, 0, :] = 1  # background only at t=0 …
    scribbles[0, 1, 0, 0, 4, 4] = 2  # … the cell only at t=1
    classifier = sm.train_pixel_classifier(
        sm.Image(movie), scribbles, features="gaussian_smoothing:0.5", n_estimators=3
    )
    seg = sm.segment(sm.Image(movie), classifier, tmp_path / "s.ome.zarr")
    np.testing.assert_array_equal(seg.labels.read() == 2, movie > 5)


def test_pixel_classifier_keeps_class_colours(tmp_path):
    image = np.zeros((1, 12, 12), np.float32)
    image[:, 3:9, 3:9] = 10
    scribbles = np.zeros((12, 12), np.uint8)
    scribbles[0, :], scribbles[6, 4:8] = 1, 2
    classifier = sm.train_pixel_classifier(
        image, scribbles, classes=["bg", "cell"], colors=["#102030", "#ff8800"],
        features="gaussian_smoothing:1", n_estimators=3,
    )  # fmt: skip
    reopened = sm.open_model(classifier.save(tmp_path / "c.czseg"))
    assert [(c.name, c.color) for c in reopened.classes] == [
        ("bg", "#102030"), ("cell", "#ff8800"),
    ]  # fmt: skip
    with pytest.raises(sm.ScopeMLError, match="3 colours given for 2 classes"):
        sm.train_pixel_classifier(image, scribbles, colors=["#000000"] * 3, n_estimators=2)


def test_segment_leaves_a_callers_image_open(tmp_path):
    """A file image the caller opened stays readable after segmenting a channel view of it."""
    import tifffile

    pixels = np.zeros((2, 12, 16), np.uint16)
    pixels[1, 2:6, 3:9] = 9
    tifffile.imwrite(tmp_path / "two.ome.tif", pixels, metadata={"axes": "CYX"})
    image = sm.open_image(tmp_path / "two.ome.tif")
    seg = sm.segment(image, Threshold(), tmp_path / "seg.ome.zarr", channels=(1,))
    np.testing.assert_array_equal(seg.labels.read()[0, 0, 0, 0] == 2, pixels[1] > 5)
    np.testing.assert_array_equal(image.read()[0, 0, :, 0], pixels)  # still open
