"""``segment(..., instances="nucleus")`` (or a label value) is ``InstanceOptions(class_=...)``:
the class to label, as ``label_objects(class_=...)`` takes it; it raised ``AttributeError:
'str' object has no attribute 'resolve'`` (user test). Anything else is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

import scopeml as sm
from scopeml.errors import InvalidRequestError
from scopeml.model.spec import ModelSpec
from scopeml.objects.instances import InstanceOptions
from scopeml.synthetic import synthetic_nuclei

RUN = {"outputs": ("labels", "instances"), "scale": 1, "tile_size": 64, "workers": 1}


class Threshold:
    """Two classes: bright pixels are foreground."""

    spec = ModelSpec(spatial_dims=2, in_channels=1, classes=("bg", "foreground"), halo=(0, 0))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        fg = (batch > 5).astype(np.float32)
        return np.concatenate([1 - fg, fg], axis=1)


def test_a_class_name_or_value_is_the_class_to_label(tmp_path):
    plane = np.kron([[0, 9, 0, 9], [9, 0, 0, 9]], np.ones((20, 20), np.uint8))
    made = {}
    for name, choice in [("name", "foreground"), ("value", 2), ("options", None)]:
        instances = InstanceOptions(class_="foreground") if choice is None else choice
        out = tmp_path / f"{name}.ome.zarr"
        seg = sm.segment(plane, Threshold(), out, instances=instances, **RUN)
        made[name] = seg.instances.read()
    assert made["name"].max() == 3  # diagonal squares apart, the two stacked ones one object
    np.testing.assert_array_equal(made["name"], made["options"])
    np.testing.assert_array_equal(made["value"], made["options"])


def test_the_shipped_model_takes_its_class_name(tmp_path):
    pixels, _ = synthetic_nuclei((96, 96), density=0.003, seed=3)
    image = pixels.reshape(96, 96)
    named = sm.segment(image, "nuclei", tmp_path / "a.ome.zarr", instances="nucleus", **RUN)
    plain = sm.segment(image, "nuclei", tmp_path / "b.ome.zarr", **RUN)
    np.testing.assert_array_equal(named.instances.read(), plain.instances.read())
    region = sm.predict_region(image, "nuclei", outputs="instances", instances="nucleus",
                               options=sm.SegmentOptions(scale=1, tile_size=64))  # fmt: skip
    np.testing.assert_array_equal(region, plain.instances.read()[0, 0, 0, 0])


@pytest.mark.parametrize("choice", [True, 1.5, ["foreground"]])
def test_anything_else_is_refused_in_one_line(tmp_path, choice):
    with pytest.raises(InvalidRequestError) as err:
        sm.segment(np.zeros((8, 8), np.uint8), Threshold(), tmp_path / "o.ome.zarr",
                   instances=choice, **RUN)  # fmt: skip
    assert str(err.value) == (
        "instances= takes an InstanceOptions, or the class to label by name or label value "
        f"(instances='nucleus'); got {choice!r}"
    )


def test_an_unknown_class_names_the_classes(tmp_path):
    with pytest.raises(InvalidRequestError, match="no class 'nucleus'; classes are bg, foreground"):
        sm.segment(np.zeros((8, 8), np.uint8), Threshold(), tmp_path / "o.ome.zarr",
                   instances="nucleus", **RUN)  # fmt: skip


def test_a_class_given_alone_asks_for_the_instances_too(tmp_path):
    """``instances="nucleus"`` without ``outputs=`` makes them (it was silently ignored: the
    store held labels only)."""
    import numpy as np

    import scopeml as sm

    rng = np.random.default_rng(3)
    plane = rng.integers(0, 50, (96, 96)).astype(np.uint16)
    yy, xx = np.ogrid[:96, :96]
    for y, x in ((20, 20), (20, 70), (70, 45)):
        plane[(yy - y) ** 2 + (xx - x) ** 2 < 81] = 900
    seg = sm.segment(plane, "nuclei", tmp_path / "o.ome.zarr", instances="nucleus")
    assert set(seg.outputs) >= {"labels", "instances"}
    both = sm.segment(plane, "nuclei", tmp_path / "b.ome.zarr", outputs=("labels", "instances"))
    np.testing.assert_array_equal(seg.instances.read(), both.instances.read())
