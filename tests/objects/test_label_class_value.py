"""``objects label --class V`` on plain labels where V never occurs is an error naming the values
that do (newuser report, finding 14: it printed "0 objects", exit 0), as an unknown class of a
scopeml store is. Labels whose classes are known may lack one: that stays "0 objects"."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import scopeml as sm
from scopeml.cli import main
from scopeml.errors import InvalidRequestError
from scopeml.io.image import Image
from scopeml.model.spec import ModelSpec
from scopeml.objects import images as images_module
from scopeml.objects.images import label_image


class Threshold:
    """A two-class model (bg, cell): cell where the first channel is above 5."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "cell"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        fg = (batch[:, :1] > 5).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=1)


def _label(tmp_path, name: str, *options: str) -> list[str]:
    return ["objects", "label", str(tmp_path / name), "-o", str(tmp_path / "out.ome.zarr"),
            "-q", *options]  # fmt: skip


def test_absent_class_value_is_an_error_with_the_values_present(tmp_path, capsys):
    labels = np.zeros((40, 50), np.uint8)
    labels[3:10, 4:12] = labels[20:30, 30:45] = 1
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    assert main(_label(tmp_path, "labels.tif", "--class", "5")) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {tmp_path / 'labels.tif'}: no label value 5 in these labels (values present: "
        "0, 1); choose one with class_= (--class)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif"]  # nothing left behind
    assert main(_label(tmp_path, "labels.tif", "--class", "1")) == 0
    assert capsys.readouterr().out.startswith("2 objects (2-D)")


def test_a_value_present_in_one_time_point_only_is_fine(tmp_path):
    stack = np.zeros((1, 3, 1, 1, 16, 16), np.uint8)
    stack[0, 0, 0, 0, 2:5, 2:5] = 1
    stack[0, 2, 0, 0, 8:12, 8:12] = 4  # value 4 only at t = 2
    out = label_image(Image(stack), tmp_path / "four.ome.zarr", class_id=4, require_class=True)
    assert out.read()[0, :, 0, 0].max(axis=(1, 2)).tolist() == [0, 0, 1]
    with pytest.raises(InvalidRequestError, match=r"no label value 3 .*present: 0, 1, 4\)"):
        label_image(Image(stack), tmp_path / "three.ome.zarr", class_id=3, require_class=True)
    assert not (tmp_path / "three.ome.zarr").exists()


def test_many_values_are_summarised_and_bounded(tmp_path, monkeypatch):
    instances = (np.arange(30 * 30, dtype=np.uint32).reshape(30, 30) + 1) * 2  # even values
    monkeypatch.setattr(images_module, "VALUES_KEPT", 100)
    with pytest.raises(InvalidRequestError) as info:
        label_image(
            Image(instances[None, None, None, None]), tmp_path / "odd.ome.zarr", class_id=7,
            tile_size=8, require_class=True,
        )  # fmt: skip
    message = str(info.value)
    assert "values present: 2, 4, 6, 8, 10, … (100+ in all)" in message
    assert len(message) < 200


def test_an_absent_class_of_a_segment_store_is_still_zero_objects(tmp_path, capsys):
    # the store's classes are known (bg, cell): a class with no pixel is no typo
    seg = sm.segment(np.zeros((16, 16), np.float32), Threshold(), tmp_path / "seg.ome.zarr")
    assert seg.classes and seg.labels.read().max() == 1  # every pixel is background
    args = ["objects", "label", str(tmp_path / "seg.ome.zarr"), "-o", str(tmp_path / "o.ome.zarr")]
    assert main([*args, "-q", "--class", "2"]) == 0
    assert capsys.readouterr().out.startswith("0 objects")
    assert main([*args, "-q", "--class", "5", "--overwrite"]) == 2  # not a class: as before
    assert "no label value 5; classes are" in capsys.readouterr().err


def test_the_python_api_refuses_an_absent_value_of_plain_labels(tmp_path):
    labels = np.zeros((12, 12), np.uint8)
    labels[2:6, 2:6] = 1
    with pytest.raises(InvalidRequestError, match=r"no label value 5 .*present: 0, 1\)"):
        sm.label_objects(labels, tmp_path / "five.ome.zarr", class_=5)
    assert not (tmp_path / "five.ome.zarr").exists()
    assert sm.label_objects(labels, tmp_path / "one.ome.zarr", class_=1).read().max() == 1
